// Reconnect backoff: the delay before each attempt, and its jitter.

import type { Config } from "./config.js";

/** Delay in ms before reconnect attempt `attempt` (1-based), before jitter. */
export function backoffDelay(
  config: Pick<Config, "reconnect_interval" | "reconnect_factor" | "max_reconnect_interval">,
  attempt: number,
): number {
  const raw = config.reconnect_interval * config.reconnect_factor ** Math.max(0, attempt - 1);
  return Math.min(config.max_reconnect_interval, raw);
}

/** @internal `delay` shortened by up to `config.jitter` of it, at random. */
export function jittered(
  config: Pick<Config, "jitter">,
  delay: number,
  random = Math.random,
): number {
  // Proportional jitter: clients that lost the same gateway come back spread out.
  return delay * (1 - config.jitter * random());
}
