import { CloseAdvice as CLOSE_ADVICE } from "./contract.js";
import type { CloseAdviceValue } from "./contract.js";
/** Connection states, in the order a connection normally goes through them. */
export declare const ConnectionState: Readonly<{
    readonly CONNECTING: "connecting";
    readonly CONNECTED: "connected";
    readonly RECONNECTING: "reconnecting";
    /** The connection dropped; a reconnect decision follows. */
    readonly DISCONNECTED: "disconnected";
    /** Final: closed by the caller, or given up (see `lastError`). */
    readonly CLOSED: "closed";
}>;
export type ConnectionState = (typeof ConnectionState)[keyof typeof ConnectionState];
/** What to do about a close code; clients act on the group, not on single codes
 * (`closeAdvice(code)` says which). */
export declare const CloseAdvice: typeof CLOSE_ADVICE;
export type CloseAdvice = CloseAdviceValue;
