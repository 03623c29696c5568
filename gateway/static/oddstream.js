// Oddstream browser client: a dependency-free ES module, served by every gateway at
// /static/oddstream.js, with TypeScript declarations beside it (/static/oddstream.d.ts).
//
//   import { WebSocketManager } from "/static/oddstream.js";
//   const manager = new WebSocketManager({ base_url: "ws://localhost:8000" });
//   manager.on("notification", (n) => console.log(n.level, n.title, n.message, n.suggestion));
//   await manager.connect(token);                 // token optional: anonymous if allowed
//   const sub = await manager.subscribe("odds_updates", { sport: "MLB" });
//   sub.onMessage((frame) => render(frame.data));
//
// It does what every consumer of the protocol must do and should not have to write: answer the
// gateway's heartbeat pings, notice a dead connection, act on the close code's advice group
// (reconnect now, back off, refresh the token, stop), back off with jitter (2, 4, 8, 16, 30 s by
// default, 5 attempts), resubscribe after a reconnect, refresh tokens before they expire, and
// turn every failure into a `notification` a UI can show, with a suggestion of what to do.
// The Python client (shared/client.py) follows the same rules.

/** Connection states, in the order a connection normally goes through them. */
export const ConnectionState = Object.freeze({
  CONNECTING: "connecting",
  CONNECTED: "connected",
  RECONNECTING: "reconnecting",
  DISCONNECTED: "disconnected", // the connection dropped; a reconnect decision follows
  CLOSED: "closed", // final: closed by the caller, or given up (see `lastError`)
});

/** What to do about a close code; clients act on the group, not on single codes. */
export const CloseAdvice = Object.freeze({
  RECONNECT_NOW: "reconnect_now",
  RECONNECT_BACKOFF: "reconnect_backoff",
  REFRESH_TOKEN: "refresh_token",
  TERMINAL: "terminal",
});

const RFC_ADVICE = {
  1000: CloseAdvice.TERMINAL,
  1001: CloseAdvice.RECONNECT_NOW,
  1008: CloseAdvice.TERMINAL,
  1009: CloseAdvice.TERMINAL,
  1011: CloseAdvice.RECONNECT_BACKOFF,
  1012: CloseAdvice.RECONNECT_NOW,
  1013: CloseAdvice.RECONNECT_BACKOFF,
};

/** The advice for any close code, known or not (same table as shared/protocol.py). */
export function closeAdvice(code) {
  if (code in RFC_ADVICE) return RFC_ADVICE[code];
  if (code >= 4000 && code < 4100) return CloseAdvice.RECONNECT_NOW;
  if (code >= 4400 && code < 4500) return CloseAdvice.REFRESH_TOKEN;
  if (code >= 4500 && code < 5000) return CloseAdvice.TERMINAL;
  return CloseAdvice.RECONNECT_BACKOFF;
}

/** Why the gateway closed, in words a user understands, and what they can do. */
const CLOSE_EXPLANATIONS = {
  1001: ["The gateway is restarting.", "Reconnecting to another gateway now."],
  1006: ["The connection dropped.", "Check your network; reconnecting automatically."],
  1008: ["The gateway closed the connection for a policy violation.", "Reload the page."],
  1009: ["A message was too large for the gateway.", "Send smaller messages."],
  1011: ["The gateway hit an internal error.", "Reconnecting; report it if it persists."],
  4008: ["This client fell behind the live feed.", "Reconnecting; close other busy tabs."],
  4101: ["The gateway heard nothing from this client for too long.", "Reconnecting."],
  4111: ["The live data service is unavailable.", "Reconnecting with backoff."],
  4401: ["Your session token expired.", "Sign in again to get a fresh token."],
  4503: ["This account may not stay connected (access revoked).", "Sign in again."],
};

// --- errors -----------------------------------------------------------------------------

const AUTH_CODES = new Set([
  "auth_required", "invalid_token", "token_expired", "forbidden", "unauthorized",
]);
const SUBSCRIPTION_CODES = new Set([
  "invalid_subscription_type", "invalid_filter", "not_subscribed", "too_many_subscriptions",
]);
const TEMPORARY_CODES = new Set([
  "rate_limited", "service_unavailable", "too_many_connections", "internal_error",
]);

/** Anything the gateway refused or the client could not do. `code` is the gateway's stable
 * error code where there is one; `hint` says what to do; `temporary` whether a retry can work. */
export class OddstreamError extends Error {
  constructor(code, message, { hint = null, temporary = false, closeCode = null } = {}) {
    super(message);
    this.name = "OddstreamError";
    this.code = code;
    this.hint = hint;
    this.temporary = temporary;
    this.closeCode = closeCode;
  }
}

