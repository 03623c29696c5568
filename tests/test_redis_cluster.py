"""Oddstream on a real Redis Cluster: three masters with one replica each (`tests.redis_cluster`).

The data path is cut into shards whose keys each share one slot (`shared/keys.py`); they
spread over the masters, and a master failover is survived with nothing lost that the master
had replicated, no process restarted.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from redis.asyncio import Redis

from oddstream.shared.ingest import Ingester, parse_event
from oddstream.shared.keys import Keys
from oddstream.shared.redis import check_redis_url, create_redis, is_cluster
from oddstream.shared.settings import Settings
from tests.harness import (
    Client,
    running_gateway,
    running_worker,
    wait_until,
    workers_synced,
)
from tests.redis_cluster import RedisCluster, running_cluster

#: Two shards per master, six partitions: one per shard.
SHARDS = 6
PARTITIONS = 6


@pytest.fixture(scope="module")
def cluster() -> Iterator[RedisCluster]:
    with running_cluster() as started:
        yield started


@pytest.fixture
def on_cluster(cluster: RedisCluster, settings: Settings) -> Settings:
    """This test's deployment on the cluster (found to be one at start-up, as the CLI does)."""
    assert check_redis_url(cluster.url) is True
    return settings.model_copy(
        update={"redis_url": cluster.url, "shards": SHARDS, "partitions": PARTITIONS}
    )


def odds(game: str, seq: int) -> Any:
    return parse_event({"kind": "odds", "sport": "NFL", "game_id": game, "sportsbook": "FanDuel",
                        "market": "moneyline", "seq": seq})  # fmt: skip


def seqs_by_game(c: Client) -> dict[str, list[int]]:
    seen: dict[str, list[int]] = {}
    for frame in c.of("odds_update"):
        seen.setdefault(frame["data"]["game_id"], []).append(frame["data"]["seq"])
    return seen


async def test_the_pipeline_runs_on_a_cluster_with_its_shards_on_every_master(
    cluster: RedisCluster, on_cluster: Settings, prefix: str
) -> None:
    keys = Keys(prefix, PARTITIONS, SHARDS)
    redis: Redis = create_redis(cluster.url)
    assert is_cluster(redis)
    games = [f"C{n}" for n in range(24)]
    try:
        async with (
            running_gateway(on_cluster) as gw,
            running_worker(on_cluster),
            running_worker(on_cluster),
        ):
            c = await Client.connect(f"{gw.ws}/ws/v2/connect")
            try:
                confirmed = await c.subscribe("odds_updates", sport="NFL")
                room = confirmed["data"]["room"]
                assert len(confirmed["data"]["position"].split(",")) == SHARDS
                await wait_until(
                    lambda: workers_synced(redis, keys, 2), timeout=15, message="index"
                )
                ingester = Ingester(redis, keys)
                for seq in range(1, 6):
                    await ingester.publish_many([odds(g, seq) for g in games])
                await wait_until(lambda: len(c.of("odds_update")) == 5 * len(games), timeout=15,
                                 message="every event")  # fmt: skip
                assert seqs_by_game(c) == {g: [1, 2, 3, 4, 5] for g in games}
                await wait_until(lambda: gw.node.ready, message="gateway ready")
            finally:
                await c.close()
        # Each shard's keys are on one master, and the shards are on every master.
        masters = {await cluster.master_of(keys.ingest(p)) for p in range(PARTITIONS)}
        assert len(masters) == 3, masters
        for shard in range(SHARDS):
            master = await cluster.master_of(keys.history(shard, room))
            assert master == await cluster.master_of(keys.ingest(keys.partitions_of(shard)[0]))
    finally:
        await redis.aclose()
