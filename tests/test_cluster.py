"""Several gateways and workers on one Redis: exact delivery, faults and cluster views."""

from __future__ import annotations

import asyncio
import random
import signal
import subprocess
from collections import Counter
from typing import Any

import aiohttp
import orjson
import pytest
from redis.asyncio import Redis

from oddstream.embedded import free_port
from oddstream.shared.events import SCHEMA_STAMP, routing_of
from oddstream.shared.ingest import Ingester, parse_event
from oddstream.shared.keys import Keys
from oddstream.shared.registry import Registry
from oddstream.shared.rooms import RoomSpec, parse_room
from oddstream.shared.settings import Settings
from oddstream.shared.streams import EVENT_FIELD, STAMP_FIELD
from oddstream.workers.consumer import Worker
from tests.harness import (
    ADMIN,
    Client,
    held_rooms,
    lingers,
    process_env,
    running_gateway,
    running_worker,
    spawn_cli,
    wait_until,
    workers_synced,
)

SPORTS = ["MLB", "NBA", "NFL", "NHL"]
BOOKS = ["DraftKings", "FanDuel", "BetMGM"]
GAMES = [f"G{i}" for i in range(6)]
PLAYERS = ["Aaron Judge", "LeBron James", "Connor McDavid"]


def random_event(rng: random.Random, n: int) -> dict[str, Any]:
    sport, game = rng.choice(SPORTS), rng.choice(GAMES)
    roll = rng.random()
    if roll < 0.6:
        return {"kind": "odds", "sport": sport, "game_id": game, "sportsbook": rng.choice(BOOKS),
                "market": rng.choice(["moneyline", "spread", "total"]), "n": n}  # fmt: skip
    if roll < 0.8:
        return {"kind": "predictions", "sport": sport, "game_id": game,
                "player": rng.choice(PLAYERS), "n": n}  # fmt: skip
    if roll < 0.9:
        profit = round(rng.uniform(0.1, 5), 2)
        return {"kind": "arbitrage", "sport": sport, "game_id": game, "n": n,
                "profit_pct": profit, "sportsbooks": rng.sample(BOOKS, 2)}  # fmt: skip
    return {"kind": "analytics", "sport": sport, "game_id": game, "n": n}


SUBSCRIPTIONS: list[tuple[str, dict[str, Any]]] = [
    ("odds_updates", {"sport": "MLB"}),
    ("odds_updates", {"sport": ["nba", "NFL"], "sportsbook": "FanDuel"}),
    ("odds_updates", {"game_id": ["G1", "G2"]}),
    ("predictions", {"player": "Aaron Judge"}),
    ("arbitrage", {"min_profit": 2.5}),
    ("arbitrage", {"sport": "NHL", "sportsbook": "BetMGM"}),
    ("mlb", {}),
    ("nba", {"game_id": "G3"}),
    ("analytics", {}),
    ("odds_updates", {}),
]


def expected_ids(specs: list[RoomSpec], events: list[tuple[bytes, dict[str, Any]]]) -> list[str]:
    """Brute force, independent of the worker's index: every event matching any room."""
    return [
        eid.decode()
        for eid, body in events
        if any(spec.matches(routing_of(parse_event(body))) for spec in specs)
    ]


async def test_two_gateways_two_workers_exact_delivery(
    settings: Settings, redis_client: Redis, keys: Keys
) -> None:
    """Every client gets exactly the events matching its rooms: none missing, none twice."""
    rng = random.Random(42)
    async with (
        running_gateway(settings) as gw_a,
        running_gateway(settings) as gw_b,
        running_worker(settings, "worker-a") as worker_a,
        running_worker(settings, "worker-b") as worker_b,
    ):
        clients: list[tuple[Client, list[RoomSpec]]] = []
        try:
            for i in range(12):
                gw = gw_a if i % 2 == 0 else gw_b
                c = await Client.connect(f"{gw.ws}/ws/v2/connect")
                picks = rng.sample(SUBSCRIPTIONS, rng.randint(1, 3))
                specs = []
                for type_, filters in picks:
                    await c.subscribe(type_, **filters)
                    specs.append(parse_room(type_, filters))
                clients.append((c, specs))
            await wait_until(lambda: workers_synced(redis_client, keys, 2), message="index")

            bodies = [random_event(rng, n) for n in range(1200)]
            ids = await Ingester(redis_client, keys).publish_many([parse_event(b) for b in bodies])
            events = list(zip(ids, bodies, strict=True))
            want = {c.client_id: expected_ids(specs, events) for c, specs in clients}
            assert sum(map(len, want.values())) > 1000

            def delivered(c: Client) -> list[str]:
                return [f["event_id"] for f in c.frames if "event_id" in f]

            await wait_until(
                lambda: all(len(delivered(c)) >= len(want[c.client_id]) for c, _ in clients),
                timeout=20,
                message="all deliveries",
            )
            await wait_until(lambda: _drained(redis_client, keys), message="all delivered")
            await asyncio.sleep(0.3)  # anything extra or duplicated would arrive by now
            for c, _ in clients:
                got = delivered(c)
                assert Counter(got) == Counter(want[c.client_id]), c.client_id
            # Both workers took part.
            assert worker_a.stats.processed > 0 and worker_b.stats.processed > 0
            assert worker_a.stats.processed + worker_b.stats.processed == len(bodies)
        finally:
            for c, _ in clients:
                await c.close()


