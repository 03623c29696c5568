/**
 * The seed's notification components: a connection status indicator, toasts for every
 * connection event and error (each error with the gateway's suggestion: nothing is left to
 * the console), and a subscription manager. Unstyled but for class names (`os-*`); import
 * "@oddstream/react/styles.css" for the default look.
 */

import { useEffect, useState, type FormEvent } from "react";
import { useStore } from "zustand";
import { ALLOWED_FILTERS, LIST_FILTERS, SUBSCRIPTION_TYPES } from "@oddstream/client";
import type { FilterInput, Notification, SubscriptionType } from "@oddstream/client";
import { useWebSocketStoreApi } from "./WebSocketManager.js";
import {
  useWebSocketAnalytics,
  useWebSocketConnection,
  useWebSocketNotifications,
  useWebSocketSubscription,
} from "./useWebSocketHooks.js";

function useNow(active: boolean, every = 250): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    if (!active) return undefined;
    setNow(Date.now());
    const timer = setInterval(() => setNow(Date.now()), every);
    return () => clearInterval(timer);
  }, [active, every]);
  return now;
}

const LABELS: Record<string, string> = {
  connecting: "Connecting…",
  connected: "Connected",
  reconnecting: "Reconnecting",
  disconnected: "Disconnected",
  closed: "Not connected",
};

export interface WebSocketConnectionStatusProps {
  /** Also show gateway, user, latency, counters and the endpoint. */
  showDetails?: boolean;
  className?: string;
}

/** Connected (with latency), reconnecting (countdown, attempt), or down with why and what to do. */
export function WebSocketConnectionStatus({
  showDetails = false,
  className,
}: WebSocketConnectionStatusProps) {
  const { state, stateDetail, error, reconnect } = useWebSocketConnection(undefined, false);
  const { stats, connectionInfo } = useWebSocketAnalytics();
  const reconnecting = state === "reconnecting";
  const now = useNow(reconnecting && stateDetail.next_attempt_at !== undefined);
  let label = LABELS[state] ?? state;
  if (state === "connected" && stats.latency_ms !== null) label += ` · ${stats.latency_ms} ms`;
  if (reconnecting) {
    const due = stateDetail.next_attempt_at;
    const seconds = due ? Math.max(0, Math.ceil((due - now) / 1000)) : 0;
    const max = stateDetail.max_attempts;
    const of = max !== undefined && Number.isFinite(max) ? ` of ${max}` : "";
    label +=
      stateDetail.connecting || seconds === 0
        ? `… (attempt ${stateDetail.attempt ?? 0}${of})`
        : ` in ${seconds} s (attempt ${stateDetail.attempt ?? 0}${of})`;
  }
  if (state === "closed" && error) label = "Disconnected";
  const showError = error !== null && state !== "connected";
  return (
    <div
      className={["os-status", `os-status--${state}`, className].filter(Boolean).join(" ")}
      data-state={state}
      data-testid="connection-status"
      role="status"
      aria-live="polite"
    >
      <span className="os-status__dot" aria-hidden="true" />
      <span className="os-status__label">{label}</span>
      {showError ? (
        <span className="os-status__error">
          {" "}
          {error.message}
          {error.hint ? <span className="os-status__hint"> {error.hint}</span> : null}
        </span>
      ) : null}
      {state === "closed" || reconnecting ? (
        <button type="button" className="os-button os-status__retry" onClick={() => void reconnect().catch(() => {})}>
          Reconnect now
        </button>
      ) : null}
      {showDetails ? (
        <dl className="os-status__details">
          <dt>Gateway</dt>
          <dd>{connectionInfo.gateway ?? "–"}</dd>
          <dt>User</dt>
          <dd>{connectionInfo.client_id ? (connectionInfo.user ?? "anonymous") : "–"}</dd>
          <dt>Messages</dt>
          <dd data-testid="messages-received">{stats.messages_received}</dd>
          <dt>Reconnects</dt>
          <dd>{stats.reconnects}</dd>
          <dt>Resumed / resynced</dt>
          <dd data-testid="resumes">
            {stats.resumes ?? 0} / {stats.resyncs ?? 0}
          </dd>
          <dt>Subscriptions</dt>
          <dd>{stats.subscriptions}</dd>
          <dt>Endpoint</dt>
          <dd>{connectionInfo.url}</dd>
        </dl>
      ) : null}
    </div>
  );
}

