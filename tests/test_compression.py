"""permessage-deflate (RFC 7692) against a real gateway, worker and Redis, seen on the wire.

The gateway compresses each frame once, on its own (`server_no_context_takeover`), and writes
the same compressed bytes to every member that negotiated deflate; the others get the plain
frame. `RawClient` shows what the socket carries: RSV1 per frame and the payload as sent, and
it inflates every compressed message with a fresh inflater, which only works if each message
stands alone.
"""

from __future__ import annotations

import asyncio
import zlib
from dataclasses import dataclass
from typing import Any

import orjson
from playwright.async_api import Page
from redis.asyncio import Redis

from oddstream.gateway.frames import DEFLATE_STATS
from oddstream.shared.ingest import Ingester, parse_event
from oddstream.shared.keys import Keys
from oddstream.shared.settings import Settings
from tests.browser import chromium, live_system, open_page
from tests.harness import Client, running_gateway, running_worker, wait_until, workers_synced
from tests.rfc6455 import masked, open_upgraded
from tests.test_browser_client import RECORD, SETUP, got_all, snapshots_of, until_state

#: What browsers offer (Chromium sends exactly this).
OFFER = "permessage-deflate; client_max_window_bits"
ACCEPTED = "permessage-deflate; server_no_context_takeover"
TAIL = b"\x00\x00\xff\xff"


@dataclass
class Message:
    compressed: bool  # RSV1 on the wire
    wire: bytes  # the payload as sent
    text: bytes  # the message: `wire` inflated when compressed

    @property
    def body(self) -> dict[str, Any]:
        found: dict[str, Any] = orjson.loads(self.text)
        return found