/** Missing, bad, expired or insufficient credentials: fix the token, not the request. */
export class AuthError extends OddstreamError {
  constructor(code, message, options) {
    super(code, message, options);
    this.name = "AuthError";
  }
}

/** A subscription the gateway will not serve as asked (type, filters, limits). */
export class SubscriptionError extends OddstreamError {
  constructor(code, message, options) {
    super(code, message, options);
    this.name = "SubscriptionError";
  }
}

/** The connection is gone, could not be made, or a request got no answer in time. */
export class ConnectionError extends OddstreamError {
  constructor(code, message, options) {
    super(code, message, options);
    this.name = "ConnectionError";
  }
}

/** The typed error for a gateway error body or frame ({code, error, hint}). */
export function errorFor(body) {
  const code = String(body.code || "unknown");
  const hint = body.hint || null;
  let message = String(body.error || code);
  if (hint && message.endsWith(hint)) message = message.slice(0, -hint.length).trim();
  const options = { hint, temporary: TEMPORARY_CODES.has(code) };
  if (AUTH_CODES.has(code)) return new AuthError(code, message, options);
  if (SUBSCRIPTION_CODES.has(code)) return new SubscriptionError(code, message, options);
  return new OddstreamError(code, message, options);
}

/** The connection a request went out on is gone (or there is none right now). */
class SessionLost extends ConnectionError {
  constructor(message) {
    super("not_connected", message, {
      hint: "Wait until the state is 'connected' again, then retry.", temporary: true,
    });
  }
}

// --- backoff ----------------------------------------------------------------------------

/** Delay in ms before reconnect attempt `attempt` (1-based), before jitter. */
export function backoffDelay(config, attempt) {
  const raw = config.reconnect_interval * config.reconnect_factor ** Math.max(0, attempt - 1);
  return Math.min(config.max_reconnect_interval, raw);
}

function jittered(config, delay, random = Math.random) {
  // Proportional jitter: clients that lost the same gateway come back spread out.
  return delay * (1 - config.jitter * random());
}

// --- configuration ----------------------------------------------------------------------

function defaultBaseUrl() {
  const loc = globalThis.location;
  if (!loc || !loc.host) return "ws://127.0.0.1:8000";
  return `${loc.protocol === "https:" ? "wss" : "ws"}://${loc.host}`;
}

/** The seed's settings, plus the knobs it left implicit. Times are in milliseconds. */
export const DEFAULT_CONFIG = Object.freeze({
  auto_reconnect: true,
  max_reconnect_attempts: 5, // null or Infinity: never give up
  reconnect_interval: 2000, // first backoff delay
  reconnect_factor: 2,
  max_reconnect_interval: 30000,
  jitter: 0.2, // each delay is shortened by up to this fraction, at random
  heartbeat_interval: 30000, // how often to measure latency with our own ping; 0: never
  heartbeat_timeout: null, // silence that means a dead link; null: 2x the gateway's interval
  connect_timeout: 10000,
  request_timeout: 10000,
  base_url: null, // null: the page's own host
  path: "/ws/v2/connect",
  token_provider: null, // async () => token; called before each connect and before expiry
});

const SUBPROTOCOL = "oddstream.v2";
const DATA_TYPES = new Set([
  "odds_update", "prediction_update", "arbitrage_alert", "analytics_update",
  "system_alert", "portfolio_update", "broadcast",
]);

/** Canonical key of a subscription: its type and filters with sorted keys. */
export function subscriptionKey(type, filters = {}) {
  const sorted = Object.keys(filters)
    .filter((k) => filters[k] !== undefined && filters[k] !== null && filters[k] !== "")
    .sort()
    .map((k) => [k, filters[k]]);
  return `${type}:${JSON.stringify(sorted)}`;
}

/** Filters as the gateway canonicalises them (trimmed, sport upper-case, ids as strings,
 * lists sorted), so two spellings of one room are one Subscription here too. */
function cleanFilters(filters) {
  const one = (key, value) => {
    if (key === "min_profit") return value;
    const text = String(value).trim();
    return key === "sport" ? text.toUpperCase() : text;
  };
  const out = {};
  for (const [key, value] of Object.entries(filters || {})) {
    if (value === undefined || value === null || value === "") continue;
    if (Array.isArray(value)) {
      const values = [...new Set(value.map((v) => one(key, v)))].sort();
      out[key] = values.length === 1 ? values[0] : values;
    } else {
      out[key] = one(key, value);
    }
  }
  return out;
}

// --- subscriptions ----------------------------------------------------------------------

