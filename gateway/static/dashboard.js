// The live dashboard served at `/`: a product page built only on the public browser client
// (oddstream.js, built from clients/js) and the wire contract it ships with (contract.js,
// generated from the gateway's own definitions), so everything it shows is what any frontend
// on the protocol can show. Every piece of data is put on the page with textContent, never as
// HTML.

import { ALLOWED_FILTERS, ODDS_MARKETS } from "./contract.js";
import { ConnectionState, WebSocketManager } from "./oddstream.js";

const DEFAULT_SUBSCRIPTIONS = [
  { type: "odds_updates", filters: {} },
  { type: "arbitrage", filters: {} },
  { type: "predictions", filters: {} },
];
const SAVED_SUBSCRIPTIONS = "oddstream.subscriptions";
const SAVED_TOKEN = "oddstream.token";
const $ = (id) => document.getElementById(id);

/** A DOM element with attributes and children (strings become text nodes). */
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const american = (price) => (price > 0 ? `+${price}` : String(price));
const time = (at) => new Date(at).toLocaleTimeString([], { hour12: false });
const describeFilters = (filters) => {
  const parts = Object.entries(filters).map(([k, v]) => `${k}=${Array.isArray(v) ? v.join("|") : v}`);
  return parts.length ? parts.join("  ") : "all";
};

// --- toasts -------------------------------------------------------------------------------

/** Connection events and errors as toasts; errors stay until closed, others fade. */
class Toasts {
  constructor(root, limit = 5) {
    this.root = root;
    this.limit = limit;
  }

  show({ level, title, message, suggestion, code }) {
    const close = el("button", { class: "toast-close", type: "button", "aria-label": "Dismiss" }, "\u00d7");
    const toast = el("div", { class: "toast", role: level === "error" ? "alert" : "status", dataset: { level, code: code ?? "" } },
      el("span", { class: "bar" }),
      el("div", {},
        el("div", { class: "toast-title" }, title),
        message ? el("div", { class: "toast-message" }, message) : null,
        suggestion ? el("div", { class: "toast-suggestion" }, suggestion) : null,
      ),
      close,
    );
    close.addEventListener("click", () => toast.remove());
    this.root.append(toast);
    while (this.root.children.length > this.limit) this.root.firstElementChild.remove();
    const ttl = { info: 5000, success: 4000, warning: 8000 }[level];
    if (ttl) setTimeout(() => toast.remove(), ttl);
  }
}

// --- connection status --------------------------------------------------------------------

/** Connected / reconnecting with a countdown / disconnected, plus the final-error banner. */
class StatusIndicator {
  constructor(manager) {
    this.manager = manager;
    this.root = $("status");
    this.text = $("status-text");
    this.detail = $("status-detail");
    this.toggle = $("connect-toggle");
    this.banner = $("banner");
    this.timer = null;
    manager.on("state", (detail) => this.render(detail));
    manager.on("stats", () => this.render(manager.stateDetail));
    this.render(manager.stateDetail);
  }

  render(detail) {
    clearInterval(this.timer);
    this.timer = null;
    const state = detail.state;
    this.root.dataset.state = state;
    this.toggle.textContent = state === ConnectionState.CLOSED ? "Reconnect" : "Disconnect";
    switch (state) {
      case ConnectionState.CONNECTED: {
        this.text.textContent = "Connected";
        const latency = this.manager.stats.latency_ms;
        this.detail.textContent = latency === null ? "" : `${Math.round(latency)} ms`;
        this.hideBanner();
        break;
      }
      case ConnectionState.CONNECTING:
        this.text.textContent = "Connecting\u2026";
        this.detail.textContent = "";
        break;
      case ConnectionState.RECONNECTING:
        this.renderReconnecting(detail);
        break;
      case ConnectionState.DISCONNECTED:
        this.text.textContent = "Connection lost";
        this.detail.textContent = detail.reason || "";
        break;
      default:
        this.text.textContent = "Disconnected";
        this.detail.textContent = detail.error ? detail.error.code : "";
        if (detail.error) this.showBanner(detail.error);
    }
  }

