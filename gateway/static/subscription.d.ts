import type { SubscriptionType } from "./contract.js";
import type { FiltersFor } from "./filters.js";
import type { WebSocketManager } from "./manager.js";
import type { DataFrameFor, ServerFrame, SnapshotFrame } from "./types.js";
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