async def _drained(redis: Redis, keys: Keys) -> bool:
    """Every ingest partition is delivered up to its last entry."""
    for partition in range(keys.partitions):
        last = await redis.xrevrange(keys.ingest(partition), count=1)
        if last and await redis.get(keys.cursor(partition)) != last[0][0]:
            return False
    return True


async def test_management_views_match_known_scenario(
    settings: Settings, redis_client: Redis, keys: Keys
) -> None:
    """Three clients in two rooms on two gateways, and the endpoints say exactly that."""
    async with (
        running_gateway(settings) as gw_a,
        running_gateway(settings) as gw_b,
        running_worker(settings),
    ):
        c1 = await Client.connect(f"{gw_a.ws}/ws/v2/connect")
        c2 = await Client.connect(f"{gw_b.ws}/ws/v2/connect")
        c3 = await Client.connect(f"{gw_b.ws}/ws/v2/connect")
        try:
            room_mlb = (await c1.subscribe("odds_updates", sport="MLB"))["data"]["room"]
            assert (await c2.subscribe("odds_updates", sport="mlb"))["data"]["room"] == room_mlb
            room_arb = (await c3.subscribe("arbitrage", min_profit=2))["data"]["room"]
            await c3.request({"type": "ping"}, "pong")

            async def view(path: str) -> dict[str, Any]:
                async with (
                    aiohttp.ClientSession(headers=ADMIN) as s,
                    s.get(f"{gw_a.http}{path}") as resp,
                ):
                    assert resp.status == 200
                    body: dict[str, Any] = await resp.json()
                    return body

            rooms = await view("/ws/v2/rooms")
            assert rooms["count"] == 2
            by_id = {r["room"]: r for r in rooms["rooms"]}
            assert by_id[room_mlb]["gateways"] == {gw_a.node.gateway_id: 1, gw_b.node.gateway_id: 1}
            assert by_id[room_mlb]["subscribers"] == 2
            assert by_id[room_mlb]["filters"] == {"sport": ["MLB"]}
            assert by_id[room_arb]["gateways"] == {gw_b.node.gateway_id: 1}
            assert by_id[room_arb]["filters"] == {"min_profit": 2.0}
            assert by_id[room_mlb]["lingering_until_ms"] is None  # held, not lingering

            async def connections_settled() -> bool:
                page = await view("/ws/v2/connections")
                subs = sum(len(c["subscriptions"]) for c in page["connections"])
                return page["total"] == 3 and subs == 3

            await wait_until(connections_settled, message="connection records")
            page = await view("/ws/v2/connections?limit=2")
            assert page["total"] == 3 and len(page["connections"]) == 2
            assert page["next_offset"] == 2
            rest = await view("/ws/v2/connections?limit=2&offset=2")
            assert len(rest["connections"]) == 1 and rest["next_offset"] is None
            records = {c["client_id"]: c for c in page["connections"] + rest["connections"]}
            assert records.keys() == {c1.client_id, c2.client_id, c3.client_id}
            assert records[c1.client_id]["gateway"] == gw_a.node.gateway_id
            assert records[c3.client_id]["gateway"] == gw_b.node.gateway_id
            assert records[c3.client_id]["subscriptions"][0]["room"] == room_arb
            assert records[c3.client_id]["messages_sent"] >= 3  # welcome, confirmed, pong

            bad_page = f"{gw_b.http}/ws/v2/connections?limit=-1"
            async with aiohttp.ClientSession(headers=ADMIN) as s, s.get(bad_page) as resp:
                assert resp.status == 400
                assert (await resp.json())["code"] == "invalid_request"

            status = await view("/ws/v2/status")
            assert status["gateways"]["alive"] == 2
            assert status["workers"]["alive"] == 1
            assert status["rooms"] == 2
            assert status["redis"]["ok"] is True
            assert set(status["streams"]) == {str(p) for p in range(keys.partitions)}

            await c2.close()
            await wait_until(
                lambda: _room_counts(redis_client, keys, room_mlb, {gw_a.node.gateway_id: 1}),
                message="count after leave",
            )
        finally:
            for c in (c1, c2, c3):
                await c.close()


