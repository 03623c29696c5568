"""Redis Sentinel: a `redis+sentinel://` REDIS_URL, and a failover survived with no restart.

Real processes only: three sentinels for the module, and per test a primary with one replica
(`--replicaof`) monitored under a service name of its own (tests/sentinel.py); a real gateway,
worker and WebSocket clients (tests/harness.py); the real `oddstream` command.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from oddstream.embedded import free_port
from oddstream.shared.ingest import Ingester, parse_event
from oddstream.shared.keys import Keys
from oddstream.shared.redis import (
    PRIMARY_CHECK_INTERVAL,
    SentinelURL,
    UnknownServiceError,
    create_redis,
    parse_sentinel_url,
)
from oddstream.shared.settings import Settings, SettingsError, load_settings
from oddstream.shared.streams import event_id
from tests.harness import (
    Client,
    process_env,
    readiness,
    running_gateway,
    running_worker,
    spawn_cli,
    wait_until,
    workers_synced,
)
from tests.sentinel import Sentinels, direct, monitored_service, running_sentinels

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def sentinels() -> Iterator[Sentinels]:
    with running_sentinels() as started:
        yield started


def _odds(seq: int) -> Any:
    """One game (one ingest partition), so the whole run has one order to check."""
    return parse_event({"kind": "odds", "sport": "NFL", "game_id": "S1", "sportsbook": "FanDuel",
                        "market": "moneyline", "seq": seq})  # fmt: skip


def _seqs(c: Client) -> list[int]:
    return [f["data"]["seq"] for f in c.of("odds_update")]


def _last_position(c: Client, room: str) -> str:
    """What a client keeps: the newest position of the room it has seen (tests/test_resume)."""
    position: str | None = None
    for frame in c.frames:
        if frame["type"] == "subscription_confirmed" and frame["data"]["room"] == room:
            position = frame["data"]["position"]
        elif room in (frame.get("positions") or {}):
            position = frame["positions"][room]
    assert isinstance(position, str) and position
    return position


def _alerts(c: Client, after: int) -> list[str]:
    return [f["data"]["code"] for f in c.frames[after:] if f["type"] == "system_alert"]


async def _event_ids(node: Redis, keys: Keys) -> set[bytes]:
    """The ids of the events in the ingest streams of one node (`partition:entry id`)."""
    ids: set[bytes] = set()
    for partition in range(keys.partitions):
        ids.update(event_id(partition, i) for i, _ in await node.xrange(keys.ingest(partition)))
    return ids


# --- the URL ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis+sentinel://127.0.0.1:26379/main",
         SentinelURL((("127.0.0.1", 26379),), "main")),
        ("redis+sentinel://:s%40cret@a:1,b:2,[::1]:3/main/4",
         SentinelURL((("a", 1), ("b", 2), ("::1", 3)), "main", 4, None, "s@cret", None, "s@cret")),
        ("redis+sentinel://app:pw@sentinel/main/?sentinel_password=",
         SentinelURL((("sentinel", 26379),), "main", 0, "app", "pw", "app", None)),
        ("REDIS+SENTINEL://:pw@a:1/main?sentinel_username=s&sentinel_password=spw",
         SentinelURL((("a", 1),), "main", 0, None, "pw", "s", "spw")),
    ],
)  # fmt: skip
def test_sentinel_urls_parse(url: str, expected: SentinelURL) -> None:
    assert parse_sentinel_url(url) == expected
    assert load_settings(redis_url=url).redis_url == url


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        ("redis+sentinel://:hunter2@a:1,b:port/main", "bad sentinel port in 'b:port'"),
        ("redis+sentinel://:hunter2@a:70000/main", "bad sentinel port"),
        ("redis+sentinel://:hunter2@a:1", "no service name"),
        ("redis+sentinel://:hunter2@a:1/", "no service name"),
        ("redis+sentinel:///main", "no sentinel address"),
        ("redis+sentinel://:hunter2@a:1,,b:2/main", "bad sentinel address"),
        ("redis+sentinel://hunter2@a:1/main", "[user]:password@"),
        ("redis+sentinel://:hunter2@a:1/main/zero", "database 'zero' is not a number"),
        ("redis+sentinel://:hunter2@a:1/main/0/1", "too many path parts"),
        ("redis+sentinel://:hunter2@a:1/main?db=1", "unknown option 'db'"),
        ("redis+sentinel://:hunter2@::1:5/main", "write IPv6 as [addr]:port"),
        ("sentinel://:hunter2@a:1/main", "redis+sentinel://"),
    ],
)
def test_a_malformed_redis_url_is_refused_at_settings_load(url: str, complaint: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(redis_url=url)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("invalid setting REDIS_URL=")
    assert complaint in message
    assert "hunter2" not in message  # the password is never echoed


def test_a_malformed_sentinel_url_stops_the_cli_with_one_line(tmp_path: Path) -> None:
    env = _cli_env("redis+sentinel://:hunter2@127.0.0.1:1,127.0.0.1:x/main")
    result = _run_cli("gateway", "--port", "0", env=env, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("oddstream: invalid setting REDIS_URL=")
    assert "bad sentinel port" in lines[0] and "hunter2" not in lines[0]


# --- the pipeline through Sentinel -----------------------------------------------------------


async def test_the_pipeline_runs_on_the_primary_the_sentinels_name(
    sentinels: Sentinels,
    settings: Settings,
    keys: Keys,
    processes: list[subprocess.Popen[bytes]],
) -> None:
    """Gateway in this process, worker as `oddstream worker`, the publisher here: all on a
    password-protected primary found through the sentinels (which need no password)."""
    async with monitored_service(sentinels, password="data-node-secret") as service:
        own = settings.model_copy(update={"redis_url": service.url})
        worker = spawn_cli(processes, process_env(own), "worker", "--id", "sentinel-worker")
        redis = create_redis(service.url)
        primary = direct(service.primary.port, service.password)
        try:
            async with running_gateway(own) as gw:
                c = await Client.connect(f"{gw.ws}/ws/v2/connect")
                try:
                    await c.subscribe("odds_updates", sport="NFL")
                    await wait_until(
                        lambda: workers_synced(redis, keys), timeout=15, message="worker index"
                    )
                    sent = await Ingester(redis, keys).publish_many([_odds(n) for n in range(5)])
                    await wait_until(lambda: len(_seqs(c)) >= 5, message="events delivered")
                    assert _seqs(c) == list(range(5))
                    assert [f["event_id"] for f in c.of("odds_update")] == [
                        i.decode() for i in sent
                    ]
                    await wait_until(lambda: gw.node.ready, message="gateway ready")
                finally:
                    await c.close()
            # Everything went to the primary the sentinels named.
            assert await primary.hlen(keys.rooms) == 1
            assert await primary.exists(keys.latest("S1")) == 1
            assert worker.poll() is None
        finally:
            await primary.aclose()
            await redis.aclose()


# --- failover -------------------------------------------------------------------------------


@pytest.mark.slow
async def test_a_failover_is_survived_with_nothing_replicated_lost_and_no_restart(
    sentinels: Sentinels, settings: Settings, keys: Keys
) -> None:
    async with monitored_service(sentinels) as service:
        own = settings.model_copy(update={"redis_url": service.url})
        redis = create_redis(service.url)  # the test's publisher follows the failover too
        primary, replica = direct(service.primary.port), direct(service.replica.port)
        try:
            async with running_gateway(own) as gw, running_worker(own) as worker:
                node = gw.node
                holder = await Client.connect(f"{gw.ws}/ws/v2/connect")  # stays throughout
                first = await Client.connect(f"{gw.ws}/ws/v2/connect")
                try:
                    room = (await holder.subscribe("odds_updates", sport="NFL"))["data"]["room"]
                    await first.subscribe("odds_updates", sport="NFL")
                    await wait_until(
                        lambda: workers_synced(redis, keys), timeout=15, message="worker index"
                    )
                    await wait_until(lambda: node.ready, timeout=10, message="gateway ready")
                    ingester = Ingester(redis, keys)

                    # 1..5 reach `first`, which leaves with its position; 6..20 go on.
                    await ingester.publish_many([_odds(n) for n in range(1, 6)])
                    await wait_until(lambda: len(_seqs(first)) == 5, message="first's events")
                    position = _last_position(first, room)
                    await first.close()
                    await ingester.publish_many([_odds(n) for n in range(6, 21)])
                    await wait_until(lambda: len(_seqs(holder)) == 20, message="holder's events")
                    # Everything so far (events, histories, cursors) is on the replica too...
                    assert await primary.wait(1, 2000) == 1
                    # ...but not the scripts: the promoted replica must be sent them again.
                    await replica.script_flush()
                    commit_sha = worker.commit_script.sha

                    mark = len(holder.frames)
                    async with readiness(f"{gw.http}/readyz") as statuses:
                        service.primary.kill()
                        await wait_until(
                            lambda: any(s != 200 for s in statuses),
                            timeout=5,
                            message="/readyz failing",
                        )
                        # The sentinels have not agreed yet: a subscribe is refused for now.
                        reply = await holder.request(
                            {"type": "subscribe", "subscription_type": "nba", "id": 1},
                            "subscription_confirmed",
                        )
                        assert reply["type"] == "error", reply
                        assert reply["code"] == "service_unavailable"
                        await wait_until(
                            lambda: bool(_alerts(holder, mark)), message="an alert to clients"
                        )
                        assert _alerts(holder, mark)[0] == "service_degraded"

                        await sentinels.wait_primary(service.name, service.replica.port)
                        await wait_until(
                            lambda: bool(statuses) and statuses[-1] == 200,
                            timeout=20,
                            message="/readyz 200 again",
                        )
                    down = [n for n, s in enumerate(statuses) if s != 200]
                    assert down and statuses[-1] == 200
                    assert statuses[: down[0]] and set(statuses[: down[0]]) == {200}
                    assert node.ready and gw.node is node

                    await wait_until(
                        lambda: "service_restored" in _alerts(holder, mark),
                        timeout=10,
                        message="service_restored",
                    )

                    # The same gateway and worker deliver what is published now...
                    await ingester.publish_many([_odds(n) for n in range(21, 31)])
                    await wait_until(
                        lambda: len(_seqs(holder)) >= 30, timeout=15, message="new events"
                    )
                    assert _seqs(holder) == list(range(1, 31))
                    # ...and `first`, back with its position, gets 6..30 (replicated before the
                    # kill, published after it) and then live events: once each, in order.
                    second = await Client.connect(f"{gw.ws}/ws/v2/connect")
                    try:
                        resumed = await second.resume("odds_updates", position, sport="NFL")
                        assert resumed["type"] == "subscription_confirmed", resumed
                        assert resumed["data"]["recovered"] is True
                        assert resumed["data"]["replayed"] == 25  # 6..20 before, 21..30 after
                        await wait_until(lambda: len(_seqs(second)) >= 25, message="replay")
                        await ingester.publish_many([_odds(31)])  # and live from there
                        await wait_until(lambda: len(_seqs(second)) >= 26, message="live")
                        await asyncio.sleep(0.3)  # a duplicate would arrive by now
                        assert _seqs(second) == list(range(6, 32))
                        frames = second.of("odds_update")
                        assert all(f.get("replay") for f in frames[:25])
                        assert not frames[25].get("replay")
                    finally:
                        await second.close()

                    # The scripts were loaded again on the new primary (NOSCRIPT handled).
                    assert (await replica.script_exists(commit_sha)) == [True]
                    assert worker._tasks and not any(t.done() for t in worker._tasks)
                finally:
                    await holder.close()
        finally:
            await primary.aclose()
            await replica.aclose()
            await redis.aclose()


@pytest.mark.slow
async def test_after_a_manual_failover_nothing_keeps_writing_to_the_old_primary(
    sentinels: Sentinels, settings: Settings, keys: Keys
) -> None:
    """`SENTINEL FAILOVER` promotes the replica while the old primary keeps running as a
    primary: Sentinel demotes it only seconds later (8 s and more), and whatever is written
    to it meanwhile is lost. Gateway, worker and publisher must move within about a second
    (`PRIMARY_CHECK_INTERVAL`), long before that."""
    async with monitored_service(sentinels) as service:
        own = settings.model_copy(update={"redis_url": service.url})
        redis = create_redis(service.url)
        old, new = direct(service.primary.port), direct(service.replica.port)
        try:
            async with running_gateway(own) as gw, running_worker(own):
                c = await Client.connect(f"{gw.ws}/ws/v2/connect")
                try:
                    await c.subscribe("odds_updates", sport="NFL")
                    await wait_until(
                        lambda: workers_synced(redis, keys), timeout=15, message="worker index"
                    )
                    ingester = Ingester(redis, keys)
                    await ingester.publish_many([_odds(n) for n in range(1, 6)])
                    await wait_until(lambda: len(_seqs(c)) == 5, message="events before")

                    async with sentinels.clients() as clients:
                        assert await clients[0].sentinel_failover(service.name)
                    await sentinels.wait_primary(service.name, service.replica.port)
                    switched = time.monotonic()
                    await asyncio.sleep(PRIMARY_CHECK_INTERVAL + 0.2)
                    after = set(await ingester.publish_many([_odds(n) for n in range(6, 16)]))
                    await wait_until(lambda: len(_seqs(c)) >= 15, timeout=5, message="events after")
                    # Still a primary, still writable, and yet nothing was written to it.
                    assert (await old.info("replication"))["role"] == "master"
                    assert time.monotonic() - switched < 8
                    assert _seqs(c) == list(range(1, 16))
                    assert after <= await _event_ids(new, keys)
                    assert not after & await _event_ids(old, keys)
                    await wait_until(lambda: gw.node.ready, timeout=10, message="ready")
                finally:
                    await c.close()
        finally:
            await old.aclose()
            await new.aclose()
            await redis.aclose()


# --- start-up errors ------------------------------------------------------------------------


def _cli_env(redis_url: str) -> dict[str, str]:
    """The environment minus stray settings, plus REDIS_URL and the project on the path."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ODDSTREAM_", "WEBSOCKET_")) or k == "ODDSTREAM_REDIS_SERVER"
    }
    env.pop("JWT_SECRET", None)
    env.update(
        REDIS_URL=redis_url,
        ODDSTREAM_ENV="development",
        ODDSTREAM_LOG_LEVEL="WARNING",
        PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p),
    )
    return env


