/**
 * The seed's hooks suite: every hook rendered with Testing Library against a real gateway
 * (`oddstream dev`, see globalSetup), checking what the gateway itself reports
 * (GET /ws/v2/rooms) for sharing, releases and StrictMode.
 */

import { StrictMode, createElement, type ReactNode } from "react";
import { act, render, renderHook, waitFor } from "@testing-library/react";
import { describe, expect, it } from "vitest";
import type { DataFrame, FilterInput, TokenProvider } from "@oddstream/client";
import {
  WebSocketProvider,
  useWebSocketAnalytics,
  useWebSocketArbitrage,
  useWebSocketConnection,
  useWebSocketConnectionHook,
  useWebSocketOdds,
  useWebSocketPredictions,
  useWebSocketSubscription,
  type WebSocketStoreApi,
} from "../src/index.js";
import { countSockets, eventually, gateway, newStore, rooms, signToken, subscribers, uniqueGame } from "./helpers.js";

const wrapperFor =
  (store: WebSocketStoreApi) =>
  ({ children }: { children: ReactNode }) =>
    createElement(WebSocketProvider, { store }, children);

/** `node` under StrictMode at the root, as an app's main.tsx puts it. */
const strict = (store: WebSocketStoreApi, node: ReactNode) =>
  createElement(StrictMode, null, createElement(WebSocketProvider, { store }, node));

function Holder() {
  useWebSocketConnection(null, true);
  return null;
}

/** A component that connects and holds one odds subscription, counting its renders. */
function OddsProbe(props: { filters: FilterInput<"odds_updates">; token?: string | null; onRender?: () => void }) {
  useWebSocketConnection(props.token ?? null, true);
  const { odds, isSubscribed } = useWebSocketOdds(props.filters);
  props.onRender?.();
  return createElement("p", { "data-testid": "probe" }, `${isSubscribed ? "on" : "off"}:${odds.length}`);
}

async function roomOf(store: WebSocketStoreApi, what = "room"): Promise<string> {
  return eventually(() => [...store.getState().subscriptions.values()][0]?.room ?? null, { what });
}

describe("useWebSocketConnection", () => {
  it("connects while mounted and returns connected, state, error and reconnect()", async () => {
    const store = newStore();
    const { result, unmount } = renderHook(() => useWebSocketConnection(gateway().token, true), {
      wrapper: wrapperFor(store),
    });
    expect(result.current.connected).toBe(false);
    await waitFor(() => expect(result.current.connected).toBe(true), { timeout: 10_000 });
    expect(result.current.state).toBe("connected");
    expect(result.current.error).toBeNull();
    expect(result.current.identity?.user).toBe("demo");
    const first = result.current.identity?.client_id;
    await act(() => result.current.reconnect());
    await waitFor(() => expect(result.current.identity?.client_id).not.toBe(first));
    expect(result.current.connected).toBe(true);
    unmount();
    await eventually(() => store.getState().connectionState === "closed", { what: "disconnect on unmount" });
  });

  it("is also exported as the seed's useWebSocketConnectionHook", () => {
    expect(useWebSocketConnectionHook).toBe(useWebSocketConnection);
  });

  it("autoConnect=false only reads the state", async () => {
    const store = newStore();
    const { result } = renderHook(() => useWebSocketConnection(gateway().token, false), {
      wrapper: wrapperFor(store),
    });
    await new Promise((r) => setTimeout(r, 300));
    expect(result.current.state).toBe("closed");
    expect(store.getState().manager.stats.url).toBeNull(); // never tried
  });

  it("a token change reconnects as the new user, once", async () => {
    const store = newStore();
    const sockets = countSockets();
    try {
      const { result, rerender } = renderHook(({ token }) => useWebSocketConnection(token, true), {
        wrapper: wrapperFor(store),
        initialProps: { token: signToken("alice") },
      });
      await waitFor(() => expect(result.current.identity?.user).toBe("alice"), { timeout: 10_000 });
      rerender({ token: signToken("alice", { jti: "same-user-new-token" }) });
      await waitFor(() => expect(result.current.connected).toBe(true));
      rerender({ token: signToken("bob") });
      await waitFor(() => expect(result.current.identity?.user).toBe("bob"), { timeout: 10_000 });
      expect(result.current.connected).toBe(true);
      expect(sockets.opened).toBe(3);
      // Re-rendering with the same token changes nothing.
      const token = signToken("bob");
      rerender({ token });
      await waitFor(() => expect(result.current.connected).toBe(true));
      rerender({ token });
      await new Promise((r) => setTimeout(r, 200));
      expect(sockets.opened).toBe(4);
    } finally {
      sockets.restore();
    }
  });

  it("an inline token provider is called, and re-rendering with a new function does not reconnect", async () => {
    const store = newStore();
    const sockets = countSockets();
    let calls = 0;
    try {
      const { result, rerender } = renderHook(
        ({ provider }: { provider: TokenProvider }) => useWebSocketConnection(provider, true),
        {
          wrapper: wrapperFor(store),
          initialProps: { provider: () => (calls += 1, signToken("carol")) },
        },
      );
      await waitFor(() => expect(result.current.identity?.user).toBe("carol"), { timeout: 10_000 });
      rerender({ provider: () => (calls += 1, signToken("carol")) });
      await new Promise((r) => setTimeout(r, 200));
      expect(sockets.opened).toBe(1);
      expect(calls).toBe(1);
    } finally {
      sockets.restore();
    }
  });
});

