"""The gateway's periodic work costs what changed, not the number of connections.

Thousands of idle subscribed WebSocket connections (real sockets, a minimal RFC 6455 client
in this process) on one in-process gateway with short intervals; a task that sleeps 1 ms in a
loop measures how late the event loop wakes it over several beats, idle sweeps and ping
intervals. Meanwhile the connection records in Redis must not be rewritten (nothing a listing
shows changed), `/ws/v2/connections` must still show live counters (this gateway's and
another's), a silent client is still closed 4101 after the timeout, and an expiring token
still gets its notice and then 4401. Then the parts of that on their own: user slots that no
beat refreshes, counters of a gateway that does not answer, and subscribes to different rooms
that go to Redis side by side while those to one room stay in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import re
import resource
import statistics
import time
from dataclasses import dataclass, field
from typing import Any, cast

import aiohttp
import orjson
import pytest
from pydantic import SecretStr
from redis.asyncio import Redis

from oddstream.gateway.auth import issue_token
from oddstream.gateway.node import COUNTERS_TIMEOUT
from oddstream.shared.keys import Keys
from oddstream.shared.registry import Registry
from oddstream.shared.settings import Settings
from tests.harness import ADMIN, Client, RunningGateway, running_gateway, wait_until
from tests.rfc6455 import accepted, masked, upgrade_request

#: Idle subscribed connections on the measured gateway. The test process holds both ends of
#: each (two descriptors), under the 20,000 open files a process may have here.
CLIENTS = 4000
ROOMS = 100
#: Seconds of loop-lag measurement: 25 beats, 6 sweeps, 5 ping intervals at the settings below.
WINDOW = 5.0
#: The longest the loop may be busy past a 1 ms sleep, in seconds.
MAX_STALL = 0.005
#: Off the CPU this long past a 1 ms sleep (epoll rounds its timeout up to a millisecond):
#: the machine ran something else.
OFF_CPU = 0.002

SECRET = "periodic-test-secret-0123456789abcdef"
_TYPE = re.compile(rb'"type":"(\w+)"')


class Peer(asyncio.Protocol):
    """One WebSocket connection with no task: frames parsed in `data_received`, the
    gateway's pings answered with a pong (unless `silent`), text frames counted by type."""

    def __init__(self, host: str, path: str, silent: bool = False) -> None:
        self.key, self.request = upgrade_request(host, path)
        self.silent = silent
        self.buf = bytearray()
        self.open = False
        self.transport: asyncio.Transport | None = None
        self.frames = 0  # text frames received
        self.types: dict[bytes, int] = {}
        self.client_id = ""
        self.close_code: int | None = None
        self.closed_at: float | None = None
        loop = asyncio.get_running_loop()
        self.welcomed: asyncio.Future[None] = loop.create_future()
        self.confirmed: asyncio.Future[None] = loop.create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        for fut in (self.welcomed, self.confirmed):
            if not fut.done():
                fut.cancel()

    def send(self, body: dict[str, Any]) -> None:
        assert self.transport is not None
        self.transport.write(masked(0x1, orjson.dumps(body)))

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        if not self.open:
            head = buf.find(b"\r\n\r\n")
            if head < 0:
                return
            if not accepted(buf[:head], self.key):
                raise AssertionError(f"upgrade refused: {bytes(buf[:300])!r}")
            self.open = True
            del buf[: head + 4]
        pos, size = 0, len(buf)
        while size - pos >= 2:
            first, length = buf[pos], buf[pos + 1] & 0x7F
            start = pos + 2
            if length == 126:
                start += 2
                length = int.from_bytes(buf[pos + 2 : start], "big")
            elif length == 127:
                start += 8
                length = int.from_bytes(buf[pos + 2 : start], "big")
            if start + length > size:
                break
            self.frame(first & 0x0F, bytes(buf[start : start + length]))
            pos = start + length
        del buf[:pos]

    def frame(self, opcode: int, payload: bytes) -> None:
        assert self.transport is not None
        if opcode == 0x1:
            self.frames += 1
            found = _TYPE.search(payload)
            kind = found.group(1) if found else b"?"
            self.types[kind] = self.types.get(kind, 0) + 1
            if kind == b"ping" and not self.silent:
                self.transport.write(masked(0x1, b'{"type":"pong"}'))
            elif kind == b"welcome":
                self.client_id = orjson.loads(payload)["client_id"]
                self.welcomed.set_result(None)
            elif kind == b"subscription_confirmed" and not self.confirmed.done():
                self.confirmed.set_result(None)
            elif kind == b"error" and not self.confirmed.done():
                self.confirmed.set_exception(AssertionError(payload.decode()))
        elif opcode == 0x8:
            self.close_code = int.from_bytes(payload[:2], "big")
            self.closed_at = time.monotonic()
            self.transport.write(masked(0x8, payload[:2]))
            self.transport.close()
        elif opcode == 0x9:
            self.transport.write(masked(0xA, payload))

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()


