/*!
 * @oddstream/client: the Oddstream browser client. Built from clients/js/src/oddstream.ts by
 * `npm run build` in clients/js; every gateway serves the build at /static/oddstream.js, with
 * its declarations beside it (/static/oddstream.d.ts). Edit the TypeScript source, not the build.
 *
 *   import { WebSocketManager } from "/static/oddstream.js";
 *   const manager = new WebSocketManager({ base_url: "ws://localhost:8000" });
 *   manager.on("notification", (n) => console.log(n.level, n.title, n.message, n.suggestion));
 *   await manager.connect(token);                 // token optional: anonymous if allowed
 *   const sub = await manager.subscribe("odds_updates", { sport: "MLB" });
 *   sub.onMessage((frame) => render(frame.data));
 *
 * It does what every consumer of the protocol must do and should not have to write: answer the
 * gateway's heartbeat pings, notice a dead connection, act on the close code's advice group
 * (reconnect now, back off, refresh the token, stop), back off with jitter (2, 4, 8, 16, 30 s by
 * default, 5 attempts), resubscribe after a reconnect from where each subscription left off (the
 * gateway replays what was missed, or says it cannot and sends a snapshot), drop duplicate
 * events, refresh tokens before they expire, and turn every failure into a `notification` a UI
 * can show, with a suggestion of what to do.
 * The Python client (clients/python, `oddstream_client`) follows the same rules.
 *
 * The wire contract (close codes and their advice, error classes, message and subscription
 * types, allowed filters) comes from ./contract.js, generated from the gateway's own Python
 * definitions by clients/generate_contract.py. The types below that it does not cover (frame
 * and payload shapes) mirror oddstream.shared.protocol and oddstream.shared.events.
 */
import { CloseAdvice as CLOSE_ADVICE } from "./contract.js";
import type { AllowedFilterKeys, CloseAdviceValue, DataMessageType, ErrorCodeValue, OddsMarket, ServerMessageTypeValue, SubscriptionType } from "./contract.js";
export { ALLOWED_FILTERS, CLOSE_EXPLANATIONS, CloseCodes, DATA_MESSAGE_TYPES, ERROR_HINTS, ErrorCodes, LIST_FILTERS, MAX_FILTER_VALUES, ODDS_MARKETS, SUBPROTOCOL, SUBSCRIPTION_TYPES, ServerMessageTypes, TEMPORARY_ERRORS, closeAdvice, } from "./contract.js";
export type { AllowedFilterKeys, DataMessageType, OddsMarket, SubscriptionType } from "./contract.js";
/** The four sport types: every event of one sport (filters narrow it further). */
export type SportSubscriptionType = "mlb" | "nba" | "nfl" | "nhl";
/**
 * Every filter the gateway knows. A list means "any of these"; an absent filter matches
 * everything. `sport` matches case-insensitively, the others by equality. Which filters a
 * subscription type accepts is `AllowedFilterKeys` (from the contract).
 */
export interface Filters {
    /** e.g. "NBA"; case-insensitive. */
    sport?: string | readonly string[];
    /** Numbers are accepted and compared as strings. */
    game_id?: string | number | readonly (string | number)[];
    player?: string | readonly string[];
    /** Matches an event quoting any of these books. */
    sportsbook?: string | readonly string[];
    /** Lower bound on an arbitrage opportunity's profit, in percent (0 to 1000). */
    min_profit?: number;
}
/** The filters subscription type `T` accepts (none for `portfolio`: the gateway scopes it to
 * the token's user). */
export type FiltersFor<T extends SubscriptionType> = [AllowedFilterKeys[T]] extends [never] ? Record<string, never> : Pick<Filters, AllowedFilterKeys[T]>;
/**
 * Filters as `subscribe()` and `unsubscribe()` take them: `null`, `undefined` and `""` mean
 * "no filter" and are dropped before sending, so a form's empty field can be passed as is.
 */
