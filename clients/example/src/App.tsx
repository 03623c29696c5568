import { useCallback, useState } from "react";
import type { OddsPayload } from "@oddstream/client";
import {
  ArbitrageFeed,
  DebugPanel,
  OddsBoard,
  PredictionsFeed,
  WebSocketConnectionStatus,
  WebSocketNotificationCenter,
  WebSocketSubscriptionManager,
  formatPrice,
  useWebSocketConnection,
} from "@oddstream/react";
import { BetSlip, type Selection } from "./BetSlip.js";

const SPORTS = ["MLB", "NBA", "NFL", "NHL"] as const;

function selectionOf(odds: OddsPayload, side: 0 | 1): Selection {
  const total = odds.market === "total";
  const home = String(odds["home_team"] ?? "Home");
  const away = String(odds["away_team"] ?? "Away");
  const line = typeof odds["line"] === "number" ? (odds["line"] as number) : null;
  const priceKey = total ? (side === 0 ? "over_price" : "under_price") : side === 0 ? "home_price" : "away_price";
  let pick = side === 0 ? home : away;
  if (total) pick = `${side === 0 ? "Over" : "Under"} ${line ?? ""}`;
  else if (odds.market === "spread" && line !== null) {
    const signed = side === 0 ? line : -line;
    pick = `${pick} ${signed > 0 ? "+" : ""}${signed}`;
  }
  return {
    id: `${odds.game_id}|${odds.sportsbook}|${odds.market}|${side}`,
    game: `${away} @ ${home}`,
    pick,
    market: odds.market,
    sportsbook: odds.sportsbook,
    price: Number(odds[priceKey]),
  };
}

export function App({ token, initialSport }: { token: string | null; initialSport: string }) {
  const { connected } = useWebSocketConnection(token, true);
  const [sport, setSport] = useState(initialSport);
  const [showArbitrage, setShowArbitrage] = useState(true);
  const [slip, setSlip] = useState<Selection[]>([]);
  const add = useCallback((odds: OddsPayload, side: 0 | 1) => {
    const pick = selectionOf(odds, side);
    setSlip((list) => (list.some((s) => s.id === pick.id) ? list : [...list, pick]));
  }, []);
  return (
    <div className="app os-dashboard">
      <header className="app__header">
        <div className="app__brand">
          <span className="app__logo">◆</span> Oddstream Sportsbook
          <small>{connected ? "live" : "offline"}</small>
        </div>
        <WebSocketConnectionStatus showDetails />
      </header>
      <nav className="app__sports" aria-label="Sports">
        {SPORTS.map((s) => (
          <button
            key={s}
            type="button"
            className={s === sport ? "app__sport app__sport--on" : "app__sport"}
            aria-pressed={s === sport}
            onClick={() => setSport(s)}
          >
            {s}
          </button>
        ))}
      </nav>
      <main className="app__main">
        <OddsBoard filters={{ sport }} onSelect={add} maxGames={8} />
        <aside className="app__side">
          <BetSlip selections={slip} onRemove={(id) => setSlip((l) => l.filter((s) => s.id !== id))} formatPrice={formatPrice} />
          <label className="app__toggle">
            <input
              type="checkbox"
              data-testid="toggle-arbitrage"
              checked={showArbitrage}
              onChange={(e) => setShowArbitrage(e.target.checked)}
            />{" "}
            Arbitrage alerts
          </label>
          {showArbitrage ? <ArbitrageFeed filters={{ sport }} max={4} /> : null}
          <PredictionsFeed filters={{ sport }} max={5} />
        </aside>
      </main>
      <details className="app__tools">
        <summary>Subscriptions and debug</summary>
        <WebSocketSubscriptionManager storageKey="oddstream-example-subscriptions" />
        <DebugPanel />
      </details>
      <WebSocketNotificationCenter />
    </div>
  );
}