/** One subscription. It outlives connections: it is sent again after every reconnect. */
export class Subscription {
  constructor(manager, type, filters) {
    this.manager = manager;
    this.type = type;
    this.filters = filters;
    this.key = subscriptionKey(type, filters);
    this.room = null;
    this.confirmed = false;
    this.received = 0;
    this.lastMessageAt = null;
    this.active = true;
    this._listeners = new Set();
    this._resolved = false;
    this._settle = null;
    this.ready = new Promise((resolve, reject) => {
      this._settle = { resolve, reject };
    });
    this.ready.catch(() => {}); // rejections are reported through subscribe()'s promise
  }

  /** Call `listener(frame)` for every data frame of this subscription; returns a remover. */
  onMessage(listener) {
    this._listeners.add(listener);
    return () => this._listeners.delete(listener);
  }

  /** Leave this subscription (the room is left on the gateway too). */
  unsubscribe() {
    return this.manager.unsubscribe(this);
  }

  _confirm(frame) {
    this.room = frame.data && frame.data.room ? frame.data.room : this.room;
    this.confirmed = true;
    this._resolved = true;
    this._settle.resolve(this);
  }

  _deliver(frame) {
    this.received += 1;
    this.lastMessageAt = Date.now();
    for (const listener of [...this._listeners]) {
      try {
        listener(frame);
      } catch (error) {
        console.error("oddstream: a subscription listener failed", error);
      }
    }
  }

  _end(error) {
    this.active = false;
    this.confirmed = false;
    if (error) this._settle.reject(error);
  }

  toJSON() {
    return {
      type: this.type, filters: this.filters, room: this.room, confirmed: this.confirmed,
      received: this.received,
    };
  }
}

// --- the manager ------------------------------------------------------------------------

/**
 * A reconnecting Oddstream connection with the seed's WebSocket manager API.
 *
 * Events (`on(name, listener)` or `addEventListener(name, e => e.detail)`):
 *   state         {state, attempt, max_attempts, delay, next_attempt_at, close_code, reason, error}
 *   notification  {id, level, title, message, suggestion, code, at}
 *   message       every data frame;  frame  every frame received (for debug views)
 *   subscriptions the set of subscriptions changed
 */
export class WebSocketManager extends EventTarget {
  constructor(config = {}) {
    super();
    this.config = { ...DEFAULT_CONFIG, base_url: defaultBaseUrl() };
    this.setConfig(config);
    /** @type {Map<string, Subscription>} */
    this.subscriptions = new Map();
    this.state = ConnectionState.CLOSED;
    this.welcome = null;
    this.identity = null;
    this.lastError = null;
    this.stateDetail = { state: this.state };
    this._token = null;
    this._ws = null;
    this._pending = new Map();
    this._ids = 0;
    this._notes = 0;
    this._attempt = 0;
    this._generation = 0; // bumped by every _open and disconnect: late callbacks check it
    this._everConnected = false;
    this._wanted = false; // the caller wants a connection (connect() and no disconnect())
    this._timer = null;
    this._pinger = null;
    this._watchdog = null;
    this._connectWaiters = [];
    this._stats = {
      messages_received: 0, data_messages: 0, reconnects: 0, token_refreshes: 0,
      latency_ms: null, connected_since: null, last_message_at: null, url: null,
    };
    this._onWake = () => this._wake();
    this._onVisibility = () => {
      if (!globalThis.document || globalThis.document.visibilityState === "visible") this._wake();
    };
    if (globalThis.addEventListener) {
      globalThis.addEventListener("online", this._onWake);
      globalThis.document?.addEventListener("visibilitychange", this._onVisibility);
    }
  }

  // --- public API -----------------------------------------------------------------------

  /** Change settings (see DEFAULT_CONFIG); takes effect at the next (re)connect. */
  setConfig(partial) {
    for (const [key, value] of Object.entries(partial || {})) {
      if (!(key in DEFAULT_CONFIG)) throw new TypeError(`oddstream: unknown setting '${key}'`);
      this.config[key] = value;
    }
    if (this.config.base_url === null) this.config.base_url = defaultBaseUrl();
    this.config.base_url = String(this.config.base_url).replace(/\/+$/, "");
    return this.config;
  }

  /** Listen to an event; returns a function that stops listening. */
  on(name, listener) {
    const handler = (event) => listener(event.detail);
    this.addEventListener(name, handler);
    return () => this.removeEventListener(name, handler);
  }

  get connected() {
    return this.state === ConnectionState.CONNECTED;
  }

  get stats() {
    return { ...this._stats, subscriptions: this.subscriptions.size, state: this.state };
  }

  /** The WebSocket URL this manager connects to. */
  get url() {
    return this.config.base_url + this.config.path;
  }