export type FilterInput<T extends SubscriptionType = SubscriptionType> = {
    [K in keyof FiltersFor<T>]?: FiltersFor<T>[K] | null | undefined;
};
/** Every server frame type. */
export type ServerMessageType = ServerMessageTypeValue;
/** The gateway's stable error codes. */
export type ServerErrorCode = ErrorCodeValue;
/** Codes the client itself gives errors it detects (no gateway answer to quote). */
export type ClientErrorCode = "unknown" | "closed" | "gave_up" | "unreachable" | "refused" | "not_connected" | "unsubscribed" | "request_timeout" | "invalid_url" | "token_provider_failed";
/** An error's `code`: one of the known codes, or a newer gateway's code this file predates. */
export type ErrorCode = ServerErrorCode | ClientErrorCode | (string & {});
/** Shape of every server frame (oddstream.shared.protocol `ServerMessage`). */
export interface ServerFrame {
    type: ServerMessageType;
    status: "success" | "error";
    data?: Record<string, unknown> | null;
    client_id?: string | null;
    /** ISO 8601, UTC. */
    timestamp: string;
    /** `error` frames: what went wrong, ending with the hint. */
    error?: string | null;
    /** `error` frames: the stable error code. */
    code?: ServerErrorCode | null;
    /** `error` frames: what to do about it (also the end of `error`). */
    hint?: string | null;
    /** The request id this frame answers. */
    id?: string | number | null;
    /** Data frames: this connection's rooms the event matched. */
    rooms?: string[] | null;
    /** Data frames: the ingest entry id. */
    event_id?: string | null;
    /** Data frames: each matched room's position after this event (opaque: echo it back). */
    positions?: Record<string, string> | null;
    /** Data frames replayed after a resume (`subscription_confirmed` said `recovered: true`). */
    replay?: boolean | null;
}
/** Payload fields are validated for routing; feeds may add any others (kept as is). */
export interface EventPayload {
    [field: string]: unknown;
}
export interface OddsPayload extends EventPayload {
    kind: "odds";
    sport: string;
    game_id: string;
    sportsbook: string;
    market: OddsMarket;
}
export interface PredictionPayload extends EventPayload {
    kind: "predictions";
    sport: string;
    game_id: string;
    player: string | null;
}
export interface AnalyticsPayload extends EventPayload {
    kind: "analytics";
    sport: string;
    game_id: string | null;
    player: string | null;
}
export interface ArbitragePayload extends EventPayload {
    kind: "arbitrage";
    sport: string;
    game_id: string;
    /** Percent. */
    profit_pct: number;
    sportsbooks: string[];
}
/** An alert from the data feeds, delivered to the rooms it matched. */
export interface AlertPayload extends EventPayload {
    kind: "alerts";
    message: string;
    level: "info" | "warning" | "critical";
    sport: string | null;
}
/** A gateway's own alert about its data store, sent to every connection (no `rooms`). */
export interface GatewayAlertPayload extends EventPayload {
    kind?: never;
    code: "service_degraded" | "service_restored";
    level: "info" | "warning";
    message: string;
}
export interface PortfolioPayload extends EventPayload {
    kind: "portfolio";
    user: string;
}
/** `POST /ws/v2/broadcast/test`: reaches every room of one type, whatever its filters. */
export interface BroadcastPayload extends EventPayload {
    kind: "broadcast";
    subscription_type: SubscriptionType;
    message: string;
}
/** The `data` of each data frame type (one entry per contract `DataMessageType`). */
export interface DataPayloads {
    odds_update: OddsPayload;
    prediction_update: PredictionPayload;
    analytics_update: AnalyticsPayload;
    arbitrage_alert: ArbitragePayload;
    system_alert: AlertPayload | GatewayAlertPayload;
    portfolio_update: PortfolioPayload;
    broadcast: BroadcastPayload;
}
/** A data frame of one type; see `DataFrame`. */
export interface DataFrameOf<K extends DataMessageType> extends ServerFrame {
    type: K;
    status: "success";
    data: DataPayloads[K];
    /** This connection's rooms the event matched; absent on a gateway's own alerts. */
    rooms?: string[];
    /** The ingest entry id; absent on a gateway's own alerts. */
    event_id?: string;
    /** Each matched room's position after this event (opaque); absent on a gateway's own
     * alerts. Subscriptions keep theirs and resume from it after a reconnect. */
    positions?: Record<string, string>;
    /** True on the frames replayed after a resume; live frames follow them with no gap. */
    replay?: boolean;
}
/**
 * A frame carrying an event. Without a type argument, a union discriminated by `type`:
 * `if (frame.type === "arbitrage_alert") frame.data.profit_pct`.
 */