class RawClient:
    """A minimal RFC 6455 client on asyncio streams (its handshake and masking: tests.rfc6455)."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, extensions: str | None
    ) -> None:
        self.reader, self.writer = reader, writer
        self.extensions = extensions  # Sec-WebSocket-Extensions of the 101, if any
        # What this client sends compressed uses context takeover (each message may refer to
        # the ones before): a client may, and the gateway's reader must follow.
        self._compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
        self.client_id = ""

    @classmethod
    async def connect(cls, port: int, offer: str | None = OFFER) -> RawClient:
        reader, writer, raw = await open_upgraded(port, offer=offer)
        head = raw.decode()
        lines = (line.split(":", 1) for line in head.split("\r\n")[1:] if line)
        headers = {name.strip().lower(): value.strip() for name, value in lines}
        client = cls(reader, writer, headers.get("sec-websocket-extensions"))
        client.client_id = (await client.until("welcome"))["client_id"]
        return client

    async def send(self, body: dict[str, Any], compress: bool = False) -> None:
        payload = orjson.dumps(body)
        if compress:
            payload = self._compressor.compress(payload) + self._compressor.flush(zlib.Z_SYNC_FLUSH)
            payload = payload.removesuffix(TAIL)
        self.writer.write(masked(0x1, payload, compressed=compress))
        await self.writer.drain()

    async def message(self, timeout: float = 5.0) -> Message:
        """The next text message (control frames are skipped)."""
        async with asyncio.timeout(timeout):
            while True:
                first, second = await self.reader.readexactly(2)
                assert not second & 0x80, "server frames are never masked"
                assert first & 0x80, "the gateway never fragments"
                assert not first & 0x30, "RSV2 and RSV3 are never set"
                length = second & 0x7F
                if length == 126:
                    length = int.from_bytes(await self.reader.readexactly(2), "big")
                elif length == 127:
                    length = int.from_bytes(await self.reader.readexactly(8), "big")
                wire = await self.reader.readexactly(length)
                if first & 0x0F != 0x1:
                    assert not first & 0x40, "control frames are never compressed"
                    assert first & 0x0F != 0x8, f"closed: {wire!r}"
                    continue
                if not first & 0x40:
                    return Message(False, wire, wire)
                inflater = zlib.decompressobj(-15)  # a fresh one: each message stands alone
                text = inflater.decompress(wire + TAIL) + inflater.flush()
                return Message(True, wire, text)

    async def until(self, type_: str) -> dict[str, Any]:
        return (await self.until_message(type_)).body

    async def until_message(self, type_: str) -> Message:
        while True:
            message = await self.message()
            if message.body["type"] == type_:
                return message

    async def subscribe(self, game: str, compress: bool = False, **extra: Any) -> dict[str, Any]:
        body = {"type": "subscribe", "subscription_type": "odds_updates",
                "filters": {"game_id": game}, **extra}  # fmt: skip
        await self.send(body, compress=compress)
        confirmed = await self.until("subscription_confirmed")
        assert confirmed["data"]["room"].startswith("odds_updates."), confirmed
        return confirmed

    async def odds(self, n: int) -> list[Message]:
        return [await self.until_message("odds_update") for _ in range(n)]

    def close(self) -> None:
        self.writer.close()


def odds_event(game: str, n: int) -> Any:
    """An odds event whose frame is well over the compression threshold (~600 bytes)."""
    book = ("FanDuel", "DraftKings", "BetMGM")[n % 3]
    return parse_event({"kind": "odds", "sport": "MLB", "game_id": game, "sportsbook": book,
                        "market": "moneyline", "home_price": -120 - n, "away_price": 100 + n,
                        "home_team": "New York Yankees", "away_team": "Boston Red Sox",
                        "seq": n})  # fmt: skip


async def publish(redis: Redis, keys: Keys, game: str, count: int, start: int = 0) -> list[str]:
    ids = await Ingester(redis, keys).publish_many(
        [odds_event(game, n) for n in range(start, start + count)]
    )
    return [i.decode() for i in ids]


async def test_frames_arrive_compressed_once_and_inflate_to_exactly_the_plain_frames(
    settings: Settings, redis_client: Redis, keys: Keys
) -> None:
    async with running_worker(settings), running_gateway(settings) as gw:
        deflate = await RawClient.connect(gw.port)
        plain = await RawClient.connect(gw.port, offer=None)
        # A smaller server window than the shared frames' (no browser asks for one): accepted,
        # but sent plain frames (RSV1 clear is always allowed).
        narrow = await RawClient.connect(gw.port, offer=OFFER + "; server_max_window_bits=10")
        aio = await Client.connect(f"{gw.ws}/ws/v2/connect", compress=15)
        try:
            assert deflate.extensions == ACCEPTED
            assert plain.extensions is None
            assert narrow.extensions == "permessage-deflate; server_max_window_bits=10; " + (
                "server_no_context_takeover"
            )
            assert aio.ws.compress == 15
            # What a client sends compressed is inflated: the subscribe (and a second message
            # that refers back to it, context takeover) are understood.
            await deflate.subscribe("C1", compress=True, snapshot=False)
            await deflate.send({"type": "ping", "id": "same-as-before"}, compress=True)
            pong = await deflate.until_message("pong")
            # A frame under the threshold goes plain, even to a deflate client.
            assert len(pong.text) < settings.compression_min_bytes and not pong.compressed
            # What aiohttp's own writer compresses (`ws.send_*`) stands alone too, so it cannot
            # be misread after our frames, nor ours after it.
            own = orjson.dumps({"type": "from_aiohttp", "text": "same words " * 40})
            for _ in range(2):
                await gw.node.connections[deflate.client_id].ws.send_str(own.decode())
            for _ in range(2):
                mine = await deflate.until_message("from_aiohttp")
                assert mine.compressed and mine.text == own
            await plain.subscribe("C1", snapshot=False)
            await narrow.subscribe("C1", snapshot=False)
            await aio.request({"type": "subscribe", "subscription_type": "odds_updates",
                               "filters": {"game_id": "C1"}, "snapshot": False},
                              "subscription_confirmed")  # fmt: skip
            await wait_until(lambda: workers_synced(redis_client, keys), message="worker synced")

            sent = await publish(redis_client, keys, "C1", 5)
            got_deflate, got_plain, got_narrow = (
                await deflate.odds(5), await plain.odds(5), await narrow.odds(5)
            )  # fmt: skip
            assert [m.body["event_id"] for m in got_plain] == sent
            assert all(m.compressed for m in got_deflate)
            assert not any(m.compressed for m in got_plain + got_narrow)
            # The same messages, byte for byte, and fewer bytes on the wire.
            assert [m.text for m in got_deflate] == [m.text for m in got_plain]
            assert [m.text for m in got_narrow] == [m.text for m in got_plain]
            assert all(len(m.wire) < 0.8 * len(m.text) for m in got_deflate)
            await wait_until(lambda: len(aio.of("odds_update")) == 5, message="aiohttp frames")
            assert aio.of("odds_update") == [m.body for m in got_plain]
        finally:
            for raw in (deflate, plain, narrow):
                raw.close()
            await aio.close()


async def test_with_compression_off_nobody_gets_compressed_frames(
    settings: Settings, redis_client: Redis, keys: Keys
) -> None:
    settings = settings.model_copy(update={"compression": False})
    async with running_worker(settings), running_gateway(settings) as gw:
        deflate = await RawClient.connect(gw.port)
        aio = await Client.connect(f"{gw.ws}/ws/v2/connect", compress=15)
        try:
            assert deflate.extensions is None, "nothing negotiated"
            assert aio.ws.compress == 0
            await deflate.subscribe("C2")  # with a snapshot
            snapshot = await deflate.until_message("snapshot")
            await aio.request({"type": "subscribe", "subscription_type": "odds_updates",
                               "filters": {"game_id": "C2"}}, "subscription_confirmed")  # fmt: skip
            await wait_until(lambda: workers_synced(redis_client, keys), message="worker synced")
            before = DEFLATE_STATS.compressed
            sent = await publish(redis_client, keys, "C2", 3)
            got = await deflate.odds(3)
            assert [m.body["event_id"] for m in got] == sent
            assert not any(m.compressed for m in [snapshot, *got])
            await wait_until(lambda: len(aio.of("odds_update")) == 3, message="aiohttp frames")
            assert aio.of("odds_update") == [m.body for m in got]
            assert DEFLATE_STATS.compressed == before, "nothing was even compressed"
        finally:
            deflate.close()
            await aio.close()


async def test_members_share_one_compression_per_frame(
    settings: Settings, redis_client: Redis, keys: Keys
) -> None:
    """Five deflate members and two plain ones in one room: each frame is compressed once,
    and every deflate member gets the very same bytes."""
    async with running_worker(settings), running_gateway(settings) as gw:
        deflates = [await RawClient.connect(gw.port) for _ in range(5)]
        plains = [await RawClient.connect(gw.port, offer=None) for _ in range(2)]
        try:
            for client in deflates + plains:
                await client.subscribe("C3", snapshot=False)
            await wait_until(lambda: workers_synced(redis_client, keys), message="worker synced")
            before = DEFLATE_STATS.compressed
            sent = await publish(redis_client, keys, "C3", 8)
            got = [await client.odds(8) for client in deflates + plains]
            assert DEFLATE_STATS.compressed - before == len(sent), "one compression per frame"
            first = got[0]
            assert all(m.compressed for m in first)
            for other in got[1:5]:
                assert [m.wire for m in other] == [m.wire for m in first], "the same bytes"
            for plain in got[5:]:
                assert [m.wire for m in plain] == [m.text for m in first]
            assert [m.body["event_id"] for m in first] == sent
        finally:
            for client in deflates + plains:
                client.close()


def _without_timestamp(body: dict[str, Any]) -> dict[str, Any]:
    # A snapshot is made per client, and an empty room's position holds the time it was given.
    return {k: v for k, v in body.items() if k not in ("timestamp", "position")}


async def test_snapshots_and_replays_arrive_compressed_and_correct(
    settings: Settings, redis_client: Redis, keys: Keys
) -> None:
    async with running_worker(settings), running_gateway(settings) as gw:
        early = await publish(redis_client, keys, "C4", 6)  # three books: three latest values

        async def recorded() -> bool:
            return bool(await redis_client.hlen(keys.latest("C4")) == 3)

        await wait_until(recorded, message="latest values recorded")
        deflate = await RawClient.connect(gw.port)
        plain = await RawClient.connect(gw.port, offer=None)
        try:
            confirmed = await deflate.subscribe("C4")
            room = confirmed["data"]["room"]
            snapshot = await deflate.until_message("snapshot")
            await plain.subscribe("C4")
            plain_snapshot = await plain.until_message("snapshot")
            assert snapshot.compressed and not plain_snapshot.compressed
            assert len(snapshot.wire) < len(snapshot.text) / 2
            events = snapshot.body["data"]["events"]
            assert sorted(e["event_id"] for e in events) == sorted(early[3:])  # newest per book
            assert _without_timestamp(snapshot.body) == _without_timestamp(plain_snapshot.body)
            position = snapshot.body["position"]
        finally:
            deflate.close()
            plain.close()

        # Both gone: the room is still recorded (it lingers); five events are missed.
        missed = await publish(redis_client, keys, "C4", 5, start=6)

        async def in_history() -> bool:
            return bool(await redis_client.xlen(keys.history(0, room)) >= 5)

        await wait_until(in_history, message="missed events recorded")
        deflate = await RawClient.connect(gw.port)
        plain = await RawClient.connect(gw.port, offer=None)
        try:
            resumed = await deflate.subscribe("C4", position=position)
            assert resumed["data"]["recovered"] is True and resumed["data"]["replayed"] == 5
            replay = await deflate.odds(5)
            await plain.subscribe("C4", position=position)
            plain_replay = await plain.odds(5)
            assert all(m.compressed for m in replay) and not any(m.compressed for m in plain_replay)
            assert [m.text for m in replay] == [m.text for m in plain_replay], "byte for byte"
            assert [m.body["event_id"] for m in replay] == missed
            assert all(m.body["replay"] is True for m in replay)
        finally:
            deflate.close()
            plain.close()


async def _connected_page(page: Page, port: int) -> list[dict[str, str]]:
    """Connect the page's WebSocketManager; returns the WebSocket handshakes' response headers
    as Chromium saw them (DevTools protocol)."""
    handshakes: list[dict[str, str]] = []
    cdp = await page.context.new_cdp_session(page)
    await cdp.send("Network.enable")
    cdp.on(
        "Network.webSocketHandshakeResponseReceived",
        lambda event: handshakes.append(
            {k.lower(): v for k, v in event["response"]["headers"].items()}
        ),
    )
    await page.goto(f"http://127.0.0.1:{port}/ws/v2/schema")  # any page of the gateway's origin
    config = {"base_url": f"ws://127.0.0.1:{port}", "reconnect_interval": 100, "jitter": 0}
    await page.evaluate(SETUP, [config, None])
    assert await page.evaluate("window.connected") == "ok"
    return handshakes


async def test_chromium_receives_compressed_data_snapshot_and_replay(
    settings: Settings, redis_client: Redis, keys: Keys
) -> None:
    async with live_system(settings, rate=1) as system, chromium() as browser:
        early = await publish(redis_client, keys, "Z1", 3)

        async def recorded() -> bool:
            return bool(await redis_client.hlen(keys.latest("Z1")) == 3)

        await wait_until(recorded, message="latest values recorded")
        page, log = await open_page(browser)
        handshakes = await _connected_page(page, system.port)
        await wait_until(lambda: bool(handshakes), message="the handshake seen by DevTools")
        assert handshakes[0]["sec-websocket-extensions"] == ACCEPTED
        assert system.gateway is not None
        (conn,) = system.gateway.node.connections.values()
        assert conn.deflate_min == settings.compression_min_bytes, "deflate negotiated"

        before = DEFLATE_STATS.compressed
        room = await page.evaluate(RECORD, [{"game_id": "Z1"}, {}])
        snapshots = await snapshots_of(page, 1)
        assert snapshots[0]["room"] == room and sorted(snapshots[0]["events"]) == sorted(early)
        await wait_until(lambda: workers_synced(redis_client, keys), message="worker synced")
        sent = await publish(redis_client, keys, "Z1", 5, start=3)
        got = await got_all(page, sent)
        assert [g["id"] for g in got] == sent and not any(g["replay"] for g in got)

        # Rewind to after the first of the five and cut the connection: the resume replays
        # four frames (compressed, parsed: dropped by event id as duplicates).
        await page.evaluate("(p) => { window.sub._position = p; }", got[0]["position"])
        for conn in list(system.gateway.node.connections.values()):
            conn.transport.abort()
        await until_state(page, "reconnecting")
        await until_state(page, "connected", timeout=15)
        assert handshakes[-1]["sec-websocket-extensions"] == ACCEPTED
        more = await publish(redis_client, keys, "Z1", 1, start=8)
        got = await got_all(page, sent + more)
        assert [g["id"] for g in got] == sent + more
        assert await page.evaluate("window.resumes") == [
            {"subscriptions": 1, "recovered": 1, "resynced": 0, "replayed": 4}
        ]
        assert await page.evaluate("window.sub.duplicates") == 4
        # The snapshot, 5 + 1 live frames, 4 replayed ones (and the control frames over 256 B).
        assert DEFLATE_STATS.compressed - before >= 1 + 6 + 4
        assert log.errors == [], log.errors  # nothing thrown in the page