async def _room_counts(redis: Redis, keys: Keys, room: str, expected: dict[str, int]) -> bool:
    holders = {m.decode() for m in await redis.smembers(keys.room_holders(room))}
    return holders == set(expected)


async def test_malformed_entries_are_dead_lettered_while_good_ones_flow(
    settings: Settings, redis_client: Redis, keys: Keys
) -> None:
    async with running_gateway(settings) as gw, running_worker(settings) as worker:
        c = await Client.connect(f"{gw.ws}/ws/v2/connect")
        try:
            await c.subscribe("odds_updates")
            await wait_until(lambda: workers_synced(redis_client, keys), message="index")
            stream = keys.ingest(0)
            good = (
                b'{"kind":"odds","sport":"NHL","game_id":"7",'
                b'"sportsbook":"Caesars","market":"total"}'
            )
            no_game = b'{"kind":"odds","sport":"NHL","sportsbook":"Caesars","market":"total"}'
            stamp = SCHEMA_STAMP
            sent = [
                (await redis_client.xadd(stream, {EVENT_FIELD: good}), True),
                (await redis_client.xadd(stream, {EVENT_FIELD: b"{not json"}), False),
                (await redis_client.xadd(stream, {EVENT_FIELD: b'{"kind":"odds"}'}), False),
                (await redis_client.xadd(stream, {b"other": b"field"}), False),
                (await redis_client.xadd(stream, {EVENT_FIELD: b'"a string"'}), False),
                # Stamped as if our Ingester wrote it, yet not an event: validated after all.
                (await redis_client.xadd(stream, {EVENT_FIELD: b"[1]", STAMP_FIELD: stamp}), False),
                # Stamped by another schema version: validated, not trusted (no game_id).
                (
                    await redis_client.xadd(stream, {EVENT_FIELD: no_game, STAMP_FIELD: b"0.x"}),
                    False,
                ),
                (await redis_client.xadd(stream, {EVENT_FIELD: good}), True),
            ]
            await wait_until(lambda: len(c.of("odds_update")) == 2, message="good events")
            assert [f["event_id"] for f in c.of("odds_update")] == [
                f"0:{i.decode()}" for i, ok in sent if ok
            ]
            await wait_until(lambda: _drained(redis_client, keys), message="all delivered")
            letters = await redis_client.xrange(keys.deadletter(0))
            assert [f[b"id"] for _, f in letters] == [i for i, ok in sent if not ok]
            reasons = [f[b"reason"].decode() for _, f in letters]
            assert "JSON" in reasons[0] or "json" in reasons[0]
            assert "game_id" in reasons[1]
            assert "no 'e' field" in reasons[2]
            assert "game_id" in reasons[5]
            assert all(f[b"stream"] == stream.encode() for _, f in letters)
            assert worker.stats.deadlettered == 6
        finally:
            await c.close()


async def test_trim_never_removes_undelivered_entries(
    settings: Settings, redis_client: Redis, keys: Keys
) -> None:
    """Retention 0 trims delivered entries, but never one past the partition's cursor."""
    trimming = settings.model_copy(update={"stream_retention": 0.0})
    stream = keys.ingest(0)
    worker = Worker(trimming, redis_client, worker_id="trimmer")
    worker.leases.owned.add(0)  # a worker trims the partitions it owns
    ids = [await redis_client.xadd(stream, {EVENT_FIELD: b"{}"}) for _ in range(1000)]
    await worker._trim()  # no cursor yet: nothing is delivered, nothing may go
    assert await redis_client.xlen(stream) == 1000
    await redis_client.set(keys.cursor(0), ids[299])  # 0..299 delivered, 300.. not yet
    await worker._trim()
    remaining = [eid for eid, _ in await redis_client.xrange(stream)]
    assert set(ids[300:]) <= set(remaining), "an undelivered entry was trimmed"
    assert len(remaining) < 1000, "nothing was trimmed"
    await redis_client.set(keys.cursor(0), ids[599])
    await worker._trim()
    remaining = [eid for eid, _ in await redis_client.xrange(stream)]
    assert set(ids[600:]) <= set(remaining)
    assert len(remaining) < 700


