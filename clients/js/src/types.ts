// The wire's shapes that the generated contract does not cover: server frames and their
// payloads, snapshots, the welcome, status() answers, error code types. They mirror
// oddstream.shared.protocol and oddstream.shared.events. Types only: nothing here exists at
// run time.

import type {
  DataMessageType,
  ErrorCodeValue,
  OddsMarket,
  ServerMessageTypeValue,
  SubscriptionType,
} from "./contract.js";
import type { Filters } from "./filters.js";

/** The four sport types: every event of one sport (filters narrow it further). */
export type SportSubscriptionType = "mlb" | "nba" | "nfl" | "nhl";

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
  /** Present when batching was asked for (config.batch): what the gateway applies. */
  batch?: { count: number; delay_ms: number };
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

/** @internal A request frame as the client sends it. */
export type Request = { type: string } & Record<string, unknown>;
