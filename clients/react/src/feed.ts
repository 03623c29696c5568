/**
 * What one subscription has received, as React reads it.
 *
 * A snapshot (the latest value of every key of the room, which the gateway sends before the
 * live frames of a new subscription, or after a resume that could not recover what was missed)
 * replaces what the feed holds: `latest` then shows the room's state at once, live frames
 * update it from there.
 *
 * Frames are pushed as they arrive and published in batches: the store publishes every feed
 * with news once per animation frame (or at once, with `batch_updates: false`). Between two
 * publications a newer frame replaces an older one with the same conflation key, so a page
 * showing 200 prices under a 1,000 updates/s feed renders at most once per frame, each time
 * with the newest price of every cell. Frames with no key (alerts, portfolio, broadcasts) are
 * kept by event id, newest last, up to `maxKeys`.
 *
 * A published snapshot is immutable, and the frames it holds are the ones the client parsed
 * (unchanged entries keep their identity from one snapshot to the next, so memoised cells
 * skip their render).
 */

import type { DataFrame, SnapshotFrame } from "@oddstream/client";

/** The state of one subscription's data at one publication. Never mutated. */
export interface FeedSnapshot {
  /** The newest frame per conflation key (see `conflationKey`), in first-seen order. */
  readonly latest: ReadonlyMap<string, DataFrame>;
  /** The last frames received, oldest first (at most `history_size`). */
  readonly recent: readonly DataFrame[];
  /** Frames received since the subscription was made. */
  readonly received: number;
  /** Frames replaced by a newer one of the same key before they were published. */
  readonly conflated: number;
  /** The newest frame, or null. */
  readonly lastMessage: DataFrame | null;
  /** Snapshots applied (the room's state, sent when the subscription starts or after a
   * resume that could not recover). */
  readonly snapshots: number;
  /** Publications so far (0: nothing received yet). */
  readonly version: number;
}

/** The snapshot of a feed that has received nothing (also what server rendering sees). */
export const EMPTY_SNAPSHOT: FeedSnapshot = Object.freeze({
  latest: new Map<string, DataFrame>(),
  recent: Object.freeze([]) as readonly DataFrame[],
  received: 0,
  conflated: 0,
  lastMessage: null,
  snapshots: 0,
  version: 0,
});

function text(value: unknown): string {
  return value === undefined || value === null ? "" : String(value);
}

/**
 * The key under which a newer frame replaces an older one: odds by game, sportsbook and
 * market; predictions by game, player and market; arbitrage by game and market; analytics by
 * game and player. Anything else is never conflated (its event id, or a unique key).
 */
export function conflationKey(frame: DataFrame): string {
  const data = frame.data as Record<string, unknown>;
  switch (data["kind"]) {
    case "odds":
      return `odds|${text(data["game_id"])}|${text(data["sportsbook"])}|${text(data["market"])}`;
    case "predictions":
      return `predictions|${text(data["game_id"])}|${text(data["player"])}|${text(data["market"])}`;
    case "arbitrage":
      return `arbitrage|${text(data["game_id"])}|${text(data["market"])}`;
    case "analytics":
      return `analytics|${text(data["game_id"])}|${text(data["player"])}`;
    default:
      return `${frame.type}|${frame.event_id ?? `${frame.timestamp}|${Math.random()}`}`;
  }
}

export interface FeedOptions {
  /** Frames kept in `recent`. */
  historySize: number;
  /** Conflation keys kept in `latest`; the oldest key goes first. */
  maxKeys: number;
}

type SnapshotListener = () => void;
type FrameListener = (frame: DataFrame) => void;

/** One subscription's data: frames in, snapshots out (see the module comment). */
export class SubscriptionFeed {
  private readonly _options: FeedOptions;
  private readonly _latest = new Map<string, DataFrame>();
  private readonly _recent: DataFrame[] = [];
  /** Keys changed since the last publication: a second change of one of them conflates. */
  private readonly _changed = new Set<string>();
  private _received = 0;
  private _conflated = 0;
  private _last: DataFrame | null = null;
  private _snapshots = 0;
  private _snapshotDirty = false;
  private _snapshot: FeedSnapshot = EMPTY_SNAPSHOT;
  private readonly _listeners = new Set<SnapshotListener>();
  private readonly _frameListeners = new Set<FrameListener>();

  constructor(options: FeedOptions) {
    this._options = options;
  }

  /** Take a frame; it shows in the next published snapshot. Frame listeners get it now. */
  push(frame: DataFrame): void {
    const key = conflationKey(frame);
    if (this._changed.has(key)) this._conflated += 1;
    else this._changed.add(key);
    this._latest.set(key, frame); // an existing key keeps its place: cells do not move
    if (this._latest.size > this._options.maxKeys) {
      const oldest = this._latest.keys().next().value as string;
      this._latest.delete(oldest);
      this._changed.delete(oldest);
    }
    this._recent.push(frame);
    if (this._recent.length > this._options.historySize) this._recent.shift();
    this._received += 1;
    this._last = frame;
    for (const listener of [...this._frameListeners]) {
      try {
        listener(frame);
      } catch (error) {
        // A listener's bug must not stop delivery to the others (or the page); it is the
        // application's error, reported where its developer looks.
        console.error("@oddstream/react: an onMessage listener failed", error);
      }
    }
  }

  /** Replace what the feed holds with a room's snapshot; shows in the next publication. */
  applySnapshot(frame: SnapshotFrame): void {
    this._latest.clear();
    this._changed.clear();
    for (const event of frame.data.events) {
      const asFrame = {
        ...event,
        status: "success",
        rooms: [frame.room],
      } as unknown as DataFrame;
      this._latest.set(conflationKey(asFrame), asFrame);
    }
    this._snapshots += 1;
    this._snapshotDirty = true;
  }

  /** True when frames or a snapshot arrived since the last publication. */
  get dirty(): boolean {
    return this._changed.size > 0 || this._snapshotDirty;
  }

  /** Make a new snapshot of what arrived and tell the listeners; nothing if nothing did. */
  publish(): boolean {
    if (!this.dirty) return false;
    this._changed.clear();
    this._snapshotDirty = false;
    this._snapshot = Object.freeze({
      latest: new Map(this._latest),
      recent: Object.freeze(this._recent.slice()),
      received: this._received,
      conflated: this._conflated,
      lastMessage: this._last,
      snapshots: this._snapshots,
      version: this._snapshot.version + 1,
    });
    for (const listener of [...this._listeners]) listener();
    return true;
  }

  /** The last published snapshot (stable between publications, as useSyncExternalStore needs). */
  readonly getSnapshot = (): FeedSnapshot => this._snapshot;

  /** Be told after each publication; returns the remover. */
  readonly subscribe = (listener: SnapshotListener): (() => void) => {
    this._listeners.add(listener);
    return () => {
      this._listeners.delete(listener);
    };
  };

  /** Be called with every frame as it arrives (not batched); returns the remover. */
  onFrame(listener: FrameListener): () => void {
    this._frameListeners.add(listener);
    return () => {
      this._frameListeners.delete(listener);
    };
  }

  /** Frames received so far, published or not. */
  get received(): number {
    return this._received;
  }
}
