/**
 * The seed's hooks. Each one reads the store of the nearest `<WebSocketProvider>` (or the
 * default store) and holds what it uses only while mounted:
 *
 * - `useWebSocketConnection(token, autoConnect)` holds the connection; a new token
 *   reconnects with it; the last holder's unmount disconnects.
 * - `useWebSocketOdds`, `...Arbitrage`, `...Predictions`, `useWebSocketSubscription` take a
 *   reference to one shared subscription, keyed by its canonical filters (an inline
 *   `{ sport: "MLB" }` literal does not resubscribe on every render), and give it back on
 *   unmount or when the filters change.
 *
 * Data comes from the subscription's feed through useSyncExternalStore: it re-renders once per
 * published batch (per animation frame by default), with conflated data. During server
 * rendering the hooks return their empty state and open nothing.
 */

import { useEffect, useMemo, useRef, useSyncExternalStore } from "react";
import { useStore } from "zustand";
import { useShallow } from "zustand/react/shallow";
import { canonicalFilters, subscriptionKey } from "@oddstream/client";
import type {
  ArbitragePayload,
  ConnectionState,
  DataFrame,
  DataFrameFor,
  FilterInput,
  FiltersFor,
  Notification,
  OddsPayload,
  OddstreamError,
  PredictionPayload,
  StateDetail,
  Stats,
  SubscriptionType,
  TokenProvider,
  Identity,
} from "@oddstream/client";
import { EMPTY_SNAPSHOT, type FeedSnapshot } from "./feed.js";
import type { SubscriptionEntry, SubscriptionStatus } from "./store.js";
import { useWebSocketStoreApi } from "./WebSocketManager.js";

// --- connection -------------------------------------------------------------------------

/** What `useWebSocketConnection` returns. */
export interface WebSocketConnection {
  /** state === "connected". */
  connected: boolean;
  /** connecting, connected, reconnecting, disconnected or closed. */
  state: ConnectionState;
  /** Attempt, next_attempt_at, close code and reason of the last change. */
  stateDetail: StateDetail;
  /** Why it is not connected (with `hint`, the suggestion to show), or null. */
  error: OddstreamError | null;
  /** User, gateway and client id of the last connection, or null. */
  identity: Identity | null;
  /** Drop the connection, if any, and connect again now. */
  reconnect: () => Promise<void>;
  /** Connect (again), optionally with another token. */
  connect: (token?: string | null | TokenProvider) => Promise<void>;
  /** Close for good, until connect() or reconnect(). */
  disconnect: () => void;
}

const PROVIDER = Symbol("token provider");

/**
 * Connect while mounted. `token`: a JWT, null/undefined for anonymous, or a provider function
 * (called before each connect and before expiry; its identity may change between renders).
 * A different token reconnects with it. `autoConnect: false` only reads the state.
 */
export function useWebSocketConnection(
  token?: string | null | TokenProvider,
  autoConnect = true,
): WebSocketConnection {
  const api = useWebSocketStoreApi();
  const latest = useRef(token);
  latest.current = token;
  // One stable provider per component: an inline function must not reconnect on each render.
  const provider = useMemo<TokenProvider>(
    () => () => {
      const current = latest.current;
      return typeof current === "function" ? current() : (current ?? "");
    },
    [],
  );
  const identityOfToken = typeof token === "function" ? PROVIDER : (token ?? null);
  useEffect(() => {
    if (!autoConnect) return undefined;
    return api.getState().holdConnection(identityOfToken === PROVIDER ? provider : (identityOfToken as string | null));
  }, [api, autoConnect, identityOfToken, provider]);
  const view = useStore(
    api,
    useShallow((s) => ({
      connected: s.connected,
      state: s.connectionState,
      stateDetail: s.stateDetail,
      error: s.error,
      identity: s.identity,
      reconnect: s.reconnect,
      connect: s.connect,
      disconnect: s.disconnect,
    })),
  );
  return view;
}

/** The seed's alias of `useWebSocketConnection`. */
export const useWebSocketConnectionHook = useWebSocketConnection;

// --- subscriptions ----------------------------------------------------------------------

/** What every subscription hook returns. */
export interface SubscriptionView {
  /** Confirmed by the gateway on the current connection. */
  isSubscribed: boolean;
  /** waiting, pending, active or error (see SubscriptionStatus). */
  status: SubscriptionStatus;
  /** Why the gateway refused it (with `hint`), or null. */
  error: OddstreamError | null;
  /** The gateway's room id, once confirmed. */
  room: string | null;
  /** Data frames received so far. */
  received: number;
  /** Date.now() of the last published frame's arrival batch, or null. */
  lastUpdate: number | null;
  /** Reconnects after which the gateway replayed everything missed (nothing lost). */
  resumes: number;
  /** Reconnects after which it could not and the state was reloaded from a snapshot. */
  resyncs: number;
  /** Snapshots of the room applied (the state before live updates, and after a resync). */
  snapshots: number;
}