export type DataFrame<K extends DataMessageType = DataMessageType> = K extends DataMessageType ? DataFrameOf<K> : never;
type SportDataType = "odds_update" | "prediction_update" | "analytics_update" | "arbitrage_alert" | "system_alert" | "broadcast";
/** The data frame types each subscription type receives. */
export interface DataTypesOf {
    odds_updates: "odds_update" | "broadcast";
    predictions: "prediction_update" | "broadcast";
    analytics: "analytics_update" | "broadcast";
    arbitrage: "arbitrage_alert" | "broadcast";
    mlb: SportDataType;
    nba: SportDataType;
    nfl: SportDataType;
    nhl: SportDataType;
    system_alerts: "system_alert" | "broadcast";
    portfolio: "portfolio_update" | "broadcast";
}
/** The frames a subscription of type `T` delivers. */
export type DataFrameFor<T extends SubscriptionType> = DataFrame<DataTypesOf[T]>;
/** One event of a snapshot: the latest value of one key (game, sportsbook and market for odds;
 * game, player and market for predictions), as its data frame carried it. */
export type SnapshotEvent<K extends DataMessageType = DataMessageType> = K extends DataMessageType ? {
    type: K;
    event_id: string;
    timestamp: string;
    data: DataPayloads[K];
} : never;
/**
 * The state of a room, sent right after the confirmation of a fresh subscribe (or of a resume
 * the gateway could not recover) to odds, predictions and sport subscriptions, before any live
 * update: the latest value for every key the filters cover. Apply it, then the live frames.
 */
export interface SnapshotFrame<T extends SubscriptionType = SubscriptionType> {
    type: "snapshot";
    status: "success";
    /** The room this is the state of. */
    room: string;
    /** The room's position at the snapshot (opaque): live frames continue from here. */
    position: string;
    timestamp?: string;
    data: {
        subscription_type: T;
        events: SnapshotEvent<DataTypesOf[T]>[];
        /** Cut at the gateway's size limit: some keys are missing (they fill in as they update). */
        truncated?: boolean;
        [field: string]: unknown;
    };
}
/** Subscription types the gateway sends a snapshot for. */
export declare const SNAPSHOT_TYPES: ReadonlySet<SubscriptionType>;
/** Event ids each subscription remembers to drop duplicates (the most recent ones). */
export declare const DEDUPE_WINDOW = 10000;
/** `subscribe()` options. */
export interface SubscribeOptions {
    /**
     * Resume from this position (a `Subscription.position` saved earlier, e.g. before the page
     * was closed): the gateway replays what the room got since, or, when it cannot, says so
     * (`recovered` false, a `resync` event) and sends a snapshot. Ignored when a subscription
     * with the same type and filters exists already (it has its own position).
     */
    position?: string | null;
    /** Ask for a snapshot when subscribing afresh (default true). */
    snapshot?: boolean;
}
/** `resync` events: a subscription could not resume from its position (too old, another
 * epoch, unusable): what it missed is gone; rebuild its state from the snapshot that follows. */
export interface ResyncDetail<T extends SubscriptionType = SubscriptionType> {
    subscription: Subscription<T>;
    /** The position sent, which the gateway could not resume from. */
    position: string;
    /** The gateway's confirmation (`data.recovered` is false). */
    confirmation: ServerFrame;
    /** Whether a snapshot follows (snapshot types, unless subscribed with `snapshot: false`). */
    snapshot: boolean;
}
/** `snapshot` events: a subscription received the state of its room. */
export interface SnapshotDetail<T extends SubscriptionType = SubscriptionType> {
    subscription: Subscription<T>;
    frame: SnapshotFrame<T>;
}
/** `resume` events: after a reconnect, how the subscriptions sent again with a position came
 * back, once all are confirmed. */