# --- real processes ------------------------------------------------------------------------------


async def _undelivered(redis: Redis, keys: Keys) -> int:
    """Entries past the cursors: read or not, nothing of them reached an inbox yet."""
    total = 0
    for partition in range(keys.partitions):
        cursor: Any = await redis.get(keys.cursor(partition))
        after = b"(" + cursor if cursor else b"-"
        total += len(await redis.xrange(keys.ingest(partition), after, "+"))
    return total


@pytest.mark.slow
async def test_worker_sigkilled_mid_stream_loses_nothing(
    settings: Settings,
    redis_client: Redis,
    keys: Keys,
    processes: list[subprocess.Popen[bytes]],
) -> None:
    """A worker SIGKILLed mid-stream: the next owner of its partitions delivers everything
    past their cursors (what the victim read but did not commit included), each once."""
    env = process_env(settings, ODDSTREAM_WORKER_BATCH="500")
    async with running_gateway(settings) as gw:
        c = await Client.connect(f"{gw.ws}/ws/v2/connect")
        try:
            await c.subscribe("odds_updates", sport="MLB")
            victim = spawn_cli(processes, env, "worker", "--id", "victim")
            await wait_until(lambda: workers_synced(redis_client, keys, 1), message="victim up")
            sent: list[bytes] = []
            ingester = Ingester(redis_client, keys)
            pending_at_kill = 0
            for attempt in range(40):
                batch = [
                    parse_event({"kind": "odds", "sport": "MLB", "game_id": f"G{attempt}-{i}",
                                 "sportsbook": "FanDuel", "market": "moneyline"})
                    for i in range(400)
                ]  # fmt: skip
                sent.extend(await ingester.publish_many(batch))
                await asyncio.sleep(0.002 * (attempt % 5))
                if await _undelivered(redis_client, keys) and attempt >= 3:
                    victim.send_signal(signal.SIGKILL)
                    victim.wait()
                    pending_at_kill = await _undelivered(redis_client, keys)
                    if pending_at_kill:
                        break
            assert victim.poll() is not None, "never caught the worker mid-stream"
            assert pending_at_kill > 0
            # The survivor starts after the kill and must deliver what the victim left.
            spawn_cli(processes, env, "worker", "--id", "survivor")
            await wait_until(
                lambda: len({f["event_id"] for f in c.of("odds_update")}) >= len(sent),
                timeout=30,
                message=f"{len(sent)} deliveries",
            )
            await wait_until(lambda: _drained(redis_client, keys), message="all delivered")
            got = [f["event_id"] for f in c.of("odds_update")]
            assert Counter(got) == Counter(i.decode() for i in sent)
            assert await _undelivered(redis_client, keys) == 0
        finally:
            await c.close()


