"""Resume, snapshots and offline delivery against real gateways, workers and Redis.

A client keeps, per subscription, the last position it saw (`positions[room]` of data
frames, `position` of confirmations and snapshots) and subscribes with it after a
reconnect: it must get every event it missed, in order, none twice, on any gateway; or
`recovered: false` and a snapshot when that cannot be done in full.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
from collections import defaultdict
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pydantic import SecretStr
from redis.asyncio import Redis
from redis.crc import key_slot

from oddstream.embedded import free_port
from oddstream.gateway.auth import issue_token
from oddstream.shared.ingest import Ingester, parse_event
from oddstream.shared.keys import Keys
from oddstream.shared.settings import Settings
from tests.harness import (
    Client,
    lingers,
    process_env,
    running_gateway,
    running_worker,
    spawn_cli,
    wait_until,
    workers_synced,
)

SECRET = "resume-test-secret-0123456789abcdef"
GAMES = ("R1", "R2", "R3")


def _odds(game: str, seq: int, book: str = "FanDuel", market: str = "moneyline") -> Any:
    return parse_event({"kind": "odds", "sport": "NFL", "game_id": game, "sportsbook": book,
                        "market": market, "seq": seq})  # fmt: skip


@contextlib.asynccontextmanager
async def feed(redis: Redis, keys: Keys, interval: float = 0.01) -> AsyncIterator[list[str]]:
    """Publish NFL odds for three games, numbered per game, until the block ends; yields the
    event ids published so far."""
    sent: list[str] = []
    stop = asyncio.Event()
    ingester = Ingester(redis, keys)

    async def run() -> None:
        seq = 0
        while not stop.is_set():
            seq += 1
            ids = await ingester.publish_many([_odds(g, seq) for g in GAMES])
            sent.extend(i.decode() for i in ids)
            await asyncio.sleep(interval)

    task = asyncio.create_task(run())
    try:
        yield sent
    finally:
        stop.set()
        await task


def data_frames(c: Client) -> list[dict[str, Any]]:
    return [f for f in c.frames if f["type"] == "odds_update"]


def last_position(c: Client, room: str) -> str:
    """What a client keeps: the newest position of the room it has seen."""
    position: str | None = None
    for frame in c.frames:
        if frame["type"] == "subscription_confirmed" and frame["data"]["room"] == room:
            position = str(frame["data"]["position"])
        elif room in (frame.get("positions") or {}):
            position = str(frame["positions"][room])
        elif frame["type"] == "snapshot" and frame["room"] == room:
            position = str(frame["position"])
    assert position is not None
    return position


async def subscribe(c: Client, type_: str, position: str | None = None, **filters: Any) -> Any:
    body: dict[str, Any] = {"type": "subscribe", "subscription_type": type_, "filters": filters}
    if position is not None:
        body["position"] = position
    return await c.request(body, "subscription_confirmed")


async def refused_with_snapshot(ws: str, position: str, seqs: set[int]) -> None:
    """A new client resuming `odds_updates` of NFL from `position` is refused
    (`recovered: false`) and gets a snapshot holding exactly the events numbered `seqs`."""
    c = await Client.connect(f"{ws}/ws/v2/connect")
    try:
        reply = await subscribe(c, "odds_updates", position=position, sport="NFL")
        assert reply["data"]["recovered"] is False, reply
        snapshot = await c.next_of("snapshot")
        assert {e["data"]["seq"] for e in snapshot["data"]["events"]} == seqs
    finally:
        await c.close()


def assert_once_in_order(frames: list[dict[str, Any]], sent: list[str]) -> None:
    ids = [f["event_id"] for f in frames]
    twice = [
        (n, f["event_id"], f.get("replay"), f.get("positions"))
        for n, f in enumerate(frames)
        if ids.count(f["event_id"]) > 1
    ]
    assert not twice, f"arrived twice (index, id, replay, positions): {twice}"
    assert set(ids) == set(sent), f"{len(set(sent) - set(ids))} events missing"
    per_game: dict[str, list[int]] = defaultdict(list)
    for frame in frames:
        per_game[frame["data"]["game_id"]].append(frame["data"]["seq"])
    for game, seqs in per_game.items():
        assert seqs == sorted(seqs), f"{game} out of order"


async def test_a_client_back_after_a_few_seconds_gets_every_missed_event_once_in_order(
    settings: Settings, redis_client: Redis, keys: Keys
) -> None:
    async with running_gateway(settings) as gw, running_worker(settings):
        first = await Client.connect(f"{gw.ws}/ws/v2/connect")
        confirmed = await subscribe(first, "odds_updates", sport="NFL")
        room = confirmed["data"]["room"]
        assert confirmed["data"]["recovered"] is None  # a new subscription
        await first.next_of("snapshot")
        await wait_until(lambda: workers_synced(redis_client, keys), message="index")
        async with feed(redis_client, keys) as sent:
            await wait_until(lambda: len(data_frames(first)) >= 30, message="live frames")
            await first.close()  # this client was the room's only holder: it lingers
            position = last_position(first, room)
            await asyncio.sleep(2.0)  # the feed goes on
            second = await Client.connect(f"{gw.ws}/ws/v2/connect")
            resumed = await subscribe(second, "odds_updates", position=position, sport="NFL")
            assert resumed["data"]["recovered"] is True
            assert resumed["data"]["replayed"] > 50  # two seconds at ~300 events a second
            await asyncio.sleep(0.5)
        await wait_until(
            lambda: len(data_frames(first)) + len(data_frames(second)) >= len(sent),
            message="every event",
        )
        await asyncio.sleep(0.3)  # a duplicate would arrive by now
        again = data_frames(second)
        assert all(f.get("replay") for f in again[: resumed["data"]["replayed"]])
        assert not any(f.get("replay") for f in again[resumed["data"]["replayed"] :])
        assert second.of("snapshot") == []  # recovered: nothing to resync
        assert_once_in_order(data_frames(first) + again, sent)
        await second.close()


@pytest.mark.slow
@pytest.mark.parametrize("how", ["sigkill", "drain"])
async def test_resume_on_another_gateway_when_its_gateway_dies_or_drains(
    how: str,
    settings: Settings,
    redis_client: Redis,
    keys: Keys,
    processes: list[subprocess.Popen[bytes]],
) -> None:
    port = free_port()
    doomed = spawn_cli(processes, process_env(settings, ODDSTREAM_PORT=str(port)), "gateway")
    async with running_gateway(settings) as other, running_worker(settings):
        url = f"ws://127.0.0.1:{port}/ws/v2/connect"
        first: Client | None = None

        async def connected() -> bool:
            nonlocal first
            try:
                first = await Client.connect(url)
            except OSError:
                return False
            return True

        await wait_until(connected, timeout=10, message="the gateway process")
        assert first is not None
        room = (await subscribe(first, "odds_updates", sport="NFL"))["data"]["room"]
        await wait_until(lambda: workers_synced(redis_client, keys), message="index")
        async with feed(redis_client, keys) as sent:
            await wait_until(lambda: len(data_frames(first)) >= 30, message="live frames")
            if how == "sigkill":
                doomed.send_signal(signal.SIGKILL)
            else:
                doomed.send_signal(signal.SIGTERM)  # drain: 1001, reconnect now
            await wait_until(lambda: first.closed_code is not None, message="connection lost")
            if how == "drain":
                assert first.closed_code == 1001
            position = last_position(first, room)
            await asyncio.sleep(1.0)
            second = await Client.connect(f"{other.ws}/ws/v2/connect")
            resumed = await subscribe(second, "odds_updates", position=position, sport="NFL")
            assert resumed["data"]["recovered"] is True
            await asyncio.sleep(0.5)
        await wait_until(
            lambda: len(data_frames(first)) + len(data_frames(second)) >= len(sent),
            message="every event",
        )
        await asyncio.sleep(0.3)
        assert_once_in_order(data_frames(first) + data_frames(second), sent)
        await first.close()
        await second.close()


async def test_a_position_older_than_the_window_is_not_recovered(
    settings: Settings, redis_client: Redis, keys: Keys
) -> None:
    """The window is an age: a client away for longer than `history_seconds` is told
    `recovered: false` (and gets a snapshot) even though few events passed, while one that
    comes back within it recovers them."""
    short = settings.model_copy(update={"history_seconds": 1.0})
    async with running_gateway(short) as gw, running_worker(short):
        c = await Client.connect(f"{gw.ws}/ws/v2/connect")
        room = (await subscribe(c, "odds_updates", sport="NFL"))["data"]["room"]
        await wait_until(lambda: workers_synced(redis_client, keys), message="index")
        ingester = Ingester(redis_client, keys)
        await ingester.publish_many([_odds("A1", 1)])
        await c.next_of("odds_update")
        position = last_position(c, room)
        await c.close()
        await ingester.publish_many([_odds("A1", 2)])
        quick = await Client.connect(f"{gw.ws}/ws/v2/connect")
        reply = await subscribe(quick, "odds_updates", position=position, sport="NFL")
        assert reply["data"]["recovered"] is True, reply
        await wait_until(lambda: len(data_frames(quick)) == 1, message="the missed event")
        assert data_frames(quick)[0]["data"]["seq"] == 2
        await quick.close()
        # The room lingers (and is recorded) for the window, then every entry is too old.
        await asyncio.sleep(1.6)
        await ingester.publish_many([_odds("A1", 3)])

        async def trimmed() -> bool:
            return await redis_client.xlen(keys.history(0, room)) <= 1

        await wait_until(trimmed, message="history trimmed by age")
        late = await Client.connect(f"{gw.ws}/ws/v2/connect")
        reply = await subscribe(late, "odds_updates", position=position, sport="NFL")
        assert reply["data"]["recovered"] is False, reply
        snapshot = await late.next_of("snapshot")
        assert [e["data"]["seq"] for e in snapshot["data"]["events"]] == [3]
        await late.close()


@contextlib.asynccontextmanager
async def unbounded_stream_nodes(redis: Redis) -> AsyncIterator[None]:
    """Streams appended to meanwhile grow one node without bound (Redis's node limits set
    to none), restored after the block."""
    names = ("stream-node-max-entries", "stream-node-max-bytes")
    before = {name: (await redis.config_get(name))[name] for name in names}
    for name in names:
        await redis.config_set(name, 0)
    try:
        yield
    finally:
        for name, value in before.items():
            await redis.config_set(name, value)


async def test_the_window_decides_not_the_trims_slack(
    settings: Settings, redis_client: Redis, keys: Keys
) -> None:
    """The age trim is approximate (`MINID ~` drops only whole stream nodes, of at most 100
    entries or 4 kB by default), so a missed event older than the window may still be
    stored: the window decides, and the client is told `recovered: false` with a
    snapshot."""
    short = settings.model_copy(update={"history_seconds": 1.0})
    async with (
        unbounded_stream_nodes(redis_client),  # the trim can then drop nothing: all slack
        running_gateway(short) as gw,
        running_worker(short),
    ):
        holder = await Client.connect(f"{gw.ws}/ws/v2/connect")
        room = (await subscribe(holder, "odds_updates", sport="NFL"))["data"]["room"]
        await wait_until(lambda: workers_synced(redis_client, keys), message="index")
        async with feed(redis_client, keys, interval=0.05):
            await wait_until(lambda: len(data_frames(holder)) >= 3, message="flowing")
            away = last_position(holder, room)
            await asyncio.sleep(1.3)  # longer than the window
            for shard, part in enumerate(away.split(",")):  # one part per shard
                own = part.rsplit(":", 1)[1]
                if not own.startswith("0-"):  # it names an entry: the trim left it
                    stored = await redis_client.xrange(keys.history(shard, room), own, own)
                    assert stored, f"{part} still stored"
            late = await Client.connect(f"{gw.ws}/ws/v2/connect")
            reply = await subscribe(late, "odds_updates", position=away, sport="NFL")
        assert reply["data"]["recovered"] is False, reply
        snapshot = await late.next_of("snapshot")
        assert {e["data"]["game_id"] for e in snapshot["data"]["events"]} == set(GAMES)
        await late.close()
        await holder.close()


async def test_out_of_the_window_or_after_data_loss_is_not_recovered_and_gets_a_snapshot(
    settings: Settings, redis_client: Redis, keys: Keys
) -> None:
    small = settings.model_copy(update={"history_size": 10})
    async with running_gateway(small) as gw, running_worker(small):
        c = await Client.connect(f"{gw.ws}/ws/v2/connect")
        room = (await subscribe(c, "odds_updates", sport="NFL"))["data"]["room"]
        await wait_until(lambda: workers_synced(redis_client, keys), message="index")
        ingester = Ingester(redis_client, keys)
        await ingester.publish_many([_odds("R1", 1)])
        await c.next_of("odds_update")
        position = last_position(c, room)
        await c.close()
        # More than the history keeps (the approximate trim keeps at most a few hundred).
        for seq in range(2, 800, 50):
            await ingester.publish_many(
                [_odds("R1", s, market="total") for s in range(seq, seq + 50)]
            )
        await ingester.publish_many([_odds("R2", 1, book="Caesars")])

        async def published_all() -> bool:
            return await redis_client.hlen(keys.latest("R2")) == 1

        await wait_until(published_all, message="worker caught up")
        again = await Client.connect(f"{gw.ws}/ws/v2/connect")
        reply = await subscribe(again, "odds_updates", position=position, sport="NFL")
        assert reply["data"]["recovered"] is False
        assert reply["data"]["replayed"] == 0
        snapshot = await again.next_of("snapshot")
        assert snapshot["room"] == room and snapshot["position"] == reply["data"]["position"]
        latest = {(e["data"]["game_id"], e["data"]["sportsbook"], e["data"]["market"]):
                  e["data"]["seq"] for e in snapshot["data"]["events"]}  # fmt: skip
        assert latest == {
            ("R1", "FanDuel", "moneyline"): 1,
            ("R1", "FanDuel", "total"): 801,  # the newest of that key, not an older one
            ("R2", "Caesars", "moneyline"): 1,
        }
        # The data set was lost (a Redis restart without persistence makes a new epoch).
        fresh = last_position(again, room)
        await again.close()
        await redis_client.set(keys.epoch(0), "0123456789ab")
        third = await Client.connect(f"{gw.ws}/ws/v2/connect")
        reply = await subscribe(third, "odds_updates", position=fresh, sport="NFL")
        assert reply["data"]["recovered"] is False
        assert reply["data"]["position"].startswith("0123456789ab:")
        await third.next_of("snapshot")
        await third.close()


async def test_a_new_odds_subscriber_gets_the_snapshot_before_live_updates(
    settings: Settings, redis_client: Redis, keys: Keys
) -> None:
    async with running_gateway(settings) as gw, running_worker(settings):
        warm = await Client.connect(f"{gw.ws}/ws/v2/connect")
        await subscribe(warm, "nfl")  # any room: workers record latest values regardless
        await wait_until(lambda: workers_synced(redis_client, keys), message="index")
        ingester = Ingester(redis_client, keys)
        for seq in range(1, 4):
            await ingester.publish_many(
                [_odds(g, seq, book=b) for g in ("S1", "S2") for b in ("FanDuel", "BetMGM")]
            )
        await ingester.publish_many([parse_event({"kind": "odds", "sport": "NBA", "game_id": "B1",
                                     "sportsbook": "FanDuel", "market": "total"})])  # fmt: skip

        async def recorded() -> bool:
            return await redis_client.hlen(keys.latest("B1")) == 1

        await wait_until(recorded, message="latest values")
        async with feed(redis_client, keys, interval=0.005):
            c = await Client.connect(f"{gw.ws}/ws/v2/connect")
            await subscribe(c, "odds_updates", sport="NFL")
            snapshot = await c.next_of("snapshot")
            await c.next_of("odds_update")
        types = [f["type"] for f in c.frames]
        assert types.index("snapshot") < types.index("odds_update")  # snapshot first
        values = {(e["data"]["game_id"], e["data"]["sportsbook"]): e["data"]["seq"]
                  for e in snapshot["data"]["events"]}  # fmt: skip
        assert {k: v for k, v in values.items() if k[0] in ("S1", "S2")} == {
            (g, b): 3 for g in ("S1", "S2") for b in ("FanDuel", "BetMGM")
        }
        assert all(e["data"]["sport"] == "NFL" for e in snapshot["data"]["events"])  # filtered
        assert all(e["type"] == "odds_update" and e["event_id"] for e in snapshot["data"]["events"])
        # Live updates after the snapshot never go back in time for a key.
        seen: dict[tuple[str, str, str], int] = {}
        for e in snapshot["data"]["events"]:
            seen[(e["data"]["game_id"], e["data"]["sportsbook"], e["data"]["market"])] = e["data"][
                "seq"
            ]
        for f in data_frames(c):
            key = (f["data"]["game_id"], f["data"]["sportsbook"], f["data"]["market"])
            assert f["data"]["seq"] > seen.get(key, 0), f"{key} went back"
            seen[key] = f["data"]["seq"]
        no_snapshot = await Client.connect(f"{gw.ws}/ws/v2/connect")
        await no_snapshot.request(
            {"type": "subscribe", "subscription_type": "odds_updates", "snapshot": False},
            "subscription_confirmed",
        )
        await asyncio.sleep(0.2)
        assert no_snapshot.of("snapshot") == []
        for client in (warm, c, no_snapshot):
            await client.close()


async def test_a_portfolio_user_away_longer_than_the_live_window_gets_what_they_missed_once(
    settings: Settings, redis_client: Redis, keys: Keys
) -> None:
    short = settings.model_copy(
        update={
            "history_seconds": 0.5,
            "offline_history_seconds": 60.0,
            "jwt_secret": SecretStr(SECRET),
        }
    )
    token = issue_token(SECRET, "alice")
    headers = {"Authorization": f"Bearer {token}"}
    async with running_gateway(short) as gw, running_worker(short):
        c = await Client.connect(f"{gw.ws}/ws/v2/connect", headers=headers)
        room = (await subscribe(c, "portfolio"))["data"]["room"]
        position = last_position(c, room)
        await c.close()
        ingester = Ingester(redis_client, keys)
        for n in range(3):
            await ingester.publish(parse_event({"kind": "portfolio", "user": "alice", "n": n}))
        await ingester.publish(parse_event({"kind": "portfolio", "user": "bob", "n": 99}))
        await asyncio.sleep(2.0)  # past the live window: the room expired from the registry
        assert await redis_client.hexists(keys.rooms, room) == 0
        back = await Client.connect(f"{gw.ws}/ws/v2/connect", headers=headers)
        reply = await subscribe(back, "portfolio", position=position)
        assert reply["data"]["recovered"] is True
        assert reply["data"]["replayed"] == 3
        await wait_until(lambda: len(back.of("portfolio_update")) == 3, message="missed updates")
        assert [f["data"]["n"] for f in back.of("portfolio_update")] == [0, 1, 2]
        newest = last_position(back, room)
        await back.close()
        # Coming back with the newest position gives nothing twice.
        again = await Client.connect(f"{gw.ws}/ws/v2/connect", headers=headers)
        reply = await subscribe(again, "portfolio", position=newest)
        assert reply["data"]["recovered"] is True and reply["data"]["replayed"] == 0
        await asyncio.sleep(0.2)
        assert again.of("portfolio_update") == []
        await again.close()


async def test_bad_positions_get_an_error_or_a_resync_never_another_rooms_data(
    settings: Settings, redis_client: Redis, keys: Keys
) -> None:
    capped = settings.model_copy(update={"max_replay": 5})
    async with running_gateway(capped) as gw, running_worker(capped):
        c = await Client.connect(f"{gw.ws}/ws/v2/connect")
        nfl = (await subscribe(c, "odds_updates", sport="NFL"))["data"]["room"]
        nba = (await subscribe(c, "odds_updates", sport="NBA"))["data"]["room"]
        await wait_until(lambda: workers_synced(redis_client, keys), message="index")
        ingester = Ingester(redis_client, keys)
        await ingester.publish_many([_odds("R1", 1)])
        await c.next_of("odds_update")
        nfl_position = last_position(c, nfl)
        for bad in ("", "garbage", "x" * 150, "zz:yy:1-0", f"{nfl_position}{'0' * 25}"):
            reply = await c.request(
                {"type": "subscribe", "subscription_type": "nhl", "position": bad, "id": bad},
                "subscription_confirmed",
            )
            assert reply["type"] == "error", bad
            assert reply["code"] in ("invalid_position", "invalid_message"), reply
        status = await c.request({"type": "status"}, "status")
        assert {s["room"] for s in status["data"]["subscriptions"]} == {nfl, nba}

        # The part of the shard that recorded R1's event (one part per shard).
        shard = keys.game_shard("R1")
        parts = nfl_position.split(",")
        epoch, _tag, entry = parts[shard].split(":")
        ms, seq = entry.split("-")

        def with_part(part: str) -> str:  # the NBA room's position, one part changed
            nba_parts = [p.replace(f":{nfl[-8:]}:", f":{nba[-8:]}:") for p in parts]
            return ",".join([*nba_parts[:shard], part, *nba_parts[shard + 1 :]])

        cases = {
            "another room's": nfl_position,  # used for the NBA room
            "a future": with_part(f"{epoch}:{nba[-8:]}:{int(ms) + 10_000_000}-0"),
            "a forged epoch": with_part(f"abcdef:{nba[-8:]}:{ms}-{seq}"),
        }
        fresh = await Client.connect(f"{gw.ws}/ws/v2/connect")
        for what, position in cases.items():
            reply = await subscribe(fresh, "odds_updates", position=position, sport="NBA")
            assert reply["data"]["recovered"] is False, what
            await fresh.request({"type": "unsubscribe", "room": nba, "id": what}, "unsubscribed")
        assert all(f["data"]["sport"] == "NBA" for f in data_frames(fresh))
        # Further behind than `max_replay` frames: a resync, not a partial replay.
        await c.close()
        await ingester.publish_many([_odds("R1", s) for s in range(2, 12)])

        async def all_in() -> bool:
            entries = await redis_client.xlen(keys.history(shard, nfl))
            return entries >= 11

        await wait_until(all_in, message="history")
        reply = await subscribe(fresh, "odds_updates", position=nfl_position, sport="NFL")
        assert reply["data"]["recovered"] is False and reply["data"]["replayed"] == 0
        await fresh.next_of("snapshot")
        await fresh.close()


async def test_catch_up_waits_until_every_live_worker_routes_the_joined_room(
    settings: Settings, redis_client: Redis, keys: Keys
) -> None:
    """Found in review: a worker learns of a join from the room feed a moment later, so an
    event committed after a catch-up read the history but before the worker's index had the
    join was neither replayed nor delivered. The gateway now waits for every live worker's
    acknowledgement of the join before it reads (`Registry.wait_applied`)."""
    async with running_gateway(settings) as gw, running_worker(settings, "w-live") as worker:
        registry = gw.node.registry
        c = await Client.connect(f"{gw.ws}/ws/v2/connect")
        await subscribe(c, "odds_updates", sport="NFL")
        acked = await redis_client.hget(keys.feed_acks, "w-live")
        assert acked is not None and acked == worker.feed_position  # the join was applied
        # A worker that can commit (it holds a lease) and has not applied the feed holds a
        # catch-up back...
        await redis_client.set(keys.lease(0), "w-behind", px=60_000)
        await redis_client.hset(keys.feed_acks, "w-behind", b"0-1")
        assert not await registry.wait_applied(acked, within=0.2)
        # ...until it acknowledges, or (stalled) its lease lapses and it can commit no more.
        await redis_client.hset(keys.feed_acks, "w-behind", acked)
        assert await registry.wait_applied(acked, within=0.2)
        await redis_client.hset(keys.feed_acks, "w-behind", b"0-1")
        await redis_client.delete(keys.lease(0))
        assert await registry.wait_applied(acked, within=0.2)
        await c.close()


async def test_every_subscriber_of_a_room_being_registered_waits_for_the_workers(
    settings: Settings, redis_client: Redis, keys: Keys
) -> None:
    """Found in the fault soak (a gateway SIGKILLed, its clients resuming on the other one):
    the first client to subscribe registers the room on the new gateway and waits until the
    workers route it there; a second client arriving meanwhile found the room held and read
    the history at once, so an event committed in between (recorded, but routed only to the
    gateways of the workers' index of then) was neither in its replay nor sent to it live.
    Every subscriber now waits for the room's registration until the workers applied it.
    Here the worker's view of the room feed is held back while it goes on committing."""
    async with (
        running_gateway(settings) as g1,
        running_gateway(settings) as g2,
        running_worker(settings) as worker,
    ):
        ingester = Ingester(redis_client, keys)
        a = await Client.connect(f"{g1.ws}/ws/v2/connect")
        room = (await subscribe(a, "odds_updates", sport="NFL"))["data"]["room"]
        await wait_until(lambda: workers_synced(redis_client, keys), message="index")
        await ingester.publish_many([_odds("W1", 1)])
        await wait_until(lambda: len(data_frames(a)) == 1, message="first event")
        position = data_frames(a)[0]["positions"][room]
        gate = asyncio.Event()
        read_feed = worker.registry.read_feed

        async def held_back(after: bytes, block_ms: int, count: int = 1000) -> Any:
            await gate.wait()
            return await read_feed(after, block_ms, count)

        worker.registry.read_feed = held_back  # type: ignore[method-assign]
        await asyncio.sleep(2 * settings.worker_block_ms / 1000)  # a read begun before ends
        b1 = await Client.connect(f"{g2.ws}/ws/v2/connect")
        b2 = await Client.connect(f"{g2.ws}/ws/v2/connect")
        try:
            first = asyncio.create_task(subscribe(b1, "odds_updates", sport="NFL"))
            await wait_until(lambda: g2.node.rooms.members(room) is not None, message="joined")
            second = asyncio.create_task(
                subscribe(b2, "odds_updates", position=position, sport="NFL")
            )
            await asyncio.sleep(0.2)  # what the second would have read before the fix
            await ingester.publish_many([_odds("W1", 2)])  # routed by the index of before
            await wait_until(lambda: len(data_frames(a)) == 2, message="second event")
            gate.set()
            reply = await second
            await first
            assert reply["data"]["recovered"] is True, reply
            await wait_until(lambda: len(data_frames(b2)) == 1, message="the missed event")
            assert [f["data"]["seq"] for f in data_frames(b2)] == [2]
            await ingester.publish_many([_odds("W1", 3)])
            await wait_until(lambda: len(data_frames(b2)) == 2, message="live after")
            assert [f["data"]["seq"] for f in data_frames(b2)] == [2, 3]
        finally:
            gate.set()
            for c in (a, b1, b2):
                await c.close()


# --- positions taken while a room's history was empty ("<epoch>:<tag>:0-<T>") ------------


def empty_room_time(position: str) -> int:
    """T of a position taken while the room's history was empty: Redis's time then (ms), the
    earliest of its parts' (one per shard, each read from its own shard)."""
    times = []
    for part in position.split(","):
        ms, _, taken = part.rsplit(":", 1)[1].partition("-")
        assert ms == "0", f"{position} is not an empty room's position"
        times.append(int(taken))
    return min(times)


async def redis_ms(redis: Redis) -> int:
    seconds, micros = await redis.time()
    return int(seconds) * 1000 + int(micros) // 1000


async def first_entry_marked(redis: Redis, history: str) -> bool:
    """Whether the history exists and its first entry carries the commit's `f` mark (it
    started a new history)."""
    first: Any = await redis.xrange(history, count=1)
    return bool(first) and b"f" in first[0][1]


def test_a_shards_keys_share_a_cluster_slot_and_shards_spread(prefix: str) -> None:
    """One commit writes one shard: its partitions' streams, leases and cursors, its games'
    latest values and index, its part of each room's history with the tombstone, its epoch,
    dead letters and inboxes must hash to one slot; the resume MULTI reads a history with its
    tombstone. Different shards must not all share one slot (they spread over a cluster)."""
    keys = Keys(prefix, 16, 4)
    room = "odds_updates.0123456789abcdef"
    games = [f"G{n}" for n in range(40)]
    slots: list[int] = []
    for shard in range(keys.shards):
        names = [
            keys.history(shard, room), keys.history_gone(shard, room), keys.epoch(shard),
            keys.sports(shard), keys.games(shard, "NBA"), keys.deadletter(shard),
            keys.inbox(shard, "gw-1"),
            *[keys.latest(g) for g in games if keys.game_shard(g) == shard],
        ]  # fmt: skip
        for partition in keys.partitions_of(shard):
            names += [keys.ingest(partition), keys.lease(partition), keys.cursor(partition)]
        shard_slots = {key_slot(name.encode()) for name in names}
        assert len(shard_slots) == 1, (shard, names)
        slots += shard_slots
    assert len(set(slots)) == keys.shards
    assert {keys.game_shard(g) for g in games} == set(range(keys.shards))


async def test_a_client_that_joined_an_empty_room_gets_what_it_missed_when_back_soon(
    settings: Settings, redis_client: Redis, keys: Keys
) -> None:
    async with running_gateway(settings) as gw, running_worker(settings):
        before = await redis_ms(redis_client)
        a = await Client.connect(f"{gw.ws}/ws/v2/connect")
        confirmed = await subscribe(a, "odds_updates", sport="NFL")
        room, empty = confirmed["data"]["room"], confirmed["data"]["position"]
        assert before <= empty_room_time(empty) <= await redis_ms(redis_client)
        await wait_until(lambda: workers_synced(redis_client, keys), message="index")
        await a.close()  # the room lingers, recorded
        # Nothing written since: recovered, with a position of now (the room is still empty).
        b = await Client.connect(f"{gw.ws}/ws/v2/connect")
        reply = await subscribe(b, "odds_updates", position=empty, sport="NFL")
        assert reply["data"]["recovered"] is True and reply["data"]["replayed"] == 0, reply
        assert empty_room_time(reply["data"]["position"]) >= empty_room_time(empty)
        await b.close()
        ingester = Ingester(redis_client, keys)
        await ingester.publish_many([_odds("E1", seq) for seq in range(1, 6)])

        async def recorded() -> bool:
            return await redis_client.xlen(keys.history(keys.game_shard("E1"), room)) == 5

        await wait_until(recorded, message="history")
        assert await first_entry_marked(redis_client, keys.history(keys.game_shard("E1"), room))
        c = await Client.connect(f"{gw.ws}/ws/v2/connect")
        reply = await subscribe(c, "odds_updates", position=empty, sport="NFL")
        assert reply["data"]["recovered"] is True and reply["data"]["replayed"] == 5, reply
        await wait_until(lambda: len(data_frames(c)) == 5, message="missed events")
        assert [f["data"]["seq"] for f in data_frames(c)] == [1, 2, 3, 4, 5]
        assert all(f.get("replay") for f in data_frames(c))
        assert c.of("snapshot") == []
        await c.close()


async def test_an_empty_rooms_position_is_not_recovered_once_the_history_was_deleted(
    settings: Settings, redis_client: Redis, keys: Keys
) -> None:
    """Found in review: a position taken while the room was empty names no entry, so it was
    recovered whenever the history was empty or started with a new history's first entry,
    even when the room had expired with the history the client missed, and a later history
    (or none yet) stood in its place. The deletion leaves a tombstone that says so."""
    async with running_gateway(settings) as gw:
        registry = gw.node.registry
        ingester = Ingester(redis_client, keys)
        async with running_worker(settings):
            a = await Client.connect(f"{gw.ws}/ws/v2/connect")
            confirmed = await subscribe(a, "odds_updates", sport="NFL")
            room, empty = confirmed["data"]["room"], confirmed["data"]["position"]
            await wait_until(lambda: workers_synced(redis_client, keys), message="index")
            await a.close()  # the room lingers, recorded: these are what the client misses
            await ingester.publish_many([_odds("D1", 1), _odds("D1", 2)])

            async def recorded() -> bool:
                return await redis_client.xlen(keys.history(keys.game_shard("D1"), room)) == 2

            await wait_until(recorded, message="history")
        # Its linger time is up: the room expires and its history is deleted.
        await redis_client.zadd(keys.lingering, {room: 0})
        await registry.expire_rooms()
        assert not await redis_client.hexists(keys.rooms, room)
        assert not await redis_client.exists(keys.history(keys.game_shard("D1"), room))
        # No history yet: the events of the deleted one are still missed.
        b = await Client.connect(f"{gw.ws}/ws/v2/connect")
        reply = await subscribe(b, "odds_updates", position=empty, sport="NFL")
        assert reply["data"]["recovered"] is False, reply
        await b.next_of("snapshot")
        # A new history (a new worker marks its first entry, as after any refresh period).
        async with running_worker(settings):
            await wait_until(lambda: workers_synced(redis_client, keys), message="index")
            await ingester.publish_many([_odds("D1", 3), _odds("D1", 4)])
            await wait_until(lambda: len(data_frames(b)) == 2, message="live events")
            assert await first_entry_marked(redis_client, keys.history(keys.game_shard("D1"), room))
            c = await Client.connect(f"{gw.ws}/ws/v2/connect")
            reply = await subscribe(c, "odds_updates", position=empty, sport="NFL")
            assert reply["data"]["recovered"] is False, reply
            assert reply["data"]["replayed"] == 0
            snapshot = await c.next_of("snapshot")
            assert {e["data"]["seq"] for e in snapshot["data"]["events"]} == {4}
            assert not any(f.get("replay") for f in data_frames(c))
            await c.close()
        await b.close()
        tombstone = await redis_client.get(keys.history_gone(keys.game_shard("D1"), room))
        assert tombstone is not None and int(tombstone) >= empty_room_time(empty)
        assert (
            0 < await redis_client.pttl(keys.history_gone(keys.game_shard("D1"), room)) <= 120_000
        )


async def test_expiring_rooms_dying_between_its_steps_refuses_a_resume_never_grants_one(
    settings: Settings, redis_client: Redis, keys: Keys
) -> None:
    """Found in review: rooms left the registry first and their histories went in a second
    step; a process dying between the two left a history whole, without a tombstone, while
    workers stopped recording the room, so a position in it resumed as `recovered: true`
    across events never recorded. The histories now go first: dying right after that step
    leaves the room registered, its history gone and a tombstone, and a resume is refused."""
    # No reaping at beats (it expires rooms too): the test runs the steps itself.
    settings = settings.model_copy(update={"gateway_ttl": 60.0})
    async with running_gateway(settings) as gw, running_worker(settings):
        registry = gw.node.registry
        a = await Client.connect(f"{gw.ws}/ws/v2/connect")
        room = (await subscribe(a, "odds_updates", sport="NFL"))["data"]["room"]
        await wait_until(lambda: workers_synced(redis_client, keys), message="index")
        await Ingester(redis_client, keys).publish_many([_odds("X1", 1), _odds("X1", 2)])
        await wait_until(lambda: len(data_frames(a)) == 2, message="live events")
        position = data_frames(a)[0]["positions"][room]  # the client saw 1, missed 2
        await a.close()
        await wait_until(lambda: lingers(redis_client, keys, room), message="left")
        await redis_client.zadd(keys.lingering, {room: 0})  # its linger time is up
        assert await registry.forget_due_histories() == [room]  # step 1; then it "dies"
        assert await redis_client.hexists(keys.rooms, room)
        assert not await redis_client.exists(keys.history(keys.game_shard("X1"), room))
        assert await redis_client.exists(keys.history_gone(keys.game_shard("X1"), room))
        await refused_with_snapshot(gw.ws, position, {2})
        # The next round finishes the job: the room (due again once that client left) leaves
        # the registry.
        await wait_until(lambda: lingers(redis_client, keys, room), message="client left")
        await redis_client.zadd(keys.lingering, {room: 0})
        assert await registry.expire_rooms() == [room]
        assert not await redis_client.hexists(keys.rooms, room)


async def test_an_empty_rooms_position_is_not_recovered_once_the_history_expired(
    settings: Settings, redis_client: Redis, keys: Keys
) -> None:
    """The same for a history gone by its TTL (the room stayed held: nothing deleted it):
    the position is then older than the window, which decides."""
    short = settings.model_copy(update={"history_seconds": 1.0})
    async with running_gateway(short) as gw, running_worker(short):
        a = await Client.connect(f"{gw.ws}/ws/v2/connect")
        confirmed = await subscribe(a, "odds_updates", sport="NFL")
        room, empty = confirmed["data"]["room"], confirmed["data"]["position"]
        await wait_until(lambda: workers_synced(redis_client, keys), message="index")
        ingester = Ingester(redis_client, keys)
        await ingester.publish_many([_odds("T1", 1), _odds("T1", 2)])
        await wait_until(lambda: len(data_frames(a)) == 2, message="live events")

        async def expired() -> bool:
            return not await redis_client.exists(keys.history(keys.game_shard("T1"), room))

        await wait_until(expired, message="history expired by its TTL")
        b = await Client.connect(f"{gw.ws}/ws/v2/connect")
        reply = await subscribe(b, "odds_updates", position=empty, sport="NFL")
        assert reply["data"]["recovered"] is False, reply  # no history yet
        await b.next_of("snapshot")
        await b.close()
        await ingester.publish_many([_odds("T1", 3)])
        await wait_until(lambda: len(data_frames(a)) == 3, message="live event")
        assert await first_entry_marked(
            redis_client, keys.history(keys.game_shard("T1"), room)
        )  # a new history
        await refused_with_snapshot(gw.ws, empty, {3})
        await a.close()
        assert not await redis_client.exists(
            keys.history_gone(keys.game_shard("T1"), room)
        )  # held: never deleted
