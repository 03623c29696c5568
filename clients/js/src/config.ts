// The manager's settings: their types, the defaults, and the default gateway address.

import { BATCH_LIMITS } from "./contract.js";

/** Returns a fresh token; called before each connect and before the current one expires. */
export type TokenProvider = () => string | Promise<string>;

/** Batching, asked for at connect: data messages arrive up to `count` to a WebSocket message
 * (a JSON array, unpacked here: each still reaches the listeners on its own, in order), each
 * array sent once `count` are held or `delay_ms` after the first, whichever is first. */
export interface BatchOption {
  /** Messages per array, 2 to 64. */
  count: number;
  /** The longest the gateway holds a message for an array, 0 to 100 (ms). */
  delay_ms: number;
}

export { BATCH_LIMITS }; // the ranges the gateway accepts (generated: contract.ts)

/** @internal Throws a TypeError for a `batch` setting the gateway would refuse. */
export function checkBatch(batch: unknown): void {
  if (batch === null) return;
  const { count, delay_ms: delay } = (batch ?? {}) as Partial<BatchOption>;
  const within = (value: unknown, [low, high]: readonly [number, number]): boolean =>
    typeof value === "number" && Number.isInteger(value) && value >= low && value <= high;
  if (!within(count, BATCH_LIMITS.count) || !within(delay, BATCH_LIMITS.delay_ms)) {
    throw new TypeError(
      "oddstream: 'batch' is null or {count: 2..64, delay_ms: 0..100} (whole numbers)",
    );
  }
}

/** The manager's settings (see DEFAULT_CONFIG). Times are in milliseconds. */
export interface Config {
  /** Reconnect after a drop (per the close code's advice); false: stop at the first drop. */
  auto_reconnect: boolean;
  /** Reconnect attempts before giving up; null or Infinity: never give up. */
  max_reconnect_attempts: number | null;
  /** First backoff delay. */
  reconnect_interval: number;
  /** Each further delay is this many times the previous one. */
  reconnect_factor: number;
  /** Cap on a backoff delay. */
  max_reconnect_interval: number;
  /** Each delay is shortened by up to this fraction, at random (0 to 1). */
  jitter: number;
  /** How often to measure latency with our own ping; 0: never. */
  heartbeat_interval: number;
  /** Silence that means a dead link; null: 2x the gateway's heartbeat interval. */
  heartbeat_timeout: number | null;
  /** How long to wait for the gateway's welcome. */
  connect_timeout: number;
  /** How long to wait for the answer to a request (subscribe, ping, ...). */
  request_timeout: number;
  /** e.g. "wss://odds.example.com"; null: the page's own host. */
  base_url: string | null;
  /** The WebSocket endpoint's path. */
  path: string;
  /** Called before each connect and before the token expires; null: no refresh. */
  token_provider: TokenProvider | null;
  /** Ask for data messages in arrays (see BatchOption); null: one message per frame. */
  batch: BatchOption | null;
}

/** The settings a manager runs with: `base_url` is always resolved. */
export interface ResolvedConfig extends Config {
  base_url: string;
}

/** The seed's settings, plus the knobs it left implicit. Times are in milliseconds. */
export const DEFAULT_CONFIG: Readonly<Config> = Object.freeze({
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
export function defaultBaseUrl(): string {
  const loc = (globalThis as { location?: Location }).location;
  if (!loc || !loc.host) return "ws://127.0.0.1:8000";
  return `${loc.protocol === "https:" ? "wss" : "ws"}://${loc.host}`;
}