  renderReconnecting(detail) {
    const max = detail.max_attempts === Infinity ? "" : ` of ${detail.max_attempts}`;
    const attempt = detail.attempt ? `attempt ${detail.attempt}${max}` : "";
    if (detail.connecting || !detail.next_attempt_at) {
      this.text.textContent = "Reconnecting\u2026";
      this.detail.textContent = attempt;
      return;
    }
    const tick = () => {
      const left = Math.max(0, Math.ceil((detail.next_attempt_at - Date.now()) / 1000));
      this.text.textContent = `Reconnecting in ${left}s`;
      this.detail.textContent = attempt;
    };
    tick();
    this.timer = setInterval(tick, 250);
  }

  showBanner(error) {
    $("banner-title").textContent = error.name === "AuthError" ? "Sign-in failed." : "Not connected.";
    $("banner-message").textContent = ` ${error.message}`;
    $("banner-suggestion").textContent = error.hint ? `Try: ${error.hint}` : "";
    $("banner-action").textContent = error.name === "AuthError" ? "Change token" : "Reconnect";
    this.banner.dataset.kind = error.name === "AuthError" ? "auth" : "connection";
    this.banner.hidden = false;
  }

  hideBanner() {
    this.banner.hidden = true;
  }
}

/** Which filters each subscription type accepts: the contract this page was built with, then
 * the schema of the gateway it talks to (which may be another version, see `#gateway=`). */
let filtersOfType = ALLOWED_FILTERS;

async function loadAllowedFilters(baseUrl) {
  try {
    const response = await fetch(`${baseUrl.replace(/^ws/, "http")}/ws/v2/schema`);
    if (response.ok) filtersOfType = (await response.json()).allowed_filters ?? filtersOfType;
  } catch {
    // keep the contract's table
  }
}

function allowedFilters(type) {
  return new Set(filtersOfType[type] ?? ALLOWED_FILTERS[type] ?? []);
}

// --- subscriptions ------------------------------------------------------------------------