def _run_cli(
    *args: str, env: dict[str, str], cwd: Path, timeout: float = 20.0
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "oddstream.cli", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )


@pytest.mark.parametrize("command", ["worker", "gateway"])
def test_an_unknown_service_stops_the_cli_with_one_line(
    command: str, sentinels: Sentinels, tmp_path: Path
) -> None:
    url = sentinels.url("no-such-service")
    result = _run_cli(command, *(["--port", "0"] if command == "gateway" else []),
                      env=_cli_env(url), cwd=tmp_path)  # fmt: skip
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("oddstream: REDIS_URL=redis+sentinel://")
    assert "no sentinel monitors service 'no-such-service'" in lines[0]


async def test_an_unknown_service_is_not_mistaken_for_a_primary_down(
    sentinels: Sentinels,
) -> None:
    redis = create_redis(sentinels.url("no-such-service"))
    try:
        with pytest.raises(UnknownServiceError, match="REDIS_URL="):
            await redis.ping()
    finally:
        await redis.aclose()


def test_sentinels_all_down_stop_the_gateway_with_one_line(tmp_path: Path) -> None:
    ports = [free_port(), free_port()]
    url = f"redis+sentinel://:hunter2@127.0.0.1:{ports[0]},127.0.0.1:{ports[1]}/main"
    result = _run_cli("gateway", "--port", "0", env=_cli_env(url), cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("oddstream: REDIS_URL=redis+sentinel://:***@")
    assert "no sentinel answered" in lines[0]
    assert all(f"127.0.0.1:{port}" in lines[0] for port in ports)
    assert "hunter2" not in result.stderr


def test_sentinels_all_down_a_worker_says_so_and_waits(tmp_path: Path) -> None:
    """As with a plain Redis that is down at start: the worker keeps retrying."""
    url = f"redis+sentinel://127.0.0.1:{free_port()}/main"
    proc = subprocess.Popen(
        [sys.executable, "-m", "oddstream.cli", "worker"],
        env=_cli_env(url),
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        first = proc.stderr.readline()  # the check runs before anything else is printed
        assert first.startswith("oddstream: REDIS_URL=redis+sentinel://"), first
        assert "no sentinel answered" in first
        time.sleep(1.0)
        assert proc.poll() is None, "the worker should wait for Redis, not exit"
    finally:
        proc.kill()
        proc.wait()
        if proc.stderr:
            proc.stderr.close()


# --- credentials -----------------------------------------------------------------------------


async def test_the_url_password_is_the_sentinels_too_unless_told_otherwise(tmp_path: Path) -> None:
    """A sentinel with `requirepass` gets the URL's password (no `sentinel_password`)."""
    from oddstream.embedded import EmbeddedRedis

    config = tmp_path / "sentinel.conf"
    config.write_text("sentinel resolve-hostnames no\n")
    with (
        EmbeddedRedis(extra_args=("--requirepass", "both")) as data,
        EmbeddedRedis(
            config_file=str(config), extra_args=("--sentinel", "--requirepass", "both")
        ) as sentinel,
    ):
        admin = Redis(port=sentinel.port, password="both")
        try:
            await admin.sentinel_monitor("solo", "127.0.0.1", data.port, 1)
            await admin.sentinel_set("solo", "auth-pass", "both")
        finally:
            await admin.aclose()
        client: Redis = create_redis(f"redis+sentinel://:both@127.0.0.1:{sentinel.port}/solo")
        try:
            await client.set(b"k", b"v")
            assert await client.get(b"k") == b"v"
        finally:
            await client.aclose()
        wrong = create_redis(
            f"redis+sentinel://:both@127.0.0.1:{sentinel.port}/solo?sentinel_password="
        )
        try:
            with pytest.raises(Exception, match="no sentinel answered"):
                await wrong.ping()
        finally:
            await wrong.aclose()