async def connect(gw: RunningGateway, path: str, game: str | None, silent: bool = False) -> Peer:
    loop = asyncio.get_running_loop()
    host = f"127.0.0.1:{gw.port}"
    _, peer = await loop.create_connection(lambda: Peer(host, path, silent), "127.0.0.1", gw.port)
    async with asyncio.timeout(20):
        await peer.welcomed
        if game is not None:
            filters = {"game_id": game}
            peer.send({"type": "subscribe", "subscription_type": "odds_updates",
                       "filters": filters})  # fmt: skip
            await peer.confirmed
    return peer


@dataclass
class LoopLag:
    """How late a 1 ms sleep wakes (`late`), and how much of that the loop's thread spent
    running our code (`busy`): its CPU time, less the time Python's cyclic garbage collector
    ran meanwhile (`collector`, checked on its own: it walks the objects of the process that
    are not frozen, see `shared.collector`). A wake during which the thread was off the
    CPU for more than `OFF_CPU` beyond the sleep (the machine, shared with other processes,
    ran something else: what was queued meanwhile then runs in one go) is counted in
    `disturbed` and left out of `busy`."""

    late: list[float] = field(default_factory=list)
    busy: list[float] = field(default_factory=list)
    collector: list[float] = field(default_factory=list)
    disturbed: int = 0
    _collecting: float = 0.0
    _collected: float = 0.0

    def _gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._collecting = time.thread_time()
        else:
            self._collected += time.thread_time() - self._collecting

    async def run(self, seconds: float) -> None:
        end = time.perf_counter() + seconds
        gc.callbacks.append(self._gc)
        try:
            while True:
                started, cpu, collected = time.perf_counter(), time.thread_time(), self._collected
                if started >= end:
                    return
                await asyncio.sleep(0.001)
                late = time.perf_counter() - started - 0.001
                ran = time.thread_time() - cpu
                in_gc = self._collected - collected
                self.late.append(late)
                if in_gc:
                    self.collector.append(in_gc)
                if late - ran > OFF_CPU:
                    self.disturbed += 1
                else:
                    self.busy.append(max(0.0, min(late, ran) - in_gc))
        finally:
            gc.callbacks.remove(self._gc)

    def summary(self) -> str:
        def ms(values: list[float], q: float) -> str:
            return f"{sorted(values)[int(q * (len(values) - 1))] * 1000:.2f}"

        longest_gc = max(self.collector, default=0.0) * 1000
        return (
            f"{len(self.late)} wakes; late p50 {ms(self.late, 0.5)} p99 {ms(self.late, 0.99)} "
            f"max {max(self.late) * 1000:.2f} ms; busy p99 {ms(self.busy, 0.99)} "
            f"max {max(self.busy) * 1000:.2f} ms; {len(self.collector)} collections, "
            f"longest {longest_gc:.2f} ms; {self.disturbed} wakes disturbed by the machine"
        )


async def listing(gw: RunningGateway, limit: int = 1000, offset: int = 0) -> dict[str, Any]:
    url = f"{gw.http}/ws/v2/connections?limit={limit}&offset={offset}"
    async with aiohttp.ClientSession(headers=ADMIN) as s, s.get(url) as resp:
        assert resp.status == 200
        body: dict[str, Any] = await resp.json()
        return body


async def stored_records(redis: Redis, keys: Keys, gateway_id: str) -> dict[bytes, bytes]:
    raw: Any = await redis.hgetall(keys.gateway_connections(gateway_id))
    return cast(dict[bytes, bytes], raw)


