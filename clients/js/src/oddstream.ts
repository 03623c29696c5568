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

import {
  ALLOWED_FILTERS,
  CLOSE_EXPLANATIONS,
  CloseAdvice as CLOSE_ADVICE,
  CloseCodes,
  DATA_MESSAGE_TYPES,
  ERROR_CLASSES,
  LIST_FILTERS,
  SUBPROTOCOL,
  TEMPORARY_ERRORS,
  TOKEN_SUBPROTOCOL_PREFIX,
  closeAdvice,
} from "./contract.js";
import type {
  AllowedFilterKeys,
  CloseAdviceValue,
  DataMessageType,
  ErrorCodeValue,
  OddsMarket,
  ServerMessageTypeValue,
  SubscriptionType,
} from "./contract.js";

export {
  ALLOWED_FILTERS,
  CLOSE_EXPLANATIONS,
  CloseCodes,
  DATA_MESSAGE_TYPES,
  ERROR_HINTS,
  ErrorCodes,
  LIST_FILTERS,
  MAX_FILTER_VALUES,
  ODDS_MARKETS,
  SUBPROTOCOL,
  SUBSCRIPTION_TYPES,
  ServerMessageTypes,
  TEMPORARY_ERRORS,
  closeAdvice,
} from "./contract.js";
export type { AllowedFilterKeys, DataMessageType, OddsMarket, SubscriptionType } from "./contract.js";

// --- protocol types ----------------------------------------------------------------------

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
export type FiltersFor<T extends SubscriptionType> = [AllowedFilterKeys[T]] extends [never]
  ? Record<string, never>
  : Pick<Filters, AllowedFilterKeys[T]>;

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
export type ClientErrorCode =
  | "unknown"
  | "closed"
  | "gave_up"
  | "unreachable"
  | "refused"
  | "not_connected"
  | "unsubscribed"
  | "request_timeout"
  | "invalid_url"
  | "token_provider_failed";

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
export type DataFrame<K extends DataMessageType = DataMessageType> = K extends DataMessageType
  ? DataFrameOf<K>
  : never;

type SportDataType =
  | "odds_update"
  | "prediction_update"
  | "analytics_update"
  | "arbitrage_alert"
  | "system_alert"
  | "broadcast";

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
export type SnapshotEvent<K extends DataMessageType = DataMessageType> = K extends DataMessageType
  ? { type: K; event_id: string; timestamp: string; data: DataPayloads[K] }
  : never;

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
export const SNAPSHOT_TYPES: ReadonlySet<SubscriptionType> = new Set<SubscriptionType>([
  "odds_updates",
  "predictions",
  "mlb",
  "nba",
  "nfl",
  "nhl",
]);

/** Event ids each subscription remembers to drop duplicates (the most recent ones). */
export const DEDUPE_WINDOW = 10_000;

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

// --- connection states and close advice ---------------------------------------------------

/** Connection states, in the order a connection normally goes through them. */
export const ConnectionState = Object.freeze({
  CONNECTING: "connecting",
  CONNECTED: "connected",
  RECONNECTING: "reconnecting",
  /** The connection dropped; a reconnect decision follows. */
  DISCONNECTED: "disconnected",
  /** Final: closed by the caller, or given up (see `lastError`). */
  CLOSED: "closed",
} as const);
export type ConnectionState = (typeof ConnectionState)[keyof typeof ConnectionState];

/** What to do about a close code; clients act on the group, not on single codes
 * (`closeAdvice(code)` says which). */
export const CloseAdvice: typeof CLOSE_ADVICE = CLOSE_ADVICE;
export type CloseAdvice = CloseAdviceValue;

// --- errors -------------------------------------------------------------------------------

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

/** The connection a request went out on is gone (or there is none right now). */
class SessionLost extends ConnectionError {
  constructor(message: string) {
    super("not_connected", message, {
      hint: "Wait until the state is 'connected' again, then retry.",
      temporary: true,
    });
  }
}

// --- configuration ------------------------------------------------------------------------

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
});

function defaultBaseUrl(): string {
  const loc = (globalThis as { location?: Location }).location;
  if (!loc || !loc.host) return "ws://127.0.0.1:8000";
  return `${loc.protocol === "https:" ? "wss" : "ws"}://${loc.host}`;
}

// --- backoff ------------------------------------------------------------------------------

/** Delay in ms before reconnect attempt `attempt` (1-based), before jitter. */
export function backoffDelay(
  config: Pick<Config, "reconnect_interval" | "reconnect_factor" | "max_reconnect_interval">,
  attempt: number,
): number {
  const raw = config.reconnect_interval * config.reconnect_factor ** Math.max(0, attempt - 1);
  return Math.min(config.max_reconnect_interval, raw);
}

function jittered(config: Pick<Config, "jitter">, delay: number, random = Math.random): number {
  // Proportional jitter: clients that lost the same gateway come back spread out.
  return delay * (1 - config.jitter * random());
}

// --- filters ------------------------------------------------------------------------------

type FilterValue = string | number | readonly (string | number)[];
type CleanFilters = Record<string, string | number | (string | number)[]>;

/** Filters that are numbers (a bound), not strings or lists: every filter the contract knows
 * that is not one of its LIST_FILTERS. */
const NUMBER_FILTERS: ReadonlySet<string> = new Set(
  Object.values(ALLOWED_FILTERS)
    .flat()
    .filter((name) => !LIST_FILTERS.includes(name)),
);

/** Canonical key of a subscription: its type and filters with sorted keys. */
export function subscriptionKey<T extends SubscriptionType>(
  type: T,
  filters: FilterInput<T> = {},
): string {
  const given = filters as Record<string, FilterValue | null | undefined>;
  const sorted = Object.keys(given)
    .filter((k) => given[k] !== undefined && given[k] !== null && given[k] !== "")
    .sort()
    .map((k) => [k, given[k]]);
  return `${type}:${JSON.stringify(sorted)}`;
}

/** Filters as the gateway canonicalises them (trimmed, sport upper-case, ids as strings,
 * lists sorted), so two spellings of one room are one Subscription here too. */
function cleanFilters(filters: FilterInput | null | undefined): CleanFilters {
  const one = (key: string, value: string | number): string | number => {
    if (NUMBER_FILTERS.has(key)) return value;
    const text = String(value).trim();
    return key === "sport" ? text.toUpperCase() : text;
  };
  const out: CleanFilters = {};
  const given = (filters ?? {}) as Record<string, FilterValue | null | undefined>;
  for (const [key, value] of Object.entries(given)) {
    if (value === undefined || value === null || value === "") continue;
    if (Array.isArray(value)) {
      const values = [...new Set(value.map((v: string | number) => one(key, v)))].sort();
      out[key] = values.length === 1 ? (values[0] as string | number) : values;
    } else {
      out[key] = one(key, value as string | number);
    }
  }
  return out;
}

