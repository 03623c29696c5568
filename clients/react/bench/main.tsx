/**
 * The benchmark page: 200 live odds cells (40 games x 5 books) from one useWebSocketOdds
 * subscription, built with the package's own source in React's production build. It counts
 * commits of the board, renders of cells and animation frames, and exposes them as
 * `window.bench`; bench/renders.mjs drives it. `?batch=0` turns batching off.
 */

import { memo, useLayoutEffect } from "react";
import { createRoot } from "react-dom/client";
import type { OddsPayload } from "@oddstream/client";
import {
  WebSocketProvider,
  createWebSocketStore,
  useWebSocketConnection,
  useWebSocketOdds,
} from "../src/index.js";

const params = new URLSearchParams(window.location.search);
const counters = { commits: 0, cellRenders: 0, frames: 0 };
const GAMES = Array.from({ length: 40 }, (_, i) => `bench-${i}`);

(function countFrames() {
  counters.frames += 1;
  requestAnimationFrame(countFrames);
})();

const store = createWebSocketStore({
  config: {
    base_url: params.get("gateway"),
    batch_updates: params.get("batch") !== "0",
  },
});

const Cell = memo(function Cell({ odds }: { odds: OddsPayload }) {
  counters.cellRenders += 1;
  return (
    <td>
      {odds.sportsbook} {String(odds["home_price"])} / {String(odds["away_price"])}
    </td>
  );
});

function Board() {
  useWebSocketConnection(null, true);
  const { odds, received, isSubscribed } = useWebSocketOdds({ game_id: GAMES });
  useLayoutEffect(() => {
    counters.commits += 1;
  });
  const rows: OddsPayload[][] = [];
  for (let i = 0; i < odds.length; i += 5) rows.push(odds.slice(i, i + 5));
  return (
    <div>
      <p id="meta" data-received={received} data-subscribed={isSubscribed} data-cells={odds.length}>
        {odds.length} cells, {received} updates
      </p>
      <table>
        <tbody>
          {rows.map((row) => (
            <tr key={row[0]?.game_id}>
              {row.map((o) => (
                <Cell key={`${o.game_id}|${o.sportsbook}`} odds={o} />
              ))}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

Object.assign(window, {
  bench: {
    counters,
    received: () => store.getState().subscriptions.values().next().value?.feed.received ?? 0,
  },
});

createRoot(document.getElementById("root") as HTMLElement).render(
  <WebSocketProvider store={store}>
    <Board />
  </WebSocketProvider>,
);
