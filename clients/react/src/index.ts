/**
 * @oddstream/react: React bindings for the Oddstream browser client (@oddstream/client).
 *
 *   const { connected, error } = useWebSocketConnection(token, true);
 *   const { odds, isSubscribed } = useWebSocketOdds({ sport: "MLB" });
 *
 * See the README's "React" section. Peer dependencies: react, zustand, @oddstream/client.
 */

export {
  createWebSocketStore,
  DEFAULT_REACT_CONFIG,
  resumeNotice,
  type CreateStoreOptions,
  type EffectiveConfig,
  type ReactConfig,
  type StoreConfig,
  type SubscriptionEntry,
  type SubscriptionStatus,
  type WebSocketState,
  type WebSocketStoreApi,
} from "./store.js";
export { conflationKey, EMPTY_SNAPSHOT, SubscriptionFeed, type FeedSnapshot } from "./feed.js";
export {
  defaultWebSocketStore,
  useWebSocketStore,
  useWebSocketStoreApi,
  WebSocketProvider,
  type WebSocketProviderProps,
} from "./WebSocketManager.js";
export {
  useWebSocketAnalytics,
  useWebSocketArbitrage,
  useWebSocketConnection,
  useWebSocketConnectionHook,
  useWebSocketNotifications,
  useWebSocketOdds,
  useWebSocketPredictions,
  useWebSocketSubscription,
  type ArbitrageResult,
  type ConnectionInfo,
  type NotificationsView,
  type OddsResult,
  type PredictionsResult,
  type SubscriptionInfoRow,
  type SubscriptionResult,
  type SubscriptionView,
  type WebSocketAnalytics,
  type WebSocketConnection,
} from "./useWebSocketHooks.js";
export {
  useBatchUpdates,
  WebSocketConnectionStatus,
  WebSocketNotificationCenter,
  WebSocketSubscriptionManager,
  type ChosenSubscription,
  type WebSocketConnectionStatusProps,
  type WebSocketNotificationCenterProps,
  type WebSocketSubscriptionManagerProps,
} from "./WebSocketNotifications.js";
export {
  ArbitrageFeed,
  DebugPanel,
  formatPrice,
  groupOdds,
  LiveWebSocketDashboard,
  OddsBoard,
  OddsCell,
  PredictionsFeed,
  type ArbitrageFeedProps,
  type LiveWebSocketDashboardProps,
  type OddsBoardProps,
  type OddsCellProps,
  type PredictionsFeedProps,
} from "./LiveWebSocketDashboard.js";
