/**
 * The seed's store: one Zustand store per `WebSocketManager` (the browser client), holding the
 * connection state, stats, notifications and the subscriptions components asked for.
 *
 * Guarantees, enforced here and relied on by the hooks:
 * - **Shared, reference-counted subscriptions.** `subscribe(type, filters)` takes a reference,
 *   `unsubscribe(type, filters)` gives one back. Any spelling of the same room is one entry
 *   (keyed like the client, `subscriptionKey(type, canonicalFilters(filters))`), so the
 *   gateway sees one subscription however many components ask; it is left on the gateway when
 *   the last reference goes.
 * - **Releases wait `release_delay` ms** (a macrotask by default) and a new reference in the
 *   meantime cancels them: React StrictMode's unmount-and-remount, or a list re-keying, send
 *   nothing to the gateway. The connection is held and released the same way.
 * - **Subscriptions outlive connections.** Asked for before `connect()`, they are sent once a
 *   connection is wanted; after a reconnect the client resends them; after a token change, or
 *   after the client gave up, the store sends them again.
 * - **Data is published in batches.** Frames are conflated per key in each subscription's feed
 *   and published once per animation frame, together with the stats (`batch_updates: false`
 *   publishes each frame at once). Connection state and notifications are never delayed.
 * - **Nothing opens a socket by itself**: only `connect()` does, and the hooks call it from an
 *   effect, which never runs during server rendering.
 */

import { createStore, type StoreApi } from "zustand/vanilla";
import {
  ConnectionError,
  ConnectionState,
  OddstreamError,
  SubscriptionError,
  WebSocketManager,
  canonicalFilters,
  subscriptionKey,
} from "@oddstream/client";
import type {
  Config,
  DataFrame,
  FilterInput,
  FiltersFor,
  Identity,
  Notification,
  ResolvedConfig,
  ResumeDetail,
  SnapshotFrame,
  StateDetail,
  Stats,
  Subscription,
  SubscriptionType,
  TokenProvider,
} from "@oddstream/client";
import { SubscriptionFeed } from "./feed.js";

// --- settings ---------------------------------------------------------------------------

/** The store's own settings (the rest of `setConfig` goes to the client). */
export interface ReactConfig {
  /** Publish data once per animation frame, conflated per key (true, the default); false:
   * publish every frame as it arrives, so a component re-renders for each message. */
  batch_updates: boolean;
  /** How long a released subscription or connection is kept in ms: a new reference meanwhile
   * keeps it with nothing sent. 0 (the default): until the next macrotask, which covers
   * StrictMode's remount. */
  release_delay: number;
  /** Notifications kept in the store; older ones are dropped. */
  max_notifications: number;
  /** Frames each subscription keeps in `recent`. */
  history_size: number;
  /** Conflation keys each subscription keeps (games x books x markets); the oldest go first. */
  max_keys: number;
}

export const DEFAULT_REACT_CONFIG: Readonly<ReactConfig> = Object.freeze({
  batch_updates: true,
  release_delay: 0,
  max_notifications: 20,
  history_size: 50,
  max_keys: 2000,
});

/** What `setConfig` takes: the seed's keys (auto_reconnect, max_reconnect_attempts,
 * reconnect_interval, heartbeat_interval, base_url), every other client setting, and the
 * store's own (ReactConfig). */
export type StoreConfig = Partial<Config> & Partial<ReactConfig>;

/** Both halves of the settings in force. */
export type EffectiveConfig = Readonly<ResolvedConfig & ReactConfig>;

// --- state ------------------------------------------------------------------------------

/**
 * Where a subscription is: `waiting` for a connection to be wanted (connect() not called, or
 * the client gave up), `pending` confirmation (sent, or resent after a reconnect), `active`
 * (confirmed on the current connection), `error` (refused: see `error`).
 */
export type SubscriptionStatus = "waiting" | "pending" | "active" | "error";

