/** The WebSocket subprotocol the gateway speaks. */
export declare const SUBPROTOCOL = "oddstream.v2";
/** A token travels as the subprotocol entry `TOKEN_SUBPROTOCOL_PREFIX + token`. */
export declare const TOKEN_SUBPROTOCOL_PREFIX = "bearer.";
/** What to do about a close code; clients act on the group, not on single codes. */
export type CloseAdviceValue = "reconnect_now" | "reconnect_backoff" | "refresh_token" | "terminal";
export declare const CloseAdvice: Readonly<{
    readonly RECONNECT_NOW: "reconnect_now";
    readonly RECONNECT_BACKOFF: "reconnect_backoff";
    readonly REFRESH_TOKEN: "refresh_token";
    readonly TERMINAL: "terminal";
}>;
/** The gateway's close codes by name. */
export declare const CloseCodes: Readonly<{
    readonly NORMAL: 1000;
    readonly GOING_AWAY: 1001;
    readonly POLICY_VIOLATION: 1008;
    readonly MESSAGE_TOO_BIG: 1009;
    readonly INTERNAL_ERROR: 1011;
    readonly SLOW_CONSUMER: 4008;
    readonly HEARTBEAT_TIMEOUT: 4101;
    readonly SERVICE_UNAVAILABLE: 4111;
    readonly TOKEN_EXPIRED: 4401;
    readonly FORBIDDEN: 4503;
}>;
/** RFC 6455 codes, advised one by one. */
export declare const RFC_CLOSE_ADVICE: Readonly<Record<number, CloseAdviceValue>>;
/** Our own codes, advised by range [low, high). */
export declare const CLOSE_ADVICE_RANGES: ReadonlyArray<readonly [number, number, CloseAdviceValue]>;
/** The advice for any close code, known or not; anything else: reconnect with backoff. */
export declare function closeAdvice(code: number): CloseAdviceValue;
/** Why a connection closed, in words a user understands, and what they can do. */
export declare const CLOSE_EXPLANATIONS: Readonly<Record<number, readonly [string, string]>>;
/** The gateway's stable error codes. */
export type ErrorCodeValue = "invalid_json" | "invalid_message" | "unknown_type" | "binary_not_supported" | "invalid_subscription_type" | "invalid_filter" | "not_subscribed" | "auth_required" | "invalid_token" | "token_expired" | "forbidden" | "too_many_connections" | "message_too_large" | "service_unavailable" | "internal_error" | "invalid_request" | "not_found" | "rate_limited" | "too_many_subscriptions" | "origin_not_allowed" | "unauthorized" | "invalid_position";
export declare const ErrorCodes: Readonly<{
    readonly INVALID_JSON: "invalid_json";
    readonly INVALID_MESSAGE: "invalid_message";
    readonly UNKNOWN_TYPE: "unknown_type";
    readonly BINARY_NOT_SUPPORTED: "binary_not_supported";
    readonly INVALID_SUBSCRIPTION_TYPE: "invalid_subscription_type";
    readonly INVALID_FILTER: "invalid_filter";
    readonly NOT_SUBSCRIBED: "not_subscribed";
    readonly AUTH_REQUIRED: "auth_required";
    readonly INVALID_TOKEN: "invalid_token";
    readonly TOKEN_EXPIRED: "token_expired";
    readonly FORBIDDEN: "forbidden";
    readonly TOO_MANY_CONNECTIONS: "too_many_connections";
    readonly MESSAGE_TOO_LARGE: "message_too_large";
    readonly SERVICE_UNAVAILABLE: "service_unavailable";
    readonly INTERNAL_ERROR: "internal_error";
    readonly INVALID_REQUEST: "invalid_request";
    readonly NOT_FOUND: "not_found";
    readonly RATE_LIMITED: "rate_limited";
    readonly TOO_MANY_SUBSCRIPTIONS: "too_many_subscriptions";
    readonly ORIGIN_NOT_ALLOWED: "origin_not_allowed";
    readonly UNAUTHORIZED: "unauthorized";
    readonly INVALID_POSITION: "invalid_position";
}>;
/** What a client should do about each error code. */
export declare const ERROR_HINTS: Readonly<Record<string, string>>;
/** How each error code sorts into a typed error. */
export type ErrorClassValue = "auth" | "subscription" | "general";
export declare const ERROR_CLASSES: Readonly<Record<string, ErrorClassValue>>;
/** Codes for which the same request can succeed later. */
export declare const TEMPORARY_ERRORS: ReadonlySet<string>;
/** Every server frame type. */
export type ServerMessageTypeValue = "welcome" | "subscription_confirmed" | "unsubscribed" | "status" | "ping" | "pong" | "error" | "token_expiring" | "auth_refreshed" | "snapshot" | "odds_update" | "prediction_update" | "arbitrage_alert" | "analytics_update" | "system_alert" | "portfolio_update" | "broadcast";
export declare const ServerMessageTypes: Readonly<{
    readonly WELCOME: "welcome";
    readonly SUBSCRIPTION_CONFIRMED: "subscription_confirmed";
    readonly UNSUBSCRIBED: "unsubscribed";
    readonly STATUS: "status";
    readonly PING: "ping";
    readonly PONG: "pong";
    readonly ERROR: "error";
    readonly TOKEN_EXPIRING: "token_expiring";
    readonly AUTH_REFRESHED: "auth_refreshed";
    readonly SNAPSHOT: "snapshot";
    readonly ODDS_UPDATE: "odds_update";
    readonly PREDICTION_UPDATE: "prediction_update";
    readonly ARBITRAGE_ALERT: "arbitrage_alert";
    readonly ANALYTICS_UPDATE: "analytics_update";
    readonly SYSTEM_ALERT: "system_alert";
    readonly PORTFOLIO_UPDATE: "portfolio_update";
    readonly BROADCAST: "broadcast";
}>;
/** Frame types that carry data (one per event kind, plus broadcasts). */
export type DataMessageType = "analytics_update" | "arbitrage_alert" | "broadcast" | "odds_update" | "portfolio_update" | "prediction_update" | "system_alert";
export declare const DATA_MESSAGE_TYPES: ReadonlySet<string>;
/** Message types a client may send. */
export declare const CLIENT_MESSAGE_TYPES: readonly string[];
/** Subscription types, and the filters each accepts. */
export type SubscriptionType = "odds_updates" | "predictions" | "analytics" | "arbitrage" | "mlb" | "nba" | "nfl" | "nhl" | "system_alerts" | "portfolio";
export declare const SUBSCRIPTION_TYPES: readonly SubscriptionType[];
export declare const ALLOWED_FILTERS: Readonly<Record<SubscriptionType, readonly string[]>>;
/** `ALLOWED_FILTERS` as types: the filter names each subscription type accepts. */
export interface AllowedFilterKeys {
    "odds_updates": "game_id" | "sport" | "sportsbook";
    "predictions": "game_id" | "player" | "sport";
    "analytics": "game_id" | "player" | "sport";
    "arbitrage": "game_id" | "min_profit" | "sport" | "sportsbook";
    "mlb": "game_id" | "player" | "sportsbook";
    "nba": "game_id" | "player" | "sportsbook";
    "nfl": "game_id" | "player" | "sportsbook";
    "nhl": "game_id" | "player" | "sportsbook";
    "system_alerts": "sport";
    "portfolio": never;
}
/** Filters that take a string or a list of strings (the rest are numbers). */
export declare const LIST_FILTERS: readonly string[];
/** At most this many values in one list filter. */
export declare const MAX_FILTER_VALUES = 50;
/** The markets an odds event may carry. */
export declare const ODDS_MARKETS: readonly string[];
export type OddsMarket = "moneyline" | "spread" | "total";
/** The ranges the gateway accepts for `?batch=` (count) and `?batch_ms=` (delay_ms),
 * inclusive; anything else is refused before the upgrade (HTTP 400). */
export declare const BATCH_LIMITS: Readonly<{
    readonly count: readonly [2, 64];
    readonly delay_ms: readonly [0, 100];
}>;