export interface ResumeDetail {
    /** Subscriptions sent again with a position. */
    subscriptions: number;
    /** ... that the gateway resumed with nothing lost (`recovered: true`). */
    recovered: number;
    /** ... that it could not resume (`recovered: false`: state reloaded from a snapshot). */
    resynced: number;
    /** Missed frames the gateway replayed, in total (they follow the confirmations). */
    replayed: number;
}
/** `welcome.data`: who the gateway says we are, and its heartbeat settings. */
export interface WelcomeData {
    gateway: string;
    user: string | null;
    endpoint: string;
    /** Seconds between the gateway's pings. */
    heartbeat_interval: number;
    /** Seconds of silence after which the gateway drops a client. */
    connection_timeout: number;
    /** Unix time in seconds, or null for a token that does not expire. */
    token_expires_at: number | null;
    [field: string]: unknown;
}
/** The first frame of every connection. */
export interface WelcomeFrame extends ServerFrame {
    type: "welcome";
    status: "success";
    client_id: string;
    data: WelcomeData;
}
/** Who this connection is, from the welcome frame. */
export interface Identity {
    /** null: anonymous. */
    user: string | null;
    gateway: string;
    client_id: string;
}
/** One of this connection's rooms, as the gateway reports it in `status()`. */
export interface RoomInfo {
    subscription_type: SubscriptionType;
    filters: Filters;
    /** Portfolio rooms only: the owner. */
    user?: string;
    room: string;
}
/** The gateway's view of this connection (`status()`). */
export interface ConnectionStatus {
    client_id: string;
    user: string | null;
    gateway: string;
    /** ISO 8601, UTC. */
    connected_at: string;
    subscriptions: RoomInfo[];
    messages_sent: number;
    messages_received: number;
}
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
/** Returns a fresh token; called before each connect and before the current one expires. */
export type TokenProvider = () => string | Promise<string>;
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
}
/** The settings a manager runs with: `base_url` is always resolved. */
export interface ResolvedConfig extends Config {
    base_url: string;
}
/** The seed's settings, plus the knobs it left implicit. Times are in milliseconds. */
export declare const DEFAULT_CONFIG: Readonly<Config>;
/** Delay in ms before reconnect attempt `attempt` (1-based), before jitter. */
export declare function backoffDelay(config: Pick<Config, "reconnect_interval" | "reconnect_factor" | "max_reconnect_interval">, attempt: number): number;
/** Canonical key of a subscription: its type and filters with sorted keys. */
export declare function subscriptionKey<T extends SubscriptionType>(type: T, filters?: FilterInput<T>): string;
/**
 * Filters as `subscribe()` sends them: empty values dropped, then canonicalised as the gateway
 * does (trimmed, sport upper-case, ids as strings, lists sorted and deduplicated). With it,
 * `subscriptionKey(type, canonicalFilters(filters))` is the key `subscribe()` files the
 * subscription under in `manager.subscriptions`, for any spelling of the same room.
 */