/** One shared subscription, as components see it. Replaced (never mutated) on change. */
export interface SubscriptionEntry<T extends SubscriptionType = SubscriptionType> {
  /** The client's key: `subscriptionKey(type, canonicalFilters(filters))`. */
  readonly key: string;
  readonly type: T;
  /** Canonical filters, as sent to the gateway. */
  readonly filters: FiltersFor<T>;
  /** References held (components using it, plus store.subscribe() calls not given back). */
  readonly refCount: number;
  readonly status: SubscriptionStatus;
  /** The gateway's room id, once confirmed. */
  readonly room: string | null;
  /** Why it was refused (status `error`), or why it is waiting again; else null. */
  readonly error: OddstreamError | null;
  /** Data frames received, as of the last publication. */
  readonly received: number;
  /** Reconnects after which the gateway replayed everything missed (nothing lost). */
  readonly resumes: number;
  /** Reconnects after which it could not, and the state was reloaded from a snapshot. */
  readonly resyncs: number;
  /** Where the subscription is in its room's stream (opaque; the client resumes from it). */
  readonly position: string | null;
  /** Its data (see SubscriptionFeed). */
  readonly feed: SubscriptionFeed;
}

/** Everything `useWebSocketStore` holds. */
export interface WebSocketState {
  /** The browser client this store drives. */
  readonly manager: WebSocketManager;
  readonly config: EffectiveConfig;
  /** connecting, connected, reconnecting, disconnected or closed. */
  readonly connectionState: ConnectionState;
  /** The detail of the last state change (attempt, next_attempt_at, close code, error...). */
  readonly stateDetail: StateDetail;
  readonly connected: boolean;
  /** Why the connection is not (or no longer) up, with `hint`; null when connected. */
  readonly error: OddstreamError | null;
  /** Who the last connection was (user, gateway, client id), or null before the first. */
  readonly identity: Identity | null;
  /** The client's counters, as of the last publication. */
  readonly stats: Stats;
  /** Things to show the user, oldest first (each with a `suggestion` where there is one). */
  readonly notifications: readonly Notification[];
  /** How the subscriptions came back after the last reconnect (missed updates replayed, or
   * state reloaded), or null before any. */
  readonly lastResume: ResumeDetail | null;
  /** The shared subscriptions by key, in the order they were first asked for. */
  readonly subscriptions: ReadonlyMap<string, SubscriptionEntry>;

  /** Connect (token: a string, null for anonymous, a provider function; omitted: the current
   * one). A different token than the current connection's reconnects with it. */
  connect(token?: string | null | TokenProvider): Promise<void>;
  /** Close for good (subscriptions are kept and sent again by the next connect()). */
  disconnect(reason?: string): void;
  /** Drop the current connection, if any, and connect again now (skipping any backoff). */
  reconnect(): Promise<void>;
  /** Change settings: client settings take effect at the next (re)connect. */
  setConfig(config: StoreConfig): void;
  /** Take a reference to a subscription; resolves with the client's Subscription once
   * confirmed (waiting for a connection if none is wanted yet), rejects if refused. */
  subscribe<T extends SubscriptionType>(
    type: T,
    filters?: FilterInput<T>,
  ): Promise<Subscription<T>>;
  /** Give a reference back; the last one leaves the room (after `release_delay`). Resolves
   * when the gateway agreed, or at once when references remain. */
  unsubscribe<T extends SubscriptionType>(type: T, filters?: FilterInput<T>): Promise<void>;
  /** Hold the connection open with this token until the returned function is called; the
   * last holder's release disconnects (after `release_delay`). What useWebSocketConnection
   * does. */
  holdConnection(token: string | null | TokenProvider): () => void;
  dismissNotification(id: number): void;
  clearNotifications(): void;
  /** Disconnect and stop listening to the client (tests, hot reload). */
  destroy(): void;
}

export type WebSocketStoreApi = StoreApi<WebSocketState>;

export interface CreateStoreOptions {
  /** The client to drive; a new one by default. */
  manager?: WebSocketManager;
  /** Initial settings (as setConfig). */
  config?: StoreConfig;
}

// --- internals --------------------------------------------------------------------------

interface Waiter {
  resolve: (sub: Subscription) => void;
  reject: (error: Error) => void;
}