export interface WebSocketNotificationCenterProps {
  /** Toasts shown at once (the newest). */
  max?: number;
  /** ms before an info, success or warning toast goes; errors stay until dismissed. */
  timeout?: number;
  className?: string;
}

function Toast({
  note,
  timeout,
  onDismiss,
}: {
  note: Notification;
  timeout: number;
  onDismiss: (id: number) => void;
}) {
  useEffect(() => {
    if (note.level === "error" || timeout <= 0) return undefined;
    const timer = setTimeout(() => onDismiss(note.id), timeout);
    return () => clearTimeout(timer);
  }, [note, timeout, onDismiss]);
  return (
    <div
      className={`os-toast os-toast--${note.level}`}
      role={note.level === "error" ? "alert" : "status"}
      data-level={note.level}
      data-testid="toast"
    >
      <div className="os-toast__body">
        <strong className="os-toast__title">{note.title}</strong>
        <p className="os-toast__message">{note.message}</p>
        {note.suggestion ? (
          <p className="os-toast__suggestion" data-testid="toast-suggestion">
            {note.suggestion}
          </p>
        ) : null}
      </div>
      <button
        type="button"
        className="os-toast__close"
        aria-label="Dismiss"
        onClick={() => onDismiss(note.id)}
      >
        ×
      </button>
    </div>
  );
}

/** Toasts for connection events and errors, each error with its suggestion. */
export function WebSocketNotificationCenter({
  max = 5,
  timeout = 6000,
  className,
}: WebSocketNotificationCenterProps) {
  const { notifications, dismiss } = useWebSocketNotifications();
  const shown = notifications.slice(-max);
  return (
    <div
      className={["os-toasts", className].filter(Boolean).join(" ")}
      aria-label="Notifications"
      data-testid="notifications"
    >
      {shown.map((note) => (
        <Toast key={note.id} note={note} timeout={timeout} onDismiss={dismiss} />
      ))}
    </div>
  );
}

// --- subscription manager ---------------------------------------------------------------

/** A subscription chosen in the manager: its type and the filters as typed. */
export interface ChosenSubscription {
  type: SubscriptionType;
  filters: Record<string, string>;
}

function toFilterInput(filters: Record<string, string>): FilterInput {
  const out: Record<string, string | number | string[]> = {};
  for (const [key, raw] of Object.entries(filters)) {
    const value = raw.trim();
    if (!value) continue;
    if (!LIST_FILTERS.includes(key)) out[key] = Number(value);
    else if (value.includes(",")) out[key] = value.split(",").map((v) => v.trim()).filter(Boolean);
    else out[key] = value;
  }
  return out as FilterInput;
}

function describe(filters: object): string {
  const parts = Object.entries(filters).map(
    ([k, v]) => `${k}=${Array.isArray(v) ? v.join(",") : String(v)}`,
  );
  return parts.length ? parts.join(" ") : "all";
}

function ChosenRow({ chosen, onRemove }: { chosen: ChosenSubscription; onRemove: () => void }) {
  const { status, received, error } = useWebSocketSubscription(
    chosen.type,
    toFilterInput(chosen.filters),
  );
  return (
    <li className={`os-subs__row os-subs__row--${status}`} data-testid="chosen-subscription">
      <span className="os-subs__type">{chosen.type}</span>{" "}
      <span className="os-subs__filters">{describe(toFilterInput(chosen.filters))}</span>{" "}
      <span className="os-subs__status">{status}</span>{" "}
      <span className="os-subs__count">{received}</span>
      {error ? (
        <span className="os-subs__error">
          {" "}
          {error.message} {error.hint}
        </span>
      ) : null}
      <button type="button" className="os-button" onClick={onRemove}>
        Remove
      </button>
    </li>
  );
}

