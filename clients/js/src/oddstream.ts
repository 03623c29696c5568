/*!
 * @oddstream/client: the Oddstream browser client. Built from clients/js/src by `npm run build`
 * in clients/js; every gateway serves the build at /static/oddstream.js (this entry, which
 * imports the modules beside it), with its declarations (/static/oddstream.d.ts). Edit the
 * TypeScript source, not the build.
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
 * definitions by clients/generate_contract.py. The types it does not cover (frame and payload
 * shapes, ./types.js) mirror oddstream.shared.protocol and oddstream.shared.events.
 *
 * This entry holds no code: it re-exports the public API of the modules beside it, one concept
 * each: ./types.js (frames and payloads), ./filters.js (filters, subscriptionKey), ./state.js
 * (connection states, close advice), ./errors.js (OddstreamError and its kinds, errorFor),
 * ./config.js (DEFAULT_CONFIG), ./backoff.js (backoffDelay), ./subscription.js (Subscription),
 * ./events.js (the manager's events) and ./manager.js (WebSocketManager).
 */

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

export { backoffDelay } from "./backoff.js";
export { BATCH_LIMITS, DEFAULT_CONFIG } from "./config.js";
export type { BatchOption, Config, ResolvedConfig, TokenProvider } from "./config.js";
export {
  AuthError,
  ConnectionError,
  OddstreamError,
  SubscriptionError,
  errorFor,
} from "./errors.js";
export type { ErrorBody, OddstreamErrorOptions } from "./errors.js";
export type {
  ManagerEventListener,
  ManagerEvents,
  Notification,
  ResumeDetail,
  StateDetail,
  Stats,
} from "./events.js";
export { canonicalFilters, subscriptionKey } from "./filters.js";
export type { FilterInput, Filters, FiltersFor } from "./filters.js";
export { WebSocketManager, webSocketManager } from "./manager.js";
export { CloseAdvice, ConnectionState } from "./state.js";
export { DEDUPE_WINDOW, SNAPSHOT_TYPES, Subscription } from "./subscription.js";
export type {
  ResyncDetail,
  SnapshotDetail,
  SubscribeOptions,
  SubscriptionInfo,
} from "./subscription.js";
export type {
  AlertPayload,
  AnalyticsPayload,
  ArbitragePayload,
  BroadcastPayload,
  ClientErrorCode,
  ConnectionStatus,
  DataFrame,
  DataFrameFor,
  DataFrameOf,
  DataPayloads,
  DataTypesOf,
  ErrorCode,
  EventPayload,
  GatewayAlertPayload,
  Identity,
  OddsPayload,
  PortfolioPayload,
  PredictionPayload,
  RoomInfo,
  ServerErrorCode,
  ServerFrame,
  ServerMessageType,
  SnapshotEvent,
  SnapshotFrame,
  SportSubscriptionType,
  WelcomeData,
  WelcomeFrame,
} from "./types.js";