export declare function canonicalFilters<T extends SubscriptionType>(filters: FilterInput<T> | null | undefined): FiltersFor<T>;
/** A subscription as a plain object (`toJSON()`, `subscriptionList()`). */
export interface SubscriptionInfo<T extends SubscriptionType = SubscriptionType> {
    type: T;
    filters: FiltersFor<T>;
    /** The gateway's room id, once confirmed. */
    room: string | null;
    confirmed: boolean;
    /** Data frames delivered so far. */
    received: number;
    /** Where it resumes from after a reconnect (opaque), or null before any. */
    position?: string | null;
    /** `recovered` of the last confirmation: null for a fresh subscribe. */
    recovered?: boolean | null;
}
/** One subscription. It outlives connections: it is sent again after every reconnect. */
export declare class Subscription<T extends SubscriptionType = SubscriptionType> {
    readonly manager: WebSocketManager;
    readonly type: T;
    /** The filters as sent (empty ones dropped). */
    readonly filters: FiltersFor<T>;
    /** `subscriptionKey(type, filters)`: its key in `manager.subscriptions`. */
    readonly key: string;
    /** Resolves once the gateway confirmed it; rejects if refused or unsubscribed first. */
    readonly ready: Promise<Subscription<T>>;
    private _recovered;
    private _replayed;
    private _duplicates;
    private _resumes;
    private _resyncs;
    private _snapshots;
    private _lastSnapshot;
    private readonly _seen;
    private readonly _seenRing;
    private _seenNext;
    private readonly _listeners;
    private readonly _snapshotListeners;
    private readonly _resyncListeners;
    private readonly _settle;
    /** Made by `WebSocketManager.subscribe()`; one made directly is not sent anywhere. */
    constructor(manager: WebSocketManager, type: T, filters: FiltersFor<T>);
    /** The gateway's room id, once confirmed. */
    get room(): string | null;
    /** Confirmed by the gateway on the current connection. */
    get confirmed(): boolean;
    /** Data frames delivered so far. */
    get received(): number;
    /** Date.now() of the last data frame, or null. */
    get lastMessageAt(): number | null;
    /** False once unsubscribed or refused. */
    get active(): boolean;
    /** Where this subscription is in its room's stream (opaque), sent with every resubscribe;
     * save it to resume later with `subscribe(type, filters, null, { position })`. */
    get position(): string | null;
    /** `recovered` of the last confirmation: true (missed frames replayed), false (they were
     * lost: state reloaded from a snapshot), null (a fresh subscribe, no position sent). */
    get recovered(): boolean | null;
    /** Frames the last confirmation announced as replayed. */
    get replayed(): number;
    /** Frames dropped because their event was already delivered (a replay's overlap). */
    get duplicates(): number;
    /** Resumes that recovered everything so far. */
    get resumes(): number;
    /** Resumes that could not recover (state rebuilt from a snapshot) so far. */
    get resyncs(): number;
    /** Snapshot frames received so far. */
    get snapshots(): number;
    /** The last snapshot frame, or null. */
    get lastSnapshot(): SnapshotFrame<T> | null;
    /** Call `listener(frame)` for every data frame of this subscription; returns a remover. */
    onMessage(listener: (frame: DataFrameFor<T>) => void): () => void;
    /** Call `listener(frame)` for every snapshot of this subscription's room (after a fresh
     * subscribe, or a resume that could not recover), before the live frames after it. */
    onSnapshot(listener: (frame: SnapshotFrame<T>) => void): () => void;
    /** Call `listener(detail)` when a resume could not recover what was missed. */
    onResync(listener: (detail: ResyncDetail<T>) => void): () => void;
    /** Leave this subscription (the room is left on the gateway too). */
    unsubscribe(): Promise<void>;
    private _remember;
    private _call;
    /** The subscription as a plain object. */
    toJSON(): SubscriptionInfo<T>;
}
/** `state` events: the new state, when, and what is known about it. */
export interface StateDetail {
    state: ConnectionState;
    /** Date.now() of the change; absent only before the first change. */
    at?: number;
    /** Reconnect attempt number (0: the first connect or an immediate reconnect). */
    attempt?: number;
    /** `max_reconnect_attempts`, Infinity when unlimited. */
    max_attempts?: number;
    /** ms until the next attempt. */
    delay?: number;
    /** Date.now() of the next attempt. */
    next_attempt_at?: number;
    /** The close code that ended the last connection, if any. */
    close_code?: number | null;
    /** Why the connection ended, in words. */
    reason?: string;
    /** The error behind the state (RECONNECTING, CLOSED after giving up). */
    error?: OddstreamError | null;
    /** True while an attempt is being made (the socket is opening). */
    connecting?: boolean;
    /** CONNECTED: the gateway's id. */
    gateway?: string;
    /** CONNECTED: the user, or null when anonymous. */
    user?: string | null;
}
/** Something a UI should show: a toast, a banner line. */
export interface Notification {
    /** Increases with each notification of one manager. */
    id: number;
    level: "info" | "success" | "warning" | "error";
    title: string;
    message: string;
    /** What the user can do about it, or null. */
    suggestion: string | null;
    /** The error code (or `close_<code>`) behind it, or null. */
    code: string | number | null;
    /** Date.now() when it was made. */
    at: number;
}
/** Counters for a status view (`stats`, `stats` events). */
export interface Stats {
    messages_received: number;
    data_messages: number;
    reconnects: number;
    token_refreshes: number;
    /** Round trip of the last ping, in ms. */
    latency_ms: number | null;
    /** Date.now() when the current connection was welcomed, or null. */
    connected_since: number | null;
    /** Date.now() of the last frame received, or null. */
    last_message_at: number | null;
    /** The URL of the last connection attempt, or null. */
    url: string | null;
    subscriptions: number;
    state: ConnectionState;
    /** Frames dropped as already delivered (a replay overlapping what arrived before). */
    duplicates: number;
    /** Resubscribes whose missed frames were replayed (`recovered: true`). */
    resumes: number;
    /** Resubscribes that could not recover (`recovered: false`; state reloaded). */
    resyncs: number;
}
/** The events a WebSocketManager emits, with each one's detail. */
export interface ManagerEvents {
    /** The connection state changed. */
    state: StateDetail;
    /** Something to show the user. */
    notification: Notification;
    /** Every data frame. */
    message: DataFrame;
    /** Every frame received (for debug views). */
    frame: ServerFrame;
    /** The set of subscriptions (or their confirmation) changed. */
    subscriptions: SubscriptionInfo[];
    /** A ping measured the latency. */
    stats: Stats;
    /** After a reconnect: how the subscriptions resumed (once all are confirmed again). */
    resume: ResumeDetail;
    /** A subscription could not resume: what it missed is gone; a snapshot follows for
     * snapshot types. */
    resync: ResyncDetail;
    /** A subscription received its room's state (apply it before the live frames after it). */
    snapshot: SnapshotDetail;
}
export type ManagerEventListener<K extends keyof ManagerEvents> = ((event: CustomEvent<ManagerEvents[K]>) => void) | {
    handleEvent(event: CustomEvent<ManagerEvents[K]>): void;
};
/**
 * A reconnecting Oddstream connection with the seed's WebSocket manager API.
 *
 * Events (`on(name, listener)` or `addEventListener(name, e => e.detail)`): see ManagerEvents.
 */
