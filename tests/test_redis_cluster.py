"""Oddstream on a real Redis Cluster: three masters with one replica each (`tests.redis_cluster`).

The data path is cut into shards whose keys each share one slot (`shared/keys.py`); they
spread over the masters, and a master failover is survived with nothing lost that the master
had replicated, no process restarted.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from redis.asyncio import Redis

from oddstream.embedded import EmbeddedRedis, free_port
from oddstream.shared.ingest import Ingester, parse_event
from oddstream.shared.keys import Keys
from oddstream.shared.redis import check_redis_url, create_redis, is_cluster
from oddstream.shared.settings import Settings
from tests.harness import (
    Client,
    readiness,
    running_gateway,
    running_worker,
    wait_until,
    workers_synced,
)
from tests.redis_cluster import RedisCluster, direct, running_cluster
from tests.test_cli import cli_env, cli_process, http_json, run_cli_sync

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


def games_in_every_shard(keys: Keys, per_shard: int = 2) -> list[str]:
    chosen: dict[int, list[str]] = {s: [] for s in range(keys.shards)}
    n = 0
    while any(len(g) < per_shard for g in chosen.values()):
        game = f"F{n}"
        if len(chosen[keys.game_shard(game)]) < per_shard:
            chosen[keys.game_shard(game)].append(game)
        n += 1
    return [g for games in chosen.values() for g in games]


@pytest.mark.slow
async def test_a_master_failover_is_survived_with_nothing_replicated_lost_and_no_restart(
    cluster: RedisCluster, on_cluster: Settings, prefix: str
) -> None:
    """A master of some shards is killed after what it holds reached its replica: the
    replica takes over, the same gateway and workers go on (readiness says when they
    cannot: /readyz fails, a subscribe gets `service_unavailable`), and a client gets every
    event once, in each game's order; a resume from before the kill recovers."""
    keys = Keys(prefix, PARTITIONS, SHARDS)
    games = games_in_every_shard(keys)
    redis: Redis = create_redis(cluster.url)
    victim_port = await cluster.master_of(keys.ingest(keys.partitions_of(0)[0]))
    try:
        async with running_gateway(on_cluster) as gw, running_worker(on_cluster) as worker:
            node = gw.node
            holder = await Client.connect(f"{gw.ws}/ws/v2/connect")
            first = await Client.connect(f"{gw.ws}/ws/v2/connect")
            try:
                room = (await holder.subscribe("odds_updates", sport="NFL"))["data"]["room"]
                await first.subscribe("odds_updates", sport="NFL")
                await wait_until(lambda: workers_synced(redis, keys), timeout=15, message="index")
                await wait_until(lambda: node.ready, timeout=10, message="gateway ready")
                ingester = Ingester(redis, keys)
                await ingester.publish_many([odds(g, 1) for g in games])
                await wait_until(lambda: len(first.of("odds_update")) == len(games), message="1")
                position = first.of("odds_update")[-1]["positions"][room]
                await first.close()
                await ingester.publish_many([odds(g, 2) for g in games])
                await wait_until(lambda: len(holder.of("odds_update")) == 2 * len(games),
                                 message="2")  # fmt: skip
                # Everything so far is on the replicas too.
                victim = direct(victim_port)
                try:
                    assert await victim.wait(1, 2000) == 1
                finally:
                    await victim.aclose()

                async with readiness(f"{gw.http}/readyz") as statuses:
                    cluster.node(victim_port).kill()
                    await wait_until(lambda: any(s != 200 for s in statuses), timeout=10,
                                     message="/readyz failing")  # fmt: skip
                    reply = await holder.request(
                        {"type": "subscribe", "subscription_type": "nba", "id": 1},
                        "subscription_confirmed",
                    )
                    assert reply["type"] == "error" and reply["code"] == "service_unavailable", (
                        reply
                    )
                    await cluster.wait_ok(timeout=30)  # the replica took over
                    await wait_until(lambda: statuses[-1] == 200, timeout=20,
                                     message="/readyz 200 again")  # fmt: skip
                down = [n for n, s in enumerate(statuses) if s != 200]
                assert down and set(statuses[: down[0]]) == {200}
                assert gw.node is node and node.ready

                await ingester.publish_many([odds(g, 3) for g in games])
                await wait_until(lambda: len(holder.of("odds_update")) >= 3 * len(games),
                                 timeout=20, message="events after the failover")  # fmt: skip
                await asyncio.sleep(0.3)  # a duplicate would be here by now
                assert seqs_by_game(holder) == {g: [1, 2, 3] for g in games}
                # Back with its position from before the kill: 2 and 3 of every game, once.
                second = await Client.connect(f"{gw.ws}/ws/v2/connect")
                try:
                    resumed = await second.resume("odds_updates", position, sport="NFL")
                    assert resumed["data"]["recovered"] is True, resumed
                    assert resumed["data"]["replayed"] == 2 * len(games)
                    await wait_until(lambda: len(second.of("odds_update")) == 2 * len(games),
                                     message="replay")  # fmt: skip
                    assert seqs_by_game(second) == {g: [2, 3] for g in games}
                finally:
                    await second.close()
                assert worker.consumers and all(not t.done() for t in worker._tasks)
            finally:
                await holder.close()
    finally:
        await redis.aclose()
        # The killed master comes back as its replica's replica, for the tests after this.
        cluster.node(victim_port).start()
        await cluster.wait_ok(timeout=30)