describe("subscription hooks", () => {
  it("useWebSocketOdds returns live odds: { odds, isSubscribed, error }", async () => {
    const store = newStore();
    const { result } = renderHook(
      () => {
        useWebSocketConnection(null, true);
        return useWebSocketOdds({ sport: "MLB" });
      },
      { wrapper: wrapperFor(store) },
    );
    await waitFor(() => expect(result.current.odds.length).toBeGreaterThan(3), { timeout: 15_000 });
    expect(result.current.isSubscribed).toBe(true);
    expect(result.current.error).toBeNull();
    for (const o of result.current.odds) {
      expect(o).toMatchObject({ kind: "odds", sport: "MLB" });
    }
    // one entry per game x book x market: conflated, never a list of every update
    const keys = result.current.odds.map((o) => `${o.game_id}|${o.sportsbook}|${o.market}`);
    expect(new Set(keys).size).toBe(keys.length);
    expect(result.current.snapshots).toBe(1); // the room's state came first
    expect(result.current.resumes).toBe(0);
  });

  it("exposes resumes: after a reconnect the hook's subscription resumed with nothing lost", async () => {
    const store = newStore();
    const { result } = renderHook(
      () => ({ connection: useWebSocketConnection(null, true), odds: useWebSocketOdds({ sport: "NFL" }) }),
      { wrapper: wrapperFor(store) },
    );
    await waitFor(() => expect(result.current.odds.received).toBeGreaterThan(0), { timeout: 15_000 });
    await act(() => result.current.connection.reconnect());
    await waitFor(() => expect(result.current.odds.resumes).toBe(1), { timeout: 10_000 });
    expect(result.current.odds.resyncs).toBe(0);
    expect(result.current.odds.isSubscribed).toBe(true);
  });

  it("useWebSocketArbitrage and useWebSocketPredictions: { arbitrage | predictions, isSubscribed, error }", async () => {
    const store = newStore();
    const { result } = renderHook(
      () => {
        useWebSocketConnection(null, true);
        return { arb: useWebSocketArbitrage({}), pred: useWebSocketPredictions({}) };
      },
      { wrapper: wrapperFor(store) },
    );
    await waitFor(
      () => {
        expect(result.current.pred.predictions.length).toBeGreaterThan(0);
        expect(result.current.arb.isSubscribed).toBe(true);
      },
      { timeout: 15_000 },
    );
    expect(result.current.pred.predictions[0]).toMatchObject({ kind: "predictions" });
    expect(result.current.arb.error).toBeNull();
    // 2% of 200 events/s are arbitrage: a few seconds bring some
    await waitFor(() => expect(result.current.arb.arbitrage.length).toBeGreaterThan(0), { timeout: 15_000 });
    const stamps = result.current.arb.arbitrage.map((a) => String(a["timestamp"]));
    expect([...stamps].sort().reverse()).toEqual(stamps); // newest first
  });

  it("useWebSocketSubscription calls onMessage for every frame and returns the recent ones", async () => {
    const store = newStore();
    const seen: DataFrame[] = [];
    const { result } = renderHook(
      () => {
        useWebSocketConnection(null, true);
        return useWebSocketSubscription("nhl", {}, (frame) => seen.push(frame));
      },
      { wrapper: wrapperFor(store) },
    );
    await waitFor(() => expect(result.current.received).toBeGreaterThan(10), { timeout: 15_000 });
    expect(result.current.isSubscribed).toBe(true);
    expect(result.current.room).toMatch(/^nhl\./);
    expect(seen.length).toBeGreaterThanOrEqual(result.current.received);
    expect(result.current.lastMessage?.data).toMatchObject({ sport: "NHL" });
    expect(result.current.messages.length).toBeGreaterThan(0);
    expect(result.current.messages.length).toBeLessThanOrEqual(50);
    expect(result.current.latest.size).toBeGreaterThan(0);
  });

  it("a refused subscription returns the error with the gateway's hint", async () => {
    const store = newStore();
    const { result } = renderHook(
      () => {
        useWebSocketConnection(null, true);
        return useWebSocketArbitrage({ min_profit: -5 });
      },
      { wrapper: wrapperFor(store) },
    );
    await waitFor(() => expect(result.current.error).not.toBeNull(), { timeout: 10_000 });
    expect(result.current.error?.code).toBe("invalid_filter");
    expect(result.current.error?.hint).toMatch(/filter/);
    expect(result.current.isSubscribed).toBe(false);
    expect(result.current.status).toBe("error");
  });

  it("components asking for the same subscription share one on the gateway; the last unmount releases it", async () => {
    const store = newStore();
    const game = uniqueGame();
    const a = render(createElement(OddsProbe, { filters: { sport: "nba", game_id: game } }), {
      wrapper: wrapperFor(store),
    });
    const b = render(createElement(OddsProbe, { filters: { game_id: [game], sport: "NBA" } }), {
      wrapper: wrapperFor(store),
    });
    const id = await roomOf(store);
    await eventually(async () => (await subscribers(id)) === 1, { what: "one subscriber" });
    expect(store.getState().subscriptions.size).toBe(1);
    expect([...store.getState().subscriptions.values()][0]?.refCount).toBe(2);

    a.unmount();
    await new Promise((r) => setTimeout(r, 300));
    expect((await subscribers(id))).toBe(1);
    expect([...store.getState().subscriptions.values()][0]?.refCount).toBe(1);

    b.unmount();
    await eventually(async () => (await subscribers(id)) === 0, { what: "room released" });
    expect(store.getState().subscriptions.size).toBe(0);
  });

  it("changing the filters releases the old room and takes the new one", async () => {
    const store = newStore();
    const [g1, g2] = [uniqueGame(), uniqueGame()];
    const view = render(createElement(OddsProbe, { filters: { game_id: g1 } }), { wrapper: wrapperFor(store) });
    const first = await roomOf(store);
    view.rerender(createElement(OddsProbe, { filters: { game_id: g2 } }));
    await eventually(async () => (await subscribers(first)) === 0, { what: "old room released" });
    const second = await eventually(() => {
      const entry = [...store.getState().subscriptions.values()][0];
      return entry?.filters && (entry.filters as { game_id?: string }).game_id === g2 ? entry.room : null;
    });
    expect((await subscribers(second))).toBe(1);
    // The same filters in a new object literal on every render: no resubscription.
    view.rerender(createElement(OddsProbe, { filters: { game_id: g2 } }));
    await new Promise((r) => setTimeout(r, 200));
    expect([...store.getState().subscriptions.values()][0]?.room).toBe(second);
  });

  it("StrictMode's double mount neither leaks nor doubles: one socket, one subscribe, released on unmount", async () => {
    const store = newStore();
    const sockets = countSockets();
    const frames: string[] = [];
    store.getState().manager.on("frame", (f) => frames.push(f.type));
    const game = uniqueGame();
    try {
      // Once while connecting (subscriptions not sent yet), once on an open connection, where
      // a release that is not deferred would reach the gateway.
      // StrictMode at the root: (as a Testing Library `wrapper` it would not double-invoke).
      const holder = render(strict(store, createElement(Holder)));
      await eventually(() => store.getState().connected, { what: "connected" });
      const refCounts: number[] = [];
      const unwatch = store.subscribe((s) => {
        const count = s.subscriptions.get([...s.subscriptions.keys()][0] ?? "")?.refCount;
        if (count !== undefined && count !== refCounts.at(-1)) refCounts.push(count);
      });
      const view = render(strict(store, createElement(OddsProbe, { filters: { game_id: game } })));
      const id = await roomOf(store);
      unwatch();
      expect(refCounts).toEqual([1, 0, 1]); // StrictMode did mount, unmount and mount again
      await new Promise((r) => setTimeout(r, 300));
      expect(sockets.opened).toBe(1);
      expect(frames.filter((t) => t === "subscription_confirmed")).toHaveLength(1);
      expect(frames.filter((t) => t === "unsubscribed")).toHaveLength(0);
      expect((await subscribers(id))).toBe(1);
      expect([...store.getState().subscriptions.values()][0]?.refCount).toBe(1);
      view.unmount();
      await eventually(async () => (await subscribers(id)) === 0, { what: "released" });
      expect(store.getState().connected).toBe(true); // the holder still holds the connection
      holder.unmount();
      await eventually(() => store.getState().connectionState === "closed", { what: "disconnected" });
      await eventually(() => store.getState().subscriptions.size === 0, { what: "entry released", timeout: 2000 });
    } finally {
      sockets.restore();
    }
  });

  it("nothing of a test's is left on the gateway", async () => {
    // Every earlier test's rooms used unique game ids and were released on unmount.
    const left = (await rooms()).filter(
      (r) => r.subscribers > 0 && String(JSON.stringify(r.filters)).includes("t-"),
    );
    expect(left).toEqual([]);
  });
});

