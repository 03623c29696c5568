"""End to end through real Redis: ingest -> worker -> gateway inbox -> WebSocket client."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from oddstream.shared.ingest import Ingester, parse_event
from oddstream.shared.keys import Keys
from oddstream.shared.redis import create_redis
from oddstream.shared.settings import Settings
from oddstream.shared.streams import (
    Delivery,
    decode_inbox_entry,
    game_partition_key,
    partition_for,
)
from oddstream.workers.consumer import Worker
from tests.harness import Client, running_gateway, running_worker, wait_until, workers_synced


def odds(
    game_id: str = "G1", sport: str = "MLB", book: str = "DraftKings", price: int = -110
) -> str:
    return (
        f'{{"kind":"odds","sport":"{sport}","game_id":"{game_id}","sportsbook":"{book}",'
        f'"market":"moneyline","home_price":{price},"away_price":100}}'
    )


async def test_odds_event_reaches_subscriber(
    settings: Settings, redis_client: Redis, keys: Keys
) -> None:
    async with running_gateway(settings) as gw, running_worker(settings):
        client = await Client.connect(f"{gw.ws}/ws/v2/connect")
        try:
            confirmed = await client.subscribe("odds_updates", sport="mlb")
            assert confirmed["data"]["filters"] == {"sport": ["MLB"]}
            await wait_until(lambda: workers_synced(redis_client, keys), message="worker index")
            ingester = Ingester(redis_client, keys)
            await ingester.publish(parse_event(odds("G1", "NBA")))  # other sport: not delivered
            event_id = await ingester.publish(parse_event(odds("G1", "MLB", price=-125)))
            update = await client.next_of("odds_update")
            assert update["event_id"] == event_id.decode()
            assert update["data"]["home_price"] == -125
            assert update["rooms"] == [confirmed["data"]["room"]]
            assert len(client.of("odds_update")) == 1
        finally:
            await client.close()


async def test_a_large_backlog_is_committed_and_delivered_once_in_order(
    settings: Settings, redis_client: Redis, keys: Keys
) -> None:
    """A worker that starts behind a backlog reads every partition's batch at once and commits
    them in one script: thousands of frames for one gateway, split over several inbox entries
    (a Lua call unpacks at most about 8,000 values), all delivered, once, in order per game."""
    big = settings.model_copy(update={"worker_batch": 1000})
    count, games = 4000, [f"BG{n}" for n in range(40)]
    async with running_gateway(big) as gw:
        client = await Client.connect(f"{gw.ws}/ws/v2/connect")
        try:
            await client.subscribe("odds_updates", sport="NBA")
            ingester = Ingester(redis_client, keys)
            sent: list[bytes] = []
            for start in range(0, count, 500):
                sent += await ingester.publish_many(
                    [
                        parse_event(odds(games[n % len(games)], "NBA", price=-100 - n))
                        for n in range(start, start + 500)
                    ]
                )
            async with running_worker(big):
                await wait_until(
                    lambda: len(client.of("odds_update")) >= count, timeout=30, message="backlog"
                )
            frames = client.of("odds_update")
            assert sorted(f["event_id"] for f in frames) == sorted(i.decode() for i in sent)
            for game in games:
                prices = [f["data"]["home_price"] for f in frames if f["data"]["game_id"] == game]
                assert prices == sorted(prices, reverse=True), f"{game} out of order"
        finally:
            await client.close()


async def test_the_commit_writes_only_the_partitions_whose_lease_it_holds(
    redis_client: Redis, keys: Keys
) -> None:
    """The fenced commit (`workers/lua/commit.lua`), called as a worker calls it, for a read
    of two partitions when another worker took the second over: the first's history, latest
    value, inbox item and cursor are written; of the second nothing, and it is reported."""
    from oddstream.workers.leases import lua

    commit = redis_client.register_script(lua("commit"))
    p0, p1 = keys.partitions_of(0)[:2]  # two partitions of one shard (one slot)
    await redis_client.set(keys.lease(p0), "me")
    await redis_client.set(keys.lease(p1), "other")
    inbox = keys.inbox(0, "gw-fence")
    await redis_client.xadd(inbox, {"N": "0"})  # a registered gateway's inbox exists
    items = []
    for p in (0, 1):
        event_id, room = f"{p}:1-0", f"odds_updates.{p:016x}"
        items.append([
            "0-0", f"1-{p}", [],
            [["d", event_id, "odds_update", f"odds|F{p}|B|moneyline", 13 + p, f"F{p}",
              "2026-12-05T09:00:00.000Z", [[room, "l"]], [[1, [room]]]]],
        ])  # fmt: skip
    skipped = await commit(
        keys=[keys.deadletter(0), keys.epoch(0), keys.sports(0), keys.lease(p0), keys.cursor(p0),
              keys.lease(p1), keys.cursor(p1), inbox],
        args=["me", "e1", 100, keys.history_prefix(0), 100, 120_000, 100, 86_400_000,
              keys.latest_prefix(0), keys.games_prefix(0), 60_000, orjson.dumps(items).decode(),
              '{"p":0}', '{"p":1}'],
    )  # fmt: skip
    assert skipped == [[2], []]
    latest_f0 = keys.latest_prefix(0) + "F0"  # the shard's latest values, as the script was told
    assert await redis_client.get(keys.cursor(p0)) == b"1-0"
    assert await redis_client.get(keys.cursor(p1)) is None
    assert await redis_client.xlen(keys.history(0, "odds_updates.0000000000000000")) == 1
    assert not await redis_client.exists(keys.history(0, "odds_updates.0000000000000001"))
    assert await redis_client.hexists(latest_f0, "odds|F0|B|moneyline")
    assert not await redis_client.exists(keys.latest_prefix(0) + "F1")
    last: Any = await redis_client.xrevrange(inbox, count=1)
    (written,) = decode_inbox_entry(last[0][1])
    assert isinstance(written, Delivery)
    assert written.rooms == b"odds_updates.0000000000000000"
    frame = orjson.loads(written.frame)
    assert frame == {
        "type": "odds_update", "status": "success", "event_id": "0:1-0",
        "timestamp": "2026-12-05T09:00:00.000Z", "rooms": ["odds_updates.0000000000000000"],
        "positions": {"odds_updates.0000000000000000": frame["positions"][
            "odds_updates.0000000000000000"]},
        "data": {"p": 0},
    }  # fmt: skip
    assert written.key == b"odds|F0|B|moneyline"
    latest = await redis_client.hget(latest_f0, "odds|F0|B|moneyline")
    assert orjson.loads(latest or b"{}") == {
        "type": "odds_update", "status": "success", "event_id": "0:1-0",
        "timestamp": "2026-12-05T09:00:00.000Z", "data": {"p": 0},
    }  # fmt: skip


async def test_a_commit_writes_a_partition_only_where_its_read_started(
    redis_client: Redis, keys: Keys
) -> None:
    """The commit's cursor check: a worker sends a read's commit before the previous one
    landed, so a commit whose read started after a cursor Redis does not hold (the previous
    commit failed, or was skipped) must write nothing of that partition and say so, or it
    would move the cursor past entries never delivered. Partition 0 is where its read
    started, partition 1 is not: only 0 is written."""
    from oddstream.workers.leases import lua

    commit = redis_client.register_script(lua("commit"))
    p0, p1 = keys.partitions_of(0)[:2]  # two partitions of one shard (one slot)
    for p in (p0, p1):
        await redis_client.set(keys.lease(p), "me")
    await redis_client.set(keys.cursor(p0), "5-0")
    await redis_client.set(keys.cursor(p1), "5-0")
    inbox = keys.inbox(0, "gw-chain")
    await redis_client.xadd(inbox, {"N": "0"})

    def read(after: str, last: str, p: int) -> list[Any]:
        room = f"odds_updates.{p:016x}"
        return [
            after,
            last,
            [],
            [
                [
                    "d",
                    f"{p}:{last}",
                    "odds_update",
                    "",
                    13 + p,
                    "",
                    "2026-12-05T09:00:00.000Z",
                    [[room, "l"]],
                    [[1, [room]]],
                ]
            ],
        ]

    def call(reads: list[list[Any]]) -> Any:
        partitions = [k for p in (p0, p1)[: len(reads)] for k in (keys.lease(p), keys.cursor(p))]
        return commit(
            keys=[keys.deadletter(0), keys.epoch(0), keys.sports(0), *partitions, inbox],
            args=["me", "e1", 100, keys.history_prefix(0), 100, 120_000, 100, 86_400_000,
                  keys.latest_prefix(0), keys.games_prefix(0), 60_000, orjson.dumps(reads).decode(),
                  '{"p":0}', '{"p":1}'],
        )  # fmt: skip

    # Partition 1's read started after 7-0: a commit of 5-0..7-0 did not land.
    assert await call([read("5-0", "8-0", 0), read("7-0", "9-0", 1)]) == [[], [2]]
    assert await redis_client.get(keys.cursor(p0)) == b"8-0"
    assert await redis_client.get(keys.cursor(p1)) == b"5-0"
    assert not await redis_client.exists(keys.history(0, "odds_updates.0000000000000001"))
    entries: Any = await redis_client.xrange(inbox)
    delivered = [item.rooms for e in entries for item in decode_inbox_entry(e[1])]
    assert delivered == [b"odds_updates.0000000000000000"]
    # The same commit again (a retry): partition 0 has moved on, so it is not written twice.
    assert await call([read("5-0", "8-0", 0), read("5-0", "9-0", 1)]) == [[], [1]]
    assert await redis_client.get(keys.cursor(p1)) == b"9-0"
    assert await redis_client.xlen(keys.history(0, "odds_updates.0000000000000000")) == 1
    # No cursor committed yet reads as "0-0".
    await redis_client.delete(keys.cursor(p0))
    assert await call([read("0-0", "1-0", 0)]) == [[], []]
    assert await redis_client.get(keys.cursor(p0)) == b"1-0"


async def test_a_commit_that_fails_while_the_next_is_on_its_way_loses_nothing(
    settings: Settings, redis_client: Redis, keys: Keys
) -> None:
    """A worker sends a read's commit before the previous one landed. When one fails without
    running (its connection dropped) while the next is already on its way, the next must not
    move the cursor past the failed one's events: it is skipped (stale), the worker reads
    again from the committed cursor, and the subscriber gets every event once, in order."""
    count = 400
    async with running_gateway(settings) as gw, running_worker(settings) as worker:
        client = await Client.connect(f"{gw.ws}/ws/v2/connect")
        try:
            await client.subscribe("odds_updates", sport="NBA")
            await wait_until(lambda: workers_synced(redis_client, keys), message="worker index")
            real, calls, next_sent = worker.commit_script, 0, asyncio.Event()

            async def flaky(*, keys: list[str], args: list[Any]) -> Any:
                nonlocal calls
                calls += 1
                if calls == 3:  # held until the next commit is sent, then lost unrun
                    await asyncio.wait_for(next_sent.wait(), 10)
                    raise ConnectionError("injected: the connection dropped before it ran")
                if calls == 4:
                    next_sent.set()
                return await real(keys=keys, args=args)

            worker.commit_script = flaky  # type: ignore[assignment]
            ingester = Ingester(redis_client, keys)
            sent: list[bytes] = []
            for n in range(count):
                sent.append(await ingester.publish(parse_event(odds("CF1", "NBA", price=-100 - n))))
                if n % 20 == 19:
                    await asyncio.sleep(0.01)
            await wait_until(lambda: len(client.of("odds_update")) >= count, timeout=30,
                             message="every event")  # fmt: skip
            await asyncio.sleep(0.2)  # nothing more comes (no duplicate)
            frames = client.of("odds_update")
            assert next_sent.is_set() and calls > 4
            assert worker.stats.stale >= 1, "the commit sent after the failed one was not skipped"
            assert [f["event_id"] for f in frames] == [i.decode() for i in sent]
        finally:
            await client.close()


async def test_a_commit_cancelled_on_its_way_is_a_failure_not_the_consumers_end(
    settings: Settings, redis_client: Redis
) -> None:
    """Waiting for the commits on their way, the consumer meets one that was cancelled (not
    by it): that is a failed commit (the consumer reads again from the committed cursors),
    not a cancellation of the consumer, which would end its loop while the worker ran on."""
    consumer = Worker(settings, redis_client, worker_id="w-cancelled").consumers[0]
    landed: asyncio.Future[set[int]] = asyncio.get_running_loop().create_future()
    landed.set_result({3})
    cancelled: asyncio.Future[set[int]] = asyncio.get_running_loop().create_future()
    cancelled.cancel()
    consumer._in_flight.extend([landed, cancelled])
    assert consumer._troubled()
    with pytest.raises(RuntimeError, match="cancelled on its way"):
        await consumer._settle()
    assert not consumer._in_flight


async def test_a_worker_keeps_at_most_max_in_flight_commits_on_their_way(
    settings: Settings, redis_client: Redis, keys: Keys
) -> None:
    """While Redis holds its commits back (here: none lands until released), a worker keeps
    matching and sending up to `MAX_IN_FLIGHT` of them, then waits for the oldest; released,
    every event arrives once, in order."""
    from oddstream.workers.consumer import MAX_IN_FLIGHT

    async with running_gateway(settings) as gw, running_worker(settings) as worker:
        client = await Client.connect(f"{gw.ws}/ws/v2/connect")
        try:
            await client.subscribe("odds_updates", sport="NBA")
            await wait_until(lambda: workers_synced(redis_client, keys), message="worker index")
            real, release, sent_at_once = worker.commit_script, asyncio.Event(), [0]
            waiting = 0

            async def held(*, keys: list[str], args: list[Any]) -> Any:
                nonlocal waiting
                waiting += 1
                sent_at_once[0] = max(sent_at_once[0], waiting)
                await release.wait()
                waiting -= 1
                return await real(keys=keys, args=args)

            worker.commit_script = held  # type: ignore[assignment]
            ingester = Ingester(redis_client, keys)
            sent: list[bytes] = []
            for n in range(60):  # one read each: a commit each
                sent.append(await ingester.publish(parse_event(odds("MF1", "NBA", price=-100 - n))))
                await asyncio.sleep(0.01)
            await wait_until(lambda: waiting == MAX_IN_FLIGHT, message="commits held")
            await asyncio.sleep(0.3)  # a worker that did not wait would send more meanwhile
            assert sent_at_once[0] == MAX_IN_FLIGHT
            consumer = worker.consumers[keys.game_shard("MF1")]  # the one reading MF1's events
            assert len(consumer._in_flight) == MAX_IN_FLIGHT
            release.set()
            await wait_until(lambda: len(client.of("odds_update")) >= len(sent), timeout=20,
                             message="every event")  # fmt: skip
            await asyncio.sleep(0.2)
            assert [f["event_id"] for f in client.of("odds_update")] == [i.decode() for i in sent]
        finally:
            await client.close()


async def test_a_stopped_worker_leaves_no_read_or_commit_of_its_on_its_way(
    settings: Settings, keys: Keys
) -> None:
    """When `Worker.stop` returns, its owner closes the Redis client: a read or commit of the
    worker still on its way then would open a connection nobody closes (found as unclosed
    sockets at the end of a CI run). A stop whose grace ends while a consumer waits for a
    long blocking read it had dropped still waits for that read."""
    slow = settings.model_copy(
        update={"worker_block_ms": 3000, "partition_lease_ms": 9000, "shutdown_grace": 0.05}
    )
    redis = create_redis(slow.effective_redis_url)
    worker = Worker(slow, redis, worker_id="w-wind-down")
    try:
        await worker.start()
        await Ingester(redis, keys).publish(parse_event(odds("WD1", "NBA", price=-110)))
        await wait_until(lambda: worker.stats.processed >= 1, message="the event processed")
        # A read asked for ahead of the next batch (as after a commit): a 3 s blocking XREAD.
        consumer = worker.consumers[keys.game_shard("WD1")]
        consumer._ahead = (consumer._generation, consumer._read())
        assert consumer.outstanding()
        started = time.monotonic()
        await worker.stop()  # its grace (1 s) ends while the consumer waits for that read
        assert not [f for c in worker.consumers for f in c.outstanding()]
        assert time.monotonic() - started < 5.0
    finally:
        await redis.aclose()


def games_of_shard(keys: Keys, shard: int, prefix: str) -> dict[int, str]:
    """One game (named `prefix<n>`) per ingest partition of `shard`: partition -> game."""
    partitions = keys.partitions_of(shard)
    assert len(partitions) >= 2, "the test needs a shard of several partitions"
    games: dict[int, str] = {}
    for n in range(1000):
        game = f"{prefix}{n}"
        partition = partition_for(game_partition_key(game), keys.partitions)
        if partition in partitions:
            games.setdefault(partition, game)
    assert len(games) == len(partitions)
    return dict(sorted(games.items()))


async def test_one_ingest_batch_over_several_partitions_is_committed_once(
    settings: Settings, redis_client: Redis, keys: Keys
) -> None:
    """The ingester appends a batch to all its partitions at once, but Redis before 7.2
    answers a blocked XREAD with the one stream that woke it: the worker reads what the other
    partitions hold before it commits, so the batch costs one commit, not one per wake-up and
    another for the rest."""
    games = games_of_shard(keys, 0, "OB")
    partitions = list(games)
    ingester = Ingester(redis_client, keys)
    async with running_worker(settings) as worker:
        await wait_until(lambda: worker.leases.owned >= set(partitions), message="leases")
        await ingester.publish(parse_event(odds(games[partitions[0]], "NBA")))
        await wait_until(lambda: worker.stats.processed == 1, message="a first event")
        await asyncio.sleep(0.2)  # the consumer waits in its blocking read again
        commits = worker.stats.commits
        batch = [parse_event(odds(game, "NBA", price=-100 - i)) for i, game in
                 enumerate(list(games.values()) * 3)]  # fmt: skip
        await ingester.publish_many(batch)
        await wait_until(lambda: worker.stats.processed == 1 + len(batch), message="the batch")
        assert worker.stats.commits == commits + 1


async def test_a_failed_read_of_the_other_partitions_loses_nothing(
    settings: Settings, redis_client: Redis, keys: Keys
) -> None:
    """The read of the other partitions after a wake-up fails (Redis dropped the connection)
    while the first partition's entries are taken but not committed: the worker reads again
    from the committed cursors, and every event of the batch arrives once, each game in
    order."""
    games = games_of_shard(keys, 0, "FR")
    async with running_gateway(settings) as gw, running_worker(settings) as worker:
        client = await Client.connect(f"{gw.ws}/ws/v2/connect")
        try:
            await client.subscribe("odds_updates", sport="NBA")
            await wait_until(lambda: workers_synced(redis_client, keys), message="worker index")
            await wait_until(lambda: worker.leases.owned >= set(games), message="leases")
            real, failed = worker.redis.xread, list[Any]()

            async def dropped_once(streams: Any, count: Any = None, block: Any = None) -> Any:
                if block is None and not failed:  # the read of the other partitions
                    failed.append(streams)
                    raise RedisConnectionError("Connection closed by server.")
                return await real(streams, count=count, block=block)

            worker.redis.xread = dropped_once  # type: ignore[method-assign,assignment]
            batch = [parse_event(odds(game, "NBA", price=-100 - i)) for i, game in
                     enumerate(list(games.values()) * 3)]  # fmt: skip
            sent = await Ingester(redis_client, keys).publish_many(batch)
            await wait_until(lambda: len(client.of("odds_update")) >= len(sent), timeout=20,
                             message="the batch")  # fmt: skip
            await asyncio.sleep(0.3)  # nothing more may come
            assert len(failed) == 1 and worker.stats.errors >= 1
            frames = client.of("odds_update")
            assert sorted(f["event_id"] for f in frames) == sorted(i.decode() for i in sent)
            for game in games.values():
                prices = [f["data"]["home_price"] for f in frames if f["data"]["game_id"] == game]
                assert prices == sorted(prices, reverse=True), f"{game} out of order"
        finally:
            await client.close()