/** The form and list that add and remove subscriptions; choices are kept in localStorage. */
class SubscriptionPanel {
  constructor(manager, toasts) {
    this.manager = manager;
    this.toasts = toasts;
    this.form = $("subscribe-form");
    this.list = $("subscription-list");
    this.error = $("form-error");
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.submit();
    });
    $("sub-type").addEventListener("change", () => this.showFilters());
    manager.on("subscriptions", () => this.render());
    manager.on("message", () => this.scheduleRender());
    this.showFilters();
    this.pending = false;
  }

  /** Only the filters the chosen type accepts are offered. */
  showFilters() {
    const allowed = allowedFilters($("sub-type").value);
    for (const label of this.form.querySelectorAll("[data-filter]")) {
      label.hidden = !allowed.has(label.dataset.filter);
    }
  }

  filtersFromForm() {
    const type = $("sub-type").value;
    const allowed = allowedFilters(type);
    const filters = {};
    for (const name of allowed) {
      const value = this.form.elements[name].value.trim();
      if (!value) continue;
      if (name === "min_profit") {
        const number = Number(value);
        if (!Number.isFinite(number) || number < 0) throw new Error("Min profit must be a number of 0 or more.");
        filters[name] = number;
      } else {
        filters[name] = value;
      }
    }
    return { type, filters };
  }

  async submit() {
    this.error.textContent = "";
    let wanted;
    try {
      wanted = this.filtersFromForm();
    } catch (error) {
      this.error.textContent = error.message;
      return;
    }
    const button = $("subscribe-button");
    button.disabled = true;
    try {
      await this.manager.subscribe(wanted.type, wanted.filters);
      this.toasts.show({ level: "success", title: "Subscribed", message: `${wanted.type} · ${describeFilters(wanted.filters)}` });
      this.save();
    } catch (error) {
      // The manager already raised a toast with the gateway's suggestion; say it here too.
      this.error.textContent = error.hint ? `${error.message} ${error.hint}` : error.message;
    } finally {
      button.disabled = false;
    }
  }

  async remove(sub) {
    try {
      await this.manager.unsubscribe(sub);
      this.toasts.show({ level: "info", title: "Unsubscribed", message: `${sub.type} · ${describeFilters(sub.filters)}` });
    } catch (error) {
      this.toasts.show({ level: "error", title: "Unsubscribe failed", message: error.message, suggestion: error.hint });
    }
    this.save();
  }

  save() {
    const saved = [...this.manager.subscriptions.values()].map(({ type, filters }) => ({ type, filters }));
    localStorage.setItem(SAVED_SUBSCRIPTIONS, JSON.stringify(saved));
  }

  saved() {
    try {
      const raw = localStorage.getItem(SAVED_SUBSCRIPTIONS);
      return raw === null ? DEFAULT_SUBSCRIPTIONS : JSON.parse(raw);
    } catch {
      return DEFAULT_SUBSCRIPTIONS;
    }
  }

  scheduleRender() {
    if (this.pending) return;
    this.pending = true;
    setTimeout(() => {
      this.pending = false;
      this.render();
    }, 500);
  }

  render() {
    const subs = [...this.manager.subscriptions.values()];
    $("subscriptions-empty").hidden = subs.length > 0;
    this.list.replaceChildren(...subs.map((sub) => {
      const remove = el("button", { class: "remove", type: "button", "aria-label": `Unsubscribe ${sub.type} ${describeFilters(sub.filters)}` }, "\u00d7");
      remove.addEventListener("click", () => this.remove(sub));
      return el("li", { class: "subscription", dataset: { key: sub.key, type: sub.type, confirmed: String(sub.confirmed) } },
        el("span", { class: "sub-type" }, sub.type),
        remove,
        el("span", { class: "sub-filters" }, describeFilters(sub.filters)),
        el("span", { class: "sub-meta" },
          el("span", { class: "sub-state" }, sub.confirmed ? "live" : "pending"),
          ` · ${sub.received} msg`),
      );
    }));
  }
}

// --- odds board ---------------------------------------------------------------------------

/** One card per game, markets by sportsbooks; prices update in place and flash on movement.
 * The markets are the contract's; the sportsbooks are the ones the data quotes, as columns in
 * the order they were first seen (the same on every card). A game remembers which rooms
 * delivered it, so unsubscribing clears what only it brought. A snapshot (sent when a
 * subscription starts, or could not resume) fills the cards with the latest prices before the
 * live updates behind it. */
class OddsBoard {
  constructor(manager) {
    this.root = $("odds-board");
    this.games = new Map(); // game_id -> {card, head, rows: Map, cells: Map, rooms: Set, sport}
    this.books = []; // sportsbooks in the order first seen
    this.updates = 0;
    this.snapshots = 0;
    manager.on("message", (frame) => {
      if (frame.type === "odds_update") this.update(frame);
    });
    manager.on("snapshot", ({ frame }) => this.snapshot(frame));
    // A subscription that could not resume: what it showed may be stale; its snapshot follows.
    manager.on("resync", ({ subscription, snapshot }) => {
      if (snapshot && subscription.room) this.forget(subscription.room);
    });
    manager.on("subscriptions", () => this.prune(manager));
  }

  /** Drop what only `room` brought (cards of games no other room delivered). */
  forget(room) {
    for (const [id, game] of this.games) {
      game.rooms.delete(room);
      if (game.rooms.size === 0) {
        game.card.remove();
        this.games.delete(id);
      }
    }
    $("odds-empty").hidden = this.games.size > 0;
  }

