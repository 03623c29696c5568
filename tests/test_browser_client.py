"""The browser client (`/static/oddstream.js`, built from clients/js) in a real Chromium
against a real gateway.

Each test loads the module into a page of the gateway's origin and drives a
`WebSocketManager` with short intervals; events are recorded in the page with their times.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

from playwright.async_api import Browser, Page
from redis.asyncio import Redis

from oddstream.embedded import free_port
from oddstream.shared.ingest import Ingester, parse_event
from oddstream.shared.keys import Keys
from oddstream.shared.settings import Settings
from tests.browser import LiveSystem, chromium, live_system, open_page
from tests.harness import wait_until, workers_synced

SETUP = """async ([config, token]) => {
    const mod = await import("/static/oddstream.js");
    window.mod = mod;
    window.events = [];
    const m = new mod.WebSocketManager(config);
    for (const name of ["state", "notification", "frame"]) {
        m.on(name, (detail) => window.events.push({name, detail, t: performance.now()}));
    }
    window.m = m;
    window.connected = m.connect(token).then(() => "ok", (e) => ({name: e.name, code: e.code,
        message: e.message, hint: e.hint}));
    return true;
}"""


async def manager(
    browser: Browser, system: LiveSystem, config: dict[str, Any], token: str | None = None
) -> Page:
    page, _ = await open_page(browser)
    await page.goto(f"{system.http}/ws/v2/schema")  # any page of the gateway's origin
    config = {"base_url": f"ws://127.0.0.1:{system.port}", **config}
    await page.evaluate(SETUP, [config, token])
    return page


async def events(page: Page, name: str) -> list[dict[str, Any]]:
    raw = await page.evaluate(
        "(name) => JSON.stringify(window.events.filter(e => e.name === name))", name
    )
    found: list[dict[str, Any]] = json.loads(raw)
    return found


async def state(page: Page) -> str:
    value: str = await page.evaluate("window.m.state")
    return value


async def until_state(page: Page, wanted: str, timeout: float = 10.0) -> None:
    async def reached() -> bool:
        return await state(page) == wanted

    await wait_until(reached, timeout=timeout, message=f"state {wanted}")


async def test_backoff_schedule_then_gives_up_with_a_clear_final_state(
    settings: Settings,
) -> None:
    async with live_system(settings, rate=1) as system, chromium() as browser:
        nowhere = free_port()  # nothing listens here
        page = await manager(
            browser,
            system,
            {
                "base_url": f"ws://127.0.0.1:{nowhere}",
                "reconnect_interval": 100,
                "reconnect_factor": 2,
                "max_reconnect_interval": 400,
                "jitter": 0,
                "max_reconnect_attempts": 4,
            },
        )
        outcome = await page.evaluate("window.connected")
        assert outcome["name"] == "ConnectionError"
        assert outcome["code"] == "gave_up"
        assert "4 attempts" in outcome["message"]
        assert "gateway is running" in outcome["hint"]
        assert await state(page) == "closed"

        states = [e["detail"] for e in await events(page, "state")]
        waits = [s for s in states if s["state"] == "reconnecting" and not s.get("connecting")]
        assert [s["delay"] for s in waits] == [100, 200, 400, 400]
        assert [s["attempt"] for s in waits] == [1, 2, 3, 4]
        assert all(s["max_attempts"] == 4 for s in waits)
        # Each attempt really waited its delay (the next attempt starts after it).
        timed = await events(page, "state")
        starts = [e["t"] for e in timed if e["detail"].get("connecting")]
        waits_at = [e["t"] for e in timed if e["detail"] in waits]
        for waited_at, delay, started in zip(
            waits_at, [100, 200, 400, 400], starts[1:], strict=True
        ):
            assert started - waited_at >= delay - 5
        notes = [e["detail"] for e in await events(page, "notification")]
        assert notes[-1]["level"] == "error"
        assert notes[-1]["title"] == "Connection failed"
        assert notes[-1]["suggestion"]


async def test_jitter_shortens_delays_within_its_bound(settings: Settings) -> None:
    async with live_system(settings, rate=1) as system, chromium() as browser:
        page = await manager(
            browser,
            system,
            {
                "base_url": f"ws://127.0.0.1:{free_port()}",
                "reconnect_interval": 200,
                "jitter": 0.5,
                "max_reconnect_attempts": 3,
            },
        )
        await page.evaluate("window.connected")
        waits = [
            e["detail"]
            for e in await events(page, "state")
            if e["detail"]["state"] == "reconnecting" and not e["detail"].get("connecting")
        ]
        nominal = [200, 400, 800]
        assert len(waits) == 3
        for wait, full in zip(waits, nominal, strict=True):
            assert full * 0.5 <= wait["delay"] <= full


async def test_answers_gateway_heartbeats_and_detects_a_silent_link(settings: Settings) -> None:
    fast = settings.model_copy(update={"heartbeat_interval": 0.3, "connection_timeout": 1.0})
    async with live_system(fast, rate=1) as system, chromium() as browser:
        # No pings of its own: only its pongs keep the gateway from closing it (4101).
        page = await manager(browser, system, {"heartbeat_interval": 0})
        assert await page.evaluate("window.connected") == "ok"
        await page.wait_for_timeout(3000)  # three times the gateway's idle timeout
        assert await state(page) == "connected"
        pings = [e for e in await events(page, "frame") if e["detail"]["type"] == "ping"]
        assert len(pings) >= 5
        assert (await page.evaluate("window.m.stats"))["reconnects"] == 0

    slow = settings.model_copy(update={"heartbeat_interval": 30.0})
    async with live_system(slow, rate=0.1) as system, chromium() as browser:
        # The gateway is silent for 30 s; a 400 ms heartbeat_timeout calls the link dead.
        page = await manager(
            browser,
            system,
            {"heartbeat_interval": 0, "heartbeat_timeout": 400, "reconnect_interval": 50},
        )
        assert await page.evaluate("window.connected") == "ok"

        async def reconnected() -> bool:
            stats = await page.evaluate("window.m.stats")
            return bool(stats["reconnects"] >= 1 and stats["state"] == "connected")

        await wait_until(reconnected, timeout=10, message="a reconnect after silence")
        notes = [e["detail"] for e in await events(page, "notification")]
        assert any("silent" in (n["message"] or "") for n in notes), notes


async def test_coming_back_online_or_visible_skips_the_backoff_wait(settings: Settings) -> None:
    async with live_system(settings, rate=5) as system, chromium() as browser:
        page = await manager(
            browser,
            system,
            {"reconnect_interval": 60_000, "max_reconnect_interval": 60_000, "jitter": 0},
        )
        assert await page.evaluate("window.connected") == "ok"
        for wake in ("window.dispatchEvent(new Event('online'))",
                     "document.dispatchEvent(new Event('visibilitychange'))"):  # fmt: skip
            await system.stop_gateway()
            await wait_until(lambda: _waiting(page), timeout=10, message="a 60 s backoff wait")
            await system.start_gateway()
            await page.wait_for_timeout(300)
            assert await state(page) == "reconnecting", "still waiting out the backoff"
            await page.evaluate(wake)
            await until_state(page, "connected", timeout=5)


async def _waiting(page: Page) -> bool:
    detail = await page.evaluate("window.m.stateDetail")
    return bool(detail["state"] == "reconnecting" and detail.get("delay") == 60_000)


async def test_resubscribes_after_gateway_restart(settings: Settings) -> None:
    async with live_system(settings, rate=100) as system, chromium() as browser:
        page = await manager(browser, system, {"reconnect_interval": 100, "jitter": 0})
        assert await page.evaluate("window.connected") == "ok"
        await page.evaluate(
            """async () => {
                window.got = [];
                const sub = await window.m.subscribe("odds_updates", {sport: "MLB"},
                    (f) => window.got.push(f.data.sport));
                window.room = sub.room;
            }"""
        )
        await wait_until(lambda: _count(page), timeout=10, message="MLB odds")
        await system.stop_gateway()
        await until_state(page, "reconnecting")
        await system.start_gateway()
        await until_state(page, "connected", timeout=15)
        before = await page.evaluate("window.got.length")

        async def more() -> bool:
            return bool(await page.evaluate("window.got.length") > before + 3)

        await wait_until(more, timeout=10, message="odds on the new connection")
        assert set(await page.evaluate("window.got")) == {"MLB"}
        subs = await page.evaluate("window.m.subscriptionList()")
        assert [(s["type"], s["confirmed"]) for s in subs] == [("odds_updates", True)]
        titles = [e["detail"]["title"] for e in await events(page, "notification")]
        assert "Reconnected" in titles
        assert "Resubscribed" in titles


async def _count(page: Page) -> bool:
    return bool(await page.evaluate("window.got.length") > 0)


async def test_typed_errors_with_hints(settings: Settings) -> None:
    async with live_system(settings, rate=1) as system, chromium() as browser:
        page = await manager(browser, system, {})
        assert await page.evaluate("window.connected") == "ok"
        refused = await page.evaluate(
            """async () => {
                const out = {};
                for (const [name, type, filters] of [
                    ["type", "nope", {}],
                    ["filter", "odds_updates", {sport: "MLB", colour: "red"}],
                    ["portfolio", "portfolio", {}],
                ]) {
                    try { await window.m.subscribe(type, filters); out[name] = "subscribed"; }
                    catch (e) {
                        out[name] = {name: e.name, code: e.code, hint: e.hint,
                                     typed: e instanceof window.mod.OddstreamError};
                    }
                }
                const idle = new window.mod.WebSocketManager({});
                try { await idle.subscribe("odds_updates"); out.idle = "subscribed"; }
                catch (e) { out.idle = {name: e.name, code: e.code, hint: e.hint, typed: true}; }
                return out;
            }"""
        )
        assert refused["type"]["name"] == "SubscriptionError"
        assert refused["type"]["code"] == "invalid_subscription_type"
        assert refused["filter"]["name"] == "SubscriptionError"
        assert refused["filter"]["code"] == "invalid_filter"
        assert refused["portfolio"]["name"] == "AuthError"
        assert refused["portfolio"]["code"] == "auth_required"
        assert refused["idle"]["name"] == "ConnectionError"
        assert refused["idle"]["code"] == "not_connected"
        for case in refused.values():
            assert case["typed"] and case["hint"], case
        assert await page.evaluate("window.m.subscriptions.size") == 0
        latency = await page.evaluate("window.m.ping()")
        assert 0 <= latency < 5000


async def test_token_provider_refreshes_before_expiry(settings: Settings) -> None:
    fast = settings.model_copy(update={"heartbeat_interval": 0.3, "token_expiry_notice": 2.5})
    async with live_system(fast, rate=1) as system, chromium() as browser:
        tokens = [system.token("alice", ttl=3), system.token("alice", ttl=3600)]
        page, _ = await open_page(browser)
        await page.goto(f"{system.http}/ws/v2/schema")
        await page.evaluate(
            """async ([base, tokens]) => {
                const mod = await import("/static/oddstream.js");
                window.calls = 0;
                window.m = new mod.WebSocketManager({base_url: base});
                const provider = async () => tokens[Math.min(window.calls++, 1)];
                window.connected = window.m.connect(provider);
                await window.connected;
            }""",
            [f"ws://127.0.0.1:{system.port}", tokens],
        )
        await page.wait_for_timeout(5000)  # past the first token's expiry
        assert await state(page) == "connected"
        stats = await page.evaluate("window.m.stats")
        assert stats["token_refreshes"] >= 1
        assert stats["reconnects"] == 0, "refreshed in place, never cut off"
        assert await page.evaluate("window.calls") >= 2


async def test_expired_token_without_provider_ends_with_an_auth_error(settings: Settings) -> None:
    # The gateway sweeps every connection_timeout / 4 = 0.5 s: the 1.5 s notice is seen.
    fast = settings.model_copy(
        update={"heartbeat_interval": 0.3, "connection_timeout": 2.0, "token_expiry_notice": 1.5}
    )
    async with live_system(fast, rate=1) as system, chromium() as browser:
        page = await manager(browser, system, {}, token=system.token("alice", ttl=3))
        assert await page.evaluate("window.connected") == "ok"
        await until_state(page, "closed", timeout=10)
        error = await page.evaluate(
            "({name: window.m.lastError.name, code: window.m.lastError.code, "
            "close: window.m.lastError.closeCode, hint: window.m.lastError.hint})"
        )
        assert error == {
            "name": "AuthError",
            "code": "token_expired",
            "close": 4401,
            "hint": "Sign in again to get a fresh token.",
        }
        notes = [e["detail"] for e in await events(page, "notification")]
        assert any(n["title"] == "Session expiring" for n in notes)
        assert notes[-1]["level"] == "error"


async def test_error_for_types_gateway_errors(settings: Settings) -> None:
    """`errorFor` turns a gateway error body into the typed error a caller can catch."""
    bodies = [
        {"code": "invalid_token", "error": "Bad token. Get a new one.", "hint": "Get a new one."},
        {"code": "invalid_filter", "error": "Unknown filter 'colour'."},
        {"code": "rate_limited", "error": "Slow down.", "hint": "Wait."},
        {"code": "some_future_code"},
        {},
    ]
    async with live_system(settings, rate=1) as system, chromium() as browser:
        page, _ = await open_page(browser)
        await page.goto(f"{system.http}/ws/v2/schema")
        js = await page.evaluate(
            "async (bodies) => { const mod = await import('/static/oddstream.js');"
            " return bodies.map((body) => { const e = mod.errorFor(body);"
            " return [e.name, e.code, e.message, e.hint, e.temporary,"
            " e instanceof mod.OddstreamError]; }); }",
            bodies,
        )
    assert js == [
        ["AuthError", "invalid_token", "Bad token.", "Get a new one.", False, True],
        ["SubscriptionError", "invalid_filter", "Unknown filter 'colour'.", None, False, True],
        ["OddstreamError", "rate_limited", "Slow down.", "Wait.", True, True],
        ["OddstreamError", "some_future_code", "some_future_code", None, False, True],
        ["OddstreamError", "unknown", "unknown", None, False, True],
    ]


# --- resume, dedupe, snapshots --------------------------------------------------------------------
#
# The page subscribes to a game only the test publishes (the simulator's ids never match), so
# the test knows every event the room got, in ingest order (one game: one partition).

RECORD = """async ([filters, options]) => {
    window.got = [];
    window.resumes = [];
    window.resyncs = [];
    window.snapshots = [];
    window.m.on("resume", (d) => window.resumes.push(d));
    window.m.on("resync", (d) => window.resyncs.push({position: d.position, snapshot: d.snapshot,
        recovered: d.confirmation.data.recovered}));
    window.m.on("snapshot", (d) => window.snapshots.push({room: d.frame.room,
        position: d.frame.position, events: d.frame.data.events.map((e) => e.event_id),
        got: window.got.length}));
    const sub = await window.m.subscribe("odds_updates", filters,
        (f) => window.got.push({id: f.event_id, replay: Boolean(f.replay),
                                position: f.positions[sub.room]}), options);
    window.sub = sub;
    return sub.room;
}"""


@contextlib.asynccontextmanager
async def game_feed(
    redis: Redis, keys: Keys, game: str, interval: float = 0.01
) -> AsyncIterator[list[str]]:
    """Publish one odds event of `game` every `interval` s until the block ends; yields the
    ids published so far, in ingest order."""
    sent: list[str] = []
    stop = asyncio.Event()

    async def feed() -> None:
        ingester = Ingester(redis, keys)
        n = 0
        while not stop.is_set():
            n += 1
            event = parse_event({"kind": "odds", "sport": "MLB", "game_id": game, "seq": n,
                                 "sportsbook": "FanDuel", "market": "total"})  # fmt: skip
            sent.append((await ingester.publish(event)).decode())
            await asyncio.sleep(interval)

    task = asyncio.create_task(feed())
    try:
        yield sent
    finally:
        stop.set()
        await task


async def snapshots_of(page: Page, n: int) -> list[dict[str, Any]]:
    """The snapshots the page recorded, once there are `n`."""

    async def arrived() -> bool:
        return bool(await page.evaluate("window.snapshots.length") >= n)

    await wait_until(arrived, message=f"{n} snapshot(s)")
    found: list[dict[str, Any]] = await page.evaluate("window.snapshots")
    return found


async def got_ids(page: Page) -> list[str]:
    ids: list[str] = await page.evaluate("window.got.map((g) => g.id)")
    return ids


async def got_all(page: Page, sent: list[str], timeout: float = 15.0) -> list[dict[str, Any]]:
    """What the page received once it has every id of `sent`, plus 0.5 s for duplicates."""

    async def complete() -> bool:
        return set(sent) <= set(await got_ids(page))

    await wait_until(complete, timeout=timeout, message="every published event in the page")
    await page.wait_for_timeout(500)
    got: list[dict[str, Any]] = await page.evaluate("window.got")
    return got


async def test_resumes_after_a_gateway_restart_with_no_gap_and_no_duplicate(
    settings: Settings, redis_client: Redis, keys: Keys
) -> None:
    async with live_system(settings, rate=1) as system, chromium() as browser:
        page = await manager(browser, system, {"reconnect_interval": 100, "jitter": 0})
        assert await page.evaluate("window.connected") == "ok"
        room = await page.evaluate(RECORD, [{"game_id": "W1"}, {}])
        assert room.startswith("odds_updates.")
        await wait_until(lambda: workers_synced(redis_client, keys), message="worker synced")
        async with game_feed(redis_client, keys, "W1") as sent:

            async def flowing() -> bool:
                return bool(await page.evaluate("window.got.length") > 10)

            await wait_until(flowing, message="events in the page")
            await system.stop_gateway()  # drains: 1001
            await until_state(page, "reconnecting")
            down = len(sent)
            await asyncio.sleep(0.8)
            assert len(sent) > down + 20, "events were published while the page was away"
            await system.start_gateway()
            await until_state(page, "connected", timeout=15)
            await asyncio.sleep(0.3)
        got = await got_all(page, sent)

        assert [g["id"] for g in got] == sent, "every event once, in order, across the restart"
        assert any(g["replay"] for g in got)
        snapshots = await page.evaluate("window.snapshots")
        assert [(s["room"], s["events"], s["got"]) for s in snapshots] == [(room, [], 0)]
        resumes = await page.evaluate("window.resumes")
        replayed = sum(g["replay"] for g in got)
        assert resumes == [{"subscriptions": 1, "recovered": 1, "resynced": 0,
                            "replayed": replayed}]  # fmt: skip
        assert await page.evaluate("window.resyncs") == []
        sub = await page.evaluate(
            "({recovered: window.sub.recovered, position: window.sub.position,"
            " duplicates: window.sub.duplicates, resumes: window.sub.resumes,"
            " info: window.sub.toJSON()})"
        )
        assert sub["recovered"] is True and sub["resumes"] == 1 and sub["duplicates"] == 0
        assert sub["position"] == got[-1]["position"] == sub["info"]["position"]
        stats = await page.evaluate("window.m.stats")
        assert stats["reconnects"] == 1 and stats["resumes"] == 1 and stats["duplicates"] == 0


async def test_a_replayed_duplicate_is_dropped_and_a_new_subscription_gets_a_snapshot(
    settings: Settings, redis_client: Redis, keys: Keys
) -> None:
    async with live_system(settings, rate=1) as system, chromium() as browser:
        ingester = Ingester(redis_client, keys)
        odds = {"kind": "odds", "sport": "MLB", "game_id": "W2", "sportsbook": "FanDuel"}
        early = [
            (await ingester.publish(parse_event({**odds, "market": market, "n": n}))).decode()
            for n, market in enumerate(["total", "total", "spread"])
        ]
        page = await manager(browser, system, {"reconnect_interval": 100, "jitter": 0})
        assert await page.evaluate("window.connected") == "ok"

        async def recorded() -> bool:
            # The worker recorded all three (in order: one game, one partition); the snapshot
            # holds the newest per game, book and market: two.
            return bool(await redis_client.hlen(keys.latest("W2")) == 2)

        await wait_until(recorded, message="latest values recorded")
        room = await page.evaluate(RECORD, [{"game_id": "W2"}, {}])
        snapshots = await snapshots_of(page, 1)
        assert len(snapshots) == 1 and snapshots[0]["room"] == room
        assert sorted(snapshots[0]["events"]) == sorted(early[1:])  # newest total, the spread
        assert snapshots[0]["got"] == 0, "the snapshot came before any live update"
        assert await page.evaluate("window.sub.position") == snapshots[0]["position"]

        await wait_until(lambda: workers_synced(redis_client, keys), message="worker synced")
        sent = [
            (await ingester.publish(parse_event({**odds, "market": "total", "n": n}))).decode()
            for n in range(5)
        ]
        got = await got_all(page, sent)
        assert [g["id"] for g in got] == sent and not any(g["replay"] for g in got)

        # Rewind the subscription's position to after the first of the five (as a stale saved
        # position would be) and cut the connection: the gateway replays four frames the page
        # already has; the subscription drops them by event id.
        await page.evaluate("(p) => { window.sub._position = p; }", got[0]["position"])
        assert system.gateway is not None
        for conn in list(system.gateway.node.connections.values()):
            conn.transport.abort()
        await until_state(page, "reconnecting")
        await until_state(page, "connected", timeout=15)
        more = [(await ingester.publish(parse_event({**odds, "market": "total"}))).decode()]
        got = await got_all(page, sent + more)
        assert [g["id"] for g in got] == sent + more, "no duplicate reached the listener"
        assert await page.evaluate("window.sub.duplicates") == 4
        assert (await page.evaluate("window.m.stats"))["duplicates"] == 4
        assert await page.evaluate("window.resumes") == [
            {"subscriptions": 1, "recovered": 1, "resynced": 0, "replayed": 4}
        ]


async def test_an_unusable_position_resyncs_with_a_snapshot(
    settings: Settings, redis_client: Redis, keys: Keys
) -> None:
    async with live_system(settings, rate=1) as system, chromium() as browser:
        page = await manager(browser, system, {"reconnect_interval": 100, "jitter": 0})
        assert await page.evaluate("window.connected") == "ok"
        # A position of another room (well-formed, unusable here): not recovered, a snapshot.
        await page.evaluate(
            """async () => {
                window.w3 = await window.m.subscribe("odds_updates", {game_id: "W3"});
            }"""
        )

        async def w3_position() -> bool:  # adopted with the snapshot that follows
            return bool(await page.evaluate("window.w3.position"))

        await wait_until(w3_position, message="a position from the snapshot")
        other = await page.evaluate("window.w3.position")
        room = await page.evaluate(RECORD, [{"game_id": "W4"}, {"position": other}])
        assert await page.evaluate("window.sub.recovered") is False
        resyncs = await page.evaluate("window.resyncs")
        assert resyncs == [{"position": other, "snapshot": True, "recovered": False}]
        snapshots = await snapshots_of(page, 1)
        assert [s["room"] for s in snapshots] == [room]
        assert await page.evaluate("window.sub.position") == snapshots[0]["position"] != other
        # A malformed position is refused with a typed error; the subscription is not made.
        refused = await page.evaluate(
            """async () => {
                try { await window.m.subscribe("odds_updates", {game_id: "W5"}, null,
                                               {position: "not a position"}); return null; }
                catch (e) { return {name: e.name, code: e.code, hint: e.hint}; }
            }"""
        )
        assert refused is not None and refused["name"] == "SubscriptionError"
        assert refused["code"] == "invalid_position" and refused["hint"]
        assert await page.evaluate("window.m.subscriptions.size") == 2


async def test_frames_a_room_sent_before_it_saw_the_unsubscribe_are_not_handed_on(
    settings: Settings, redis_client: Redis, keys: Keys
) -> None:
    """The gateway keeps sending a room's frames until the unsubscribe reaches it; those in
    flight must not reach the application, or what it just removed comes back (a board
    redrawing the cards of a subscription the user closed)."""
    async with live_system(settings, rate=1) as system, chromium() as browser:
        page = await manager(browser, system, {"reconnect_interval": 100, "jitter": 0})
        assert await page.evaluate("window.connected") == "ok"
        room = await page.evaluate(RECORD, [{"game_id": "W6"}, {}])
        await wait_until(lambda: workers_synced(redis_client, keys), message="worker synced")
        async with game_feed(redis_client, keys, "W6", interval=0.01):

            async def flowing() -> bool:
                return bool(await page.evaluate("window.got.length") > 5)

            await wait_until(flowing, message="the room's frames arrive")
            # Hold the unsubscribe on its way out for 600 ms (a slow uplink): meanwhile the
            # gateway still sends the room's frames.
            await page.evaluate(
                """(room) => {
                    const ws = window.m._ws;
                    const send = ws.send.bind(ws);
                    ws.send = (text) => JSON.parse(text).type === "unsubscribe"
                        ? setTimeout(() => send(text), 600) : send(text);
                    window.messages = [];
                    window.m.on("message", (f) => window.messages.push(f.event_id));
                    window.leftAt = window.events.length;
                    window.left = window.m.unsubscribe(window.sub);
                }""",
                room,
            )
            await page.evaluate("window.left")
        late = await page.evaluate(
            """(room) => window.events.slice(window.leftAt)
                .filter((e) => e.name === "frame" && (e.detail.rooms || []).includes(room))
                .length""",
            room,
        )
        assert late > 0, "the gateway sent frames of the room after the unsubscribe call"
        assert await page.evaluate("window.messages") == []
        assert await page.evaluate("window.m.subscriptions.size") == 0
