/**
 * The seed's WebSocketManager suite: the Zustand store (useWebSocketStore's state and actions)
 * driving the real browser client against a real gateway (`oddstream dev`, see globalSetup).
 */

import { describe, expect, it } from "vitest";
import { SubscriptionError, WebSocketManager, type DataFrame } from "@oddstream/client";
import {
  DEFAULT_REACT_CONFIG,
  SubscriptionFeed,
  conflationKey,
  createWebSocketStore,
  defaultWebSocketStore,
  useWebSocketStore,
} from "../src/index.js";
import { eventually, gateway, newStore, signToken, subscribers, uniqueGame } from "./helpers.js";

function oddsFrame(game: string, book: string, price: number, id: number): DataFrame {
  return {
    type: "odds_update",
    status: "success",
    timestamp: new Date().toISOString(),
    event_id: `${id}-0`,
    rooms: ["r"],
    data: { kind: "odds", sport: "MLB", game_id: game, sportsbook: book, market: "moneyline", home_price: price },
  } as DataFrame;
}

describe("the store", () => {
  it("is the seed's store: useWebSocketStore wraps the default store on the shared client", () => {
    const state = useWebSocketStore.getState();
    expect(state).toBe(defaultWebSocketStore.getState());
    expect(state.manager).toBeInstanceOf(WebSocketManager);
    expect(state.subscriptions).toBeInstanceOf(Map);
    expect(state.connectionState).toBe("closed");
    for (const action of ["subscribe", "unsubscribe", "setConfig", "connect", "disconnect"] as const) {
      expect(typeof state[action]).toBe("function");
    }
  });

  it("takes the seed's settings and its own; a misspelt one throws", () => {
    const store = newStore();
    expect(store.getState().config).toMatchObject({ batch_updates: true, release_delay: 0, auto_reconnect: true });
    store.getState().setConfig({
      auto_reconnect: false,
      max_reconnect_attempts: 3,
      reconnect_interval: 500,
      heartbeat_interval: 1000,
      base_url: `${gateway().ws}/`,
      batch_updates: false,
      release_delay: 25,
    });
    const { config, manager } = store.getState();
    expect(config).toMatchObject({
      auto_reconnect: false,
      max_reconnect_attempts: 3,
      reconnect_interval: 500,
      heartbeat_interval: 1000,
      base_url: gateway().ws,
      batch_updates: false,
      release_delay: 25,
      history_size: DEFAULT_REACT_CONFIG.history_size,
    });
    expect(manager.config.reconnect_interval).toBe(500);
    expect(() => store.getState().setConfig({ reconect_interval: 1 } as never)).toThrow(/unknown setting/);
  });

  it("connects: state, identity, stats and a notification", async () => {
    const store = newStore();
    const states: string[] = [];
    store.subscribe((s, prev) => {
      if (s.connectionState !== prev.connectionState) states.push(s.connectionState);
    });
    await store.getState().connect(gateway().token);
    const state = store.getState();
    expect(states).toEqual(["connecting", "connected"]);
    expect(state.connected).toBe(true);
    expect(state.error).toBeNull();
    expect(state.identity).toMatchObject({ user: "demo" });
    expect(state.identity?.gateway).toMatch(/^gw-/);
    expect(state.notifications.map((n) => n.title)).toContain("Connected");
    await eventually(() => store.getState().stats.messages_received > 0, { what: "stats" });
  });

  it("shares one gateway subscription between any spellings of it, reference counted", async () => {
    const store = newStore();
    await store.getState().connect();
    const game = uniqueGame();
    const a = await store.getState().subscribe("odds_updates", { sport: "mlb", game_id: game });
    const b = await store.getState().subscribe("odds_updates", { game_id: ` ${game}`, sport: "MLB" });
    expect(b).toBe(a);
    expect(store.getState().subscriptions.size).toBe(1);
    const [entry] = store.getState().subscriptions.values();
    expect(entry).toMatchObject({ refCount: 2, status: "active", room: a.room });
    expect((await subscribers(a.room))).toBe(1);

    await store.getState().unsubscribe("odds_updates", { sport: "MLB", game_id: game });
    expect([...store.getState().subscriptions.values()][0]?.refCount).toBe(1);
    await new Promise((r) => setTimeout(r, 300));
    expect((await subscribers(a.room))).toBe(1);

    await store.getState().unsubscribe("odds_updates", { sport: "MLB", game_id: game });
    expect(store.getState().subscriptions.size).toBe(0);
    expect(await subscribers(a.room)).toBe(0);
  });

  it("a release followed by a new reference before release_delay sends nothing", async () => {
    const store = newStore({ release_delay: 200 });
    await store.getState().connect();
    const game = uniqueGame();
    const sent: string[] = [];
    const manager = store.getState().manager;
    const sub = await store.getState().subscribe("predictions", { game_id: game });
    manager.on("frame", (f) => sent.push(f.type));
    void store.getState().unsubscribe("predictions", { game_id: game });
    const again = await store.getState().subscribe("predictions", { game_id: game });
    expect(again).toBe(sub);
    await new Promise((r) => setTimeout(r, 400));
    expect(sent).not.toContain("unsubscribed");
    expect(sent).not.toContain("subscription_confirmed");
    expect((await subscribers(sub.room))).toBe(1);
  });

  it("sends subscriptions asked for before connect() once connected", async () => {
    const store = newStore();
    const game = uniqueGame();
    const confirmed = store.getState().subscribe("odds_updates", { game_id: game });
    expect([...store.getState().subscriptions.values()][0]?.status).toBe("waiting");
    await store.getState().connect();
    const sub = await confirmed;
    expect(sub.confirmed).toBe(true);
    expect((await subscribers(sub.room))).toBe(1);
  });

  it("a refusal is the entry's error with the gateway's hint, and a notification", async () => {
    const store = newStore();
    await store.getState().connect();
    const refused = store.getState().subscribe("odds_updates", { min_profit: 2 } as never);
    const error = await refused.then(
      () => null,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(SubscriptionError);
    expect((error as SubscriptionError).code).toBe("invalid_filter");
    const hint = (error as SubscriptionError).hint;
    expect(hint).toBeTruthy();
    const entry = [...store.getState().subscriptions.values()][0];
    expect(entry).toMatchObject({ status: "error", refCount: 1 });
    expect(entry?.error?.code).toBe("invalid_filter");
    const note = store.getState().notifications.find((n) => n.title === "Subscription refused");
    expect(note?.suggestion).toBe(hint);
  });

  it("disconnect() leaves the rooms; connect() restores every subscription", async () => {
    const store = newStore();
    await store.getState().connect();
    const game = uniqueGame();
    const sub = await store.getState().subscribe("arbitrage", { game_id: game, min_profit: 1 });
    const id = sub.room;
    store.getState().disconnect();
    expect(store.getState().connectionState).toBe("closed");
    await eventually(async () => (await subscribers(id)) === 0, { what: "room released" });
    expect([...store.getState().subscriptions.values()][0]?.status).toBe("waiting");
    await store.getState().connect();
    await eventually(() => [...store.getState().subscriptions.values()][0]?.status === "active", {
      what: "resubscribed",
    });
    expect((await subscribers(id))).toBe(1);
  });

  it("a new token reconnects as its user and keeps the subscriptions", async () => {
    const store = newStore();
    await store.getState().connect(signToken("alice"));
    expect(store.getState().identity?.user).toBe("alice");
    const first = store.getState().identity?.client_id;
    const game = uniqueGame();
    const sub = await store.getState().subscribe("odds_updates", { game_id: game });
    await store.getState().connect(signToken("bob"));
    expect(store.getState().identity?.user).toBe("bob");
    expect(store.getState().identity?.client_id).not.toBe(first);
    await eventually(() => [...store.getState().subscriptions.values()][0]?.status === "active");
    expect((await subscribers(sub.room))).toBe(1);
  });

  it("a new subscription's snapshot fills its data before any live frame", async () => {
    const store = newStore({ batch_updates: false });
    await store.getState().connect();
    const firsts: { received: number; keys: number; snapshots: number }[] = [];
    const unwatch = store.subscribe((s) => {
      const entry = [...s.subscriptions.values()][0];
      if (!entry || firsts.length) return;
      entry.feed.subscribe(() => {
        const snap = entry.feed.getSnapshot();
        if (firsts.length < 1) firsts.push({ received: snap.received, keys: snap.latest.size, snapshots: snap.snapshots });
      });
    });
    await store.getState().subscribe("odds_updates", { sport: "MLB" });
    await eventually(() => firsts.length > 0, { what: "a publication" });
    unwatch();
    // The demo feed has run since the suite started: MLB prices exist for the snapshot.
    expect(firsts[0]).toMatchObject({ received: 0, snapshots: 1 });
    expect(firsts[0]!.keys).toBeGreaterThan(3);
  });

  it("after a reconnect every subscription resumes from its position: nothing missed, and a toast says so", async () => {
    const store = newStore();
    await store.getState().connect();
    await store.getState().subscribe("odds_updates", { sport: "NBA" });
    const entry = () => [...store.getState().subscriptions.values()][0]!;
    await eventually(() => entry().received > 0 && entry().position, { what: "a position" });
    await store.getState().reconnect();
    const resume = await eventually(() => store.getState().lastResume, { what: "resume" });
    expect(resume).toMatchObject({ subscriptions: 1, recovered: 1, resynced: 0 });
    await eventually(() => entry().resumes === 1, { what: "entry.resumes" });
    expect(entry().resyncs).toBe(0);
    const note = store.getState().notifications.at(-1);
    expect(note?.title).toMatch(/^Resumed: /);
    expect(note?.code).toBe("resumed");
  });

  it("reconnect() drops the connection and comes back with a new one", async () => {
    const store = newStore();
    await store.getState().connect();
    const first = store.getState().identity?.client_id;
    await store.getState().reconnect();
    expect(store.getState().connected).toBe(true);
    expect(store.getState().identity?.client_id).not.toBe(first);
  });
});

describe("batched data", () => {
  it("a feed conflates per key and publishes once per batch", () => {
    const feed = new SubscriptionFeed({ historySize: 5, maxKeys: 100 });
    let published = 0;
    feed.subscribe(() => (published += 1));
    const arrived: DataFrame[] = [];
    feed.onFrame((f) => arrived.push(f));
    for (let i = 0; i < 100; i += 1) feed.push(oddsFrame(`g${i % 4}`, "DraftKings", 100 + i, i));
    expect(arrived).toHaveLength(100); // onFrame: every frame, at once
    expect(published).toBe(0); // nothing published before the batch ends
    expect(feed.publish()).toBe(true);
    expect(feed.publish()).toBe(false);
    const snap = feed.getSnapshot();
    expect(published).toBe(1);
    expect(snap.latest.size).toBe(4);
    expect([...snap.latest.keys()]).toEqual(["g0", "g1", "g2", "g3"].map((g) => `odds|${g}|DraftKings|moneyline`));
    expect(snap.latest.get("odds|g3|DraftKings|moneyline")?.data["home_price"]).toBe(199);
    expect(snap.received).toBe(100);
    expect(snap.conflated).toBe(96);
    expect(snap.recent.map((f) => f.event_id)).toEqual(["95-0", "96-0", "97-0", "98-0", "99-0"]);
    expect(conflationKey(oddsFrame("x", "FanDuel", 1, 1))).toBe("odds|x|FanDuel|moneyline");
  });

  it("publishes live data at most once per animation frame, or per frame when batching is off", async () => {
    const measure = async (batch: boolean) => {
      const store = newStore({ batch_updates: batch });
      await store.getState().connect();
      await store.getState().subscribe("odds_updates", {});
      const [entry] = store.getState().subscriptions.values();
      const feed = entry!.feed;
      await eventually(() => feed.getSnapshot().received > 0, { what: "first odds" });
      const start = { received: feed.received, at: performance.now() };
      let publications = 0;
      const stop = feed.subscribe(() => (publications += 1));
      await new Promise((r) => setTimeout(r, 2000));
      stop();
      return { received: feed.received - start.received, publications, ms: performance.now() - start.at };
    };
    const batched = await measure(true);
    const unbatched = await measure(false);
    // ~140 odds/s from the demo feed; animation frames at 60 Hz.
    expect(batched.received).toBeGreaterThan(150);
    expect(batched.publications).toBeLessThanOrEqual(Math.ceil(batched.ms / 16) + 5);
    expect(batched.publications).toBeLessThan(batched.received * 0.75);
    expect(unbatched.publications).toBe(unbatched.received);
  });
});

describe("stores are independent", () => {
  it("two stores on two clients hold two connections", async () => {
    const one = newStore();
    const two = newStore();
    await Promise.all([one.getState().connect(), two.getState().connect()]);
    expect(one.getState().identity?.client_id).not.toBe(two.getState().identity?.client_id);
    const made = createWebSocketStore();
    expect(made.getState().manager).not.toBe(one.getState().manager);
    made.getState().destroy();
  });
});