  /** The latest value of every game, book and market the room covers, as updates. */
  snapshot(frame) {
    const events = frame.data?.events ?? [];
    let applied = 0;
    for (const event of events) {
      if (event.type !== "odds_update" || !event.data) continue;
      this.update({ ...event, rooms: [frame.room], snapshot: true });
      applied += 1;
    }
    if (applied) {
      this.snapshots += 1;
      this.root.dataset.snapshot = String(applied);
    }
  }

  update(frame) {
    const odds = frame.data;
    if (odds.sportsbook && !this.books.includes(odds.sportsbook)) this.addBook(odds.sportsbook);
    const game = this.game(odds);
    for (const room of frame.rooms || []) game.rooms.add(room);
    game.card.dataset.updated = String(Date.now());
    const cell = game.cells.get(`${odds.market}|${odds.sportsbook}`);
    if (!cell) return;
    const sides = odds.market === "total" ? ["over_price", "under_price"] : ["home_price", "away_price"];
    const lines = odds.line === undefined || odds.line === null
      ? ["", ""]
      : odds.market === "total" ? [`o${odds.line}`, `u${odds.line}`] : [signed(odds.line), signed(-odds.line)];
    cell.replaceChildren(...sides.map((side, i) => {
      const move = odds.movement?.[side];
      return el("div", { class: "price" },
        lines[i] ? el("span", { class: "line" }, lines[i]) : null,
        el("span", { class: `value ${move === "up" || move === "down" ? move : ""}`, dataset: { side } }, american(odds[side])),
      );
    }));
    cell.dataset.updated = String(Date.now());
    this.updates += 1;
    this.summary();
  }

  /** A sportsbook seen for the first time: a new column on every card. */
  addBook(book) {
    this.books.push(book);
    // The subscription form offers the books the feed quotes (no hand-kept list).
    const known = document.getElementById("known-books");
    if (known && ![...known.options].some((option) => option.value === book)) {
      known.append(el("option", { value: book }));
    }
    for (const game of this.games.values()) this.addColumn(game, book);
  }

  addColumn(game, book) {
    game.head.append(el("th", {}, book));
    for (const [market, row] of game.rows) {
      const cell = el("td", { class: "cell", dataset: { market, book } }, el("span", { class: "cell-empty" }, "\u2014"));
      game.cells.set(`${market}|${book}`, cell);
      row.append(cell);
    }
  }

  game(odds) {
    let game = this.games.get(odds.game_id);
    if (game) return game;
    const head = el("tr", {}, el("th", {}, "Market"));
    const rows = new Map(ODDS_MARKETS.map((market) => [market, el("tr", {}, el("td", { class: "market" }, market))]));
    const card = el("article", { class: "game", dataset: { game: odds.game_id, sport: odds.sport } },
      el("div", { class: "game-head" },
        el("span", { class: "sport", dataset: { sport: odds.sport } }, odds.sport),
        el("span", { class: "teams" }, `${odds.away_team ?? "Away"} @ ${odds.home_team ?? "Home"}`),
        el("span", { class: "game-id" }, odds.game_id),
      ),
      el("table", { class: "odds-table" },
        el("thead", {}, head),
        el("tbody", {}, [...rows.values()]),
      ),
    );
    game = { card, head, rows, cells: new Map(), rooms: new Set(), sport: odds.sport };
    for (const book of this.books) this.addColumn(game, book);
    this.games.set(odds.game_id, game);
    const ordered = [...this.games.entries()].sort(([a], [b]) => a.localeCompare(b));
    const index = ordered.findIndex(([id]) => id === odds.game_id);
    const next = ordered[index + 1];
    this.root.insertBefore(card, next ? next[1].card : null);
    $("odds-empty").hidden = true;
    return game;
  }

  prune(manager) {
    const live = new Set([...manager.subscriptions.values()].map((s) => s.room).filter(Boolean));
    for (const [id, game] of this.games) {
      for (const room of [...game.rooms]) if (!live.has(room)) game.rooms.delete(room);
      if (game.rooms.size === 0) {
        game.card.remove();
        this.games.delete(id);
      }
    }
    if (this.games.size === 0) this.books = []; // the next subscription's books, from scratch
    $("odds-empty").hidden = this.games.size > 0;
    this.summary();
  }

