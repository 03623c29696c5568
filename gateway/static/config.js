// The manager's settings: their types, the defaults, and the default gateway address.
import { BATCH_LIMITS } from "./contract.js";
export { BATCH_LIMITS }; // the ranges the gateway accepts (generated: contract.ts)
/** @internal Throws a TypeError for a `batch` setting the gateway would refuse. */
export function checkBatch(batch) {
    if (batch === null)
        return;
    const { count, delay_ms: delay } = (batch ?? {});
    const within = (value, [low, high]) => typeof value === "number" && Number.isInteger(value) && value >= low && value <= high;
    if (!within(count, BATCH_LIMITS.count) || !within(delay, BATCH_LIMITS.delay_ms)) {
        throw new TypeError("oddstream: 'batch' is null or {count: 2..64, delay_ms: 0..100} (whole numbers)");
    }
}
/** The seed's settings, plus the knobs it left implicit. Times are in milliseconds. */
export const DEFAULT_CONFIG = Object.freeze({
    auto_reconnect: true,
    max_reconnect_attempts: 5, // null or Infinity: never give up
    reconnect_interval: 2000, // first backoff delay
    reconnect_factor: 2,
    max_reconnect_interval: 30000,
    jitter: 0.2, // each delay is shortened by up to this fraction, at random
    heartbeat_interval: 30000, // how often to measure latency with our own ping; 0: never
    heartbeat_timeout: null, // silence that means a dead link; null: 2x the gateway's interval
    connect_timeout: 10000,
    request_timeout: 10000,
    base_url: null, // null: the page's own host
    path: "/ws/v2/connect",
    token_provider: null, // async () => token; called before each connect and before expiry
    batch: null, // {count, delay_ms}: data messages in arrays of up to count (see BatchOption)
});
/** @internal The page's own host as a WebSocket base URL (ws://127.0.0.1:8000 outside a
 * page). */
export function defaultBaseUrl() {
    const loc = globalThis.location;
    if (!loc || !loc.host)
        return "ws://127.0.0.1:8000";
    return `${loc.protocol === "https:" ? "wss" : "ws"}://${loc.host}`;
}
