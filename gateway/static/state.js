// Connection states, and the advice groups of close codes (what to do about a close).
import { CloseAdvice as CLOSE_ADVICE } from "./contract.js";
/** Connection states, in the order a connection normally goes through them. */
export const ConnectionState = Object.freeze({
    CONNECTING: "connecting",
    CONNECTED: "connected",
    RECONNECTING: "reconnecting",
    /** The connection dropped; a reconnect decision follows. */
    DISCONNECTED: "disconnected",
    /** Final: closed by the caller, or given up (see `lastError`). */
    CLOSED: "closed",
});
/** What to do about a close code; clients act on the group, not on single codes
 * (`closeAdvice(code)` says which). */
export const CloseAdvice = CLOSE_ADVICE;