@pytest.mark.slow
async def test_periodic_work_does_not_grow_with_connections(
    settings: Settings, redis_client: Redis, keys: Keys
) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = 2 * CLIENTS + 1000
    if soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, needed), hard))
    quick = settings.model_copy(
        update={
            "heartbeat_interval": 1.0,
            "connection_timeout": 3.0,  # sweeps every 0.75 s; beats every 0.2 s
            "max_connections": CLIENTS + 100,
            "connect_rate_per_ip": 100_000.0,
            "connect_burst_per_ip": 100_000,
            "analytics_enabled": False,
            "jwt_secret": SecretStr(SECRET),
            "jwt_leeway": 0.0,
            "token_expiry_notice": 2.0,
        }
    )
    peers: list[Peer] = []
    async with running_gateway(quick) as gw, running_gateway(quick) as other:
        try:
            gate = asyncio.Semaphore(100)

            async def opened(i: int) -> Peer:
                async with gate:
                    return await connect(gw, "/ws/v2/connect", f"G{i % ROOMS}")

            peers = list(await asyncio.gather(*(opened(i) for i in range(CLIENTS))))
            remote = await connect(other, "/ws/v2/connect", "G0")
            peers.append(remote)
            node = gw.node
            assert len(node.connections) == CLIENTS
            assert len(node.rooms) == ROOMS

            async def recorded() -> bool:
                mine = await stored_records(redis_client, keys, node.gateway_id)
                theirs = await stored_records(redis_client, keys, other.node.gateway_id)
                return len(mine) == CLIENTS and len(theirs) == 1

            await wait_until(recorded, timeout=15, message="every connection recorded")
            await asyncio.sleep(3 * quick.gateway_heartbeat)  # let the beats settle
            before = await stored_records(redis_client, keys, node.gateway_id)
            sent_before = sum(p.frames for p in peers)

            # The clients that must still be closed, started with the measurement.
            silent = await connect(gw, "/ws/v2/connect", None, silent=True)
            peers.append(silent)
            token = issue_token(SECRET, "erin", ttl=4)
            expiring = await connect(gw, f"/ws/v2/connect?token={token}", None)
            peers.append(expiring)
            silent_since = time.monotonic()

            lag = LoopLag()
            await lag.run(WINDOW)
            print(f"\nloop lag with {CLIENTS} idle subscribed connections: {lag.summary()}")

            # Pings went out to every client during the window ...
            pinged = [p.types.get(b"ping", 0) for p in peers[:CLIENTS]]
            assert min(pinged) >= WINDOW / quick.heartbeat_interval - 2, statistics.quantiles(
                pinged
            )
            assert sum(p.frames for p in peers) > sent_before + CLIENTS
            assert not [p for p in peers[:CLIENTS] if p.close_code is not None]
            # ... and no record was rewritten for it: nothing a listing shows changed.
            after = await stored_records(redis_client, keys, node.gateway_id)
            assert {k: v for k, v in after.items() if k in before} == before

            # The silent client was closed for silence after the timeout, not before.
            await wait_until(lambda: silent.close_code is not None, timeout=5, message="4101")
            assert silent.close_code == 4101
            assert silent.closed_at is not None
            assert silent.closed_at - silent_since >= quick.connection_timeout - 0.2
            # The expiring token got its notice, then 4401.
            await wait_until(lambda: expiring.close_code is not None, timeout=8, message="4401")
            assert expiring.types.get(b"token_expiring") == 1
            assert expiring.close_code == 4401

            # The listing's counters are live: this gateway's own and the other gateway's.
            async def closed_forgotten() -> bool:
                return bool((await listing(gw, limit=0))["total"] == CLIENTS + 1)

            await wait_until(closed_forgotten, timeout=5, message="closed records deleted")
            floor = {p.client_id: p.frames for p in peers}
            page = await listing(gw, limit=1000)
            ceiling = {p.client_id: p.frames for p in peers}
            for record in page["connections"]:
                cid = record["client_id"]
                assert floor[cid] <= record["messages_sent"] <= ceiling[cid] + 1, record
                assert record["messages_received"] >= 2  # the subscribe, and pongs
            far = await listing(gw, limit=1, offset=CLIENTS)  # the other gateway's: newest
            record = far["connections"][0]
            assert record["client_id"] == remote.client_id
            assert record["gateway"] == other.node.gateway_id
            assert remote.frames >= 4  # welcome, confirmation, pings
            assert floor[remote.client_id] <= record["messages_sent"] <= remote.frames + 1
            assert record["messages_received"] >= 2

            assert lag.disturbed < len(lag.late) / 10, lag.summary()
            worst = max(lag.busy)
            assert worst < MAX_STALL, f"the loop stalled {worst * 1000:.1f} ms: {lag.summary()}"
            # Nor does the garbage collector walk the connections: the gateway froze what
            # settled after they opened (`shared.collector`). Without it, one collection in
            # the window took 16-19 ms.
            assert node.collector.freezes >= 2  # at start, and after the connections opened
            longest = max(lag.collector, default=0.0)
            assert longest < MAX_STALL, f"a collection took {longest * 1000:.1f} ms"
        finally:
            for peer in peers:
                peer.abort()
            with contextlib.suppress(Exception):
                await asyncio.sleep(0.1)