  /**
   * Connect, retrying per the backoff settings; resolves once the gateway said welcome (and
   * every remembered subscription is back). `token` may be a string, a provider function
   * (async () => token), or omitted for an anonymous connection.
   */
  connect(token) {
    if (typeof token === "function") {
      this.config.token_provider = token;
    } else if (token !== undefined) {
      this.config.token_provider = null; // an explicit token replaces a provider
      this._token = token || null;
    }
    this._wanted = true;
    const waiter = new Promise((resolve, reject) => this._connectWaiters.push({ resolve, reject }));
    if (this.state === ConnectionState.CLOSED || this.state === ConnectionState.RECONNECTING) {
      this._attempt = 0;
      this.lastError = null;
      this._clearTimer();
      this._open();
    } else if (this.state === ConnectionState.CONNECTED) {
      this._settleWaiters(null);
    }
    return waiter;
  }

  /** Close for good (no reconnect). Subscriptions are kept and sent again on connect(). */
  disconnect(reason = "closed by client") {
    this._wanted = false;
    this._generation += 1;
    this._clearTimer();
    const ws = this._ws;
    if (ws) {
      this._detach(ws);
      try {
        ws.close(1000, reason);
      } catch {
        // already closing
      }
    }
    this._endSession();
    this._setState(ConnectionState.CLOSED, { reason, close_code: 1000 });
    const error = new ConnectionError("closed", "disconnect() was called", {
      hint: "Call connect() to connect again.",
    });
    this._dropUnconfirmed(error);
    this._settleWaiters(error);
  }

  /** Disconnect and drop every listener the manager set on the page. */
  destroy() {
    this.disconnect("destroyed");
    if (globalThis.removeEventListener) {
      globalThis.removeEventListener("online", this._onWake);
      globalThis.document?.removeEventListener("visibilitychange", this._onVisibility);
    }
  }

  /**
   * Subscribe; resolves with the Subscription once the gateway confirmed it, rejects with a
   * SubscriptionError / AuthError (with `hint`) if it refused. While reconnecting the
   * subscription waits and is sent as soon as the connection is back.
   */
  subscribe(type, filters = {}, onMessage = null) {
    const clean = cleanFilters(filters);
    const key = subscriptionKey(type, clean);
    let sub = this.subscriptions.get(key);
    if (!sub) {
      if (!this._wanted) {
        return Promise.reject(new ConnectionError(
          "not_connected", "Not connected.", { hint: "Call connect() before subscribe()." },
        ));
      }
      sub = new Subscription(this, type, clean);
      this.subscriptions.set(key, sub);
      this._emit("subscriptions", this.subscriptionList());
      // Also while resubscribing after a welcome: that batch was taken before this one.
      if (this._ws?._oddstream?.welcomed) this._sendSubscribe(sub, this._ws);
    }
    if (onMessage) sub.onMessage(onMessage);
    return sub.ready;
  }

  /** Unsubscribe by (type, filters) or by the Subscription; resolves when the gateway agreed
   * (at once when not connected: nothing will be re-sent). */
  async unsubscribe(typeOrSubscription, filters = {}) {
    const sub = typeOrSubscription instanceof Subscription
      ? typeOrSubscription
      : this.subscriptions.get(subscriptionKey(typeOrSubscription, cleanFilters(filters)));
    if (!sub || this.subscriptions.get(sub.key) !== sub) return;
    this.subscriptions.delete(sub.key);
    sub._end(new SubscriptionError("unsubscribed", "Unsubscribed before it was confirmed."));
    this._emit("subscriptions", this.subscriptionList());
    if (!this.connected) return;
    const body = sub.room
      ? { type: "unsubscribe", room: sub.room }
      : { type: "unsubscribe", subscription_type: sub.type, filters: sub.filters };
    try {
      await this._request(body);
    } catch (error) {
      if (error instanceof SessionLost || error.code === "not_subscribed") return;
      throw error;
    }
  }

  /** The subscriptions as plain objects, in the order they were made. */
  subscriptionList() {
    return [...this.subscriptions.values()].map((sub) => sub.toJSON());
  }

  /** Round trip to the gateway in ms (also kept in stats.latency_ms). */
  async ping() {
    const started = performance.now();
    await this._request({ type: "ping" });
    const latency = Math.round((performance.now() - started) * 10) / 10;
    this._stats.latency_ms = latency;
    this._emit("stats", this.stats);
    return latency;
  }

  /** The gateway's view of this connection (rooms, counters). */
  async status() {
    return (await this._request({ type: "status" })).data;
  }

  // --- connecting -----------------------------------------------------------------------

