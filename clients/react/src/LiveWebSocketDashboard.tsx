/**
 * The seed's complete integration example, and the pieces it is made of: a live odds board
 * (one card per game, sportsbooks by market, prices updated in place), arbitrage alerts,
 * predictions, a debug panel, with connection status, toasts and the subscription manager.
 */

import { memo, useMemo } from "react";
import type {
  ArbitragePayload,
  FilterInput,
  OddsPayload,
  PredictionPayload,
  TokenProvider,
} from "@oddstream/client";
import {
  useWebSocketAnalytics,
  useWebSocketArbitrage,
  useWebSocketConnection,
  useWebSocketOdds,
  useWebSocketPredictions,
} from "./useWebSocketHooks.js";
import {
  WebSocketConnectionStatus,
  WebSocketNotificationCenter,
  WebSocketSubscriptionManager,
} from "./WebSocketNotifications.js";

/** American odds as bettors write them: +120, -110. */
export function formatPrice(price: unknown): string {
  if (typeof price !== "number" || !Number.isFinite(price)) return "–";
  return price > 0 ? `+${price}` : String(price);
}

function formatLine(line: unknown, signed: boolean): string {
  if (typeof line !== "number") return "";
  return signed && line > 0 ? `+${line}` : String(line);
}

/** What a price cell shows, from one odds payload: [label, price, movement] per side. */
function sides(odds: OddsPayload): [string, unknown, unknown][] {
  const movement = (odds["movement"] ?? {}) as Record<string, unknown>;
  if (odds.market === "total") {
    const line = formatLine(odds["line"], false);
    return [
      [`O ${line}`, odds["over_price"], movement["over_price"]],
      [`U ${line}`, odds["under_price"], movement["under_price"]],
    ];
  }
  if (odds.market === "spread") {
    const line = typeof odds["line"] === "number" ? (odds["line"] as number) : null;
    return [
      [formatLine(line, true), odds["home_price"], movement["home_price"]],
      [line === null ? "" : formatLine(-line, true), odds["away_price"], movement["away_price"]],
    ];
  }
  return [
    ["", odds["home_price"], movement["home_price"]],
    ["", odds["away_price"], movement["away_price"]],
  ];
}

export interface OddsCellProps {
  odds: OddsPayload;
  /** Called with the payload and the side index (0: home/over, 1: away/under). */
  onSelect?: ((odds: OddsPayload, side: 0 | 1) => void) | undefined;
}

/** One market of one sportsbook for one game; re-renders only when its payload changes. */
export const OddsCell = memo(function OddsCell({ odds, onSelect }: OddsCellProps) {
  return (
    <td
      className="os-odds__cell"
      data-testid="odds-cell"
      data-key={`${odds.game_id}|${odds.sportsbook}|${odds.market}`}
    >
      {sides(odds).map(([label, price, move], i) => (
        <button
          type="button"
          key={i}
          className={`os-price os-price--${typeof move === "string" ? move : "flat"}`}
          disabled={!onSelect}
          onClick={onSelect ? () => onSelect(odds, i as 0 | 1) : undefined}
        >
          {label ? <span className="os-price__line">{label}</span> : null}
          <span className="os-price__value" data-testid="price">
            {formatPrice(price)}
          </span>
        </button>
      ))}
    </td>
  );
});

const MARKETS = ["moneyline", "spread", "total"] as const;

interface Game {
  game_id: string;
  sport: string;
  home: string;
  away: string;
  books: Map<string, Partial<Record<string, OddsPayload>>>;
}

/** Odds grouped by game, then sportsbook (first-seen order, stable across updates). */
export function groupOdds(odds: readonly OddsPayload[]): Game[] {
  const games = new Map<string, Game>();
  for (const o of odds) {
    let game = games.get(o.game_id);
    if (!game) {
      game = {
        game_id: o.game_id,
        sport: o.sport,
        home: String(o["home_team"] ?? "Home"),
        away: String(o["away_team"] ?? "Away"),
        books: new Map(),
      };
      games.set(o.game_id, game);
    }
    const book = game.books.get(o.sportsbook) ?? {};
    book[o.market] = o;
    game.books.set(o.sportsbook, book);
  }
  return [...games.values()];
}

export interface OddsBoardProps {
  /** Filters of the `odds_updates` subscription (e.g. { sport: "MLB" }). */
  filters?: FilterInput<"odds_updates">;
  /** Make prices clickable (a bet slip). */
  onSelect?: (odds: OddsPayload, side: 0 | 1) => void;
  /** Show at most this many games. */
  maxGames?: number;
}

/** Live odds: one card per game, a row per sportsbook, a cell per market. */
export function OddsBoard({ filters, onSelect, maxGames = 50 }: OddsBoardProps) {
  const { odds, isSubscribed, error, received } = useWebSocketOdds(filters);
  const games = useMemo(() => groupOdds(odds).slice(0, maxGames), [odds, maxGames]);
  return (
    <section className="os-odds" data-testid="odds-board" data-received={received}>
      <h2>
        Live odds{" "}
        <small>
          {isSubscribed ? `${odds.length} prices · ${received} updates` : error ? "refused" : "waiting…"}
        </small>
      </h2>
      {error ? (
        <p className="os-error" role="alert">
          {error.message} {error.hint}
        </p>
      ) : null}
      {games.map((game) => (
        <article className="os-game" key={game.game_id} data-testid="game">
          <header>
            <span className="os-game__sport">{game.sport}</span>{" "}
            <strong>
              {game.away} @ {game.home}
            </strong>
          </header>
          <table className="os-odds__table">
            <thead>
              <tr>
                <th>Book</th>
                {MARKETS.map((m) => (
                  <th key={m}>{m}</th>
                ))}
              </tr>
            </thead>
            <tbody>
              {[...game.books].map(([book, markets]) => (
                <tr key={book}>
                  <th scope="row">{book}</th>
                  {MARKETS.map((m) => {
                    const o = markets[m];
                    return o ? (
                      <OddsCell key={m} odds={o} onSelect={onSelect} />
                    ) : (
                      <td key={m} className="os-odds__cell os-odds__cell--empty">
                        –
                      </td>
                    );
                  })}
                </tr>
              ))}
            </tbody>
          </table>
        </article>
      ))}
    </section>
  );
}

