"""Connection and process lifecycle: readiness proven by canary, draining, idle release."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from pathlib import Path

import aiohttp
import pytest
from redis.asyncio import Redis

from oddstream.embedded import free_port
from oddstream.shared.keys import Keys
from oddstream.shared.settings import Settings
from tests.harness import (
    Client,
    held_rooms,
    odds_feed,
    process_env,
    running_gateway,
    running_worker,
    spawn_cli,
    spawn_module,
    wait_until,
    workers_synced,
)


async def _readyz(http: str) -> tuple[int, dict[str, object]]:
    async with aiohttp.ClientSession() as session, session.get(f"{http}/readyz") as resp:
        body: dict[str, object] = await resp.json()
        return resp.status, body


async def test_readyz_follows_the_pipeline_canary(settings: Settings) -> None:
    """A gateway that is up but deaf (no worker path) is taken out of rotation."""
    quick = settings.model_copy(update={"canary_interval": 0.2})
    async with running_gateway(quick) as gw:
        status, body = await _readyz(gw.http)
        assert status == 503
        assert body["pipeline"] is False and body["redis"] is True

        async def ready() -> bool:
            return (await _readyz(gw.http))[0] == 200

        async def not_ready() -> bool:
            return not await ready()

        async with running_worker(quick):
            await wait_until(ready, timeout=5, message="ready once a worker answers canaries")
            status, body = await _readyz(gw.http)
            assert body["last_canary_age_s"] is not None
            assert float(body["last_canary_age_s"]) < 1.0
        # Worker gone: canaries stop coming back; readiness fails within a few periods.
        await wait_until(not_ready, timeout=10 * quick.canary_interval, message="not ready")
        status, body = await _readyz(gw.http)
        assert body["pipeline"] is False and body["registered"] is True


async def test_canaries_never_reach_clients(
    settings: Settings, redis_client: Redis, keys: Keys
) -> None:
    quick = settings.model_copy(update={"canary_interval": 0.1})
    async with running_gateway(quick) as gw, running_worker(quick) as worker:
        c = await Client.connect(f"{gw.ws}/ws/v2/connect")
        try:
            await c.subscribe("system_alerts")  # canaries ride the alerts stream
            await wait_until(lambda: worker.stats.canaries >= 5, message="canaries processed")
            assert worker.stats.processed == 0
            assert [f for f in c.frames if "event_id" in f] == []
        finally:
            await c.close()


@pytest.mark.slow
async def test_sigterm_drains_clients_in_batches_without_gaps(
    settings: Settings,
    redis_client: Redis,
    keys: Keys,
    processes: list[subprocess.Popen[bytes]],
) -> None:
    """SIGTERM under a live feed: every client gets 1001 within the grace period, spread over
    time, and what each received is a gap-free prefix of the feed (nothing in flight lost)."""
    grace = 2.0
    port = free_port()
    env = process_env(settings, ODDSTREAM_PORT=str(port), ODDSTREAM_SHUTDOWN_GRACE=str(grace))
    gateway = spawn_cli(processes, env, "gateway")
    url = f"ws://127.0.0.1:{port}/ws/v2/connect"

    async def up() -> bool:
        try:
            async with aiohttp.ClientSession() as s, s.get(url.replace("ws:", "http:")) as r:
                return r.status in (400, 426)  # a plain GET on a WebSocket route
        except aiohttp.ClientError:
            return False

    async with running_worker(settings):
        await wait_until(up, message="gateway process up")
        clients = [await Client.connect(url) for _ in range(24)]
        try:
            for c in clients:
                await c.subscribe("odds_updates", sport="MLB")
            await wait_until(lambda: workers_synced(redis_client, keys), message="index")
            async with odds_feed(redis_client, keys, "MLB", interval=0.005) as published:
                await wait_until(lambda: all(c.of("odds_update") for c in clients), message="flow")
                sent_at = time.monotonic()
                gateway.send_signal(signal.SIGTERM)
                await wait_until(
                    lambda: all(c.closed_code is not None for c in clients),
                    timeout=grace + 1,
                    message="every client closed",
                )
            assert {c.closed_code for c in clients} == {1001}
            closes = sorted(c.closed_at for c in clients if c.closed_at is not None)
            assert closes[-1] - sent_at <= grace + 0.5
            assert closes[-1] - closes[0] >= 0.3, "all clients were closed at once"
            assert await asyncio.to_thread(gateway.wait, grace + 3) == 0
            assert await redis_client.zcard(keys.gateways) == 0
            for c in clients:
                got = [f["event_id"] for f in c.of("odds_update")]
                start = published.index(got[0])
                assert got == published[start : start + len(got)], "a gap in a client's feed"
        finally:
            for c in clients:
                await c.close()


@pytest.mark.slow
async def test_gunicorn_sigterm_drains_its_gateways(
    settings: Settings, redis_client: Redis, keys: Keys, processes: list[subprocess.Popen[bytes]]
) -> None:
    """Under gunicorn (deploy/gunicorn.conf.py) SIGTERM drains every gateway process too."""
    port = free_port()
    env = process_env(
        settings,
        ODDSTREAM_PORT=str(port),
        ODDSTREAM_HOST="127.0.0.1",
        ODDSTREAM_GATEWAY_PROCESSES="2",
        ODDSTREAM_SHUTDOWN_GRACE="2",
    )
    config = str(Path(__file__).parents[1] / "deploy" / "gunicorn.conf.py")
    master = spawn_module(
        processes, env, "gunicorn", "oddstream.gateway.app:gunicorn_app", "-c", config
    )
    await wait_until(
        lambda: _zcard_is(redis_client, keys.gateways, 2), timeout=15, message="2 gateways"
    )
    clients = [await Client.connect(f"ws://127.0.0.1:{port}/ws/v2/connect") for _ in range(6)]
    try:
        for c in clients:
            await c.subscribe("odds_updates")
        master.send_signal(signal.SIGTERM)
        await wait_until(
            lambda: all(c.closed_code is not None for c in clients), timeout=5, message="closed"
        )
        assert {c.closed_code for c in clients} == {1001}
        assert await asyncio.to_thread(master.wait, 10) == 0
        assert await redis_client.zcard(keys.gateways) == 0
        assert await held_rooms(redis_client, keys) == set()
    finally:
        for c in clients:
            await c.close()


async def _zcard_is(redis: Redis, key: str, count: int) -> bool:
    return int(await redis.zcard(key)) == count


async def test_a_stopped_gateway_touches_no_redis_when_its_last_connections_close(
    settings: Settings,
) -> None:
    """Found as unclosed sockets at the end of CI runs: a connection whose handler ended after
    the gateway stopped left its rooms (and released its user slot) through Redis, after the
    app had closed the client, so the command opened a connection no one closed (with
    Sentinel, a sentinel connection too). Deregistering already took the gateway's rooms and
    slots out; once stopped, a closing connection is forgotten here only."""
    async with running_gateway(settings) as gw:
        c = await Client.connect(f"{gw.ws}/ws/v2/connect")
        room = (await c.subscribe("nba"))["data"]["room"]
        node = gw.node
        (conn,) = node.connections.values()
        # A connection whose handler ends only after the gateway stopped (here: one the
        # drain does not know of, so it is still a member of its room when stop returns).
        del node.connections[conn.client_id]
        await node.stop()
        assert node.rooms.members(room) == {conn}
        redis = node.redis
        await redis.aclose()  # what the app does once the node has stopped
        await node.leave(conn, [room])  # the late handler leaving its rooms
        pool = redis.connection_pool
        connections = [*pool._available_connections, *pool._in_use_connections]
        assert not [c for c in connections if c.is_connected], "a connection opened after close"
        assert node.rooms.members(room) is None  # forgotten here all the same
        await c.close()