# --- start-up and the whole system -----------------------------------------------------------


@pytest.mark.slow
async def test_dev_runs_the_whole_system_with_live_demo_data_on_a_cluster(
    cluster: RedisCluster, prefix: str, tmp_path: Path
) -> None:
    """`oddstream dev` with REDIS_URL naming one node of a three-master cluster: the gateway,
    worker and simulator run on it, a subscriber gets live odds, the status says so."""
    port = free_port()
    env = cli_env(cluster.url, prefix, ODDSTREAM_SHARDS=str(SHARDS),
                  ODDSTREAM_PARTITIONS=str(PARTITIONS))  # fmt: skip
    async with (
        cli_process("dev", "--port", str(port), "--rate", "100", env=env, cwd=tmp_path) as dev,
        aiohttp.ClientSession() as session,
    ):
        await dev.wait_for_line("/ws/v2/connect", 30)
        assert f"{cluster.url} (a Redis Cluster, from REDIS_URL; {SHARDS} shards)" in dev.stderr
        admin_line = await dev.wait_for_line("Admin token", 5)
        admin = {"Authorization": f"Bearer {admin_line.split()[-1]}"}
        odds_feed = await Client.connect(f"ws://127.0.0.1:{port}/ws/v2/odds?sport=MLB")
        try:
            update = await odds_feed.next_of("odds_update", timeout=15)
            assert update["data"]["sport"] == "MLB"
            room = update["rooms"][0]
            assert len(update["positions"][room].split(",")) == SHARDS

            async def healthy() -> bool:
                status, body = await http_json(
                    session, f"http://127.0.0.1:{port}/ws/v2/status", admin
                )
                return status == 200 and body["workers"]["alive"] == 1 and body["redis"]["ok"]

            await wait_until(healthy, timeout=10, interval=0.2, message="status: healthy")
            async with session.get(f"http://127.0.0.1:{port}/readyz") as ready:
                assert ready.status == 200
        finally:
            await odds_feed.close()
        dev.signal(signal.SIGINT)
        assert await dev.exit_status(15) == 0
        assert "Traceback" not in dev.stderr, dev.stderr


@pytest.mark.parametrize(
    ("setting", "target", "says"),
    [
        ("yes", "standalone", "is not a Redis Cluster node, and ODDSTREAM_REDIS_CLUSTER=yes"),
        ("no", "cluster", "is a Redis Cluster node, and ODDSTREAM_REDIS_CLUSTER=no"),
    ],
)
def test_a_redis_that_is_not_what_the_setting_says_stops_start_up_with_one_line(
    cluster: RedisCluster,
    redis_server: EmbeddedRedis,
    tmp_path: Path,
    setting: str,
    target: str,
    says: str,
) -> None:
    url = cluster.url if target == "cluster" else redis_server.url
    env = cli_env(url, "tcl", ODDSTREAM_REDIS_CLUSTER=setting)
    result = run_cli_sync("worker", env=env, cwd=tmp_path, timeout=15)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0] == f"oddstream: REDIS_URL {url} {says}"


def test_a_configured_cluster_that_does_not_answer_stops_the_gateway_with_one_line(
    tmp_path: Path,
) -> None:
    """`ODDSTREAM_REDIS_CLUSTER=yes` and nothing listening: the gateway cannot tell a cluster
    from a standalone Redis that is down, so it stops (exit status 1) with one line naming
    the setting, instead of waiting as it would for a standalone Redis."""
    url = f"redis://127.0.0.1:{free_port()}/0"
    env = cli_env(url, "tcl", ODDSTREAM_REDIS_CLUSTER="yes")
    result = run_cli_sync("gateway", "--port", str(free_port()), env=env, cwd=tmp_path,
                          timeout=15)  # fmt: skip
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0] == f"oddstream: REDIS_URL {url} does not answer (ODDSTREAM_REDIS_CLUSTER=yes)"


def test_a_sentinel_url_with_the_cluster_required_stops_start_up_with_one_line(
    tmp_path: Path,
) -> None:
    """Sentinel and Cluster exclude each other: with `ODDSTREAM_REDIS_CLUSTER=yes` a
    `redis+sentinel://` URL is a configuration error (exit status 2), before any sentinel is
    asked."""
    url = f"redis+sentinel://127.0.0.1:{free_port()}/mymaster/0"
    env = cli_env(url, "tcl", ODDSTREAM_REDIS_CLUSTER="yes")
    result = run_cli_sync("worker", env=env, cwd=tmp_path, timeout=15)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0] == (
        f"oddstream: REDIS_URL {url} names Sentinel, not a Redis Cluster node, and "
        "ODDSTREAM_REDIS_CLUSTER=yes"
    )