  summary() {
    $("odds-summary").textContent = this.games.size
      ? `${this.games.size} games · ${this.updates.toLocaleString()} updates`
      : "";
  }
}

/** The toast for a `resume` event: every missed update delivered, or state reloaded. */
function resumeNotice({ recovered, resynced, replayed }) {
  const updates = `${replayed.toLocaleString()} missed update${replayed === 1 ? "" : "s"}`;
  if (resynced) {
    return {
      level: "warning",
      title: "Resynced: live state reloaded",
      message: `${resynced} subscription${resynced === 1 ? "" : "s"} could not replay what was missed; showing the latest values instead.${recovered ? ` The others resumed (${updates} delivered).` : ""}`,
      code: "resynced",
    };
  }
  return {
    level: "success",
    title: replayed ? `Resumed: ${updates} delivered` : "Resumed: no updates missed",
    message: "Nothing was lost while disconnected.",
    code: "resumed",
  };
}

function signed(value) {
  return value > 0 ? `+${value}` : String(value);
}

// --- feeds --------------------------------------------------------------------------------

/** A newest-first list with a bounded length. */
class Feed {
  constructor(listId, emptyId, limit, countId = null) {
    this.list = $(listId);
    this.empty = $(emptyId);
    this.count = countId ? $(countId) : null;
    this.limit = limit;
    this.total = 0;
  }

  add(item) {
    item.classList.add("fresh");
    this.list.prepend(item);
    while (this.list.children.length > this.limit) this.list.lastElementChild.remove();
    this.total += 1;
    this.empty.hidden = true;
    if (this.count) this.count.textContent = this.total.toLocaleString();
  }
}

function arbitrageItem(frame) {
  const arb = frame.data;
  const expires = arb.expires_in_s ? ` · expires in ${arb.expires_in_s}s` : "";
  return el("li", { dataset: { sport: arb.sport, game: arb.game_id } },
    el("div", { class: "arb-head" },
      el("span", {}, el("span", { class: "sport", dataset: { sport: arb.sport } }, arb.sport), " ",
        `${arb.away_team ?? ""} @ ${arb.home_team ?? ""}`),
      el("span", { class: "profit" }, `${Number(arb.profit_pct).toFixed(2)}%`),
    ),
    el("div", { class: "meta" }, `${arb.market ?? ""} · ${time(frame.timestamp)}${expires}`),
    el("ul", { class: "legs" }, (arb.legs || []).map((leg) => el("li", {},
      el("b", {}, leg.sportsbook), ` ${leg.selection} `, el("b", {}, american(leg.price)), ` · stake ${leg.stake_pct}%`))),
  );
}

function predictionItem(frame) {
  const p = frame.data;
  const confidence = Math.round((p.confidence ?? 0) * 100);
  return el("li", { dataset: { sport: p.sport, player: p.player ?? "" } },
    el("div", { class: "pred-head" },
      el("span", {}, el("b", {}, p.player ?? p.game_id), ` ${p.market ?? ""} ${p.line ?? ""}`),
      p.recommendation ? el("span", { class: `rec ${p.recommendation}` }, p.recommendation) : null,
    ),
    el("div", { class: "meta" }, `projection ${p.projection ?? "?"} · edge ${p.edge ?? "?"} · ${confidence}% · ${p.model ?? ""}`),
    el("div", { class: "confidence" }, el("span", { dataset: { width: confidence } })),
  );
}

