// The typed errors: OddstreamError and its kinds (AuthError, SubscriptionError,
// ConnectionError), and errorFor, which turns a gateway error body or frame into one.

import { ERROR_CLASSES, TEMPORARY_ERRORS } from "./contract.js";
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
export class OddstreamError extends Error {
  /** The gateway's error code, or one of the client's own (`ClientErrorCode`). */
  code: ErrorCode;
  /** What the user can do about it, or null. */
  hint: string | null;
  /** Whether the same request can work if retried later. */
  temporary: boolean;
  /** The WebSocket close code this error came from, if it came from one. */
  closeCode: number | null;

  constructor(code: ErrorCode, message: string, options: OddstreamErrorOptions = {}) {
    super(message);
    this.name = "OddstreamError";
    this.code = code;
    this.hint = options.hint ?? null;
    this.temporary = options.temporary ?? false;
    this.closeCode = options.closeCode ?? null;
  }
}

/**
 * Missing, bad, expired or insufficient credentials: fix the token, not the request.
 * Codes: the contract's "auth" error class (auth_required, invalid_token, token_expired,
 * forbidden, unauthorized), and token_provider_failed.
 */
export class AuthError extends OddstreamError {
  declare name: "AuthError";

  constructor(code: ErrorCode, message: string, options?: OddstreamErrorOptions) {
    super(code, message, options);
    this.name = "AuthError";
  }
}

/**
 * A subscription the gateway will not serve as asked (type, filters, limits).
 * Codes: the contract's "subscription" error class (invalid_subscription_type, invalid_filter,
 * not_subscribed, too_many_subscriptions), and unsubscribed (left before it was confirmed).
 */
export class SubscriptionError extends OddstreamError {
  declare name: "SubscriptionError";

  constructor(code: ErrorCode, message: string, options?: OddstreamErrorOptions) {
    super(code, message, options);
    this.name = "SubscriptionError";
  }
}

/**
 * The connection is gone, could not be made, or a request got no answer in time.
 * Codes: closed, gave_up, unreachable, refused, not_connected, request_timeout, invalid_url.
 */
export class ConnectionError extends OddstreamError {
  declare name: "ConnectionError";

  constructor(code: ErrorCode, message: string, options?: OddstreamErrorOptions) {
    super(code, message, options);
    this.name = "ConnectionError";
  }
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
export function errorFor(body: ErrorBody): OddstreamError {
  const code = String(body.code || "unknown");
  const hint = body.hint || null;
  let message = String(body.error || code);
  if (hint && message.endsWith(hint)) message = message.slice(0, -hint.length).trim();
  const options = { hint, temporary: TEMPORARY_ERRORS.has(code) };
  const errorClass = Object.hasOwn(ERROR_CLASSES, code) ? ERROR_CLASSES[code] : undefined;
  if (errorClass === "auth") return new AuthError(code, message, options);
  if (errorClass === "subscription") return new SubscriptionError(code, message, options);
  return new OddstreamError(code, message, options);
}

/** @internal The connection a request went out on is gone (or there is none right now). */
export class SessionLost extends ConnectionError {
  constructor(message: string) {
    super("not_connected", message, {
      hint: "Wait until the state is 'connected' again, then retry.",
      temporary: true,
    });
  }
}