/**
 * Filters as `subscribe()` sends them: empty values dropped, then canonicalised as the gateway
 * does (trimmed, sport upper-case, ids as strings, lists sorted and deduplicated). With it,
 * `subscriptionKey(type, canonicalFilters(filters))` is the key `subscribe()` files the
 * subscription under in `manager.subscriptions`, for any spelling of the same room.
 */
export function canonicalFilters<T extends SubscriptionType>(
  filters: FilterInput<T> | null | undefined,
): FiltersFor<T> {
  return cleanFilters(filters as FilterInput | null | undefined) as FiltersFor<T>;
}

// --- subscriptions ------------------------------------------------------------------------

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

type Listener = (frame: DataFrame) => void;
type SnapshotListener = (frame: SnapshotFrame) => void;
type ResyncListener = (detail: ResyncDetail) => void;

/** How one confirmation came back (internal to the manager). */
interface Confirmed {
  /** The position the subscribe resumed from, or null for a fresh one. */
  sent: string | null;
  recovered: boolean | null;
  replayed: number;
}

/** One subscription. It outlives connections: it is sent again after every reconnect. */
export class Subscription<T extends SubscriptionType = SubscriptionType> {
  readonly manager: WebSocketManager;
  readonly type: T;
  /** The filters as sent (empty ones dropped). */
  readonly filters: FiltersFor<T>;
  /** `subscriptionKey(type, filters)`: its key in `manager.subscriptions`. */
  readonly key: string;
  /** Resolves once the gateway confirmed it; rejects if refused or unsubscribed first. */
  readonly ready: Promise<Subscription<T>>;
  /** @internal */
  _room: string | null = null;
  /** @internal */
  _confirmed = false;
  /** @internal */
  _received = 0;
  /** @internal */
  _lastMessageAt: number | null = null;
  /** @internal */
  _active = true;
  /** @internal Confirmed at least once: it stays when a connect() gives up. */
  _resolved = false;
  /** @internal */
  _position: string | null = null;
  /** @internal Ask for a snapshot on fresh subscribes. */
  _wantSnapshot = true;
  /** @internal Confirmed afresh (or not recovered); the snapshot is next. */
  _awaitingSnapshot = false;
  private _recovered: boolean | null = null;
  private _replayed = 0;
  private _duplicates = 0;
  private _resumes = 0;
  private _resyncs = 0;
  private _snapshots = 0;
  private _lastSnapshot: SnapshotFrame<T> | null = null;
  private readonly _seen = new Set<string>();
  private readonly _seenRing: (string | undefined)[] = new Array<string | undefined>(DEDUPE_WINDOW);
  private _seenNext = 0;
  private readonly _listeners = new Set<Listener>();
  private readonly _snapshotListeners = new Set<SnapshotListener>();
  private readonly _resyncListeners = new Set<ResyncListener>();
  private readonly _settle: {
    resolve: (sub: Subscription<T>) => void;
    reject: (error: Error) => void;
  };

  /** Made by `WebSocketManager.subscribe()`; one made directly is not sent anywhere. */
  constructor(manager: WebSocketManager, type: T, filters: FiltersFor<T>) {
    this.manager = manager;
    this.type = type;
    this.filters = filters;
    this.key = subscriptionKey(type, filters as FilterInput<T>);
    let settle: Subscription<T>["_settle"] | null = null;
    this.ready = new Promise<Subscription<T>>((resolve, reject) => {
      settle = { resolve, reject };
    });
    this._settle = settle as unknown as Subscription<T>["_settle"];
    this.ready.catch(() => {}); // rejections are reported through subscribe()'s promise
  }

  /** The gateway's room id, once confirmed. */
  get room(): string | null {
    return this._room;
  }

  /** Confirmed by the gateway on the current connection. */
  get confirmed(): boolean {
    return this._confirmed;
  }

  /** Data frames delivered so far. */
  get received(): number {
    return this._received;
  }

  /** Date.now() of the last data frame, or null. */
  get lastMessageAt(): number | null {
    return this._lastMessageAt;
  }

  /** False once unsubscribed or refused. */
  get active(): boolean {
    return this._active;
  }

  /** Where this subscription is in its room's stream (opaque), sent with every resubscribe;
   * save it to resume later with `subscribe(type, filters, null, { position })`. */
  get position(): string | null {
    return this._position;
  }

  /** `recovered` of the last confirmation: true (missed frames replayed), false (they were
   * lost: state reloaded from a snapshot), null (a fresh subscribe, no position sent). */
  get recovered(): boolean | null {
    return this._recovered;
  }

  /** Frames the last confirmation announced as replayed. */
  get replayed(): number {
    return this._replayed;
  }

  /** Frames dropped because their event was already delivered (a replay's overlap). */
  get duplicates(): number {
    return this._duplicates;
  }

  /** Resumes that recovered everything so far. */
  get resumes(): number {
    return this._resumes;
  }

  /** Resumes that could not recover (state rebuilt from a snapshot) so far. */
  get resyncs(): number {
    return this._resyncs;
  }

  /** Snapshot frames received so far. */
  get snapshots(): number {
    return this._snapshots;
  }

  /** The last snapshot frame, or null. */
  get lastSnapshot(): SnapshotFrame<T> | null {
    return this._lastSnapshot;
  }

  /** Call `listener(frame)` for every data frame of this subscription; returns a remover. */
  onMessage(listener: (frame: DataFrameFor<T>) => void): () => void {
    const stored = listener as Listener;
    this._listeners.add(stored);
    return () => {
      this._listeners.delete(stored);
    };
  }

  /** Call `listener(frame)` for every snapshot of this subscription's room (after a fresh
   * subscribe, or a resume that could not recover), before the live frames after it. */
  onSnapshot(listener: (frame: SnapshotFrame<T>) => void): () => void {
    const stored = listener as unknown as SnapshotListener;
    this._snapshotListeners.add(stored);
    return () => {
      this._snapshotListeners.delete(stored);
    };
  }

  /** Call `listener(detail)` when a resume could not recover what was missed. */
  onResync(listener: (detail: ResyncDetail<T>) => void): () => void {
    const stored = listener as unknown as ResyncListener;
    this._resyncListeners.add(stored);
    return () => {
      this._resyncListeners.delete(stored);
    };
  }

  /** Leave this subscription (the room is left on the gateway too). */
  unsubscribe(): Promise<void> {
    return this.manager.unsubscribe(this as unknown as Subscription);
  }

  /** @internal The subscribe request for the current position and options. */
  _subscribeBody(): Request {
    const body: Request = { type: "subscribe", subscription_type: this.type, filters: this.filters };
    if (this._position !== null) body["position"] = this._position;
    if (!this._wantSnapshot) body["snapshot"] = false;
    return body;
  }