function activityItem(frame) {
  const d = frame.data || {};
  const text = d.message
    || (d.action ? `${d.action.replace("_", " ")} ${d.selection ?? ""} ${d.pnl !== undefined ? `P&L ${d.pnl}` : ""}` : null)
    || (d.home_win_prob !== undefined ? `${d.away_team} @ ${d.home_team}: home win ${Math.round(d.home_win_prob * 100)}%` : null)
    || JSON.stringify(d).slice(0, 120);
  return el("li", { dataset: { level: d.level ?? "info", type: frame.type } },
    el("div", { class: "meta" }, `${frame.type.replace("_", " ")} · ${time(frame.timestamp)}`),
    el("div", {}, text),
  );
}

// --- debug panel --------------------------------------------------------------------------

/** Stats, connection info, subscriptions and the last frames, refreshed every second. */
class DebugPanel {
  constructor(manager, toasts) {
    this.manager = manager;
    this.toasts = toasts;
    this.frames = $("debug-frames");
    manager.on("frame", (frame) => this.frame(frame));
    $("debug-ping").addEventListener("click", async () => {
      try {
        const ms = await manager.ping();
        toasts.show({ level: "info", title: "Pong", message: `Round trip ${ms} ms.` });
      } catch (error) {
        toasts.show({ level: "error", title: "Ping failed", message: error.message, suggestion: error.hint });
      }
    });
    $("debug-status").addEventListener("click", async () => {
      try {
        const status = await manager.status();
        this.frame({ type: "status", timestamp: new Date().toISOString(), data: status });
      } catch (error) {
        toasts.show({ level: "error", title: "Status failed", message: error.message, suggestion: error.hint });
      }
    });
    $("debug-clear").addEventListener("click", () => this.frames.replaceChildren());
    setInterval(() => this.render(), 1000);
    this.render();
  }

  frame(frame) {
    if (!$("debug").open) return;
    const stamp = frame.timestamp ? time(frame.timestamp) : time(Date.now());
    this.frames.prepend(el("li", { dataset: { type: frame.type } },
      `${stamp} `, el("span", { class: "ftype" }, frame.type), ` ${JSON.stringify(frame.data ?? frame.error ?? "")}`));
    while (this.frames.children.length > 50) this.frames.lastElementChild.remove();
  }

  render() {
    const stats = this.manager.stats;
    const uptime = stats.connected_since ? `${Math.round((Date.now() - stats.connected_since) / 1000)} s` : "\u2014";
    kv($("debug-stats"), {
      "messages": stats.messages_received,
      "data messages": stats.data_messages,
      "reconnects": stats.reconnects,
      "token refreshes": stats.token_refreshes,
      "resumed / resynced": `${stats.resumes} / ${stats.resyncs}`,
      "duplicates dropped": stats.duplicates,
      "latency": stats.latency_ms === null ? "\u2014" : `${stats.latency_ms} ms`,
      "connected for": uptime,
      "last message": stats.last_message_at ? time(stats.last_message_at) : "\u2014",
    });
    const welcome = this.manager.welcome?.data || {};
    kv($("debug-connection"), {
      "state": this.manager.state,
      "url": this.manager.url,
      "gateway": welcome.gateway ?? "\u2014",
      "client id": this.manager.welcome?.client_id ?? "\u2014",
      "user": welcome.user ?? "anonymous",
      "heartbeat": welcome.heartbeat_interval ? `${welcome.heartbeat_interval} s` : "\u2014",
      "last error": this.manager.lastError ? `${this.manager.lastError.code}: ${this.manager.lastError.message}` : "\u2014",
    });
    $("debug-subscriptions").textContent = JSON.stringify(this.manager.subscriptionList(), null, 1);
  }
}

function kv(root, pairs) {
  root.replaceChildren(...Object.entries(pairs).flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, String(v))]));
}

// --- the page -----------------------------------------------------------------------------

/** Settings from the page URL's fragment (never sent to the server, so never logged):
 * `#token=<jwt>` and `#gateway=ws://host:port`. The token moves to sessionStorage. */