  async _open() {
    this._clearTimer();
    const generation = ++this._generation;
    if (this._ws) {
      // connect() during an attempt in flight: that attempt is abandoned, not leaked.
      const stale = this._ws;
      this._detach(stale);
      this._endSession();
      try {
        stale.close(1000, "superseded");
      } catch {
        // already closed
      }
    }
    const reconnecting = this._everConnected || this._attempt > 0;
    this._setState(reconnecting ? ConnectionState.RECONNECTING : ConnectionState.CONNECTING, {
      attempt: this._attempt, max_attempts: this._maxAttempts(), connecting: true,
    });
    if (this.config.token_provider) {
      let token;
      try {
        token = await this.config.token_provider();
      } catch (error) {
        if (generation !== this._generation) return;
        this._ended({
          advice: CloseAdvice.RECONNECT_BACKOFF,
          reason: "the token provider failed",
          error: new AuthError("token_provider_failed", `Could not get a token: ${error}`, {
            hint: "Sign in again; retrying.", temporary: true,
          }),
        });
        return;
      }
      if (generation !== this._generation) return; // a newer attempt took over meanwhile
      this._token = token;
    }
    if (!this._wanted) return;
    const protocols = [SUBPROTOCOL];
    if (this._token) protocols.push(`bearer.${this._token}`);
    const url = this.url + (this._everConnected ? `?reconnect=${this._attempt || 1}` : "");
    this._stats.url = this.url;
    let ws;
    try {
      ws = new WebSocket(url, protocols);
    } catch (error) {
      this._ended({
        advice: CloseAdvice.TERMINAL,
        reason: "bad gateway URL",
        error: new ConnectionError("invalid_url", `Cannot open ${url}: ${error.message}`, {
          hint: "Check base_url: it must start with ws:// or wss://.",
        }),
      });
      return;
    }
    this._ws = ws;
    const session = { welcomed: false, ended: false };
    ws._oddstream = session;
    const connectTimer = setTimeout(() => {
      if (!session.welcomed) this._abort(ws, "no welcome from the gateway in time");
    }, this.config.connect_timeout);
    ws.onmessage = (event) => this._receive(ws, event.data);
    ws.onclose = (event) => {
      clearTimeout(connectTimer);
      this._closed(ws, event.code, event.reason);
    };
    ws.onerror = () => {}; // always followed by close, which says more
  }

  async _welcomed(ws, frame) {
    const session = ws._oddstream;
    session.welcomed = true;
    this.welcome = frame;
    const data = frame.data || {};
    this.identity = { user: data.user ?? null, gateway: data.gateway, client_id: frame.client_id };
    this._armWatchdog(ws, data.heartbeat_interval);
    const wasReconnect = this._everConnected;
    const subs = [...this.subscriptions.values()];
    const results = await Promise.allSettled(subs.map((sub) => this._sendSubscribe(sub, ws)));
    if (this._ws !== ws || session.ended) return; // lost while resubscribing: handled by close
    const back = results.filter((r) => r.status === "fulfilled" && r.value).length;
    this._attempt = 0;
    this._everConnected = true;
    this._stats.connected_since = Date.now();
    if (wasReconnect) this._stats.reconnects += 1;
    this._setState(ConnectionState.CONNECTED, { gateway: data.gateway, user: data.user ?? null });
    const who = data.user ? ` as ${data.user}` : "";
    if (wasReconnect) {
      this._notify("success", "Reconnected", `Live updates are back${who}.`);
    } else {
      this._notify("success", "Connected", `Connected to the live feed${who}.`);
    }
    if (wasReconnect && subs.length) {
      this._notify("info", "Resubscribed",
        `Restored ${back} of ${subs.length} subscription${subs.length === 1 ? "" : "s"}.`);
    }
    this._startPinger(ws);
    this._settleWaiters(null);
  }

  /** Send one subscription on `ws`; true when confirmed. Refusals end the subscription. */
  async _sendSubscribe(sub, ws) {
    try {
      const frame = await this._request(
        { type: "subscribe", subscription_type: sub.type, filters: sub.filters }, ws,
      );
      if (this.subscriptions.get(sub.key) !== sub) return false; // unsubscribed meanwhile
      sub._confirm(frame);
      this._emit("subscriptions", this.subscriptionList());
      return true;
    } catch (error) {
      if (error instanceof SessionLost) return false; // sent again after the reconnect
      if (error.temporary) {
        // Rate-limited, overloaded or timed out: try again on this connection shortly.
        this._notify("warning", "Subscription delayed", error.message, {
          suggestion: "Retrying automatically.", code: error.code,
        });
        setTimeout(() => {
          const live = this.subscriptions.get(sub.key) === sub && this._ws === ws;
          if (live && !sub.confirmed) this._sendSubscribe(sub, ws);
        }, backoffDelay(this.config, 1));
        return false;
      }
      if (this.subscriptions.get(sub.key) === sub) this.subscriptions.delete(sub.key);
      sub._end(error);
      this._emit("subscriptions", this.subscriptionList());
      this._notifyError(error, "Subscription refused");
      return false;
    }
  }