/** What `useWebSocketSubscription` returns. */
export interface SubscriptionResult<T extends SubscriptionType> extends SubscriptionView {
  /** The newest frame. */
  lastMessage: DataFrameFor<T> | null;
  /** The last frames, oldest first (`history_size` of them). */
  messages: readonly DataFrameFor<T>[];
  /** The newest frame per conflation key (game/book/market for odds...), first-seen order. */
  latest: ReadonlyMap<string, DataFrameFor<T>>;
}

function noSubscribe(): () => void {
  return () => {};
}

function emptySnapshot(): FeedSnapshot {
  return EMPTY_SNAPSHOT;
}

interface Shared {
  entry: SubscriptionEntry | undefined;
  snapshot: FeedSnapshot;
}

function useShared<T extends SubscriptionType>(
  type: T,
  filters: FilterInput<T> | undefined,
  onMessage?: ((frame: DataFrameFor<T>) => void) | null,
): Shared {
  const api = useWebSocketStoreApi();
  const clean = canonicalFilters(filters);
  const key = subscriptionKey(type, clean as FilterInput<T>);
  const cleanRef = useRef<FiltersFor<T>>(clean);
  cleanRef.current = clean;
  const onMessageRef = useRef(onMessage);
  onMessageRef.current = onMessage;
  useEffect(() => {
    const held = cleanRef.current as FilterInput<T>;
    const store = api.getState();
    store.subscribe(type, held).catch(() => {
      // The refusal is the entry's `error` (and a notification): shown, not thrown.
    });
    const entry = api.getState().subscriptions.get(key);
    const stop = entry?.feed.onFrame((frame: DataFrame) =>
      onMessageRef.current?.(frame as DataFrameFor<T>),
    );
    return () => {
      stop?.();
      void api.getState().unsubscribe(type, held);
    };
  }, [api, type, key]);
  const entry = useStore(api, (s) => s.subscriptions.get(key));
  const feed = entry?.feed;
  const snapshot = useSyncExternalStore(
    feed ? feed.subscribe : noSubscribe,
    feed ? feed.getSnapshot : emptySnapshot,
    emptySnapshot,
  );
  return { entry, snapshot };
}

function viewOf({ entry, snapshot }: Shared, lastUpdate: number | null): SubscriptionView {
  return {
    isSubscribed: entry?.status === "active",
    status: entry?.status ?? "waiting",
    error: entry?.error ?? null,
    room: entry?.room ?? null,
    received: snapshot.received,
    lastUpdate,
    resumes: entry?.resumes ?? 0,
    resyncs: entry?.resyncs ?? 0,
    snapshots: snapshot.snapshots,
  };
}

/** Remember when each new snapshot was first seen by this component. */
function useLastUpdate(snapshot: FeedSnapshot): number | null {
  const seen = useRef<{ version: number; at: number | null }>({ version: 0, at: null });
  if (seen.current.version !== snapshot.version) {
    seen.current = { version: snapshot.version, at: snapshot.version ? Date.now() : null };
  }
  return seen.current.at;
}

/**
 * Subscribe to any type while mounted. `onMessage` is called with every frame as it arrives
 * (not batched: for side effects); the returned data changes once per published batch.
 */
export function useWebSocketSubscription<T extends SubscriptionType>(
  type: T,
  filters?: FilterInput<T>,
  onMessage?: ((frame: DataFrameFor<T>) => void) | null,
): SubscriptionResult<T> {
  const shared = useShared(type, filters, onMessage);
  const lastUpdate = useLastUpdate(shared.snapshot);
  const { snapshot } = shared;
  return {
    ...viewOf(shared, lastUpdate),
    lastMessage: snapshot.lastMessage as DataFrameFor<T> | null,
    messages: snapshot.recent as readonly DataFrameFor<T>[],
    latest: snapshot.latest as ReadonlyMap<string, DataFrameFor<T>>,
  };
}

/** The payloads of one frame type from a snapshot, in first-seen order (memoised). */
function usePayloads<P>(snapshot: FeedSnapshot, frameType: string): P[] {
  return useMemo(() => {
    const out: P[] = [];
    for (const frame of snapshot.latest.values()) {
      if (frame.type === frameType) out.push(frame.data as unknown as P);
    }
    return out;
  }, [snapshot, frameType]);
}

/** What `useWebSocketOdds` returns. */
export interface OddsResult extends SubscriptionView {
  /** The newest price of every game x sportsbook x market seen, first-seen order. */
  odds: OddsPayload[];
}

/** Live odds (`odds_updates`) while mounted: `{ odds, isSubscribed, error, ... }`. */
export function useWebSocketOdds(filters?: FilterInput<"odds_updates">): OddsResult {
  const shared = useShared("odds_updates", filters);
  const lastUpdate = useLastUpdate(shared.snapshot);
  const odds = usePayloads<OddsPayload>(shared.snapshot, "odds_update");
  return { ...viewOf(shared, lastUpdate), odds };
}

/** What `useWebSocketArbitrage` returns. */
export interface ArbitrageResult extends SubscriptionView {
  /** The newest opportunity per game and market, newest first. */
  arbitrage: ArbitragePayload[];
}