/** The mutable side of one entry; only this module sees it. */
interface Held {
  key: string;
  type: SubscriptionType;
  filters: FiltersFor<SubscriptionType>;
  refCount: number;
  status: SubscriptionStatus;
  error: OddstreamError | null;
  /** The client's Subscription this entry stands for, while it is in the client. */
  sub: Subscription | null;
  /** Confirmed at least once (a later disappearance means a refusal on a reconnect). */
  confirmedOnce: boolean;
  feed: SubscriptionFeed;
  /** Stops the data and snapshot listeners on `sub`. */
  stopListening: (() => void) | null;
  waiters: Waiter[];
  releaseTimer: ReturnType<typeof setTimeout> | null;
  releaseWaiters: (() => void)[];
}

const REACT_KEYS: ReadonlySet<string> = new Set(Object.keys(DEFAULT_REACT_CONFIG));

/** A refusal that retrying on this connection with this token will not change. Lost
 * connections (ConnectionError) and releases are not refusals: those are sent again. */
function isRefusal(error: unknown): error is OddstreamError {
  if (!(error instanceof OddstreamError) || error instanceof ConnectionError) return false;
  return error.code !== "unsubscribed" && !error.temporary;
}

type FrameHandle = { cancel(): void };

function requestFrame(callback: () => void): FrameHandle {
  const raf = (globalThis as { requestAnimationFrame?: (cb: () => void) => number })
    .requestAnimationFrame;
  if (typeof raf === "function") {
    const id = raf(callback);
    return { cancel: () => globalThis.cancelAnimationFrame?.(id) };
  }
  // No animation frames (a worker, Node): about one per 60 Hz frame.
  const id = setTimeout(callback, 16);
  return { cancel: () => clearTimeout(id) };
}

/** The toast for a `resume` event: every missed update delivered, or the state reloaded. */
export function resumeNotice({ recovered, resynced, replayed }: ResumeDetail): Omit<Notification, "id" | "at"> {
  const updates = `${replayed} missed update${replayed === 1 ? "" : "s"}`;
  if (resynced) {
    const others = recovered ? ` The others resumed (${updates} delivered).` : "";
    return {
      level: "warning",
      title: "Resynced: live state reloaded",
      message: `${resynced} subscription${resynced === 1 ? "" : "s"} could not replay what was missed; showing the latest values instead.${others}`,
      suggestion: null,
      code: "resynced",
    };
  }
  return {
    level: "success",
    title: replayed ? `Resumed: ${updates} delivered` : "Resumed: no updates missed",
    message: "Nothing was lost while disconnected.",
    suggestion: null,
    code: "resumed",
  };
}

// --- the store --------------------------------------------------------------------------

