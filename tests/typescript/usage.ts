// The browser client used the way the README shows it, type-checked against oddstream.d.ts as
// built from clients/js (tests/test_typescript.py runs `tsc -p tests/typescript/tsconfig.json`;
// nothing is emitted or run). The `@ts-expect-error` lines at the end are misuse the
// declarations must reject: if one of them compiled, tsc would report the unused directive and
// the test would fail.

import {
  ALLOWED_FILTERS,
  AuthError,
  CloseAdvice,
  CloseCodes,
  ConnectionError,
  ConnectionState,
  DEFAULT_CONFIG,
  ODDS_MARKETS,
  OddstreamError,
  DEDUPE_WINDOW,
  SNAPSHOT_TYPES,
  SUBSCRIPTION_TYPES,
  Subscription,
  SubscriptionError,
  WebSocketManager,
  backoffDelay,
  closeAdvice,
  errorFor,
  subscriptionKey,
  webSocketManager,
} from "../../gateway/static/oddstream.js";
import type {
  Config,
  DataFrame,
  Filters,
  ManagerEvents,
  Notification,
  OddsMarket,
  ResumeDetail,
  ResyncDetail,
  ServerFrame,
  SnapshotDetail,
  SnapshotEvent,
  SnapshotFrame,
  StateDetail,
  Stats,
  SubscriptionInfo,
  SubscriptionType,
} from "../../gateway/static/oddstream.js";

declare function showToast(level: Notification["level"], title: string, body: string): void;
declare function render(text: string): void;

async function fetchToken(): Promise<string> {
  const response = await fetch("/auth/token", { credentials: "include" });
  return response.text();
}

function describeState(detail: StateDetail): string {
  switch (detail.state) {
    case ConnectionState.CONNECTED:
      return `connected to ${detail.gateway ?? "?"} as ${detail.user ?? "anonymous"}`;
    case ConnectionState.RECONNECTING:
      if (detail.connecting) return `reconnecting (attempt ${detail.attempt ?? 0})`;
      return `retrying in ${Math.round((detail.delay ?? 0) / 1000)} s: ${detail.reason ?? ""}`;
    case ConnectionState.CLOSED:
      return detail.error ? `stopped: ${detail.error.message}` : "closed";
    case ConnectionState.CONNECTING:
    case ConnectionState.DISCONNECTED:
      return detail.state;
  }
}

