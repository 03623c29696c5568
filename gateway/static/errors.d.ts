import type { ErrorCode } from "./types.js";
export interface OddstreamErrorOptions {
    hint?: string | null | undefined;
    temporary?: boolean | undefined;
    closeCode?: number | null | undefined;
}
/**
 * Anything the gateway refused or the client could not do. `code` is the gateway's stable
 * error code where there is one; `hint` says what to do; `temporary` whether a retry can work.
 */
export declare class OddstreamError extends Error {
    /** The gateway's error code, or one of the client's own (`ClientErrorCode`). */
    code: ErrorCode;
    /** What the user can do about it, or null. */
    hint: string | null;
    /** Whether the same request can work if retried later. */
    temporary: boolean;
    /** The WebSocket close code this error came from, if it came from one. */
    closeCode: number | null;
    constructor(code: ErrorCode, message: string, options?: OddstreamErrorOptions);
}
/**
 * Missing, bad, expired or insufficient credentials: fix the token, not the request.
 * Codes: the contract's "auth" error class (auth_required, invalid_token, token_expired,
 * forbidden, unauthorized), and token_provider_failed.
 */
export declare class AuthError extends OddstreamError {
    name: "AuthError";
    constructor(code: ErrorCode, message: string, options?: OddstreamErrorOptions);
}
/**
 * A subscription the gateway will not serve as asked (type, filters, limits).
 * Codes: the contract's "subscription" error class (invalid_subscription_type, invalid_filter,
 * not_subscribed, too_many_subscriptions), and unsubscribed (left before it was confirmed).
 */
export declare class SubscriptionError extends OddstreamError {
    name: "SubscriptionError";
    constructor(code: ErrorCode, message: string, options?: OddstreamErrorOptions);
}
/**
 * The connection is gone, could not be made, or a request got no answer in time.
 * Codes: closed, gave_up, unreachable, refused, not_connected, request_timeout, invalid_url.
 */
export declare class ConnectionError extends OddstreamError {
    name: "ConnectionError";
    constructor(code: ErrorCode, message: string, options?: OddstreamErrorOptions);
}
/** A gateway error body (HTTP) or `error` frame: the parts `errorFor` reads. */
export interface ErrorBody {
    code?: string | null | undefined;
    error?: string | null | undefined;
    hint?: string | null | undefined;
}
/**
 * The typed error for a gateway error body or frame ({code, error, hint}): an AuthError or a
 * SubscriptionError where the contract's error class says so, else an OddstreamError;
 * `temporary` where the contract lists the code as temporary.
 */
export declare function errorFor(body: ErrorBody): OddstreamError;
