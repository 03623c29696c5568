// The live dashboard served at `/`: a product page built only on the public browser client
// (oddstream.js, built from clients/js) and the wire contract it ships with (contract.js,
// generated from the gateway's own definitions), so everything it shows is what any frontend
// on the protocol can show. Every piece of data is put on the page with textContent, never as
// HTML.
//
// This module reads the page's settings and wires the parts together, each a module of its own:
// dashboard-toasts.js, dashboard-status.js (connection status and banner),
// dashboard-subscriptions.js (subscription form and list), dashboard-board.js (odds board),
// dashboard-panels.js (arbitrage, predictions and activity feeds), dashboard-debug.js,
// dashboard-analytics.js (the admin's usage analytics view, charts by uPlot), and the helpers in
// dashboard-dom.js and dashboard-format.js.

import { ConnectionState, WebSocketManager } from "./oddstream.js";
import { ADMIN_TOKEN, AnalyticsView } from "./dashboard-analytics.js";
import { OddsBoard } from "./dashboard-board.js";
import { DebugPanel } from "./dashboard-debug.js";
import { $ } from "./dashboard-dom.js";
import { showFeeds } from "./dashboard-panels.js";
import { StatusIndicator } from "./dashboard-status.js";
import { SubscriptionPanel, loadAllowedFilters } from "./dashboard-subscriptions.js";
import { Toasts, resumeNotice } from "./dashboard-toasts.js";

const SAVED_TOKEN = "oddstream.token";

/** Settings from the page URL's fragment (never sent to the server, so never logged):
 * `#token=<jwt>`, `#gateway=ws://host:port`, `#admin=<admin token>` (for the analytics view)
 * and `#view=analytics`. Tokens move to sessionStorage and leave the address bar. */
function pageSettings() {
  const fragment = new URLSearchParams(location.hash.slice(1));
  const token = fragment.get("token");
  if (token !== null) sessionStorage.setItem(SAVED_TOKEN, token);
  const admin = fragment.get("admin");
  if (admin) sessionStorage.setItem(ADMIN_TOKEN, admin);
  if (fragment.has("token") || fragment.has("admin")) {
    history.replaceState(null, "", location.pathname + location.search);
  }
  return {
    token: sessionStorage.getItem(SAVED_TOKEN) || null,
    gateway: fragment.get("gateway"),
    view: fragment.get("view"),
  };
}

/** The Live and Analytics tabs: one view shown at a time; analytics refresh only while shown. */
function wireViews(analytics, initial) {
  const live = [$("live-view"), $("debug")];
  const select = (name) => {
    $("view-live").setAttribute("aria-pressed", String(name === "live"));
    $("view-analytics").setAttribute("aria-pressed", String(name === "analytics"));
    for (const part of live) part.hidden = name !== "live";
    if (name === "analytics") analytics.show();
    else analytics.hide();
  };
  $("view-live").addEventListener("click", () => select("live"));
  $("view-analytics").addEventListener("click", () => select("analytics"));
  select(initial === "analytics" ? "analytics" : "live");
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
  showFeeds(manager);
  // After a reconnect: say whether the gap was filled (resumed) or the state reloaded.
  manager.on("resume", (detail) => toasts.show(resumeNotice(detail)));
  new DebugPanel(manager, toasts);
  const analytics = new AnalyticsView(manager.config.base_url, toasts);
  wireViews(analytics, settings.view);

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
  window.oddstream = { manager, board, toasts, analytics };
}

main();