export async function main(): Promise<void> {
  const manager = new WebSocketManager({
    base_url: "wss://odds.example.com",
    max_reconnect_attempts: null,
    heartbeat_timeout: 45_000,
    token_provider: fetchToken,
  });
  const config: Readonly<Config> = manager.setConfig({ jitter: 0.1, connect_timeout: 5_000 });
  const baseUrl: string = manager.config.base_url; // resolved: never null on a manager
  console.log(config.path, baseUrl, manager.url, DEFAULT_CONFIG.reconnect_interval);

  const stopStates = manager.on("state", (detail) => render(describeState(detail)));
  manager.on("notification", (note) => {
    const body = note.suggestion ? `${note.message} ${note.suggestion}` : note.message;
    showToast(note.level, note.title, body);
  });
  manager.on("subscriptions", (list: SubscriptionInfo[]) => {
    render(list.map((s) => `${s.type} ${s.confirmed ? "live" : "pending"}`).join(", "));
  });
  manager.on("stats", (stats: Stats) => render(`latency ${stats.latency_ms ?? "?"} ms`));
  manager.on("frame", (frame: ServerFrame) => {
    if (frame.type === "error") render(`${frame.code ?? "?"}: ${frame.hint ?? frame.error ?? ""}`);
  });
  manager.on("message", (frame: DataFrame) => {
    switch (frame.type) {
      case "arbitrage_alert":
        render(`${frame.data.profit_pct}% on ${frame.data.sportsbooks.join(" / ")}`);
        break;
      case "system_alert":
        if (frame.data.kind === "alerts") render(`${frame.data.level}: ${frame.data.message}`);
        else render(`gateway: ${frame.data.code}`);
        break;
      default:
        render(`${frame.type} ${frame.event_id ?? ""} ${frame.rooms?.join(",") ?? ""}`);
    }
  });
  // Resume after a reconnect: how it went, what could not be recovered, and snapshots.
  manager.on("resume", (detail: ResumeDetail) => {
    if (detail.resynced) showToast("warning", "Resynced", "live state reloaded");
    else showToast("info", "Resumed", `${detail.replayed} missed updates delivered`);
  });
  manager.on("resync", (detail: ResyncDetail) => {
    render(`${detail.subscription.type} lost its place at ${detail.position}`);
    if (!detail.snapshot) render("no snapshot for this type: clear its state");
  });
  manager.on("snapshot", ({ subscription, frame }: SnapshotDetail) => {
    render(`${subscription.key}: ${frame.data.events.length} keys at ${frame.position}`);
    if (frame.data.truncated) render("snapshot cut short");
  });
  // The DOM way works too, with typed details.
  manager.addEventListener("state", (event) => render(event.detail.state));

  try {
    await manager.connect(fetchToken);
  } catch (error) {
    if (error instanceof AuthError) {
      showToast("error", "Sign in again", error.hint ?? error.message);
      return;
    }
    if (error instanceof ConnectionError && error.code === "gave_up") {
      showToast("error", "Offline", error.hint ?? "");
      return;
    }
    throw error;
  }
  console.log(manager.identity?.user, manager.welcome?.data.heartbeat_interval);

  // Filters: lists mean "any of"; empty form fields (null, "") are dropped.
  const selectedSport: string | null = null;
  const odds = await manager.subscribe(
    "odds_updates",
    { sport: selectedSport, sportsbook: ["draftkings", "fanduel"], game_id: 401_585_601 },
    (frame) => {
      if (frame.type === "odds_update") render(`${frame.data.game_id} ${frame.data.market}`);
    },
  );
  const stopOdds = odds.onMessage((frame) => {
    const position: string | undefined = odds.room ? frame.positions?.[odds.room] : undefined;
    render(`${frame.type} ${frame.replay ? "replayed" : "live"} ${position ?? ""}`);
  });
  console.log(odds.key === subscriptionKey("odds_updates", odds.filters), odds.room);
  // Snapshots of odds hold odds events; fill the board from them before live updates.
  odds.onSnapshot((frame: SnapshotFrame<"odds_updates">) => {
    for (const event of frame.data.events) {
      if (event.type === "odds_update") render(`${event.data.game_id} ${event.data.market}`);
    }
  });
  odds.onResync((detail) => render(`${detail.subscription.type} resynced`));
  const saved: string | null = odds.position; // store it to resume after a page reload
  const recovered: boolean | null = odds.recovered;
  console.log(saved, recovered, odds.replayed, odds.duplicates, odds.resyncs, odds.snapshots);
  console.log(odds.lastSnapshot?.data.events.length, odds.toJSON().position);
  // Offline delivery: resume a subscription from a position kept since the last visit.
  if (saved !== null) {
    const portfolio = await manager.subscribe("portfolio", {}, null, { position: saved });
    if (portfolio.recovered === false) render("some portfolio updates are gone");
  }
  const quiet = await manager.subscribe("predictions", { sport: "NBA" }, null, { snapshot: false });
  const event: SnapshotEvent<"prediction_update"> | undefined = undefined;
  console.log(quiet.position, event, SNAPSHOT_TYPES.has("predictions"), DEDUPE_WINDOW);

  let arbitrage: Subscription<"arbitrage"> | null = null;
  try {
    arbitrage = await manager.subscribe("arbitrage", { sport: "NBA", min_profit: 1.5 });
  } catch (error) {
    if (error instanceof SubscriptionError) render(`${error.code}: ${error.hint ?? ""}`);
    else if (error instanceof AuthError) render("sign in to see arbitrage");
    else throw error;
  }
  const nba = await manager.subscribe("nba", { player: "LeBron James" });
  nba.onMessage((frame) => {
    if (frame.type === "prediction_update") render(frame.data.player ?? "team prediction");
  });

  const latency: number = await manager.ping();
  const status = await manager.status();
  console.log(latency, status.subscriptions.map((room) => room.room), manager.stats.reconnects);
  const { duplicates, resumes, resyncs } = manager.stats;
  console.log(duplicates, resumes, resyncs);
  for (const [key, sub] of manager.subscriptions) console.log(key, sub.toJSON(), sub.received);
  console.log(manager.subscriptionList().length, manager.connected, manager.lastError?.code);

  stopOdds();
  await odds.unsubscribe();
  if (arbitrage) await manager.unsubscribe(arbitrage);
  await manager.unsubscribe("nba", { player: "LeBron James" });
  const dynamicType: SubscriptionType = "system_alerts";
  const filters: Filters = { sport: "MLB" };
  await manager.subscribe(dynamicType, filters);

  stopStates();
  manager.disconnect("user signed out");
  manager.destroy();
}

