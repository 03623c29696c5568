// Reconnect backoff: the delay before each attempt, and its jitter.
/** Delay in ms before reconnect attempt `attempt` (1-based), before jitter. */
export function backoffDelay(config, attempt) {
    const raw = config.reconnect_interval * config.reconnect_factor ** Math.max(0, attempt - 1);
    return Math.min(config.max_reconnect_interval, raw);
}
/** @internal `delay` shortened by up to `config.jitter` of it, at random. */
export function jittered(config, delay, random = Math.random) {
    // Proportional jitter: clients that lost the same gateway come back spread out.
    return delay * (1 - config.jitter * random());
}
