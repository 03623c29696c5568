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
export { BATCH_LIMITS };
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
export declare const DEFAULT_CONFIG: Readonly<Config>;