  /** @internal Applied as the confirmation is read, before any frame behind it. */
  _confirm(frame: ServerFrame, sent: string | null = null): Confirmed {
    const data = frame.data ?? {};
    const room = data["room"];
    if (typeof room === "string" && room) this._room = room;
    if (data["already_subscribed"] === true && !("recovered" in data)) {
      // This connection is in the room already: it shares those frames; nothing is replayed.
      this._recovered = null;
      this._replayed = 0;
      this._confirmed = true;
      this._resolved = true;
      this._settle.resolve(this);
      return { sent: null, recovered: null, replayed: 0 };
    }
    const recovered = data["recovered"];
    this._recovered = typeof recovered === "boolean" ? recovered : null;
    if (sent !== null && this._recovered === null) this._recovered = false; // position refused
    const replayed = data["replayed"];
    this._replayed = typeof replayed === "number" ? replayed : 0;
    const current = typeof data["position"] === "string" && data["position"] ? data["position"] : null;
    const snapshotFollows = this._wantSnapshot && SNAPSHOT_TYPES.has(this.type);
    if (this._recovered === true) {
      this._resumes += 1;
      this._awaitingSnapshot = false;
      // With frames to replay, keep ours: each replayed frame advances it, so a drop in the
      // middle of the replay resumes from the last one received.
      if (this._replayed === 0 && current !== null) this._position = current;
    } else if (snapshotFollows) {
      // Adopted with the snapshot: a drop before it arrives subscribes afresh (snapshot again).
      this._awaitingSnapshot = true;
    } else if (current !== null) {
      this._position = current;
    }
    this._confirmed = true;
    this._resolved = true;
    this._settle.resolve(this);
    if (sent !== null && this._recovered === false) {
      this._resyncs += 1;
      const detail: ResyncDetail = {
        subscription: this as unknown as Subscription,
        position: sent,
        confirmation: frame,
        snapshot: snapshotFollows,
      };
      for (const listener of [...this._resyncListeners]) this._call(listener, detail);
    }
    return { sent, recovered: this._recovered, replayed: this._replayed };
  }

  /** @internal A data frame of this room: false when already delivered (by event id). */
  _accept(frame: DataFrame): boolean {
    if (!this._active) return false;
    const eventId = frame.event_id;
    if (typeof eventId === "string") {
      if (this._seen.has(eventId)) {
        this._duplicates += 1;
        return false;
      }
      this._remember(eventId);
    }
    const position = this._room ? frame.positions?.[this._room] : undefined;
    if (typeof position === "string" && position) this._position = position;
    this._deliver(frame);
    return true;
  }

  /** @internal */
  _takeSnapshot(frame: SnapshotFrame): void {
    if (!this._active) return;
    this._awaitingSnapshot = false;
    if (typeof frame.position === "string" && frame.position) this._position = frame.position;
    for (const event of frame.data?.events ?? []) {
      if (typeof event?.event_id === "string" && !this._seen.has(event.event_id)) {
        this._remember(event.event_id);
      }
    }
    this._snapshots += 1;
    this._lastSnapshot = frame as unknown as SnapshotFrame<T>;
    this._lastMessageAt = Date.now();
    for (const listener of [...this._snapshotListeners]) this._call(listener, frame);
  }

  private _remember(eventId: string): void {
    const old = this._seenRing[this._seenNext];
    if (old !== undefined) this._seen.delete(old);
    this._seenRing[this._seenNext] = eventId;
    this._seenNext = (this._seenNext + 1) % this._seenRing.length;
    this._seen.add(eventId);
  }

  private _call<A>(listener: (arg: A) => void, arg: A): void {
    try {
      listener(arg);
    } catch (error) {
      console.error("oddstream: a subscription listener failed", error);
    }
  }

  /** @internal */
  _deliver(frame: DataFrame): void {
    this._received += 1;
    this._lastMessageAt = Date.now();
    for (const listener of [...this._listeners]) {
      try {
        listener(frame);
      } catch (error) {
        console.error("oddstream: a subscription listener failed", error);
      }
    }
  }

  /** @internal */
  _end(error: Error | null): void {
    this._active = false;
    this._confirmed = false;
    if (error) this._settle.reject(error);
  }

  /** The subscription as a plain object. */
  toJSON(): SubscriptionInfo<T> {
    return {
      type: this.type,
      filters: this.filters,
      room: this._room,
      confirmed: this._confirmed,
      received: this._received,
      position: this._position,
      recovered: this._recovered,
    };
  }
}

// --- the manager --------------------------------------------------------------------------

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

export type ManagerEventListener<K extends keyof ManagerEvents> =
  | ((event: CustomEvent<ManagerEvents[K]>) => void)
  | { handleEvent(event: CustomEvent<ManagerEvents[K]>): void };

/** One WebSocket's life, as the manager tracks it. */
interface Session {
  /** The gateway's welcome arrived on it. */
  welcomed: boolean;
  /** The manager let go of it; late callbacks are ignored. */
  ended: boolean;
  /** ms of silence that mean a dead link (set at the welcome). */
  silence?: number;
}

/** How a connection (or an attempt) ended, and what to do about it. */
interface Ended {
  advice: CloseAdviceValue;
  reason: string;
  closeCode?: number;
  wasConnected?: boolean;
  error?: OddstreamError | null;
  explanation?: string;
  /** The gateway refused the credentials (found by asking whoami). */
  auth?: boolean;
}

interface Pending {
  /** Called as the (non-error) reply is read, before any later frame is handled. */
  onReply?: ((frame: ServerFrame) => void) | undefined;
  resolve: (frame: ServerFrame) => void;
  reject: (error: OddstreamError) => void;
  timer: ReturnType<typeof setTimeout>;
}

interface Waiter {
  resolve: () => void;
  reject: (error: OddstreamError) => void;
}

type Request = { type: string } & Record<string, unknown>;
type Timer = ReturnType<typeof setTimeout>;

/** Browser close codes that never come from a gateway: the connection failed or dropped. */
const ABNORMAL_CLOSURE = 1006;
const TLS_HANDSHAKE_FAILED = 1015;
/** The code the client closes a link it gave up on with (4000-4099: reconnect now). */
const CLIENT_ABORT = 4000;

/**
 * A reconnecting Oddstream connection with the seed's WebSocket manager API.
 *
 * Events (`on(name, listener)` or `addEventListener(name, e => e.detail)`): see ManagerEvents.
 */
export class WebSocketManager extends EventTarget {
  private _config: ResolvedConfig;
  private readonly _subscriptions = new Map<string, Subscription>();
  private _state: ConnectionState = ConnectionState.CLOSED;
  private _stateDetail: StateDetail = { state: ConnectionState.CLOSED };
  private _welcome: WelcomeFrame | null = null;
  private _identity: Identity | null = null;
  private _lastError: OddstreamError | null = null;
  private readonly _sessions = new WeakMap<WebSocket, Session>();
  private _token: string | null = null;
  private _ws: WebSocket | null = null;
  private readonly _pending = new Map<string, Pending>();
  private _ids = 0;
  private _notes = 0;
  private _attempt = 0;
  /** Bumped by every _open and disconnect: late callbacks check it. */
  private _generation = 0;
  private _everConnected = false;
  /** The caller wants a connection (connect() and no disconnect()). */
  private _wanted = false;
  private _timer: Timer | null = null;
  private _pinger: ReturnType<typeof setInterval> | null = null;
  private _watchdog: Timer | null = null;
  private _connectWaiters: Waiter[] = [];
  private readonly _stats: Omit<Stats, "subscriptions" | "state"> = {
    duplicates: 0,
    resumes: 0,
    resyncs: 0,
    messages_received: 0,
    data_messages: 0,
    reconnects: 0,
    token_refreshes: 0,
    latency_ms: null,
    connected_since: null,
    last_message_at: null,
    url: null,
  };
  private readonly _onWake = (): void => this._wake();
  private readonly _onVisibility = (): void => {
    const doc = (globalThis as { document?: Document }).document;
    if (!doc || doc.visibilityState === "visible") this._wake();
  };