describe("batched updates", () => {
  async function rendersPerMessage(batch: boolean) {
    const store = batch ? newStore() : newStore({ batch_updates: false }); // batching: the default
    let renders = 0;
    render(createElement(OddsProbe, { filters: {}, onRender: () => (renders += 1) }), {
      wrapper: wrapperFor(store),
    });
    const feed = await eventually(() => [...store.getState().subscriptions.values()][0]?.feed ?? null);
    await eventually(() => feed.received > 20, { what: "odds flowing", timeout: 15_000 });
    const start = { renders, received: feed.received };
    await new Promise((r) => setTimeout(r, 2000));
    return { renders: renders - start.renders, received: feed.received - start.received };
  }

  it("re-renders at most once per animation frame with conflated data, far less than without batching", async () => {
    const batched = await rendersPerMessage(true);
    const unbatched = await rendersPerMessage(false);
    console.info(`renders/messages over 2 s: batched ${batched.renders}/${batched.received}, unbatched ${unbatched.renders}/${unbatched.received}`);
    expect(batched.received).toBeGreaterThan(150);
    expect(batched.renders).toBeLessThanOrEqual(2000 / 16 + 10);
    expect(batched.renders).toBeLessThan(batched.received * 0.75);
    // Without batching every frame is published at once; React still merges updates made in
    // one task, and `ws` delivers every frame of one TCP read in one task, so how many renders
    // that makes depends on how the gateway's writes happen to group frames (one write per
    // inbox read: a worker commits all its partitions of a read together). Batching never
    // renders more; a browser gives each message its own task, where batching saves far
    // more: see bench/renders.mjs for the per-message figure.
    expect(unbatched.renders).toBeGreaterThanOrEqual(batched.renders);
  });
});

describe("useWebSocketAnalytics", () => {
  it("returns { stats, connectionInfo, subscriptionInfo }", async () => {
    const store = newStore();
    const { result } = renderHook(
      () => {
        useWebSocketConnection(gateway().token, true);
        useWebSocketOdds({ sport: "NFL" });
        useWebSocketOdds({ sport: "nfl" });
        return useWebSocketAnalytics();
      },
      { wrapper: wrapperFor(store) },
    );
    await waitFor(() => expect(result.current.subscriptionInfo[0]?.status).toBe("active"), { timeout: 10_000 });
    const { stats, connectionInfo, subscriptionInfo } = result.current;
    expect(stats.state).toBe("connected");
    expect(connectionInfo).toMatchObject({ state: "connected", user: "demo", last_error: null });
    expect(connectionInfo.gateway).toMatch(/^gw-/);
    expect(connectionInfo.url).toBe(`${gateway().ws}/ws/v2/connect`);
    expect(subscriptionInfo).toHaveLength(1);
    expect(subscriptionInfo[0]).toMatchObject({ type: "odds_updates", refCount: 2, filters: { sport: "NFL" } });
    await waitFor(() => expect(result.current.stats.data_messages).toBeGreaterThan(0), { timeout: 10_000 });
  });
});
