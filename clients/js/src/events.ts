// The events a WebSocketManager emits (`ManagerEvents`) and their details: state changes,
// notifications for a UI, stats, and how subscriptions resumed after a reconnect.

import type { OddstreamError } from "./errors.js";
import type { ConnectionState } from "./state.js";
import type { ResyncDetail, SnapshotDetail, SubscriptionInfo } from "./subscription.js";
import type { DataFrame, ServerFrame } from "./types.js";

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