async def test_user_slots_count_while_their_gateway_lives_without_refresh(
    settings: Settings, redis_client: Redis, keys: Keys
) -> None:
    """A beat writes nothing per connection: a slot is taken once and counts while its gateway
    is registered; a gateway's slots go when it is reaped, or at the user's next connect."""
    capped = settings.model_copy(
        update={"jwt_secret": SecretStr(SECRET), "max_connections_per_user": 1}
    )
    registry = Registry.of(redis_client, keys, capped)
    # A gateway that was never registered (or is gone) holds a slot of erin's: not counted.
    assert await registry.acquire_user_slot("erin", "gw-gone|1", 1)
    async with running_gateway(capped) as gw:
        alice = await Client.connect(f"{gw.ws}/ws/v2/connect?token={issue_token(SECRET, 'alice')}")
        erin = await Client.connect(f"{gw.ws}/ws/v2/connect?token={issue_token(SECRET, 'erin')}")
        try:
            slots = keys.user_connections("alice")
            taken: Any = await redis_client.zrange(slots, 0, -1, withscores=True)
            assert len(taken) == 1
            await asyncio.sleep(4 * capped.gateway_ttl)  # many beats, past any old slot TTL
            assert await redis_client.zrange(slots, 0, -1, withscores=True) == taken
            assert await redis_client.pttl(slots) == -1  # no TTL to refresh
            erins: Any = await redis_client.zrange(keys.user_connections("erin"), 0, -1)
            assert len(erins) == 1 and erins[0].startswith(gw.node.gateway_id.encode())
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await Client.connect(f"{gw.ws}/ws/v2/connect?token={issue_token(SECRET, 'alice')}")
            assert refused.value.status == 429
        finally:
            await alice.close()
            await erin.close()

        async def released() -> bool:
            return bool(await redis_client.zcard(slots) == 0)

        await wait_until(released, timeout=3, message="alice's slot released")

    # A gateway that died holding a slot: freed when it is reaped.
    await registry.register_gateway("gw-crashed", {})
    assert await registry.acquire_user_slot("bob", "gw-crashed|7", 1)
    assert not await registry.acquire_user_slot("bob", "gw-live|8", 1)  # full
    await asyncio.sleep(capped.gateway_ttl + 0.2)
    assert "gw-crashed" in await registry.reap_dead()
    assert await redis_client.zcard(keys.user_connections("bob")) == 0
    assert not await redis_client.exists(keys.gateway_info("gw-crashed") + ":slots")