  constructor(config: Partial<Config> = {}) {
    super();
    this._config = { ...DEFAULT_CONFIG, base_url: defaultBaseUrl() };
    this.setConfig(config);
    if (typeof globalThis.addEventListener === "function") {
      globalThis.addEventListener("online", this._onWake);
      (globalThis as { document?: Document }).document?.addEventListener(
        "visibilitychange",
        this._onVisibility,
      );
    }
  }

  // --- public API -------------------------------------------------------------------------

  /** The current settings; change them with `setConfig()`. */
  get config(): Readonly<ResolvedConfig> {
    return this._config;
  }

  /** Subscriptions by key, in the order they were made; kept across reconnects. */
  get subscriptions(): ReadonlyMap<string, Subscription> {
    return this._subscriptions;
  }

  /** Where the connection is: connecting, connected, reconnecting, disconnected, closed. */
  get state(): ConnectionState {
    return this._state;
  }

  /** The detail of the last `state` event. */
  get stateDetail(): StateDetail {
    return this._stateDetail;
  }

  /** The last connection's welcome frame, or null before the first. */
  get welcome(): WelcomeFrame | null {
    return this._welcome;
  }

  /** Who the last connection was, or null before the first. */
  get identity(): Identity | null {
    return this._identity;
  }

  /** Why the manager gave up (state CLOSED), or null. */
  get lastError(): OddstreamError | null {
    return this._lastError;
  }

  /** state === "connected". */
  get connected(): boolean {
    return this._state === ConnectionState.CONNECTED;
  }

  /** A snapshot of the counters. */
  get stats(): Stats {
    return { ...this._stats, subscriptions: this._subscriptions.size, state: this._state };
  }

  /** The WebSocket URL this manager connects to. */
  get url(): string {
    return this._config.base_url + this._config.path;
  }

  /** Change settings (see DEFAULT_CONFIG); takes effect at the next (re)connect. */
  setConfig(partial?: Partial<Config>): Readonly<ResolvedConfig> {
    const config = this._config as unknown as Record<string, unknown>;
    for (const [key, value] of Object.entries(partial ?? {})) {
      if (!(key in DEFAULT_CONFIG)) throw new TypeError(`oddstream: unknown setting '${key}'`);
      config[key] = value;
    }
    const base = this._config.base_url as string | null;
    this._config.base_url = String(base === null ? defaultBaseUrl() : base).replace(/\/+$/, "");
    return this._config;
  }

  /** Listen to an event; returns a function that stops listening. */
  on<K extends keyof ManagerEvents>(
    name: K,
    listener: (detail: ManagerEvents[K]) => void,
  ): () => void {
    const handler = (event: Event): void =>
      listener((event as CustomEvent<ManagerEvents[K]>).detail);
    this.addEventListener(name, handler);
    return () => this.removeEventListener(name, handler);
  }