/** Arbitrage alerts while mounted: `{ arbitrage, isSubscribed, error, ... }`. */
export function useWebSocketArbitrage(filters?: FilterInput<"arbitrage">): ArbitrageResult {
  const shared = useShared("arbitrage", filters);
  const lastUpdate = useLastUpdate(shared.snapshot);
  const { snapshot } = shared;
  const arbitrage = useMemo(() => {
    // Newest first by the event's own time (the frame's may be its delivery time).
    const at = (f: DataFrame): string => String(f.data["timestamp"] ?? f.timestamp);
    const frames = [...snapshot.latest.values()].filter((f) => f.type === "arbitrage_alert");
    frames.sort((a, b) => (at(a) < at(b) ? 1 : at(a) > at(b) ? -1 : 0));
    return frames.map((f) => f.data as ArbitragePayload);
  }, [snapshot]);
  return { ...viewOf(shared, lastUpdate), arbitrage };
}

/** What `useWebSocketPredictions` returns. */
export interface PredictionsResult extends SubscriptionView {
  /** The newest prediction per game, player and market, first-seen order. */
  predictions: PredictionPayload[];
}

/** Model predictions while mounted: `{ predictions, isSubscribed, error, ... }`. */
export function useWebSocketPredictions(
  filters?: FilterInput<"predictions">,
): PredictionsResult {
  const shared = useShared("predictions", filters);
  const lastUpdate = useLastUpdate(shared.snapshot);
  const predictions = usePayloads<PredictionPayload>(shared.snapshot, "prediction_update");
  return { ...viewOf(shared, lastUpdate), predictions };
}

// --- analytics and notifications --------------------------------------------------------

/** `useWebSocketAnalytics().connectionInfo`. */
export interface ConnectionInfo {
  state: ConnectionState;
  url: string;
  gateway: string | null;
  user: string | null;
  client_id: string | null;
  latency_ms: number | null;
  connected_since: number | null;
  reconnects: number;
  /** Reconnect attempt under way (RECONNECTING), else 0. */
  attempt: number;
  next_attempt_at: number | null;
  last_error: { code: string; message: string; hint: string | null } | null;
}

/** `useWebSocketAnalytics().subscriptionInfo[i]`. */
export interface SubscriptionInfoRow {
  key: string;
  type: SubscriptionType;
  filters: FiltersFor<SubscriptionType>;
  status: SubscriptionStatus;
  room: string | null;
  refCount: number;
  received: number;
  resumes: number;
  resyncs: number;
  /** Its position in the room's stream (opaque), or null. */
  position: string | null;
  error: string | null;
}

/** What `useWebSocketAnalytics` returns. */
export interface WebSocketAnalytics {
  stats: Stats;
  connectionInfo: ConnectionInfo;
  subscriptionInfo: SubscriptionInfoRow[];
}

/** Counters, connection and subscriptions for a debug panel (re-renders once per batch). */
export function useWebSocketAnalytics(): WebSocketAnalytics {
  const api = useWebSocketStoreApi();
  const { stats, detail, identity, error, subscriptions, url } = useStore(
    api,
    useShallow((s) => ({
      stats: s.stats,
      detail: s.stateDetail,
      identity: s.identity,
      error: s.error,
      subscriptions: s.subscriptions,
      url: s.manager.url,
    })),
  );
  const connectionInfo = useMemo<ConnectionInfo>(
    () => ({
      state: detail.state,
      url: stats.url ?? url,
      gateway: identity?.gateway ?? null,
      user: identity?.user ?? null,
      client_id: identity?.client_id ?? null,
      latency_ms: stats.latency_ms,
      connected_since: stats.connected_since,
      reconnects: stats.reconnects,
      attempt: detail.state === "reconnecting" ? (detail.attempt ?? 0) : 0,
      next_attempt_at: detail.state === "reconnecting" ? (detail.next_attempt_at ?? null) : null,
      last_error: error
        ? { code: String(error.code), message: error.message, hint: error.hint }
        : null,
    }),
    [detail, identity, error, stats, url],
  );
  const subscriptionInfo = useMemo<SubscriptionInfoRow[]>(
    () =>
      [...subscriptions.values()].map((e) => ({
        key: e.key,
        type: e.type,
        filters: e.filters,
        status: e.status,
        room: e.room,
        refCount: e.refCount,
        received: e.received,
        resumes: e.resumes,
        resyncs: e.resyncs,
        position: e.position,
        error: e.error ? e.error.message : null,
      })),
    [subscriptions],
  );
  return { stats, connectionInfo, subscriptionInfo };
}

/** What `useWebSocketNotifications` returns. */
export interface NotificationsView {
  /** Oldest first. */
  notifications: readonly Notification[];
  dismiss: (id: number) => void;
  clear: () => void;
}

/** The store's notifications, for a toast list of your own. */
export function useWebSocketNotifications(): NotificationsView {
  const api = useWebSocketStoreApi();
  return useStore(
    api,
    useShallow((s) => ({
      notifications: s.notifications,
      dismiss: s.dismissNotification,
      clear: s.clearNotifications,
    })),
  );
}