/** A store driving `options.manager` (or a new client). */
export function createWebSocketStore(options: CreateStoreOptions = {}): WebSocketStoreApi {
  const manager = options.manager ?? new WebSocketManager();
  const held = new Map<string, Held>();
  let reactConfig: ReactConfig = { ...DEFAULT_REACT_CONFIG };
  let token: string | null | TokenProvider | undefined; // undefined: never given
  let holds = 0;
  let holdRelease: ReturnType<typeof setTimeout> | null = null;
  let noteIds = 0;
  let frame: FrameHandle | null = null;
  let statsDirty = false;
  const dirtyFeeds = new Set<Held>();
  const stops: (() => void)[] = [];

  const api = createStore<WebSocketState>()((set, get) => {
    const wanted = (): boolean => manager.state !== ConnectionState.CLOSED;

    const entryOf = (h: Held): SubscriptionEntry => ({
      key: h.key,
      type: h.type,
      filters: h.filters,
      refCount: h.refCount,
      status: h.status,
      room: h.sub?.room ?? null,
      error: h.error,
      received: h.feed.received,
      resumes: h.sub?.resumes ?? 0,
      resyncs: h.sub?.resyncs ?? 0,
      position: h.sub?.position ?? null,
      feed: h.feed,
    });

    /** Publish the entries whose `held` changed (all of them when none is named). */
    const publishEntries = (changed?: Held[]): void => {
      const next = new Map<string, SubscriptionEntry>();
      const current = get().subscriptions;
      for (const [key, h] of held) {
        const old = current.get(key);
        next.set(key, !old || !changed || changed.includes(h) ? entryOf(h) : old);
      }
      set({ subscriptions: next });
    };

    const settle = (h: Held, sub: Subscription | null, error: Error | null): void => {
      const waiters = h.waiters;
      h.waiters = [];
      for (const waiter of waiters) {
        if (sub) waiter.resolve(sub);
        else waiter.reject(error ?? new Error("subscription ended"));
      }
    };

    /** Make sure the client has this subscription, if a connection is wanted. */
    const ensureSent = (h: Held): void => {
      if (h.refCount <= 0 && h.releaseTimer === null) return;
      if (h.status === "error") return;
      if (h.sub && manager.subscriptions.get(h.key) === h.sub) return; // in flight or confirmed
      if (!wanted()) {
        h.sub = null;
        h.status = "waiting";
        return;
      }
      const promise = manager.subscribe(h.type, h.filters as FilterInput);
      const sub = manager.subscriptions.get(h.key) ?? null;
      if (h.stopListening) h.stopListening();
      h.sub = sub;
      if (sub) {
        const stopData = sub.onMessage((frame: DataFrame) => {
          if (h.sub !== sub) return;
          h.feed.push(frame);
          dirtyFeeds.add(h);
          schedule();
        });
        // The room's state: before the live frames of a fresh subscription, or after a resume
        // that could not recover (a resync). It replaces what the feed held.
        const stopSnapshots = sub.onSnapshot((frame: SnapshotFrame) => {
          if (h.sub !== sub) return;
          h.feed.applySnapshot(frame);
          dirtyFeeds.add(h);
          schedule();
        });
        h.stopListening = () => {
          stopData();
          stopSnapshots();
        };
      } else {
        h.stopListening = null;
      }
      h.status = sub?.confirmed ? "active" : "pending";
      h.error = null;
      promise.then(
        (confirmed) => {
          if (h.sub !== confirmed) return;
          h.confirmedOnce = true;
          h.status = confirmed.confirmed ? "active" : "pending";
          settle(h, confirmed, null);
          if (held.get(h.key) === h) publishEntries([h]);
        },
        (error: unknown) => {
          if (h.sub !== sub) return; // superseded by a newer attempt
          h.sub = null;
          if (h.stopListening) h.stopListening();
          h.stopListening = null;
          if (isRefusal(error)) {
            h.status = "error";
            h.error = error;
            settle(h, null, error);
          } else {
            // The connection went away before the answer (closed, gave up): sent again by the
            // next connect().
            h.status = "waiting";
            h.error = error instanceof OddstreamError ? error : null;
            if (wanted()) ensureSent(h);
          }
          if (held.get(h.key) === h) publishEntries([h]);
        },
      );
    };

    /** After the client's subscriptions or state changed: statuses, and anything to resend. */
    const refresh = (): void => {
      const changed: Held[] = [];
      for (const h of held.values()) {
        const mark = (): string =>
          `${h.status}|${h.sub?.room ?? ""}|${h.sub?.confirmed ?? ""}|${h.sub?.resumes}|${h.sub?.resyncs}`;
        const before = mark();
        const inClient = h.sub !== null && manager.subscriptions.get(h.key) === h.sub;
        if (inClient && h.sub) {
          h.status = h.sub.confirmed ? "active" : wanted() ? "pending" : "waiting";
        } else if (h.sub && h.confirmedOnce && !h.sub.active) {
          // Confirmed once, now gone from the client: refused on a resubscribe (e.g. a new
          // token lacks the scope). Ask again to learn why; a refusal then sets `error`.
          h.sub = null;
          h.confirmedOnce = false;
          ensureSent(h);
        } else if (!h.sub && h.status !== "error") {
          ensureSent(h);
        }
        if (mark() !== before) {
          changed.push(h);
        }
      }
      if (changed.length) publishEntries(changed);
    };

    const flush = (): void => {
      frame = null;
      const feeds = [...dirtyFeeds];
      dirtyFeeds.clear();
      for (const h of feeds) h.feed.publish();
      const update: { stats?: Stats; subscriptions?: Map<string, SubscriptionEntry> } = {};
      if (statsDirty) {
        statsDirty = false;
        update.stats = manager.stats;
      }
      if (feeds.length) {
        const next = new Map(get().subscriptions);
        for (const h of feeds) if (held.get(h.key) === h) next.set(h.key, entryOf(h));
        update.subscriptions = next;
      }
      if (update.stats || update.subscriptions) set(update);
    };

    const schedule = (): void => {
      if (!reactConfig.batch_updates) {
        if (frame) frame.cancel();
        flush();
      } else if (frame === null) {
        frame = requestFrame(flush);
      }
    };

    const notify = (note: Omit<Notification, "id" | "at">): void => {
      noteIds += 1;
      const full: Notification = { ...note, id: noteIds, at: Date.now() };
      const list = [...get().notifications, full].slice(-reactConfig.max_notifications);
      set({ notifications: list });
    };

    const errorOf = (detail: StateDetail): OddstreamError | null =>
      detail.state === ConnectionState.CONNECTED ? null : (detail.error ?? manager.lastError);

    stops.push(
      manager.on("state", (detail) => {
        set({
          connectionState: detail.state,
          stateDetail: detail,
          connected: detail.state === ConnectionState.CONNECTED,
          error: errorOf(detail),
          identity: manager.identity,
          stats: manager.stats,
        });
        refresh();
      }),
      manager.on("subscriptions", () => {
        refresh();
        statsDirty = true;
        schedule();
      }),
      manager.on("notification", (note) => {
        const { id: _id, at: _at, ...rest } = note;
        notify(rest);
      }),
      manager.on("resume", (detail) => {
        set({ lastResume: detail });
        notify(resumeNotice(detail));
        refresh();
      }),
      manager.on("stats", () => {
        statsDirty = true;
        schedule();
      }),
      manager.on("frame", () => {
        statsDirty = true;
        schedule();
      }),
    );

    const connect = (next?: string | null | TokenProvider): Promise<void> => {
      if (next !== undefined && next !== token) {
        const hadToken = token !== undefined;
        token = next;
        if (hadToken && manager.state !== ConnectionState.CLOSED) {
          manager.disconnect("token changed");
        }
        // A refusal may have been about the old identity: ask again with the new one.
        for (const h of held.values()) {
          if (h.status === "error") {
            h.status = "waiting";
            h.error = null;
          }
        }
      }
      const done = manager.connect(next === undefined ? undefined : next);
      refresh();
      return done;
    };

    const release = (h: Held): Promise<void> =>
      new Promise<void>((resolve) => {
        h.releaseWaiters.push(resolve);
        if (h.releaseTimer !== null) return;
        h.releaseTimer = setTimeout(() => {
          h.releaseTimer = null;
          const waiters = h.releaseWaiters;
          h.releaseWaiters = [];
          const done = (): void => waiters.forEach((w) => w());
          if (h.refCount > 0 || held.get(h.key) !== h) {
            done();
            return;
          }
          held.delete(h.key);
          const sub = h.sub;
          h.sub = null;
          if (h.stopListening) h.stopListening();
          h.stopListening = null;
          dirtyFeeds.delete(h);
          settle(h, null, new SubscriptionError("unsubscribed", "Released before it was confirmed."));
          publishEntries([]);
          if (sub && manager.subscriptions.get(h.key) === sub) {
            manager.unsubscribe(sub).then(done, (error: unknown) => {
              const e = error instanceof OddstreamError ? error : null;
              notify({
                level: "warning",
                title: "Unsubscribe failed",
                message: e ? e.message : String(error),
                suggestion: e?.hint ?? "The room is released when the connection closes.",
                code: e?.code ?? null,
              });
              done();
            });
          } else {
            done();
          }
        }, reactConfig.release_delay);
      });

    return {
      manager,
      config: { ...manager.config, ...reactConfig },
      connectionState: manager.state,
      stateDetail: manager.stateDetail,
      connected: manager.connected,
      error: errorOf(manager.stateDetail),
      identity: manager.identity,
      stats: manager.stats,
      notifications: [],
      lastResume: null,
      subscriptions: new Map(),

      connect,

      disconnect(reason = "closed by the page") {
        manager.disconnect(reason);
      },

      async reconnect() {
        if (manager.state !== ConnectionState.CLOSED) manager.disconnect("reconnect requested");
        await connect();
      },

      setConfig(config) {
        const client: Partial<Config> = {};
        const own: Partial<ReactConfig> = {};
        for (const [key, value] of Object.entries(config)) {
          if (REACT_KEYS.has(key)) (own as Record<string, unknown>)[key] = value;
          else (client as Record<string, unknown>)[key] = value;
        }
        const resolved = manager.setConfig(client);
        reactConfig = { ...reactConfig, ...own };
        if (!reactConfig.batch_updates && frame) {
          frame.cancel();
          flush();
        }
        set({ config: { ...resolved, ...reactConfig } });
      },

      subscribe<T extends SubscriptionType>(type: T, filters: FilterInput<T> = {}) {
        const clean = canonicalFilters(filters) as FiltersFor<SubscriptionType>;
        const key = subscriptionKey(type, clean as FilterInput<T>);
        let h = held.get(key);
        if (h) {
          h.refCount += 1;
          if (h.releaseTimer !== null) {
            // Taken again before the release ran (StrictMode's remount): nothing to send.
            clearTimeout(h.releaseTimer);
            h.releaseTimer = null;
            const waiters = h.releaseWaiters;
            h.releaseWaiters = [];
            waiters.forEach((w) => w());
          }
        } else {
          h = {
            key,
            type,
            filters: clean,
            refCount: 1,
            status: "waiting",
            error: null,
            sub: null,
            confirmedOnce: false,
            feed: new SubscriptionFeed({
              historySize: reactConfig.history_size,
              maxKeys: reactConfig.max_keys,
            }),
            stopListening: null,
            waiters: [],
            releaseTimer: null,
            releaseWaiters: [],
          };
          held.set(key, h);
        }
        const entry = h;
        ensureSent(entry);
        publishEntries([entry]);
        if (entry.status === "error" && entry.error) return Promise.reject(entry.error);
        if (entry.status === "active" && entry.sub) {
          return Promise.resolve(entry.sub as unknown as Subscription<T>);
        }
        return new Promise<Subscription<T>>((resolve, reject) => {
          entry.waiters.push({
            resolve: (sub) => resolve(sub as unknown as Subscription<T>),
            reject,
          });
        });
      },

      unsubscribe<T extends SubscriptionType>(type: T, filters: FilterInput<T> = {}) {
        const key = subscriptionKey(type, canonicalFilters(filters) as FilterInput<T>);
        const h = held.get(key);
        if (!h || h.refCount <= 0) return Promise.resolve();
        h.refCount -= 1;
        publishEntries([h]);
        if (h.refCount > 0) return Promise.resolve();
        return release(h);
      },

      holdConnection(next) {
        holds += 1;
        if (holdRelease !== null) {
          clearTimeout(holdRelease);
          holdRelease = null;
        }
        if (next !== token || manager.state === ConnectionState.CLOSED) {
          // Otherwise already connected or on its way (a remount must not cut a backoff short).
          connect(next).catch(() => {
            // Shown as state, error and a notification; nothing else to do here.
          });
        }
        let released = false;
        return () => {
          if (released) return;
          released = true;
          holds -= 1;
          if (holds > 0 || holdRelease !== null) return;
          holdRelease = setTimeout(() => {
            holdRelease = null;
            if (holds === 0) manager.disconnect("no component holds the connection");
          }, reactConfig.release_delay);
        };
      },

      dismissNotification(id) {
        set({ notifications: get().notifications.filter((n) => n.id !== id) });
      },

      clearNotifications() {
        set({ notifications: [] });
      },

      destroy() {
        if (frame) frame.cancel();
        frame = null;
        if (holdRelease !== null) clearTimeout(holdRelease);
        for (const h of held.values()) {
          if (h.releaseTimer !== null) clearTimeout(h.releaseTimer);
          if (h.stopListening) h.stopListening();
        }
        manager.disconnect("store destroyed");
        stops.forEach((stop) => stop());
      },
    };
  });
  if (options.config) api.getState().setConfig(options.config);
  return api;
}