export function helpers(): void {
  const advice: CloseAdvice = closeAdvice(4401);
  if (advice === CloseAdvice.REFRESH_TOKEN) render("refresh the token");
  const delays = [1, 2, 3, 4, 5].map((attempt) => backoffDelay(DEFAULT_CONFIG, attempt));
  const error = errorFor({ code: "invalid_filter", error: "Bad filter.", hint: "Fix it." });
  if (error instanceof SubscriptionError) render(error.name);
  else if (error instanceof AuthError) render(error.name);
  else render(`${error.code} ${String(error.temporary)} ${String(error.closeCode)}`);
  const mine = new OddstreamError("custom", "Mine.", { hint: null, temporary: true });
  console.log(delays, mine.code, webSocketManager.state);
  const events: (keyof ManagerEvents)[] = ["state", "notification", "message"];
  console.log(events);
  // The wire contract, re-exported from contract.js: what a form or a table needs.
  for (const type of SUBSCRIPTION_TYPES) render(`${type}: ${ALLOWED_FILTERS[type].join(", ")}`);
  const markets: readonly string[] = ODDS_MARKETS;
  const market: OddsMarket = "spread";
  console.log(markets.includes(market), closeAdvice(CloseCodes.TOKEN_EXPIRED));
}

// --- misuse the declarations reject --------------------------------------------------------

export async function misuse(manager: WebSocketManager): Promise<void> {
  // @ts-expect-error: not a subscription type
  await manager.subscribe("odds", { sport: "MLB" });
  // @ts-expect-error: no such setting
  manager.setConfig({ reconnect_delay: 1000 });
  // @ts-expect-error: setting of the wrong type
  manager.setConfig({ max_reconnect_attempts: "5" });
  // @ts-expect-error: no such event
  manager.on("messages", () => {});
  // @ts-expect-error: a notification is not a data frame
  manager.on("notification", (frame: DataFrame) => frame.data);
  // @ts-expect-error: min_profit is an arbitrage filter only
  await manager.subscribe("odds_updates", { min_profit: 2 });
  // @ts-expect-error: min_profit is a number
  await manager.subscribe("arbitrage", { min_profit: "2" });
  // @ts-expect-error: portfolio takes no filters (the gateway scopes it to the user)
  await manager.subscribe("portfolio", { sport: "NBA" });
  // @ts-expect-error: a token is a string or a provider, not a number
  await manager.connect(42);
  // @ts-expect-error: state is read-only; the manager owns it
  manager.state = ConnectionState.CONNECTED;
  // @ts-expect-error: not an odds market
  const parlay: OddsMarket = "parlay";
  console.log(parlay);
  // @ts-expect-error: a position is an opaque string
  await manager.subscribe("odds_updates", {}, null, { position: 42 });
  // @ts-expect-error: no such subscribe option
  await manager.subscribe("odds_updates", {}, null, { replay: true });
  const odds = await manager.subscribe("odds_updates");
  // @ts-expect-error: an odds snapshot holds no arbitrage events
  odds.onSnapshot((frame) => frame.data.events.map((e): number => e.data.profit_pct));
  // @ts-expect-error: ping resolves with a number
  const text: string = await manager.ping();
  console.log(text);
}
