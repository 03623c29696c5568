"""The data path cut into shards (`ODDSTREAM_SHARDS`), on one Redis: real gateways, workers.

Each shard has its own keys (one Redis Cluster slot each) and its part of every room's
history, so a room's position has one part per shard. Clients treat it as opaque: every data
frame carries the whole position, and a resume on any gateway gives every missed event of
every shard once, each game's in ingest order.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis

from oddstream.shared.ingest import Ingester, entry_fields, parse_event
from oddstream.shared.keys import Keys
from oddstream.shared.settings import Settings
from oddstream.shared.streams import event_order
from tests.harness import Client, running_gateway, running_worker, wait_until, workers_synced

SHARDS = 3


def odds(game: str, seq: int) -> Any:
    return parse_event({"kind": "odds", "sport": "NFL", "game_id": game, "sportsbook": "FanDuel",
                        "market": "moneyline", "seq": seq})  # fmt: skip


def games_in_every_shard(keys: Keys) -> list[str]:
    """One game per shard (a game's events are in its partition's shard)."""
    chosen: dict[int, str] = {}
    for n in range(1000):
        chosen.setdefault(keys.game_shard(f"S{n}"), f"S{n}")
        if len(chosen) == keys.shards:
            return [chosen[s] for s in range(keys.shards)]
    raise AssertionError("no game for some shard")


def data_frames(c: Client) -> list[dict[str, Any]]:
    return [f for f in c.frames if f["type"] == "odds_update"]


async def test_positions_have_a_part_per_shard_and_a_resume_on_another_gateway_misses_nothing(
    settings: Settings, redis_client: Redis, prefix: str
) -> None:
    sharded = settings.model_copy(update={"shards": SHARDS})
    keys = Keys(prefix, sharded.partitions, SHARDS)
    games = games_in_every_shard(keys)
    ingester = Ingester(redis_client, keys)
    async with (
        running_gateway(sharded) as first,
        running_gateway(sharded) as second,
        running_worker(sharded),
    ):
        a = await Client.connect(f"{first.ws}/ws/v2/connect")
        confirmed = await a.subscribe("odds_updates", sport="NFL")
        room = confirmed["data"]["room"]
        assert len(confirmed["data"]["position"].split(",")) == SHARDS
        await wait_until(lambda: workers_synced(redis_client, keys), message="index")
        await ingester.publish_many([odds(g, seq) for seq in (1, 2, 3) for g in games])
        await wait_until(lambda: len(data_frames(a)) == 9, message="live frames")
        for frame in data_frames(a):  # the whole position, every part known
            parts = frame["positions"][room].split(",")
            assert len(parts) == SHARDS and "-" not in parts, frame
        # Every shard's part moved with its shard's events.
        before = confirmed["data"]["position"].split(",")
        after = data_frames(a)[-1]["positions"][room].split(",")
        assert all(x != y for x, y in zip(before, after, strict=True)), (before, after)
        away = data_frames(a)[-1]["positions"][room]
        await a.close()
        missed = await ingester.publish_many([odds(g, seq) for seq in (4, 5, 6) for g in games])

        async def recorded() -> bool:
            lengths = [await redis_client.xlen(keys.history(s, room)) for s in range(SHARDS)]
            return lengths == [6] * SHARDS

        await wait_until(recorded, message="every shard's history of the room")
        b = await Client.connect(f"{second.ws}/ws/v2/connect")
        reply = await b.resume("odds_updates", away, sport="NFL")
        assert reply["data"]["recovered"] is True and reply["data"]["replayed"] == 9, reply
        await wait_until(lambda: len(data_frames(b)) == 9, message="replay")
        replayed = data_frames(b)
        assert all(f.get("replay") for f in replayed)
        assert sorted(f["event_id"] for f in replayed) == sorted(i.decode() for i in missed)
        for game in games:  # each game's events in ingest order
            assert [f["data"]["seq"] for f in replayed if f["data"]["game_id"] == game] == [4, 5, 6]
        # The confirmation names where the replay ends: the last replayed frame's position.
        assert reply["data"]["position"] == replayed[-1]["positions"][room]
        # Live again, with no gap and no duplicate at the seam (shards' frames interleave in
        # any order: each game's is kept).
        live = await ingester.publish_many([odds(g, 7) for g in games])
        await wait_until(lambda: len(data_frames(b)) == 12, message="live after the replay")
        assert sorted(f["event_id"] for f in data_frames(b)[9:]) == sorted(i.decode() for i in live)
        assert not any(f.get("replay") for f in data_frames(b)[9:])
        assert len({f["event_id"] for f in data_frames(b)}) == 12
        # The last frame's position resumes with nothing missed.
        last = data_frames(b)[-1]["positions"][room]
        await b.close()
        c = await Client.connect(f"{first.ws}/ws/v2/connect")
        again = await c.resume("odds_updates", last, sport="NFL")
        assert again["data"]["recovered"] is True and again["data"]["replayed"] == 0, again
        await c.close()


async def test_a_position_of_another_number_of_shards_is_not_recovered(
    settings: Settings, redis_client: Redis, prefix: str
) -> None:
    """A deployment that changed its number of shards: old positions resync, never fail."""
    sharded = settings.model_copy(update={"shards": SHARDS})
    keys = Keys(prefix, sharded.partitions, SHARDS)
    async with running_gateway(sharded) as gw, running_worker(sharded):
        a = await Client.connect(f"{gw.ws}/ws/v2/connect")
        confirmed = await a.subscribe("odds_updates", sport="NFL")
        room = confirmed["data"]["room"]
        await wait_until(lambda: workers_synced(redis_client, keys), message="index")
        games = games_in_every_shard(keys)
        await Ingester(redis_client, keys).publish_many([odds(g, 1) for g in games])
        await wait_until(lambda: len(data_frames(a)) == SHARDS, message="live frames")
        parts = data_frames(a)[-1]["positions"][room].split(",")
        b = await Client.connect(f"{gw.ws}/ws/v2/connect")
        reply = await b.resume("odds_updates", ",".join(parts[:2]), sport="NFL")
        assert reply["data"]["recovered"] is False, reply
        snapshot = await b.next_of("snapshot")
        assert len(snapshot["data"]["events"]) == SHARDS
        await a.close()
        await b.close()


async def test_a_batch_lands_in_order_in_each_events_partition_across_shards(
    redis_client: Redis, prefix: str
) -> None:
    """`Ingester.publish_many` appends a batch with one script call per shard: every event in
    its own game's partition, in the batch's order there, stamped so that workers trust it,
    and the returned ids are the events' own, in the batch's order."""
    keys = Keys(prefix, 16, SHARDS)
    games = [f"B{n}" for n in range(12)]
    events = [odds(g, seq) for seq in range(3) for g in games]
    ids = await Ingester(redis_client, keys).publish_many(events)
    assert len(ids) == len(events) and len(set(ids)) == len(ids)
    assert {keys.shard_of(int(i.split(b":")[0])) for i in ids} == set(range(SHARDS))
    for event, event_id in zip(events, ids, strict=True):
        partition, _, entry_id = event_id.decode().partition(":")
        assert int(partition) == Ingester(redis_client, keys).partition_of(event)
        stored: Any = await redis_client.xrange(keys.ingest(int(partition)), entry_id, entry_id)
        [(found, fields)] = stored
        assert found.decode() == entry_id
        assert fields == entry_fields(event)
    for game in games:  # each game's events in the batch's order within its partition
        ordered = [i for e, i in zip(events, ids, strict=True) if e.game_id == game]
        assert ordered == sorted(ordered, key=event_order)


async def test_the_ingester_loads_its_script_again_after_redis_lost_it(
    redis_client: Redis, prefix: str
) -> None:
    """A restarted Redis has no scripts cached: the next append loads the batch script again
    and lands, for a batch and for one event sent to a partition of the caller's choice (the
    gateway's canaries), in the partition asked for."""
    keys = Keys(prefix, 16, SHARDS)
    ingester = Ingester(redis_client, keys)
    await ingester.publish_many([odds("R1", 1)])
    await redis_client.script_flush()
    [batch_id] = await ingester.publish_many([odds("R1", 2)])
    await redis_client.script_flush()
    override = (ingester.partition_of(odds("R1", 3)) + 1) % keys.partitions
    single_id = await ingester.publish(odds("R1", 3), partition=override)
    assert int(single_id.split(b":")[0]) == override
    for event_id_, seq in ((batch_id, 2), (single_id, 3)):
        partition, _, entry_id = event_id_.decode().partition(":")
        stored: Any = await redis_client.xrange(keys.ingest(int(partition)), entry_id, entry_id)
        [(_, fields)] = stored
        assert fields == entry_fields(odds("R1", seq))