async def test_counters_of_a_gateway_that_does_not_answer_are_as_recorded(
    settings: Settings, redis_client: Redis, keys: Keys
) -> None:
    """A registered gateway that reads no inbox: its records are listed with the counters of
    their last write once the wait for its answer ends; the live gateway's are live."""
    registry = Registry.of(redis_client, keys, settings)
    async with running_gateway(settings) as gw:
        client = await Client.connect(f"{gw.ws}/ws/v2/connect")
        beating: asyncio.Task[None] | None = None
        try:
            room = (await client.subscribe("nba"))["data"]["room"]
            await client.request({"type": "ping"}, "pong")
            await registry.register_gateway("gw-mute", {})
            mute: dict[str, Any] = {
                "client_id": "mute-1", "user": None, "gateway": "gw-mute",
                "connected_at": "2000-01-01T00:00:00.000Z", "subscriptions": [],
                "messages_sent": 7, "messages_received": 3, "endpoint": "connect",
                "remote": "10.0.0.1",
            }  # fmt: skip
            await registry.beat_gateway("gw-mute", {}, {"mute-1": orjson.dumps(mute)}, [])

            async def beat() -> None:  # alive, so not reaped, but it reads no inbox
                while True:
                    await asyncio.sleep(settings.gateway_heartbeat)
                    await registry.beat_gateway("gw-mute", {}, {}, [])

            beating = asyncio.create_task(beat())

            async def both_listed() -> bool:
                return bool((await listing(gw, limit=0))["total"] == 2)

            await wait_until(both_listed, message="both records")
            started = time.monotonic()
            page = await listing(gw)
            waited = time.monotonic() - started
            by_id = {r["client_id"]: r for r in page["connections"]}
            assert by_id["mute-1"] == mute
            assert waited >= COUNTERS_TIMEOUT * 0.9  # it did wait for the mute gateway
            mine = by_id[client.client_id]
            assert mine["messages_sent"] == len(client.frames)  # welcome, confirmed, pong
            assert mine["messages_received"] == 2
            assert [s["room"] for s in mine["subscriptions"]] == [room]
        finally:
            if beating is not None:
                beating.cancel()
            await client.close()


async def test_subscribes_to_different_rooms_do_not_wait_for_each_other(
    settings: Settings,
) -> None:
    """Joins of different rooms reach Redis side by side; joins and leaves of one room one at
    a time, in order (the room registry's counts end right)."""
    async with running_gateway(settings) as gw:
        node = gw.node
        registry = node.registry
        in_flight: dict[str, int] = {}
        most = {"all": 0, "one_room": 0}
        original_join, original_count = registry.join_room, registry.set_room_count

        async def tracked(room_id: str, call: Any) -> Any:
            in_flight[room_id] = in_flight.get(room_id, 0) + 1
            most["all"] = max(most["all"], sum(in_flight.values()))
            most["one_room"] = max(most["one_room"], in_flight[room_id])
            try:
                return await call
            finally:
                in_flight[room_id] -= 1

        async def join_room(gateway_id: str, spec: Any, count: int) -> bytes | None:
            return cast(
                "bytes | None",
                await tracked(spec.room_id, original_join(gateway_id, spec, count)),
            )

        async def set_room_count(gateway_id: str, room_id: str, count: int) -> None:
            await tracked(room_id, original_count(gateway_id, room_id, count))

        registry.join_room = join_room  # type: ignore[method-assign]
        registry.set_room_count = set_room_count  # type: ignore[method-assign]
        clients = [await Client.connect(f"{gw.ws}/ws/v2/connect") for _ in range(20)]
        try:
            # 20 clients: each in its own game's room, and all in one shared room.
            await asyncio.gather(
                *(c.subscribe("odds_updates", game_id=f"own-{i}") for i, c in enumerate(clients))
            )
            assert most["all"] > 1, "subscribes to different rooms waited for each other"
            confirmed = await asyncio.gather(
                *(c.subscribe("odds_updates", game_id="shared") for c in clients)
            )
            assert most["one_room"] == 1, "changes to one room overlapped"
            shared: str = confirmed[0]["data"]["room"]
            assert {c["data"]["room"] for c in confirmed} == {shared}
            counts: Any = await node.redis.hgetall(node.keys.gateway_rooms(node.gateway_id))
            assert int(counts[shared.encode()]) == 20
            await asyncio.gather(*(c.close() for c in clients[:15]))
            await wait_until(lambda: len(node.rooms.members(shared) or ()) == 5, message="left")
            counts = await node.redis.hgetall(node.keys.gateway_rooms(node.gateway_id))
            assert int(counts[shared.encode()]) == 5
            assert len(node.rooms) == 6  # five own rooms and the shared one
        finally:
            for c in clients:
                await c.close()