export interface ArbitrageFeedProps {
  filters?: FilterInput<"arbitrage">;
  max?: number;
}

/** Arbitrage opportunities, newest first, with legs and stakes. */
export function ArbitrageFeed({ filters, max = 8 }: ArbitrageFeedProps) {
  const { arbitrage, isSubscribed, error } = useWebSocketArbitrage(filters);
  return (
    <section className="os-arb" data-testid="arbitrage" data-subscribed={isSubscribed}>
      <h2>Arbitrage</h2>
      {error ? <p className="os-error">{error.message} {error.hint}</p> : null}
      {arbitrage.length === 0 ? <p className="os-muted">No opportunities yet.</p> : null}
      <ul>
        {arbitrage.slice(0, max).map((a: ArbitragePayload) => (
          <li key={`${a.game_id}|${String(a["market"])}`}>
            <strong>{a.profit_pct.toFixed(2)}%</strong> {String(a["away_team"] ?? "")} @{" "}
            {String(a["home_team"] ?? "")} · {String(a["market"] ?? "")}
            <ul className="os-arb__legs">
              {((a["legs"] ?? []) as Record<string, unknown>[]).map((leg, i) => (
                <li key={i}>
                  {String(leg["selection"])} {formatPrice(leg["price"])} at {String(leg["sportsbook"])} ·
                  stake {String(leg["stake_pct"])}%
                </li>
              ))}
            </ul>
          </li>
        ))}
      </ul>
    </section>
  );
}

export interface PredictionsFeedProps {
  filters?: FilterInput<"predictions">;
  max?: number;
}

/** Model predictions: projection against the line, edge and confidence. */
export function PredictionsFeed({ filters, max = 8 }: PredictionsFeedProps) {
  const { predictions, error } = useWebSocketPredictions(filters);
  const newest = useMemo(() => [...predictions].reverse().slice(0, max), [predictions, max]);
  return (
    <section className="os-pred" data-testid="predictions">
      <h2>Predictions</h2>
      {error ? <p className="os-error">{error.message} {error.hint}</p> : null}
      {newest.length === 0 ? <p className="os-muted">No predictions yet.</p> : null}
      <ul>
        {newest.map((p: PredictionPayload) => (
          <li key={`${p.game_id}|${p.player ?? ""}|${String(p["market"] ?? "")}`}>
            <strong>{p.player ?? p.game_id}</strong> {String(p["market"] ?? "")}{" "}
            {String(p["recommendation"] ?? "")} {String(p["line"] ?? "")} · projection{" "}
            {String(p["projection"] ?? "")} · edge {String(p["edge"] ?? "")} · confidence{" "}
            {typeof p["confidence"] === "number"
              ? `${Math.round((p["confidence"] as number) * 100)}%`
              : "–"}
          </li>
        ))}
      </ul>
    </section>
  );
}

/** Stats, connection info and subscriptions (the seed's debug panel). */
export function DebugPanel() {
  const { stats, connectionInfo, subscriptionInfo } = useWebSocketAnalytics();
  return (
    <details className="os-debug" data-testid="debug-panel">
      <summary>Debug</summary>
      <h3>Connection stats</h3>
      <pre>{JSON.stringify(stats, null, 2)}</pre>
      <h3>Connection info</h3>
      <pre>{JSON.stringify(connectionInfo, null, 2)}</pre>
      <h3>Subscriptions</h3>
      <pre>{JSON.stringify(subscriptionInfo, null, 2)}</pre>
    </details>
  );
}

export interface LiveWebSocketDashboardProps {
  /** A JWT, null for anonymous, or a provider function. */
  token?: string | null | TokenProvider;
  /** The sport the odds board and feeds show. */
  sport?: string;
  /** Show the subscription manager and the debug panel. */
  showDebug?: boolean;
}

/** Everything together: the seed's complete integration example. */
export function LiveWebSocketDashboard({
  token = null,
  sport = "MLB",
  showDebug = true,
}: LiveWebSocketDashboardProps) {
  useWebSocketConnection(token, true);
  return (
    <div className="os-dashboard" data-testid="live-dashboard">
      <header className="os-dashboard__header">
        <h1>Oddstream live</h1>
        <WebSocketConnectionStatus showDetails />
      </header>
      <WebSocketNotificationCenter />
      <main className="os-dashboard__main">
        <OddsBoard filters={{ sport }} />
        <aside className="os-dashboard__side">
          <ArbitrageFeed filters={{ sport }} />
          <PredictionsFeed filters={{ sport }} />
        </aside>
      </main>
      {showDebug ? (
        <footer className="os-dashboard__footer">
          <WebSocketSubscriptionManager />
          <DebugPanel />
        </footer>
      ) : null}
    </div>
  );
}
