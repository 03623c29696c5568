// One subscription (`Subscription`): its room, its position in the room's stream (to resume
// from after a reconnect), duplicate dropping, snapshots and its listeners; and the types of
// subscribe() options and of the resync and snapshot events it causes.

import type { SubscriptionType } from "./contract.js";
import { subscriptionKey } from "./filters.js";
import type { FilterInput, FiltersFor } from "./filters.js";
import type { WebSocketManager } from "./manager.js";
import type { DataFrame, DataFrameFor, Request, ServerFrame, SnapshotFrame } from "./types.js";

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

/** @internal How one confirmation came back (internal to the manager). */
export interface Confirmed {
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
