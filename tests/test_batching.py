"""Batching (`?batch=N&batch_ms=D`) against a real gateway, worker and Redis.

A batching client gets its data frames (live and replayed) as WebSocket messages whose payload
is a JSON array of up to N of them: byte for byte the frames a client without batching gets,
joined, in the same order. Everything else (welcome, replies, snapshots, pings) arrives alone,
and after the data held before it. Clients that do not ask get exactly what they always did.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import orjson
import pytest
from redis.asyncio import Redis

from oddstream.shared.keys import Keys
from oddstream.shared.settings import Settings
from oddstream_client import OddstreamClient
from tests.browser import chromium, live_system
from tests.harness import running_gateway, running_worker, wait_until, workers_synced
from tests.test_browser_client import RECORD, got_all, manager
from tests.test_compression import publish


class Raw:
    """An aiohttp WebSocket that keeps every text message as sent (no unpacking)."""

    def __init__(self, session: aiohttp.ClientSession, ws: aiohttp.ClientWebSocketResponse):
        self.session, self.ws = session, ws
        self.texts: list[str] = []

    @classmethod
    async def connect(cls, url: str) -> Raw:
        session = aiohttp.ClientSession()
        ws = await session.ws_connect(url, compress=0, autoping=True)
        return cls(session, ws)

    async def next(self, timeout: float = 5.0) -> Any:
        msg = await self.ws.receive(timeout=timeout)
        assert msg.type is aiohttp.WSMsgType.TEXT, msg
        self.texts.append(msg.data)
        return orjson.loads(msg.data)

    async def until(self, type_: str) -> dict[str, Any]:
        while True:
            body = await self.next()
            if isinstance(body, dict) and body["type"] == type_:
                return body

    async def subscribe(self, game: str, **extra: Any) -> dict[str, Any]:
        await self.ws.send_json({"type": "subscribe", "subscription_type": "odds_updates",
                                 "filters": {"game_id": game}, **extra})  # fmt: skip
        return await self.until("subscription_confirmed")

    async def data(self, n: int) -> list[str]:
        """The raw text of the messages carrying the next `n` odds frames (arrays count all
        their elements)."""
        texts, count = [], 0
        while count < n:
            body = await self.next()
            if isinstance(body, list):
                texts.append(self.texts[-1])
                count += len(body)
            elif body["type"] == "odds_update":
                texts.append(self.texts[-1])
                count += 1
        assert count == n, f"more frames than expected: {count}"
        return texts

    async def close(self) -> None:
        await self.ws.close()
        await self.session.close()


def joined(plain: list[str], batched: list[str], most: int) -> None:
    """Every batched message is exactly the next plain frames: alone, or as `[a,b,...]`."""
    i = 0
    for text in batched:
        body = orjson.loads(text)
        if isinstance(body, dict):
            assert text == plain[i]
            i += 1
            continue
        assert 2 <= len(body) <= most, len(body)
        assert text == "[" + ",".join(plain[i : i + len(body)]) + "]"
        i += len(body)
    assert i == len(plain)


@pytest.mark.parametrize("delay", [20, 0])  # 0: what one inbox read brings, nothing held
async def test_batched_client_gets_arrays_of_exactly_the_plain_frames_in_order(
    settings: Settings, redis_client: Redis, keys: Keys, delay: int
) -> None:
    async with running_worker(settings), running_gateway(settings) as gw:
        batched = await Raw.connect(f"{gw.ws}/ws/v2/connect?batch=8&batch_ms={delay}")
        plain = await Raw.connect(f"{gw.ws}/ws/v2/connect")
        try:
            welcome = await batched.until("welcome")
            assert welcome["data"]["batch"] == {"count": 8, "delay_ms": delay}
            plain_welcome = await plain.until("welcome")
            assert "batch" not in plain_welcome["data"]  # as it always was
            await batched.subscribe("K1", snapshot=False)
            await plain.subscribe("K1", snapshot=False)
            await wait_until(lambda: workers_synced(redis_client, keys), message="worker synced")

            sent = await publish(redis_client, keys, "K1", 30)
            got_plain = await plain.data(30)
            got_batched = await batched.data(30)
            assert [orjson.loads(t)["event_id"] for t in got_plain] == sent
            assert all(t.startswith("{") for t in got_plain), "no arrays without asking"
            joined(got_plain, got_batched, 8)
            assert len(got_batched) < 30 and any(t.startswith("[") for t in got_batched)

            # Held frames go out before any other message: a pong after three held frames
            # (the delay made long, so they are still held when the ping arrives).
            (conn,) = [c for c in gw.node.connections.values() if c.batch]
            conn.batch_delay = 60.0  # nothing is written by the timer during this check
            more = await publish(redis_client, keys, "K1", 3, start=30)
            await wait_until(lambda: len(conn.batched or ()) == 3, message="three held")
            await batched.ws.send_json({"type": "ping", "id": "p"})
            array = await batched.next()
            assert [f["event_id"] for f in array] == more
            assert (await batched.next())["type"] == "pong"
            assert conn.batch_timer is None and conn.batched is None
            # welcome, confirm, frames, pong (and the gateway's own alerts, if any)
            assert conn.messages_sent >= 1 + 1 + 33 + 1
        finally:
            await batched.close()
            await plain.close()


async def test_replays_arrive_in_arrays_and_snapshots_alone(
    settings: Settings, redis_client: Redis, keys: Keys
) -> None:
    async with running_worker(settings), running_gateway(settings) as gw:
        first = await Raw.connect(f"{gw.ws}/ws/v2/connect")
        await first.until("welcome")
        confirmed = await first.subscribe("K2", snapshot=False)
        room, position = confirmed["data"]["room"], confirmed["data"]["position"]
        await first.close()
        missed = await publish(redis_client, keys, "K2", 11)

        async def in_history() -> bool:
            return bool(await redis_client.xlen(keys.history(0, room)) >= 11)

        await wait_until(in_history, message="missed events recorded")
        batched = await Raw.connect(f"{gw.ws}/ws/v2/connect?batch=4")
        plain = await Raw.connect(f"{gw.ws}/ws/v2/connect")
        try:
            welcome = await batched.until("welcome")
            assert welcome["data"]["batch"] == {"count": 4, "delay_ms": 5}  # the default delay
            await plain.until("welcome")
            resumed = await batched.subscribe("K2", position=position)
            assert resumed["data"]["replayed"] == 11
            got_batched = await batched.data(11)
            await plain.subscribe("K2", position=position)
            got_plain = await plain.data(11)
            assert [orjson.loads(t)["event_id"] for t in got_plain] == missed
            assert [len(orjson.loads(t)) for t in got_batched] == [4, 4, 3]
            joined(got_plain, got_batched, 4)
            # A snapshot is one message of its own, not an array.
            await batched.subscribe("K3")
            snapshot = await batched.next()
            assert isinstance(snapshot, dict) and snapshot["type"] == "snapshot"
        finally:
            await batched.close()
            await plain.close()


@pytest.mark.parametrize(
    "query",
    [
        "batch=1",
        "batch=65",
        "batch=abc",
        "batch=8&batch_ms=101",
        "batch=8&batch_ms=-1",
        "batch=8&batch_ms=1.5",
        "batch_ms=5",
    ],
)
async def test_bad_batch_parameters_are_refused_before_the_upgrade(
    settings: Settings, query: str
) -> None:
    async with running_gateway(settings) as gw, aiohttp.ClientSession() as session:
        async with session.get(f"{gw.http}/ws/v2/connect?{query}") as response:
            assert response.status == 400
            body = await response.json()
        assert body["code"] == "invalid_request"
        assert "batch" in body["error"]
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await session.ws_connect(f"{gw.ws}/ws/v2/connect?{query}")
        assert refused.value.status == 400


async def test_python_client_with_batching_gets_every_event_once_in_order(
    settings: Settings, redis_client: Redis, keys: Keys
) -> None:
    with pytest.raises(ValueError, match="batch"):
        OddstreamClient("ws://127.0.0.1:1/ws/v2/connect", batch=(1, 5))
    async with running_worker(settings), running_gateway(settings) as gw:
        client = OddstreamClient(f"{gw.ws}/ws/v2/connect", batch=(8, 20), compression=False)
        async with client:
            assert client.welcome is not None
            assert client.welcome["data"]["batch"] == {"count": 8, "delay_ms": 20}
            sub = await client.subscribe("odds_updates", game_id="K4", snapshot=False)
            await wait_until(lambda: workers_synced(redis_client, keys), message="worker synced")
            (conn,) = gw.node.connections.values()
            sent = await publish(redis_client, keys, "K4", 40)
            got: list[str] = []
            async with asyncio.timeout(10):
                async for frame in sub:
                    got.append(frame["event_id"])
                    if len(got) == len(sent):
                        break
            assert got == sent
            assert conn.batch == 8
            await asyncio.sleep(0.2)  # anything extra (a duplicate) would show up by now
            assert sub.received == len(sent) and client.stats.data_messages == len(sent)


async def test_browser_client_with_batching_hands_on_every_frame_alone(
    settings: Settings, redis_client: Redis, keys: Keys
) -> None:
    async with live_system(settings, rate=1) as system, chromium() as browser:
        page = await manager(
            browser, system, {"batch": {"count": 8, "delay_ms": 20}, "reconnect_interval": 100}
        )
        assert await page.evaluate("window.connected") == "ok"
        assert await page.evaluate("window.m.welcome.data.batch") == {"count": 8, "delay_ms": 20}
        assert system.gateway is not None
        (conn,) = system.gateway.node.connections.values()
        assert conn.batch == 8
        room = await page.evaluate(RECORD, [{"game_id": "K5"}, {"snapshot": False}])
        assert room.startswith("odds_updates.")
        await wait_until(lambda: workers_synced(redis_client, keys), message="worker synced")
        frames_before = await page.evaluate(
            "window.events.filter((e) => e.name === 'frame').length"
        )
        sent = await publish(redis_client, keys, "K5", 30)
        got = await got_all(page, sent)
        assert [g["id"] for g in got] == sent  # each once, in order
        frames = await page.evaluate(
            "window.events.filter((e) => e.name === 'frame').map((e) => e.detail)"
        )
        odds = [f for f in frames[frames_before:] if not isinstance(f, list)]
        assert all(isinstance(f, dict) for f in frames), "arrays are never handed on"
        assert [f["event_id"] for f in odds if f["type"] == "odds_update"] == sent
        stats = await page.evaluate("window.m.stats")
        assert stats["data_messages"] >= len(sent)
        # A bad setting is refused at once, not sent to the gateway.
        refused = await page.evaluate("""() => {
            try { new window.mod.WebSocketManager({batch: {count: 1, delay_ms: 5}}); return "";
            } catch (e) { return e.message; }
        }""")
        assert "batch" in refused
