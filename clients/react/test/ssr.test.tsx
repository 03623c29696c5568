// @vitest-environment node
/**
 * Server-side rendering: rendering every hook and component to a string neither crashes nor
 * opens a socket (effects never run on the server), and gives the empty, disconnected state.
 */

import { renderToString } from "react-dom/server";
import { describe, expect, it } from "vitest";
import {
  LiveWebSocketDashboard,
  WebSocketProvider,
  defaultWebSocketStore,
  useWebSocketAnalytics,
  useWebSocketArbitrage,
  useWebSocketConnection,
  useWebSocketOdds,
  useWebSocketPredictions,
  useWebSocketStore,
  useWebSocketSubscription,
} from "../src/index.js";
import { countSockets, newStore } from "./helpers.js";

function Everything() {
  const connection = useWebSocketConnection("a-token", true);
  const { odds, isSubscribed } = useWebSocketOdds({ sport: "MLB" });
  const { arbitrage } = useWebSocketArbitrage({});
  const { predictions } = useWebSocketPredictions({});
  const { messages } = useWebSocketSubscription("system_alerts", {});
  const { subscriptionInfo } = useWebSocketAnalytics();
  const subscriptions = useWebSocketStore((s) => s.subscriptions);
  return (
    <p id="ssr">
      {[connection.state, isSubscribed, odds.length, arbitrage.length, predictions.length,
        messages.length, subscriptionInfo.length, subscriptions.size].join("|")}
    </p>
  );
}

describe("server-side rendering", () => {
  it("renders hooks and the whole dashboard with no socket, on the default store and a provided one", () => {
    expect(typeof window).toBe("undefined");
    const sockets = countSockets();
    try {
      const html = renderToString(<Everything />);
      expect(html.replaceAll("<!-- -->", "")).toContain("closed|false|0|0|0|0|0|0");
      const store = newStore();
      const page = renderToString(
        <WebSocketProvider store={store}>
          <LiveWebSocketDashboard token="a-token" />
        </WebSocketProvider>,
      );
      expect(page).toContain("Not connected");
      expect(page).toContain("Live odds");
      expect(sockets.opened).toBe(0);
      expect(store.getState().subscriptions.size).toBe(0);
      expect(store.getState().manager.stats.url).toBeNull(); // never tried to connect
      expect(defaultWebSocketStore.getState().subscriptions.size).toBe(0);
      expect(defaultWebSocketStore.getState().connectionState).toBe("closed");
    } finally {
      sockets.restore();
    }
  });
});