export declare class WebSocketManager extends EventTarget {
    private _config;
    private readonly _subscriptions;
    private _state;
    private _stateDetail;
    private _welcome;
    private _identity;
    private _lastError;
    private readonly _sessions;
    private _token;
    private _ws;
    private readonly _pending;
    private _ids;
    private _notes;
    private _attempt;
    /** Bumped by every _open and disconnect: late callbacks check it. */
    private _generation;
    private _everConnected;
    /** The caller wants a connection (connect() and no disconnect()). */
    private _wanted;
    private _timer;
    private _pinger;
    private _watchdog;
    private _connectWaiters;
    private readonly _stats;
    private readonly _onWake;
    private readonly _onVisibility;
    constructor(config?: Partial<Config>);
    /** The current settings; change them with `setConfig()`. */
    get config(): Readonly<ResolvedConfig>;
    /** Subscriptions by key, in the order they were made; kept across reconnects. */
    get subscriptions(): ReadonlyMap<string, Subscription>;
    /** Where the connection is: connecting, connected, reconnecting, disconnected, closed. */
    get state(): ConnectionState;
    /** The detail of the last `state` event. */
    get stateDetail(): StateDetail;
    /** The last connection's welcome frame, or null before the first. */
    get welcome(): WelcomeFrame | null;
    /** Who the last connection was, or null before the first. */
    get identity(): Identity | null;
    /** Why the manager gave up (state CLOSED), or null. */
    get lastError(): OddstreamError | null;
    /** state === "connected". */
    get connected(): boolean;
    /** A snapshot of the counters. */
    get stats(): Stats;
    /** The WebSocket URL this manager connects to. */
    get url(): string;
    /** Change settings (see DEFAULT_CONFIG); takes effect at the next (re)connect. */
    setConfig(partial?: Partial<Config>): Readonly<ResolvedConfig>;
    /** Listen to an event; returns a function that stops listening. */
    on<K extends keyof ManagerEvents>(name: K, listener: (detail: ManagerEvents[K]) => void): () => void;
    addEventListener<K extends keyof ManagerEvents>(type: K, listener: ManagerEventListener<K> | null, options?: boolean | AddEventListenerOptions): void;
    addEventListener(type: string, listener: EventListenerOrEventListenerObject | null, options?: boolean | AddEventListenerOptions): void;
    removeEventListener<K extends keyof ManagerEvents>(type: K, listener: ManagerEventListener<K> | null, options?: boolean | EventListenerOptions): void;
    removeEventListener(type: string, listener: EventListenerOrEventListenerObject | null, options?: boolean | EventListenerOptions): void;
    /**
     * Connect, retrying per the backoff settings; resolves once the gateway said welcome (and
     * every remembered subscription is back). `token` may be a string, a provider function
     * (async () => token; it becomes `config.token_provider`), or omitted for an anonymous
     * connection. Rejects with the error the manager gave up on (see `lastError`), or a
     * ConnectionError if `disconnect()` is called first.
     */
    connect(token?: string | null | TokenProvider): Promise<void>;
    /** Close for good (no reconnect). Subscriptions are kept and sent again on connect(). */
    disconnect(reason?: string): void;
    /** Disconnect and drop every listener the manager set on the page. */
    destroy(): void;
    /**
     * Subscribe; resolves with the Subscription once the gateway confirmed it, rejects with a
     * SubscriptionError / AuthError (with `hint`) if it refused. While reconnecting the
     * subscription waits and is sent as soon as the connection is back. Subscribing again with
     * the same type and filters returns the existing subscription (adding `onMessage`).
     * `options.position` resumes from a saved `Subscription.position` (see SubscribeOptions);
     * after every reconnect a subscription resumes from its own latest position by itself.
     */
    subscribe<T extends SubscriptionType>(type: T, filters?: FilterInput<T>, onMessage?: ((frame: DataFrameFor<T>) => void) | null, options?: SubscribeOptions): Promise<Subscription<T>>;
    /** Unsubscribe; resolves when the gateway agreed (at once when not connected). */
    unsubscribe(subscription: Subscription): Promise<void>;
    /** Unsubscribe by type and filters; resolves when the gateway agreed (at once when not
     * connected: nothing will be re-sent). */
    unsubscribe<T extends SubscriptionType>(type: T, filters?: FilterInput<T>): Promise<void>;
    /** The subscriptions as plain objects, in the order they were made. */
    subscriptionList(): SubscriptionInfo[];
    /**
     * Round trip to the gateway in ms (also kept in stats.latency_ms). Rejects with a
     * ConnectionError: `not_connected` when not connected or the connection drops meanwhile,
     * `request_timeout` after `config.request_timeout`.
     */
    ping(): Promise<number>;
    /** The gateway's view of this connection (rooms, counters). Rejects like `ping()`. */
    status(): Promise<ConnectionStatus>;
    private _open;
    private _welcomed;
    /** Send one subscription on `ws` (from its position, if it has one); how it was
     * confirmed, or null. Refusals end the subscription. */
    private _sendSubscribe;
    private _receive;
    private _data;
    /** A room's state: to the subscription(s) of that room waiting for it. */
    private _snapshot;
    private _serviceAlert;
    private _refreshToken;
    private _closed;
    /** Why a connection could not be opened: ask the gateway over HTTP (GET /ws/v2/whoami). */
    private _diagnose;
    private _ended;
    private _giveUp;
    /** Subscriptions never confirmed end with `error` (their promises must not hang); those
     * confirmed before stay, to be sent again by the next connect(). */
    private _dropUnconfirmed;
    /** Back online or visible again: skip the rest of the backoff wait, try now. */
    private _wake;
    private _abort;
    private _closedWithoutServer;
    private _detach;
    private _endSession;
    private _clearTimer;
    private _maxAttempts;
    private _armWatchdog;
    private _feedWatchdog;
    private _startPinger;
    private _send;
    private _request;
    private _setState;
    private _settleWaiters;
    private _notify;
    private _notifyError;
    private _emit;
}
/** The seed's shared instance, for pages with one connection. */
export declare const webSocketManager: WebSocketManager;
