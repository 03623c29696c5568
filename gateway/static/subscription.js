// One subscription (`Subscription`): its room, its position in the room's stream (to resume
// from after a reconnect), duplicate dropping, snapshots and its listeners; and the types of
// subscribe() options and of the resync and snapshot events it causes.
import { subscriptionKey } from "./filters.js";
/** Subscription types the gateway sends a snapshot for. */
export const SNAPSHOT_TYPES = new Set([
    "odds_updates",
    "predictions",
    "mlb",
    "nba",
    "nfl",
    "nhl",
]);
/** Event ids each subscription remembers to drop duplicates (the most recent ones). */
export const DEDUPE_WINDOW = 10_000;
/** One subscription. It outlives connections: it is sent again after every reconnect. */
export class Subscription {
    manager;
    type;
    /** The filters as sent (empty ones dropped). */
    filters;
    /** `subscriptionKey(type, filters)`: its key in `manager.subscriptions`. */
    key;
    /** Resolves once the gateway confirmed it; rejects if refused or unsubscribed first. */
    ready;
    /** @internal */
    _room = null;
    /** @internal */
    _confirmed = false;
    /** @internal */
    _received = 0;
    /** @internal */
    _lastMessageAt = null;
    /** @internal */
    _active = true;
    /** @internal Confirmed at least once: it stays when a connect() gives up. */
    _resolved = false;
    /** @internal */
    _position = null;
    /** @internal Ask for a snapshot on fresh subscribes. */
    _wantSnapshot = true;
    /** @internal Confirmed afresh (or not recovered); the snapshot is next. */
    _awaitingSnapshot = false;
    _recovered = null;
    _replayed = 0;
    _duplicates = 0;
    _resumes = 0;
    _resyncs = 0;
    _snapshots = 0;
    _lastSnapshot = null;
    _seen = new Set();
    _seenRing = new Array(DEDUPE_WINDOW);
    _seenNext = 0;
    _listeners = new Set();
    _snapshotListeners = new Set();
    _resyncListeners = new Set();
    _settle;
    /** Made by `WebSocketManager.subscribe()`; one made directly is not sent anywhere. */
    constructor(manager, type, filters) {
        this.manager = manager;
        this.type = type;
        this.filters = filters;
        this.key = subscriptionKey(type, filters);
        let settle = null;
        this.ready = new Promise((resolve, reject) => {
            settle = { resolve, reject };
        });
        this._settle = settle;
        this.ready.catch(() => { }); // rejections are reported through subscribe()'s promise
    }
    /** The gateway's room id, once confirmed. */
    get room() {
        return this._room;
    }
    /** Confirmed by the gateway on the current connection. */
    get confirmed() {
        return this._confirmed;
    }
    /** Data frames delivered so far. */
    get received() {
        return this._received;
    }
    /** Date.now() of the last data frame, or null. */
    get lastMessageAt() {
        return this._lastMessageAt;
    }
    /** False once unsubscribed or refused. */
    get active() {
        return this._active;
    }
    /** Where this subscription is in its room's stream (opaque), sent with every resubscribe;
     * save it to resume later with `subscribe(type, filters, null, { position })`. */
    get position() {
        return this._position;
    }
    /** `recovered` of the last confirmation: true (missed frames replayed), false (they were
     * lost: state reloaded from a snapshot), null (a fresh subscribe, no position sent). */
    get recovered() {
        return this._recovered;
    }
    /** Frames the last confirmation announced as replayed. */
    get replayed() {
        return this._replayed;
    }
    /** Frames dropped because their event was already delivered (a replay's overlap). */
    get duplicates() {
        return this._duplicates;
    }
    /** Resumes that recovered everything so far. */
    get resumes() {
        return this._resumes;
    }
    /** Resumes that could not recover (state rebuilt from a snapshot) so far. */
    get resyncs() {
        return this._resyncs;
    }
    /** Snapshot frames received so far. */
    get snapshots() {
        return this._snapshots;
    }
    /** The last snapshot frame, or null. */
    get lastSnapshot() {
        return this._lastSnapshot;
    }
    /** Call `listener(frame)` for every data frame of this subscription; returns a remover. */
    onMessage(listener) {
        const stored = listener;
        this._listeners.add(stored);
        return () => {
            this._listeners.delete(stored);
        };
    }
    /** Call `listener(frame)` for every snapshot of this subscription's room (after a fresh
     * subscribe, or a resume that could not recover), before the live frames after it. */
    onSnapshot(listener) {
        const stored = listener;
        this._snapshotListeners.add(stored);
        return () => {
            this._snapshotListeners.delete(stored);
        };
    }
    /** Call `listener(detail)` when a resume could not recover what was missed. */
    onResync(listener) {
        const stored = listener;
        this._resyncListeners.add(stored);
        return () => {
            this._resyncListeners.delete(stored);
        };
    }
    /** Leave this subscription (the room is left on the gateway too). */
    unsubscribe() {
        return this.manager.unsubscribe(this);
    }
    /** @internal The subscribe request for the current position and options. */
    _subscribeBody() {
        const body = { type: "subscribe", subscription_type: this.type, filters: this.filters };
        if (this._position !== null)
            body["position"] = this._position;
        if (!this._wantSnapshot)
            body["snapshot"] = false;
        return body;
    }
    /** @internal Applied as the confirmation is read, before any frame behind it. */
    _confirm(frame, sent = null) {
        const data = frame.data ?? {};
        const room = data["room"];
        if (typeof room === "string" && room)
            this._room = room;
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
        if (sent !== null && this._recovered === null)
            this._recovered = false; // position refused
        const replayed = data["replayed"];
        this._replayed = typeof replayed === "number" ? replayed : 0;
        const current = typeof data["position"] === "string" && data["position"] ? data["position"] : null;
        const snapshotFollows = this._wantSnapshot && SNAPSHOT_TYPES.has(this.type);
        if (this._recovered === true) {
            this._resumes += 1;
            this._awaitingSnapshot = false;
            // With frames to replay, keep ours: each replayed frame advances it, so a drop in the
            // middle of the replay resumes from the last one received.
            if (this._replayed === 0 && current !== null)
                this._position = current;
        }
        else if (snapshotFollows) {
            // Adopted with the snapshot: a drop before it arrives subscribes afresh (snapshot again).
            this._awaitingSnapshot = true;
        }
        else if (current !== null) {
            this._position = current;
        }
        this._confirmed = true;
        this._resolved = true;
        this._settle.resolve(this);
        if (sent !== null && this._recovered === false) {
            this._resyncs += 1;
            const detail = {
                subscription: this,
                position: sent,
                confirmation: frame,
                snapshot: snapshotFollows,
            };
            for (const listener of [...this._resyncListeners])
                this._call(listener, detail);
        }
        return { sent, recovered: this._recovered, replayed: this._replayed };
    }
    /** @internal A data frame of this room: false when already delivered (by event id). */
    _accept(frame) {
        if (!this._active)
            return false;
        const eventId = frame.event_id;
        if (typeof eventId === "string") {
            if (this._seen.has(eventId)) {
                this._duplicates += 1;
                return false;
            }
            this._remember(eventId);
        }
        const position = this._room ? frame.positions?.[this._room] : undefined;
        if (typeof position === "string" && position)
            this._position = position;
        this._deliver(frame);
        return true;
    }
    /** @internal */
    _takeSnapshot(frame) {
        if (!this._active)
            return;
        this._awaitingSnapshot = false;
        if (typeof frame.position === "string" && frame.position)
            this._position = frame.position;
        for (const event of frame.data?.events ?? []) {
            if (typeof event?.event_id === "string" && !this._seen.has(event.event_id)) {
                this._remember(event.event_id);
            }
        }
        this._snapshots += 1;
        this._lastSnapshot = frame;
        this._lastMessageAt = Date.now();
        for (const listener of [...this._snapshotListeners])
            this._call(listener, frame);
    }
    _remember(eventId) {
        const old = this._seenRing[this._seenNext];
        if (old !== undefined)
            this._seen.delete(old);
        this._seenRing[this._seenNext] = eventId;
        this._seenNext = (this._seenNext + 1) % this._seenRing.length;
        this._seen.add(eventId);
    }
    _call(listener, arg) {
        try {
            listener(arg);
        }
        catch (error) {
            console.error("oddstream: a subscription listener failed", error);
        }
    }
    /** @internal */
    _deliver(frame) {
        this._received += 1;
        this._lastMessageAt = Date.now();
        for (const listener of [...this._listeners]) {
            try {
                listener(frame);
            }
            catch (error) {
                console.error("oddstream: a subscription listener failed", error);
            }
        }
    }
    /** @internal */
    _end(error) {
        this._active = false;
        this._confirmed = false;
        if (error)
            this._settle.reject(error);
    }
    /** The subscription as a plain object. */
    toJSON() {
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