export interface WebSocketSubscriptionManagerProps {
  /** What is chosen at first (or after a reload, unless `storageKey` kept something). */
  initial?: ChosenSubscription[];
  /** localStorage key to keep the choices under; null: not kept. */
  storageKey?: string | null;
  className?: string;
}

function loadChoices(storageKey: string | null, initial: ChosenSubscription[]) {
  if (!storageKey || typeof localStorage === "undefined") return initial;
  try {
    const saved = localStorage.getItem(storageKey);
    return saved ? (JSON.parse(saved) as ChosenSubscription[]) : initial;
  } catch {
    return initial;
  }
}

/**
 * Add and remove subscriptions (type, and the filters that type accepts); each chosen one is
 * held while listed. Below, every shared subscription of the store with its references,
 * status and count.
 */
export function WebSocketSubscriptionManager({
  initial = [],
  storageKey = null,
  className,
}: WebSocketSubscriptionManagerProps) {
  const [chosen, setChosen] = useState<ChosenSubscription[]>(() => loadChoices(storageKey, initial));
  const [type, setType] = useState<SubscriptionType>("odds_updates");
  const [draft, setDraft] = useState<Record<string, string>>({});
  const { subscriptionInfo } = useWebSocketAnalytics();
  useEffect(() => {
    if (storageKey && typeof localStorage !== "undefined") {
      localStorage.setItem(storageKey, JSON.stringify(chosen));
    }
  }, [chosen, storageKey]);
  const add = (event: FormEvent) => {
    event.preventDefault();
    const filters: Record<string, string> = {};
    for (const name of ALLOWED_FILTERS[type]) {
      const value = draft[name];
      if (value) filters[name] = value;
    }
    setChosen((list) => [...list, { type, filters }]);
    setDraft({});
  };
  return (
    <section className={["os-subs", className].filter(Boolean).join(" ")} data-testid="subscription-manager">
      <form className="os-subs__form" onSubmit={add}>
        <label>
          Type{" "}
          <select value={type} onChange={(e) => setType(e.target.value as SubscriptionType)}>
            {SUBSCRIPTION_TYPES.map((t) => (
              <option key={t} value={t}>
                {t}
              </option>
            ))}
          </select>
        </label>
        {ALLOWED_FILTERS[type].map((name) => (
          <label key={name}>
            {name}{" "}
            <input
              name={name}
              value={draft[name] ?? ""}
              onChange={(e) => setDraft({ ...draft, [name]: e.target.value })}
            />
          </label>
        ))}
        <button type="submit" className="os-button">
          Subscribe
        </button>
      </form>
      <ul className="os-subs__chosen">
        {chosen.map((c, i) => (
          <ChosenRow
            key={`${c.type}:${JSON.stringify(c.filters)}:${i}`}
            chosen={c}
            onRemove={() => setChosen((list) => list.filter((_, j) => j !== i))}
          />
        ))}
      </ul>
      <table className="os-subs__all">
        <thead>
          <tr>
            <th>type</th>
            <th>filters</th>
            <th>status</th>
            <th>refs</th>
            <th>received</th>
            <th>room</th>
          </tr>
        </thead>
        <tbody>
          {subscriptionInfo.map((s) => (
            <tr key={s.key} data-testid="shared-subscription" data-status={s.status}>
              <td>{s.type}</td>
              <td>{describe(s.filters)}</td>
              <td title={s.error ?? undefined}>{s.status}</td>
              <td>{s.refCount}</td>
              <td>{s.received}</td>
              <td>{s.room ?? "–"}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}

/** The store's `batch_updates` switch, for demos and benchmarks. */
export function useBatchUpdates(): [boolean, (on: boolean) => void] {
  const api = useWebSocketStoreApi();
  const on = useStore(api, (s) => s.config.batch_updates);
  return [on, (value: boolean) => api.getState().setConfig({ batch_updates: value })];
}