function pageSettings() {
  const fragment = new URLSearchParams(location.hash.slice(1));
  const token = fragment.get("token");
  if (token !== null) sessionStorage.setItem(SAVED_TOKEN, token);
  if (fragment.has("token")) history.replaceState(null, "", location.pathname + location.search);
  return { token: sessionStorage.getItem(SAVED_TOKEN) || null, gateway: fragment.get("gateway") };
}

function main() {
  const settings = pageSettings();
  const manager = new WebSocketManager(settings.gateway ? { base_url: settings.gateway } : {});
  const toasts = new Toasts($("toasts"));
  manager.on("notification", (note) => toasts.show(note));
  new StatusIndicator(manager);
  const panel = new SubscriptionPanel(manager, toasts);
  loadAllowedFilters(manager.config.base_url).then(() => panel.showFilters());
  const board = new OddsBoard(manager);
  const arbitrage = new Feed("arbitrage-list", "arbitrage-empty", 20, "arb-count");
  const predictions = new Feed("prediction-list", "prediction-empty", 30, "pred-count");
  const activity = new Feed("activity-list", "activity-empty", 30);
  const addPrediction = (frame) => {
    const item = predictionItem(frame);
    const bar = item.querySelector(".confidence span");
    bar.style.width = `${bar.dataset.width}%`;
    predictions.add(item);
  };
  manager.on("message", (frame) => {
    if (frame.type === "arbitrage_alert") arbitrage.add(arbitrageItem(frame));
    else if (frame.type === "prediction_update") addPrediction(frame);
    else if (frame.type !== "odds_update") activity.add(activityItem(frame));
  });
  // A snapshot's predictions (the latest per game, player and market), oldest first.
  manager.on("snapshot", ({ frame }) => {
    const latest = (frame.data?.events ?? []).filter((e) => e.type === "prediction_update" && e.data);
    latest.sort((a, b) => String(a.timestamp).localeCompare(String(b.timestamp)));
    for (const event of latest.slice(-predictions.limit)) addPrediction(event);
  });
  // After a reconnect: say whether the gap was filled (resumed) or the state reloaded.
  manager.on("resume", (detail) => toasts.show(resumeNotice(detail)));
  new DebugPanel(manager, toasts);

  const identity = $("identity");
  manager.on("state", (detail) => {
    if (detail.state === ConnectionState.CONNECTED) identity.textContent = detail.user ? `signed in as ${detail.user}` : "anonymous";
  });

  // The saved subscriptions go out with every connect(): ones a failed attempt dropped
  // (never confirmed) come back, the others are already known and not sent twice.
  const connect = (token) => {
    manager.connect(token).catch(() => {}); // failures arrive as notifications and state
    for (const { type, filters } of panel.saved()) {
      manager.subscribe(type, filters).catch(() => {}); // refusals are toasts and list updates
    }
    panel.render();
  };
  $("connect-toggle").addEventListener("click", () => {
    if (manager.state === ConnectionState.CLOSED) connect(sessionStorage.getItem(SAVED_TOKEN));
    else manager.disconnect();
  });
  const dialog = $("token-dialog");
  const openDialog = () => {
    $("token-input").value = sessionStorage.getItem(SAVED_TOKEN) || "";
    dialog.showModal();
  };
  $("token-open").addEventListener("click", openDialog);
  $("banner-action").addEventListener("click", () => {
    if ($("banner").dataset.kind === "auth") openDialog();
    else connect(sessionStorage.getItem(SAVED_TOKEN));
  });
  dialog.addEventListener("close", () => {
    if (dialog.returnValue === "cancel" || !dialog.returnValue) return;
    const token = dialog.returnValue === "connect" ? $("token-input").value.trim() : "";
    if (token) sessionStorage.setItem(SAVED_TOKEN, token);
    else sessionStorage.removeItem(SAVED_TOKEN);
    manager.disconnect("token changed");
    connect(token || null);
  });

  connect(settings.token);

  // For people poking at it in devtools (and for the browser tests).
  window.oddstream = { manager, board, toasts };
}

main();