  override addEventListener<K extends keyof ManagerEvents>(
    type: K,
    listener: ManagerEventListener<K> | null,
    options?: boolean | AddEventListenerOptions,
  ): void;
  override addEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | AddEventListenerOptions,
  ): void;
  override addEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | ManagerEventListener<never> | null,
    options?: boolean | AddEventListenerOptions,
  ): void {
    super.addEventListener(type, listener as EventListenerOrEventListenerObject | null, options);
  }

  override removeEventListener<K extends keyof ManagerEvents>(
    type: K,
    listener: ManagerEventListener<K> | null,
    options?: boolean | EventListenerOptions,
  ): void;
  override removeEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | EventListenerOptions,
  ): void;
  override removeEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | ManagerEventListener<never> | null,
    options?: boolean | EventListenerOptions,
  ): void {
    super.removeEventListener(
      type,
      listener as EventListenerOrEventListenerObject | null,
      options,
    );
  }

  /**
   * Connect, retrying per the backoff settings; resolves once the gateway said welcome (and
   * every remembered subscription is back). `token` may be a string, a provider function
   * (async () => token; it becomes `config.token_provider`), or omitted for an anonymous
   * connection. Rejects with the error the manager gave up on (see `lastError`), or a
   * ConnectionError if `disconnect()` is called first.
   */
  connect(token?: string | null | TokenProvider): Promise<void> {
    if (typeof token === "function") {
      this._config.token_provider = token;
    } else if (token !== undefined) {
      this._config.token_provider = null; // an explicit token replaces a provider
      this._token = token || null;
    }
    this._wanted = true;
    const waiter = new Promise<void>((resolve, reject) =>
      this._connectWaiters.push({ resolve, reject }),
    );
    if (this._state === ConnectionState.CLOSED || this._state === ConnectionState.RECONNECTING) {
      this._attempt = 0;
      this._lastError = null;
      this._clearTimer();
      void this._open();
    } else if (this._state === ConnectionState.CONNECTED) {
      this._settleWaiters(null);
    }
    return waiter;
  }

  /** Close for good (no reconnect). Subscriptions are kept and sent again on connect(). */
  disconnect(reason = "closed by client"): void {
    this._wanted = false;
    this._generation += 1;
    this._clearTimer();
    const ws = this._ws;
    if (ws) {
      this._detach(ws);
      try {
        ws.close(CloseCodes.NORMAL, reason);
      } catch {
        // already closing
      }
    }
    this._endSession();
    this._setState(ConnectionState.CLOSED, { reason, close_code: CloseCodes.NORMAL });
    const error = new ConnectionError("closed", "disconnect() was called", {
      hint: "Call connect() to connect again.",
    });
    this._dropUnconfirmed(error);
    this._settleWaiters(error);
  }

  /** Disconnect and drop every listener the manager set on the page. */
  destroy(): void {
    this.disconnect("destroyed");
    if (typeof globalThis.removeEventListener === "function") {
      globalThis.removeEventListener("online", this._onWake);
      (globalThis as { document?: Document }).document?.removeEventListener(
        "visibilitychange",
        this._onVisibility,
      );
    }
  }

  /**
   * Subscribe; resolves with the Subscription once the gateway confirmed it, rejects with a
   * SubscriptionError / AuthError (with `hint`) if it refused. While reconnecting the
   * subscription waits and is sent as soon as the connection is back. Subscribing again with
   * the same type and filters returns the existing subscription (adding `onMessage`).
   * `options.position` resumes from a saved `Subscription.position` (see SubscribeOptions);
   * after every reconnect a subscription resumes from its own latest position by itself.
   */
  subscribe<T extends SubscriptionType>(
    type: T,
    filters: FilterInput<T> = {},
    onMessage: ((frame: DataFrameFor<T>) => void) | null = null,
    options: SubscribeOptions = {},
  ): Promise<Subscription<T>> {
    const clean = cleanFilters(filters as FilterInput);
    const key = subscriptionKey(type, clean as FilterInput<T>);
    let sub = this._subscriptions.get(key) as Subscription<T> | undefined;
    if (!sub) {
      if (!this._wanted) {
        return Promise.reject(
          new ConnectionError("not_connected", "Not connected.", {
            hint: "Call connect() before subscribe().",
          }),
        );
      }
      sub = new Subscription(this, type, clean as FiltersFor<T>);
      sub._position = options.position || null;
      sub._wantSnapshot = options.snapshot ?? true;
      const stored = sub as unknown as Subscription;
      this._subscriptions.set(key, stored);
      this._emit("subscriptions", this.subscriptionList());
      // Also while resubscribing after a welcome: that batch was taken before this one.
      const ws = this._ws;
      if (ws && this._sessions.get(ws)?.welcomed) void this._sendSubscribe(stored, ws);
    }
    if (onMessage) sub.onMessage(onMessage);
    return sub.ready;
  }

  /** Unsubscribe; resolves when the gateway agreed (at once when not connected). */
  unsubscribe(subscription: Subscription): Promise<void>;
  /** Unsubscribe by type and filters; resolves when the gateway agreed (at once when not
   * connected: nothing will be re-sent). */
  unsubscribe<T extends SubscriptionType>(type: T, filters?: FilterInput<T>): Promise<void>;
  async unsubscribe(
    typeOrSubscription: Subscription | SubscriptionType,
    filters: FilterInput = {},
  ): Promise<void> {
    const sub =
      typeOrSubscription instanceof Subscription
        ? typeOrSubscription
        : this._subscriptions.get(subscriptionKey(typeOrSubscription, cleanFilters(filters)));
    if (!sub || this._subscriptions.get(sub.key) !== sub) return;
    this._subscriptions.delete(sub.key);
    sub._end(new SubscriptionError("unsubscribed", "Unsubscribed before it was confirmed."));
    this._emit("subscriptions", this.subscriptionList());
    if (!this.connected) return;
    const body: Request = sub.room
      ? { type: "unsubscribe", room: sub.room }
      : { type: "unsubscribe", subscription_type: sub.type, filters: sub.filters };
    try {
      await this._request(body);
    } catch (error) {
      if (error instanceof SessionLost) return;
      if (error instanceof OddstreamError && error.code === "not_subscribed") return;
      throw error;
    }
  }

  /** The subscriptions as plain objects, in the order they were made. */
  subscriptionList(): SubscriptionInfo[] {
    return [...this._subscriptions.values()].map((sub) => sub.toJSON());
  }

  /**
   * Round trip to the gateway in ms (also kept in stats.latency_ms). Rejects with a
   * ConnectionError: `not_connected` when not connected or the connection drops meanwhile,
   * `request_timeout` after `config.request_timeout`.
   */
  async ping(): Promise<number> {
    const started = performance.now();
    await this._request({ type: "ping" });
    const latency = Math.round((performance.now() - started) * 10) / 10;
    this._stats.latency_ms = latency;
    this._emit("stats", this.stats);
    return latency;
  }

  /** The gateway's view of this connection (rooms, counters). Rejects like `ping()`. */
  async status(): Promise<ConnectionStatus> {
    return (await this._request({ type: "status" })).data as unknown as ConnectionStatus;
  }

  // --- connecting -------------------------------------------------------------------------

  private async _open(): Promise<void> {
    this._clearTimer();
    const generation = ++this._generation;
    if (this._ws) {
      // connect() during an attempt in flight: that attempt is abandoned, not leaked.
      const stale = this._ws;
      this._detach(stale);
      this._endSession();
      try {
        stale.close(CloseCodes.NORMAL, "superseded");
      } catch {
        // already closed
      }
    }
    const reconnecting = this._everConnected || this._attempt > 0;
    this._setState(reconnecting ? ConnectionState.RECONNECTING : ConnectionState.CONNECTING, {
      attempt: this._attempt,
      max_attempts: this._maxAttempts(),
      connecting: true,
    });
    const provider = this._config.token_provider;
    if (provider) {
      let token: string;
      try {
        token = await provider();
      } catch (error) {
        if (generation !== this._generation) return;
        this._ended({
          advice: CLOSE_ADVICE.RECONNECT_BACKOFF,
          reason: "the token provider failed",
          error: new AuthError("token_provider_failed", `Could not get a token: ${error}`, {
            hint: "Sign in again; retrying.",
            temporary: true,
          }),
        });
        return;
      }
      if (generation !== this._generation) return; // a newer attempt took over meanwhile
      this._token = token;
    }
    if (!this._wanted) return;
    const protocols = [SUBPROTOCOL];
    if (this._token) protocols.push(`${TOKEN_SUBPROTOCOL_PREFIX}${this._token}`);
    const url = this.url + (this._everConnected ? `?reconnect=${this._attempt || 1}` : "");
    this._stats.url = this.url;
    let ws: WebSocket;
    try {
      ws = new WebSocket(url, protocols);
    } catch (error) {
      this._ended({
        advice: CLOSE_ADVICE.TERMINAL,
        reason: "bad gateway URL",
        error: new ConnectionError(
          "invalid_url",
          `Cannot open ${url}: ${error instanceof Error ? error.message : String(error)}`,
          { hint: "Check base_url: it must start with ws:// or wss://." },
        ),
      });
      return;
    }
    this._ws = ws;
    const session: Session = { welcomed: false, ended: false };
    this._sessions.set(ws, session);
    const connectTimer = setTimeout(() => {
      if (!session.welcomed) this._abort(ws, "no welcome from the gateway in time");
    }, this._config.connect_timeout);
    ws.onmessage = (event: MessageEvent) => this._receive(ws, event.data);
    ws.onclose = (event: CloseEvent) => {
      clearTimeout(connectTimer);
      this._closed(ws, event.code, event.reason);
    };
    ws.onerror = () => {}; // always followed by close, which says more
  }

  private async _welcomed(ws: WebSocket, frame: WelcomeFrame): Promise<void> {
    const session = this._sessions.get(ws);
    if (!session) return;
    session.welcomed = true;
    this._welcome = frame;
    const data: Partial<WelcomeData> = frame.data || {};
    this._identity = {
      user: data.user ?? null,
      gateway: data.gateway as string,
      client_id: frame.client_id,
    };
    this._armWatchdog(ws, data.heartbeat_interval);
    const wasReconnect = this._everConnected;
    const subs = [...this._subscriptions.values()];
    const results = await Promise.allSettled(subs.map((sub) => this._sendSubscribe(sub, ws)));
    if (this._ws !== ws || session.ended) return; // lost while resubscribing: handled by close
    const outcomes = results.flatMap((r) => (r.status === "fulfilled" && r.value ? [r.value] : []));
    const back = outcomes.length;
    this._attempt = 0;
    this._everConnected = true;
    this._stats.connected_since = Date.now();
    if (wasReconnect) this._stats.reconnects += 1;
    this._setState(ConnectionState.CONNECTED, {
      gateway: data.gateway as string,
      user: data.user ?? null,
    });
    const who = data.user ? ` as ${data.user}` : "";
    if (wasReconnect) {
      this._notify("success", "Reconnected", `Live updates are back${who}.`);
    } else {
      this._notify("success", "Connected", `Connected to the live feed${who}.`);
    }
    if (wasReconnect && subs.length) {
      this._notify(
        "info",
        "Resubscribed",
        `Restored ${back} of ${subs.length} subscription${subs.length === 1 ? "" : "s"}.`,
      );
    }
    const resumed = outcomes.filter((o) => o.sent !== null);
    if (resumed.length) {
      this._emit("resume", {
        subscriptions: resumed.length,
        recovered: resumed.filter((o) => o.recovered === true).length,
        resynced: resumed.filter((o) => o.recovered !== true).length,
        replayed: resumed.reduce((sum, o) => sum + (o.recovered === true ? o.replayed : 0), 0),
      });
    }
    this._startPinger(ws);
    this._settleWaiters(null);
  }

  /** Send one subscription on `ws` (from its position, if it has one); how it was
   * confirmed, or null. Refusals end the subscription. */
  private async _sendSubscribe(sub: Subscription, ws: WebSocket): Promise<Confirmed | null> {
    const sent = sub.position;
    let outcome: Confirmed | null = null;
    const confirm = (frame: ServerFrame): void => {
      if (this._subscriptions.get(sub.key) !== sub) return; // unsubscribed meanwhile
      outcome = sub._confirm(frame, sent);
      if (outcome.sent !== null) {
        if (outcome.recovered === true) this._stats.resumes += 1;
        else this._stats.resyncs += 1;
      }
      if (outcome.sent !== null && outcome.recovered !== true) {
        this._emit("resync", {
          subscription: sub,
          position: outcome.sent,
          confirmation: frame,
          snapshot: sub._awaitingSnapshot,
        });
      }
    };
    try {
      try {
        await this._request(sub._subscribeBody(), ws, confirm);
      } catch (caught) {
        const refused = caught instanceof OddstreamError && caught.code === "invalid_position";
        // A position given to subscribe() is the caller's to fix: the refusal rejects it.
        if (!refused || !sent || !sub._resolved) throw caught;
        // One the gateway gave, but this gateway cannot read (another version?): subscribe
        // afresh, reported as a resync.
        sub._position = null;
        await this._request(sub._subscribeBody(), ws, confirm);
      }
      if (outcome === null) return null; // unsubscribed meanwhile
      this._emit("subscriptions", this.subscriptionList());
      return outcome;
    } catch (caught) {
      if (caught instanceof SessionLost) return null; // sent again after the reconnect
      const error = caught as OddstreamError;
      if (error.temporary) {
        // Rate-limited, overloaded or timed out: try again on this connection shortly.
        this._notify("warning", "Subscription delayed", error.message, {
          suggestion: "Retrying automatically.",
          code: error.code,
        });
        setTimeout(() => {
          const live = this._subscriptions.get(sub.key) === sub && this._ws === ws;
          if (live && !sub.confirmed) void this._sendSubscribe(sub, ws);
        }, backoffDelay(this._config, 1));
        return null;
      }
      if (this._subscriptions.get(sub.key) === sub) this._subscriptions.delete(sub.key);
      sub._end(error);
      this._emit("subscriptions", this.subscriptionList());
      this._notifyError(error, "Subscription refused");
      return null;
    }
  }

  // --- receiving --------------------------------------------------------------------------

  private _receive(ws: WebSocket, raw: unknown): void {
    if (this._ws !== ws) return;
    let parsed: unknown;
    try {
      parsed = JSON.parse(String(raw));
    } catch {
      console.warn("oddstream: ignoring a frame that is not JSON");
      return;
    }
    if (!parsed || typeof parsed !== "object") return;
    const frame = parsed as ServerFrame;
    this._stats.messages_received += 1;
    this._stats.last_message_at = Date.now();
    this._feedWatchdog(ws);
    this._emit("frame", frame);
    const session = this._sessions.get(ws);
    if (!session) return;
    if (!session.welcomed) {
      if (frame.type === "welcome") void this._welcomed(ws, frame as WelcomeFrame);
      return;
    }
    const pending = typeof frame.id === "string" ? this._pending.get(frame.id) : undefined;
    if (pending) {
      this._pending.delete(frame.id as string);
      clearTimeout(pending.timer);
      if (frame.type === "error") {
        pending.reject(errorFor(frame));
      } else {
        pending.onReply?.(frame);
        pending.resolve(frame);
      }
      return;
    }
    if ((frame.type as string) === "snapshot") {
      this._snapshot(frame as unknown as SnapshotFrame);
      return;
    }
    switch (frame.type) {
      case "ping":
        this._send(ws, { type: "pong" });
        break;
      case "token_expiring":
        void this._refreshToken(ws);
        break;
      case "error":
        this._notifyError(errorFor(frame), "Gateway error");
        break;
      default:
        if (DATA_MESSAGE_TYPES.has(frame.type)) this._data(frame as DataFrame);
    }
  }

  private _data(frame: DataFrame): void {
    this._stats.data_messages += 1;
    if (frame.type === "system_alert" && !frame.rooms) this._serviceAlert(frame.data || {});
    const rooms = frame.rooms || [];
    let targets = 0;
    let fresh = 0;
    for (const sub of this._subscriptions.values()) {
      if (!sub.room || !rooms.includes(sub.room)) continue;
      targets += 1;
      if (sub._accept(frame)) fresh += 1; // each drops what it already delivered
    }
    if (targets > 0 && fresh === 0) {
      this._stats.duplicates += 1;
      return;
    }
    this._emit("message", frame);
  }

  /** A room's state: to the subscription(s) of that room waiting for it. */
  private _snapshot(frame: SnapshotFrame): void {
    const inRoom = [...this._subscriptions.values()].filter(
      (sub) => sub.room !== null && sub.room === frame.room,
    );
    const waiting = inRoom.filter((sub) => sub._awaitingSnapshot);
    for (const sub of waiting.length ? waiting : inRoom) {
      sub._takeSnapshot(frame);
      this._emit("snapshot", { subscription: sub, frame });
    }
  }

  private _serviceAlert(data: Partial<GatewayAlertPayload> | Partial<AlertPayload>): void {
    const message = data.message as string;
    if (data.code === "service_degraded") {
      this._notify("warning", "Live updates paused", message, {
        suggestion: "No action needed: updates resume by themselves.",
        code: data.code,
      });
    } else if (data.code === "service_restored") {
      this._notify("success", "Live updates resumed", message, { code: data.code });
    }
  }

  private async _refreshToken(ws: WebSocket): Promise<void> {
    const provider = this._config.token_provider;
    if (!provider) {
      this._notify("warning", "Session expiring", "Your token expires soon.", {
        suggestion: "Sign in again, or configure token_provider to refresh it automatically.",
        code: "token_expiring",
      });
      return;
    }
    try {
      this._token = await provider();
      await this._request({ type: "auth", token: this._token }, ws);
      this._stats.token_refreshes += 1;
    } catch (error) {
      if (!(error instanceof SessionLost)) {
        this._notifyError(error as OddstreamError, "Token refresh failed");
      }
    }
  }

  // --- closing and reconnecting -----------------------------------------------------------

  private _closed(ws: WebSocket, code: number, reason: string): void {
    if (this._ws !== ws) return;
    const wasConnected = this._sessions.get(ws)?.welcomed ?? false;
    this._detach(ws);
    this._endSession();
    if (!this._wanted) return;
    if (!wasConnected && (code === ABNORMAL_CLOSURE || code === TLS_HANDSHAKE_FAILED)) {
      // The upgrade was refused or never reached a gateway; the browser does not say which.
      const generation = this._generation;
      void this._diagnose().then((ended) => {
        if (generation === this._generation) this._ended(ended);
      });
      return;
    }
    const explained = CLOSE_EXPLANATIONS[code];
    const what = explained ? explained[0] : `The connection closed (${code}).`;
    const todo = explained ? explained[1] : null;
    const advice = closeAdvice(code);
    let error: OddstreamError | null = null;
    if (advice === CLOSE_ADVICE.REFRESH_TOKEN) {
      error = new AuthError("token_expired", reason || what, { hint: todo, closeCode: code });
    } else if (advice === CLOSE_ADVICE.TERMINAL) {
      const forbidden = code === CloseCodes.FORBIDDEN;
      const make = forbidden ? AuthError : ConnectionError;
      error = new make(forbidden ? "forbidden" : "closed", reason || what, {
        hint: todo,
        closeCode: code,
      });
    }
    this._ended({
      advice,
      reason: reason || what,
      closeCode: code,
      wasConnected,
      error,
      explanation: what,
    });
  }

  /** Why a connection could not be opened: ask the gateway over HTTP (GET /ws/v2/whoami). */
  private async _diagnose(): Promise<Ended> {
    const http = this._config.base_url.replace(/^ws/, "http");
    const headers: Record<string, string> = this._token
      ? { Authorization: `Bearer ${this._token}` }
      : {};
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), this._config.connect_timeout);
    let response: Response;
    try {
      response = await fetch(`${http}/ws/v2/whoami`, { headers, signal: controller.signal });
    } catch {
      return {
        advice: CLOSE_ADVICE.RECONNECT_BACKOFF,
        reason: "gateway unreachable",
        closeCode: ABNORMAL_CLOSURE,
        error: new ConnectionError("unreachable", `Cannot reach the gateway at ${this.url}.`, {
          hint: "Check that the gateway is running and the address is right.",
          temporary: true,
        }),
      };
    } finally {
      clearTimeout(timer);
    }
    let body: ErrorBody = {};
    try {
      body = ((await response.json()) as ErrorBody | null) ?? {};
    } catch {
      // not one of ours (a proxy's page): keep the status only
    }
    if (response.status === 401 || response.status === 403) {
      const error = errorFor(body.code ? body : { code: "invalid_token", error: "Refused." });
      const retry = Boolean(this._config.token_provider);
      return {
        advice: retry ? CLOSE_ADVICE.RECONNECT_BACKOFF : CLOSE_ADVICE.TERMINAL,
        reason: error.message,
        closeCode: ABNORMAL_CLOSURE,
        error,
        auth: true,
      };
    }
    return {
      advice: CLOSE_ADVICE.RECONNECT_BACKOFF,
      reason: response.ok
        ? "the gateway refused the connection (busy, rate-limited or restarting)"
        : `the gateway answered HTTP ${response.status}`,
      closeCode: ABNORMAL_CLOSURE,
      error: new ConnectionError("refused", "The gateway refused the connection.", {
        hint: "It may be busy or restarting; retrying with backoff.",
        temporary: true,
      }),
    };
  }

  private _ended(ended: Ended): void {
    if (!this._wanted) return;
    const { advice, wasConnected } = ended;
    const config = this._config;
    const final =
      advice === CLOSE_ADVICE.TERMINAL ||
      !config.auto_reconnect ||
      (advice === CLOSE_ADVICE.REFRESH_TOKEN && !config.token_provider);
    if (wasConnected && !final) {
      this._setState(ConnectionState.DISCONNECTED, {
        close_code: ended.closeCode ?? null,
        reason: ended.reason,
      });
      this._notify("warning", "Disconnected", ended.explanation || ended.reason, {
        code: ended.closeCode ? `close_${ended.closeCode}` : null,
        suggestion: "Reconnecting automatically.",
      });
    }
    if (advice === CLOSE_ADVICE.TERMINAL || !config.auto_reconnect) {
      this._giveUp(
        ended,
        ended.error ||
          new ConnectionError("closed", ended.reason, { closeCode: ended.closeCode ?? null }),
      );
      return;
    }
    if (advice === CLOSE_ADVICE.REFRESH_TOKEN && !config.token_provider) {
      this._giveUp(ended, ended.error || new AuthError("token_expired", ended.reason));
      return;
    }
    let delay = 0;
    if (advice === CLOSE_ADVICE.RECONNECT_BACKOFF || !wasConnected) {
      this._attempt += 1;
      const max = this._maxAttempts();
      if (this._attempt > max) {
        const error =
          ended.error && !ended.error.temporary
            ? ended.error
            : new ConnectionError(
                "gave_up",
                `Could not reconnect after ${max} attempt${max === 1 ? "" : "s"}: ${ended.reason}.`,
                {
                  hint: "Check that the gateway is running, then press Reconnect.",
                  closeCode: ended.closeCode ?? null,
                },
              );
        this._giveUp(ended, error);
        return;
      }
      delay = jittered(config, backoffDelay(config, this._attempt));
    }
    if (ended.auth && ended.error) this._notifyError(ended.error, "Sign-in failed");
    this._setState(ConnectionState.RECONNECTING, {
      attempt: this._attempt,
      max_attempts: this._maxAttempts(),
      delay,
      next_attempt_at: Date.now() + delay,
      close_code: ended.closeCode ?? null,
      reason: ended.reason,
      error: ended.error || null,
    });
    this._timer = setTimeout(() => {
      this._timer = null;
      void this._open();
    }, delay);
  }

  private _giveUp(ended: Ended, error: OddstreamError): void {
    this._wanted = false;
    this._lastError = error;
    this._setState(ConnectionState.CLOSED, {
      close_code: ended.closeCode ?? null,
      reason: ended.reason,
      error,
    });
    const title = error instanceof AuthError ? "Sign-in failed" : "Connection failed";
    this._notifyError(error, title);
    this._dropUnconfirmed(error);
    this._settleWaiters(error);
  }

  /** Subscriptions never confirmed end with `error` (their promises must not hang); those
   * confirmed before stay, to be sent again by the next connect(). */
  private _dropUnconfirmed(error: OddstreamError): void {
    let changed = false;
    for (const [key, sub] of [...this._subscriptions]) {
      if (sub._resolved) continue;
      this._subscriptions.delete(key);
      sub._end(error);
      changed = true;
    }
    if (changed) this._emit("subscriptions", this.subscriptionList());
  }

  /** Back online or visible again: skip the rest of the backoff wait, try now. */
  private _wake(): void {
    if (this._state === ConnectionState.RECONNECTING && this._timer !== null) {
      this._clearTimer();
      void this._open();
    } else if (this._state === ConnectionState.CLOSED && this._lastError?.code === "gave_up") {
      this.connect().catch(() => {});
    }
  }

  private _abort(ws: WebSocket, reason: string): void {
    if (this._ws !== ws) return;
    try {
      ws.close(CLIENT_ABORT, reason.slice(0, 120));
    } catch {
      // already closed
    }
    // Browsers may take long to report the close of a dead link; do not wait for them.
    this._closedWithoutServer(ws, reason);
  }

  private _closedWithoutServer(ws: WebSocket, reason: string): void {
    if (this._ws !== ws) return;
    const wasConnected = this._sessions.get(ws)?.welcomed ?? false;
    this._detach(ws);
    this._endSession();
    this._ended({
      advice: CLOSE_ADVICE.RECONNECT_BACKOFF,
      reason,
      closeCode: ABNORMAL_CLOSURE,
      wasConnected,
      explanation: `The connection went silent (${reason}).`,
    });
  }

  private _detach(ws: WebSocket): void {
    ws.onmessage = ws.onclose = ws.onerror = null;
    const session = this._sessions.get(ws);
    if (session) session.ended = true;
    if (this._ws === ws) this._ws = null;
  }

  private _endSession(): void {
    if (this._pinger !== null) clearInterval(this._pinger);
    if (this._watchdog !== null) clearTimeout(this._watchdog);
    this._pinger = this._watchdog = null;
    this._stats.connected_since = null;
    let changed = false;
    for (const sub of this._subscriptions.values()) {
      changed = changed || sub.confirmed;
      sub._confirmed = false; // live again once re-confirmed on the next connection
    }
    if (changed) this._emit("subscriptions", this.subscriptionList());
    for (const [id, pending] of this._pending) {
      clearTimeout(pending.timer);
      pending.reject(new SessionLost(`request ${id}: connection lost`));
    }
    this._pending.clear();
  }

  private _clearTimer(): void {
    if (this._timer !== null) clearTimeout(this._timer);
    this._timer = null;
  }

  private _maxAttempts(): number {
    const max = this._config.max_reconnect_attempts;
    return max === null || max === undefined ? Infinity : max;
  }

  // --- heartbeats -------------------------------------------------------------------------

  private _armWatchdog(ws: WebSocket, serverIntervalSeconds: number | undefined): void {
    const session = this._sessions.get(ws);
    if (!session) return;
    const interval = (serverIntervalSeconds || 30) * 1000;
    session.silence = this._config.heartbeat_timeout || 2 * interval;
    this._feedWatchdog(ws);
  }

  private _feedWatchdog(ws: WebSocket): void {
    const silence = this._sessions.get(ws)?.silence;
    if (!silence) return;
    if (this._watchdog !== null) clearTimeout(this._watchdog);
    this._watchdog = setTimeout(
      () => this._abort(ws, `nothing received for ${Math.round(silence / 1000)} s`),
      silence,
    );
  }

  private _startPinger(ws: WebSocket): void {
    if (this._pinger !== null) clearInterval(this._pinger);
    this._pinger = null;
    const every = this._config.heartbeat_interval;
    if (!every) return;
    this.ping().catch(() => {});
    this._pinger = setInterval(() => {
      if (this._ws === ws) this.ping().catch(() => {});
    }, every);
  }

  // --- sending ----------------------------------------------------------------------------

  private _send(ws: WebSocket | null, body: Request): boolean {
    if (!ws || ws.readyState !== WebSocket.OPEN) return false;
    ws.send(JSON.stringify(body));
    return true;
  }

  private _request(
    body: Request,
    ws: WebSocket | null = this._ws,
    onReply?: (frame: ServerFrame) => void,
  ): Promise<ServerFrame> {
    return new Promise<ServerFrame>((resolve, reject) => {
      if (!ws || ws.readyState !== WebSocket.OPEN || this._sessions.get(ws)?.ended) {
        reject(new SessionLost("not connected"));
        return;
      }
      this._ids += 1;
      const id = `b${this._ids}`;
      const timer = setTimeout(() => {
        this._pending.delete(id);
        reject(
          new ConnectionError("request_timeout", `No answer to '${body.type}' in time.`, {
            hint: "The gateway may be overloaded; try again.",
            temporary: true,
          }),
        );
      }, this._config.request_timeout);
      this._pending.set(id, { onReply, resolve, reject, timer });
      this._send(ws, { ...body, id });
    });
  }

  // --- events -----------------------------------------------------------------------------

  private _setState(state: ConnectionState, detail: Omit<StateDetail, "state" | "at"> = {}): void {
    this._state = state;
    this._stateDetail = { state, at: Date.now(), ...detail };
    this._emit("state", this._stateDetail);
  }

  private _settleWaiters(error: OddstreamError | null): void {
    const waiters = this._connectWaiters;
    this._connectWaiters = [];
    for (const waiter of waiters) {
      if (error) waiter.reject(error);
      else waiter.resolve();
    }
  }

  private _notify(
    level: Notification["level"],
    title: string,
    message: string,
    { suggestion = null, code = null }: Partial<Pick<Notification, "suggestion" | "code">> = {},
  ): Notification {
    this._notes += 1;
    const note: Notification = {
      id: this._notes,
      level,
      title,
      message,
      suggestion,
      code,
      at: Date.now(),
    };
    this._emit("notification", note);
    return note;
  }

  private _notifyError(error: OddstreamError, title: string): Notification {
    return this._notify("error", title, error.message, {
      suggestion: error.hint || null,
      code: error.code || null,
    });
  }

  private _emit<K extends keyof ManagerEvents>(name: K, detail: ManagerEvents[K]): void {
    this.dispatchEvent(new CustomEvent(name, { detail }));
  }
}

/** The seed's shared instance, for pages with one connection. */
export const webSocketManager = new WebSocketManager();