@pytest.mark.slow
async def test_killed_gateway_leaves_registry_and_is_not_sent_to(
    settings: Settings,
    redis_client: Redis,
    keys: Keys,
    processes: list[subprocess.Popen[bytes]],
) -> None:
    port = free_port()
    env = process_env(settings, ODDSTREAM_PORT=str(port))
    doomed = spawn_cli(processes, env, "gateway")
    async with running_gateway(settings) as survivor, running_worker(settings) as worker:
        url = f"ws://127.0.0.1:{port}/ws/v2/connect"

        async def doomed_up() -> bool:
            try:
                async with aiohttp.ClientSession() as s, s.get(url.replace("ws:", "http:").replace(
                    "/ws/v2/connect", "/readyz")) as r:  # fmt: skip
                    return r.status == 200
            except aiohttp.ClientError:
                return False

        await wait_until(doomed_up, message="gateway process up")
        lost = await Client.connect(url)
        kept = await Client.connect(f"{survivor.ws}/ws/v2/connect")
        try:
            lone_room = (await lost.subscribe("nfl", game_id="G9"))["data"]["room"]
            shared_room = (await lost.subscribe("odds_updates"))["data"]["room"]
            await kept.subscribe("odds_updates")
            await wait_until(lambda: workers_synced(redis_client, keys), message="index")
            doomed_id = await redis_client.zrange(keys.gateways, 0, -1)
            assert len(doomed_id) == 2
            doomed.send_signal(signal.SIGKILL)
            doomed.wait()

            async def reaped() -> bool:
                alive = {g.decode() for g in await redis_client.zrange(keys.gateways, 0, -1)}
                return alive == {survivor.node.gateway_id}

            await wait_until(reaped, timeout=5, message="dead gateway reaped")
            assert lone_room not in await held_rooms(redis_client, keys)
            assert await lingers(redis_client, keys, lone_room)  # recorded for resume a while
            async with (
                aiohttp.ClientSession(headers=ADMIN) as s,
                s.get(f"{survivor.http}/ws/v2/rooms") as resp,
            ):
                listed = {r["room"]: r for r in (await resp.json())["rooms"]}
            assert listed[lone_room]["subscribers"] == 0
            assert listed[lone_room]["lingering_until_ms"] is not None
            holders = await redis_client.smembers(keys.room_holders(shared_room))
            assert holders == {survivor.node.gateway_id.encode()}
            await wait_until(lambda: lone_room not in worker.index.rooms, message="index drop")
            assert lone_room in worker.index.lingering
            assert worker.index.rooms[shared_room].gateways == {survivor.node.gateway_id}
            dead_inboxes = [
                k async for k in redis_client.scan_iter(match=f"{keys.prefix}:inbox:*")
                if k.decode() != keys.inbox(0, survivor.node.gateway_id)
            ]  # fmt: skip
            assert dead_inboxes == []
            # Events still flow to the survivor.
            await Ingester(redis_client, keys).publish(
                parse_event({"kind": "odds", "sport": "NFL", "game_id": "G9",
                             "sportsbook": "FanDuel", "market": "spread"})
            )  # fmt: skip
            await kept.next_of("odds_update")
        finally:
            await lost.close()
            await kept.close()


@pytest.mark.slow
async def test_gateway_sigterm_deregisters_and_says_going_away(
    settings: Settings, redis_client: Redis, keys: Keys, processes: list[subprocess.Popen[bytes]]
) -> None:
    port = free_port()
    proc = spawn_cli(processes, process_env(settings, ODDSTREAM_PORT=str(port)), "gateway")
    url = f"ws://127.0.0.1:{port}/ws/v2/connect"

    async def up() -> bool:
        try:
            c = await Client.connect(url)
        except aiohttp.ClientError:
            return False
        clients.append(c)
        return True

    clients: list[Client] = []
    await wait_until(up, message="gateway up")
    c = clients[0]
    try:
        await c.subscribe("odds_updates")
        proc.send_signal(signal.SIGTERM)
        await wait_until(lambda: c.closed_code is not None, message="close frame")
        assert c.closed_code == 1001
        assert await asyncio.to_thread(proc.wait, 10) == 0
        assert await redis_client.zcard(keys.gateways) == 0
        assert await held_rooms(redis_client, keys) == set()
    finally:
        await c.close()


def test_room_spec_json_round_trip_keeps_id() -> None:
    spec = parse_room("arbitrage", {"sport": ["nba", "MLB"], "min_profit": 1})
    again = RoomSpec.from_dict(orjson.loads(orjson.dumps(spec.to_dict())))
    assert again == spec and again.room_id == spec.room_id


async def test_a_dead_workers_beat_and_feed_ack_are_reaped(
    settings: Settings, redis_client: Redis, keys: Keys
) -> None:
    """A worker whose beats stopped is removed with its info and its feed acknowledgement,
    and the reaping goes on to expire lingering rooms (the script once failed half way)."""
    registry = Registry(redis_client, keys, gateway_ttl=0.3, worker_ttl=0.3)
    await registry.beat_worker("gone-worker", {"worker_id": "gone-worker"})
    await registry.ack_feed("gone-worker", b"5-0")
    await registry.beat_worker("live-worker", {"worker_id": "live-worker"})
    await registry.ack_feed("live-worker", b"5-0")
    assert await redis_client.hexists(keys.feed_acks, "gone-worker")
    await asyncio.sleep(0.5)
    await registry.beat_worker("live-worker", {"worker_id": "live-worker"})
    assert await registry.reap_dead() == ["gone-worker"]
    assert not await redis_client.hexists(keys.feed_acks, "gone-worker")
    assert not await redis_client.exists(keys.worker_info("gone-worker"))
    assert await redis_client.hexists(keys.feed_acks, "live-worker")
    assert await redis_client.zscore(keys.workers, "live-worker") is not None