  // --- receiving ------------------------------------------------------------------------

  _receive(ws, raw) {
    if (this._ws !== ws) return;
    let frame;
    try {
      frame = JSON.parse(raw);
    } catch {
      console.warn("oddstream: ignoring a frame that is not JSON");
      return;
    }
    if (!frame || typeof frame !== "object") return;
    this._stats.messages_received += 1;
    this._stats.last_message_at = Date.now();
    this._feedWatchdog(ws);
    this._emit("frame", frame);
    const session = ws._oddstream;
    if (!session.welcomed) {
      if (frame.type === "welcome") this._welcomed(ws, frame);
      return;
    }
    const pending = frame.id !== undefined ? this._pending.get(frame.id) : undefined;
    if (pending) {
      this._pending.delete(frame.id);
      clearTimeout(pending.timer);
      if (frame.type === "error") pending.reject(errorFor(frame));
      else pending.resolve(frame);
      return;
    }
    switch (frame.type) {
      case "ping":
        this._send(ws, { type: "pong" });
        break;
      case "token_expiring":
        this._refreshToken(ws);
        break;
      case "error":
        this._notifyError(errorFor(frame), "Gateway error");
        break;
      default:
        if (DATA_TYPES.has(frame.type)) this._data(frame);
    }
  }

  _data(frame) {
    this._stats.data_messages += 1;
    if (frame.type === "system_alert" && !frame.rooms) this._serviceAlert(frame.data || {});
    const rooms = frame.rooms || [];
    for (const sub of this.subscriptions.values()) {
      if (sub.room && rooms.includes(sub.room)) sub._deliver(frame);
    }
    this._emit("message", frame);
  }

  _serviceAlert(data) {
    if (data.code === "service_degraded") {
      this._notify("warning", "Live updates paused", data.message, {
        suggestion: "No action needed: updates resume by themselves.", code: data.code,
      });
    } else if (data.code === "service_restored") {
      this._notify("success", "Live updates resumed", data.message, { code: data.code });
    }
  }

  async _refreshToken(ws) {
    const provider = this.config.token_provider;
    if (!provider) {
      this._notify("warning", "Session expiring", "Your token expires soon.", {
        suggestion: "Sign in again, or configure token_provider to refresh it automatically.",
        code: "token_expiring",
      });
      return;
    }
    try {
      this._token = await provider();
      await this._request({ type: "auth", token: this._token }, ws);
      this._stats.token_refreshes += 1;
    } catch (error) {
      if (!(error instanceof SessionLost)) this._notifyError(error, "Token refresh failed");
    }
  }

  // --- closing and reconnecting ---------------------------------------------------------

  _closed(ws, code, reason) {
    if (this._ws !== ws) return;
    const session = ws._oddstream;
    const wasConnected = session.welcomed;
    this._detach(ws);
    this._endSession();
    if (!this._wanted) return;
    if (!wasConnected && (code === 1006 || code === 1015)) {
      // The upgrade was refused or never reached a gateway; the browser does not say which.
      const generation = this._generation;
      this._diagnose().then((ended) => {
        if (generation === this._generation) this._ended(ended);
      });
      return;
    }
    const [what, todo] = CLOSE_EXPLANATIONS[code] || [`The connection closed (${code}).`, null];
    const advice = closeAdvice(code);
    let error = null;
    if (advice === CloseAdvice.REFRESH_TOKEN) {
      error = new AuthError("token_expired", reason || what, { hint: todo, closeCode: code });
    } else if (advice === CloseAdvice.TERMINAL) {
      const make = code === 4503 ? AuthError : ConnectionError;
      error = new make(code === 4503 ? "forbidden" : "closed", reason || what,
        { hint: todo, closeCode: code });
    }
    this._ended({
      advice, reason: reason || what, closeCode: code, wasConnected, error, explanation: what,
    });
  }

  /** Why a connection could not be opened: ask the gateway over HTTP (see gateway/browser.py). */
  async _diagnose() {
    const http = this.config.base_url.replace(/^ws/, "http");
    const headers = this._token ? { Authorization: `Bearer ${this._token}` } : {};
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), this.config.connect_timeout);
    let response;
    try {
      response = await fetch(`${http}/ws/v2/whoami`, { headers, signal: controller.signal });
    } catch {
      return {
        advice: CloseAdvice.RECONNECT_BACKOFF,
        reason: "gateway unreachable",
        closeCode: 1006,
        error: new ConnectionError("unreachable", `Cannot reach the gateway at ${this.url}.`, {
          hint: "Check that the gateway is running and the address is right.", temporary: true,
        }),
      };
    } finally {
      clearTimeout(timer);
    }
    let body = {};
    try {
      body = await response.json();
    } catch {
      // not one of ours (a proxy's page): keep the status only
    }
    if (response.status === 401 || response.status === 403) {
      const error = errorFor(body.code ? body : { code: "invalid_token", error: "Refused." });
      const retry = Boolean(this.config.token_provider);
      return {
        advice: retry ? CloseAdvice.RECONNECT_BACKOFF : CloseAdvice.TERMINAL,
        reason: error.message, closeCode: 1006, error, auth: true,
      };
    }
    return {
      advice: CloseAdvice.RECONNECT_BACKOFF,
      reason: response.ok
        ? "the gateway refused the connection (busy, rate-limited or restarting)"
        : `the gateway answered HTTP ${response.status}`,
      closeCode: 1006,
      error: new ConnectionError("refused", "The gateway refused the connection.", {
        hint: "It may be busy or restarting; retrying with backoff.", temporary: true,
      }),
    };
  }

  _ended(ended) {
    if (!this._wanted) return;
    const { advice, wasConnected } = ended;
    const final = advice === CloseAdvice.TERMINAL || !this.config.auto_reconnect
      || (advice === CloseAdvice.REFRESH_TOKEN && !this.config.token_provider);
    if (wasConnected && !final) {
      this._setState(ConnectionState.DISCONNECTED, {
        close_code: ended.closeCode, reason: ended.reason,
      });
      this._notify("warning", "Disconnected", ended.explanation || ended.reason, {
        code: ended.closeCode ? `close_${ended.closeCode}` : null,
        suggestion: "Reconnecting automatically.",
      });
    }
    if (advice === CloseAdvice.TERMINAL || !this.config.auto_reconnect) {
      this._giveUp(ended, ended.error || new ConnectionError(
        "closed", ended.reason, { closeCode: ended.closeCode },
      ));
      return;
    }
    if (advice === CloseAdvice.REFRESH_TOKEN && !this.config.token_provider) {
      this._giveUp(ended, ended.error || new AuthError("token_expired", ended.reason));
      return;
    }
    let delay = 0;
    if (advice === CloseAdvice.RECONNECT_BACKOFF || !wasConnected) {
      this._attempt += 1;
      const max = this._maxAttempts();
      if (this._attempt > max) {
        const error = ended.error && !ended.error.temporary ? ended.error : new ConnectionError(
          "gave_up", `Could not reconnect after ${max} attempt${max === 1 ? "" : "s"}: ${ended.reason}.`,
          { hint: "Check that the gateway is running, then press Reconnect.", closeCode: ended.closeCode },
        );
        this._giveUp(ended, error);
        return;
      }
      delay = jittered(this.config, backoffDelay(this.config, this._attempt));
    }
    if (ended.auth && ended.error) this._notifyError(ended.error, "Sign-in failed");
    this._setState(ConnectionState.RECONNECTING, {
      attempt: this._attempt,
      max_attempts: this._maxAttempts(),
      delay,
      next_attempt_at: Date.now() + delay,
      close_code: ended.closeCode ?? null,
      reason: ended.reason,
      error: ended.error || null,
    });
    this._timer = setTimeout(() => {
      this._timer = null;
      this._open();
    }, delay);
  }

  _giveUp(ended, error) {
    this._wanted = false;
    this.lastError = error;
    this._setState(ConnectionState.CLOSED, {
      close_code: ended.closeCode ?? null, reason: ended.reason, error,
    });
    const title = error instanceof AuthError ? "Sign-in failed" : "Connection failed";
    this._notifyError(error, title);
    this._dropUnconfirmed(error);
    this._settleWaiters(error);
  }

  /** Subscriptions never confirmed end with `error` (their promises must not hang); those
   * confirmed before stay, to be sent again by the next connect(). */
  _dropUnconfirmed(error) {
    let changed = false;
    for (const [key, sub] of [...this.subscriptions]) {
      if (sub._resolved) continue;
      this.subscriptions.delete(key);
      sub._end(error);
      changed = true;
    }
    if (changed) this._emit("subscriptions", this.subscriptionList());
  }

  /** Back online or visible again: skip the rest of the backoff wait, try now. */
  _wake() {
    if (this.state === ConnectionState.RECONNECTING && this._timer !== null) {
      this._clearTimer();
      this._open();
    } else if (this.state === ConnectionState.CLOSED && this.lastError?.code === "gave_up") {
      this.connect().catch(() => {});
    }
  }

  _abort(ws, reason) {
    if (this._ws !== ws) return;
    try {
      ws.close(4000, reason.slice(0, 120));
    } catch {
      // already closed
    }
    // Browsers may take long to report the close of a dead link; do not wait for them.
    this._closedWithoutServer(ws, reason);
  }

  _closedWithoutServer(ws, reason) {
    if (this._ws !== ws) return;
    const wasConnected = ws._oddstream.welcomed;
    this._detach(ws);
    this._endSession();
    this._ended({
      advice: CloseAdvice.RECONNECT_BACKOFF, reason, closeCode: 1006, wasConnected,
      explanation: `The connection went silent (${reason}).`,
    });
  }

  _detach(ws) {
    ws.onmessage = ws.onclose = ws.onerror = null;
    if (ws._oddstream) ws._oddstream.ended = true;
    if (this._ws === ws) this._ws = null;
  }

  _endSession() {
    clearInterval(this._pinger);
    clearTimeout(this._watchdog);
    this._pinger = this._watchdog = null;
    this._stats.connected_since = null;
    let changed = false;
    for (const sub of this.subscriptions.values()) {
      changed = changed || sub.confirmed;
      sub.confirmed = false; // live again once re-confirmed on the next connection
    }
    if (changed) this._emit("subscriptions", this.subscriptionList());
    for (const [id, pending] of this._pending) {
      clearTimeout(pending.timer);
      pending.reject(new SessionLost(`request ${id}: connection lost`));
    }
    this._pending.clear();
  }

  _clearTimer() {
    if (this._timer !== null) clearTimeout(this._timer);
    this._timer = null;
  }

  _maxAttempts() {
    const max = this.config.max_reconnect_attempts;
    return max === null || max === undefined ? Infinity : max;
  }

  // --- heartbeats -----------------------------------------------------------------------

  _armWatchdog(ws, serverIntervalSeconds) {
    const interval = (serverIntervalSeconds || 30) * 1000;
    ws._oddstream.silence = this.config.heartbeat_timeout || 2 * interval;
    this._feedWatchdog(ws);
  }

  _feedWatchdog(ws) {
    const silence = ws._oddstream?.silence;
    if (!silence) return;
    clearTimeout(this._watchdog);
    this._watchdog = setTimeout(
      () => this._abort(ws, `nothing received for ${Math.round(silence / 1000)} s`), silence,
    );
  }

  _startPinger(ws) {
    clearInterval(this._pinger);
    const every = this.config.heartbeat_interval;
    if (!every) return;
    this.ping().catch(() => {});
    this._pinger = setInterval(() => {
      if (this._ws === ws) this.ping().catch(() => {});
    }, every);
  }

  // --- sending --------------------------------------------------------------------------

  _send(ws, body) {
    if (!ws || ws.readyState !== WebSocket.OPEN) return false;
    ws.send(JSON.stringify(body));
    return true;
  }

  _request(body, ws = this._ws) {
    return new Promise((resolve, reject) => {
      if (!ws || ws.readyState !== WebSocket.OPEN || ws._oddstream?.ended) {
        reject(new SessionLost("not connected"));
        return;
      }
      this._ids += 1;
      const id = `b${this._ids}`;
      const timer = setTimeout(() => {
        this._pending.delete(id);
        reject(new ConnectionError("request_timeout", `No answer to '${body.type}' in time.`, {
          hint: "The gateway may be overloaded; try again.", temporary: true,
        }));
      }, this.config.request_timeout);
      this._pending.set(id, { resolve, reject, timer });
      this._send(ws, { ...body, id });
    });
  }

  // --- events ---------------------------------------------------------------------------

  _setState(state, detail = {}) {
    this.state = state;
    this.stateDetail = { state, at: Date.now(), ...detail };
    this._emit("state", this.stateDetail);
  }

  _settleWaiters(error) {
    const waiters = this._connectWaiters;
    this._connectWaiters = [];
    for (const waiter of waiters) {
      if (error) waiter.reject(error);
      else waiter.resolve();
    }
  }

  _notify(level, title, message, { suggestion = null, code = null } = {}) {
    this._notes += 1;
    const note = { id: this._notes, level, title, message, suggestion, code, at: Date.now() };
    this._emit("notification", note);
    return note;
  }

  _notifyError(error, title) {
    return this._notify("error", title, error.message, {
      suggestion: error.hint || null, code: error.code || null,
    });
  }

  _emit(name, detail) {
    this.dispatchEvent(new CustomEvent(name, { detail }));
  }
}

/** The seed's shared instance, for pages with one connection. */
export const webSocketManager = new WebSocketManager();
