"""`shared.client.OddstreamClient` against a real gateway, worker and Redis (no mocks)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from pydantic import SecretStr
from redis.asyncio import Redis

from oddstream.embedded import free_port
from oddstream.gateway.auth import issue_token
from oddstream.shared.ingest import Ingester, parse_event
from oddstream.shared.keys import Keys
from oddstream.shared.settings import Settings
from oddstream_client import (
    AuthError,
    Backoff,
    ConnectionClosed,
    ConnectionState,
    OddstreamClient,
    StateEvent,
    Subscription,
    SubscriptionError,
)
from tests.harness import (
    ADMIN,
    gateway_on_port,
    process_env,
    running_gateway,
    running_worker,
    spawn_cli,
    wait_until,
    workers_synced,
)

ROOT = Path(__file__).resolve().parents[1]
SECRET = "test-secret-0123456789abcdef0123456789"
FAST = Backoff(base=0.05, factor=2.0, max_delay=0.4, jitter="none")


def recorder(client: OddstreamClient) -> list[StateEvent]:
    events: list[StateEvent] = []
    client.on_state(events.append)
    return events


def states(events: list[StateEvent]) -> list[str]:
    return [e.state.value for e in events]


async def publish_odds(redis: Redis, keys: Keys, sport: str, *game_ids: str) -> list[str]:
    base = {"kind": "odds", "sport": sport, "sportsbook": "FanDuel", "market": "total"}
    events = [parse_event({**base, "game_id": g}) for g in game_ids]
    return [i.decode() for i in await Ingester(redis, keys).publish_many(events)]


async def take(sub: Subscription, n: int, timeout: float = 5.0) -> list[dict[str, Any]]:
    """The next `n` frames of `sub`, failing after `timeout` seconds."""
    frames: list[dict[str, Any]] = []
    async with asyncio.timeout(timeout):
        async for frame in sub:
            frames.append(frame)
            if len(frames) == n:
                break
    return frames


# --- 1. subscribe, receive, typed errors ---------------------------------------------------------


async def test_subscribe_receives_events_and_errors_are_typed(
    settings: Settings, redis_client: Redis, keys: Keys
) -> None:
    async with running_gateway(settings) as gw, running_worker(settings):
        client = OddstreamClient(f"{gw.ws}/ws/v2/connect", backoff=FAST)
        events = recorder(client)
        async with client:
            assert client.state is ConnectionState.CONNECTED
            assert client.welcome is not None and client.welcome["type"] == "welcome"
            mlb = await client.subscribe("odds_updates", sport="MLB")
            nba = await client.subscribe("odds_updates", {"sport": "NBA"})
            assert mlb.room and mlb.room.startswith("odds_updates.") and mlb.room != nba.room
            assert client.stats.subscriptions == 2
            await wait_until(lambda: workers_synced(redis_client, keys), message="worker synced")

            ids = await publish_odds(redis_client, keys, "MLB", "G1", "G2")
            await publish_odds(redis_client, keys, "NHL", "X1")  # matches neither
            nba_ids = await publish_odds(redis_client, keys, "NBA", "B1")
            got = sorted(await take(mlb, 2), key=lambda f: f["data"]["game_id"])
            assert [f["event_id"] for f in got] == ids  # unique per event, across partitions
            assert [f["data"]["game_id"] for f in got] == ["G1", "G2"]
            assert all(f["type"] == "odds_update" and f["rooms"] == [mlb.room] for f in got)
            assert [f["event_id"] for f in await take(nba, 1)] == nba_ids
            assert mlb.received == 2 and nba.received == 1

            seen: list[str] = []
            mlb.add_callback(lambda f: seen.append(f["data"]["game_id"]))
            await publish_odds(redis_client, keys, "MLB", "G3")
            assert [f["data"]["game_id"] for f in await take(mlb, 1)] == ["G3"]
            assert seen == ["G3"]

            with pytest.raises(SubscriptionError) as bad:
                await client.subscribe("odds_updates", min_profit=2)
            assert bad.value.code == "invalid_filter" and not bad.value.temporary
            assert "min_profit" in bad.value.message
            assert bad.value.hint and bad.value.message.endswith(bad.value.hint)
            with pytest.raises(AuthError) as anon:
                await client.subscribe("portfolio")
            assert anon.value.code == "auth_required"
            assert client.stats.subscriptions == 2  # refused ones are not remembered

            rtt = await client.ping()
            assert 0 < rtt < 1.0 and client.stats.latency == rtt
            assert client.stats.data_messages == 4
            assert client.stats.messages_received >= 4 + 2 + 2 + 1  # data, confirms, errors, pong

            await nba.unsubscribe()
            assert client.stats.subscriptions == 1
            with pytest.raises(StopAsyncIteration):
                await nba.__anext__()
        assert events[-1].state is ConnectionState.CLOSED and events[-1].error is None
        assert states(events) == ["connecting", "connected", "closed"]
        with pytest.raises(StopAsyncIteration):  # closed by us: iteration simply ends
            await mlb.__anext__()


async def test_answers_server_pings_so_a_quiet_client_stays_connected(settings: Settings) -> None:
    quick = settings.model_copy(update={"heartbeat_interval": 0.2, "connection_timeout": 0.8})
    async with running_gateway(quick) as gw:
        client = OddstreamClient(f"{gw.ws}/ws/v2/connect", ping_interval=None)
        events = recorder(client)
        async with client:
            await asyncio.sleep(2.0)  # 2.5x the gateway's idle timeout; only pongs from us
            assert client.state is ConnectionState.CONNECTED
            assert client.stats.messages_received >= 6  # welcome + the gateway's pings
            assert client.stats.latency is None  # no pings of our own
        assert states(events) == ["connecting", "connected", "closed"]


# --- 2. backoff ----------------------------------------------------------------------------------


async def test_backoff_schedule_and_giving_up() -> None:
    assert [Backoff().schedule(n) for n in range(1, 7)] == [2, 4, 8, 16, 30, 30]
    jittered = Backoff(jitter="proportional", jitter_ratio=0.2)
    assert all(1.6 <= jittered.delay(1) <= 2.0 for _ in range(50))
    assert all(0 <= Backoff(jitter="full").delay(3) <= 8.0 for _ in range(50))

    port = free_port()  # nothing listens here
    client = OddstreamClient(f"ws://127.0.0.1:{port}/ws/v2/connect", backoff=FAST, max_attempts=5)
    events = recorder(client)
    started = time.monotonic()
    with pytest.raises(ConnectionClosed) as gave_up:
        await client.connect()
    elapsed = time.monotonic() - started

    retries = [e for e in events if e.state is ConnectionState.RECONNECTING]
    assert [e.delay for e in retries] == [0.05, 0.1, 0.2, 0.4, 0.4]
    assert [e.attempt for e in retries] == [1, 2, 3, 4, 5]
    assert states(events) == ["connecting", *["reconnecting", "connecting"] * 5, "closed"]
    # Each retry starts no sooner than its delay after the previous event.
    for retry, following in zip(retries, events[events.index(retries[0]) + 1 :: 2], strict=True):
        assert following.state is ConnectionState.CONNECTING
        assert following.at - retry.at >= retry.delay - 0.005  # type: ignore[operator]
    assert 1.15 - 0.02 <= elapsed < 5.0
    final = events[-1]
    assert final.state is ConnectionState.CLOSED and client.state is ConnectionState.CLOSED
    assert final.error is gave_up.value and client.final_error is gave_up.value
    assert "gave up after 5 attempts" in (final.reason or "")
    assert "connect failed" in gave_up.value.message and not gave_up.value.temporary


# --- 3. resubscribe after a gateway restart ------------------------------------------------------


async def test_resubscribes_after_gateway_restart_on_the_same_port(
    settings: Settings, redis_client: Redis, keys: Keys
) -> None:
    fixed = settings.model_copy(update={"port": free_port()})
    async with running_worker(fixed):
        first = gateway_on_port(fixed, fixed.port)
        gw = await first.__aenter__()
        client = OddstreamClient(f"{gw.ws}/ws/v2/connect", backoff=FAST, max_attempts=None)
        events = recorder(client)
        try:
            await client.connect()
            sub = await client.subscribe("odds_updates", sport="NFL")
            room = sub.room
            await wait_until(lambda: workers_synced(redis_client, keys), message="worker synced")
            before = await publish_odds(redis_client, keys, "NFL", "N1")
            assert [f["event_id"] for f in await take(sub, 1)] == before
            first_gateway = gw.node.gateway_id

            await first.__aexit__(None, None, None)  # drains: clients get 1001
            await wait_until(
                lambda: client.state is not ConnectionState.CONNECTED, message="disconnect"
            )
            async with gateway_on_port(fixed, fixed.port) as again:
                await wait_until(
                    lambda: client.state is ConnectionState.CONNECTED, message="reconnected"
                )
                assert again.node.gateway_id != first_gateway
                assert client.welcome is not None
                assert client.welcome["data"]["gateway"] == again.node.gateway_id
                assert sub.room == room and sub.active
                assert len(again.node.connections) == 1
                await wait_until(
                    lambda: workers_synced(redis_client, keys), message="worker knows new room"
                )
                after = await publish_odds(redis_client, keys, "NFL", "N2", "N3")
                assert [f["event_id"] for f in await take(sub, 2)] == after
                assert client.stats.reconnects == 1
        finally:
            await client.close()
    seq = states(events)
    drop = seq.index("disconnected")
    assert seq[:drop] == ["connecting", "connected"]
    assert seq[drop + 1] == "reconnecting" and "connected" in seq[drop + 1 :]
    disconnected = events[drop]
    assert disconnected.close_code == 1001
    first_retry = events[drop + 1]
    assert first_retry.delay == 0 and first_retry.attempt == 0  # 1001 advice: reconnect now


# --- 4. token refresh ----------------------------------------------------------------------------


async def test_token_provider_refreshes_before_expiry(settings: Settings) -> None:
    secure = settings.model_copy(
        update={"jwt_secret": SecretStr(SECRET), "token_expiry_notice": 2.0, "jwt_leeway": 0.0}
    )
    issued: list[float] = []

    async def provider() -> str:
        issued.append(time.time())
        return issue_token(SECRET, "alice", ttl=4)

    async with running_gateway(secure) as gw:
        client = OddstreamClient(f"{gw.ws}/ws/v2/connect", token_provider=provider)
        events = recorder(client)
        async with client:
            assert client.welcome is not None
            first_exp = client.welcome["data"]["token_expires_at"]
            assert client.welcome["data"]["user"] == "alice"
            sub = await client.subscribe("portfolio")  # needs the token's user
            await wait_until(lambda: client.stats.token_refreshes >= 1, timeout=5, message="auth")
            await wait_until(lambda: time.time() > first_exp + 1.2, timeout=6, message="past exp")
            assert client.state is ConnectionState.CONNECTED
            assert sub.active
            assert client.stats.reconnects == 0
            assert len(issued) >= 2  # connect + at least one refresh
            conn = next(iter(gw.node.connections.values()))
            assert conn.identity.expires_at is not None and conn.identity.expires_at > first_exp
        assert states(events) == ["connecting", "connected", "closed"]


async def test_expired_token_without_provider_ends_with_auth_error(settings: Settings) -> None:
    secure = settings.model_copy(
        update={"jwt_secret": SecretStr(SECRET), "token_expiry_notice": 0.5, "jwt_leeway": 0.0}
    )
    async with running_gateway(secure) as gw:
        client = OddstreamClient(f"{gw.ws}/ws/v2/connect", token=issue_token(SECRET, "bob", ttl=2))
        events = recorder(client)
        try:
            await client.connect()
            await wait_until(
                lambda: client.state is ConnectionState.CLOSED, timeout=5, message="closed"
            )
        finally:
            await client.close()
    assert states(events) == ["connecting", "connected", "disconnected", "closed"]
    assert events[-1].close_code == 4401
    assert isinstance(client.final_error, AuthError)
    assert client.final_error.code == "token_expired"


# --- 5. terminal close ---------------------------------------------------------------------------


async def test_revocation_is_terminal(settings: Settings) -> None:
    secure = settings.model_copy(update={"jwt_secret": SecretStr(SECRET)})
    async with running_gateway(secure) as gw, running_worker(secure):
        client = OddstreamClient(
            f"{gw.ws}/ws/v2/connect", token=issue_token(SECRET, "carol"), backoff=FAST
        )
        events = recorder(client)
        async with client:
            sub = await client.subscribe("odds_updates", sport="MLB")
            async with (
                aiohttp.ClientSession(headers=ADMIN) as http,
                http.post(f"{gw.http}/ws/v2/admin/revoke", json={"user": "carol"}) as reply,
            ):
                assert reply.status == 200
            await wait_until(lambda: client.state is ConnectionState.CLOSED, message="closed")
            await asyncio.sleep(0.3)  # long enough for a (wrong) FAST retry to show up
            with pytest.raises(ConnectionClosed) as ended:
                await sub.__anext__()
            assert ended.value.close_code == 4503
    assert states(events) == ["connecting", "connected", "disconnected", "closed"]
    assert events[-1].close_code == 4503 and client.stats.reconnects == 0
    assert isinstance(client.final_error, ConnectionClosed)


# --- 6. the CLI ----------------------------------------------------------------------------------


async def test_cli_listen_prints_json_lines(
    settings: Settings, redis_client: Redis, keys: Keys
) -> None:
    async with running_gateway(settings) as gw, running_worker(settings):
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "oddstream.cli", "listen", "odds_updates", "--sport", "MLB",
            "--url", f"{gw.ws}/ws/v2/connect", "--count", "2",
            env=process_env(settings), cwd=ROOT,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            assert proc.stderr is not None
            async with asyncio.timeout(15):
                while b"subscribed room=" not in (line := await proc.stderr.readline()):
                    assert line, "listen exited before subscribing"
            await wait_until(lambda: workers_synced(redis_client, keys), message="worker synced")
            await publish_odds(redis_client, keys, "NBA", "B1")
            # One game, so one partition: the first two published are the first two shown.
            ids = await publish_odds(redis_client, keys, "MLB", "M1", "M1", "M1")
            async with asyncio.timeout(15):
                out, err = await proc.communicate()
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    assert proc.returncode == 0, err.decode()
    lines = out.decode().splitlines()
    frames = [orjson.loads(line) for line in lines]
    assert len(frames) == 2
    assert [f["type"] for f in frames] == ["odds_update", "odds_update"]
    assert [f["event_id"] for f in frames] == ids[:2]
    assert [f["data"]["game_id"] for f in frames] == ["M1", "M1"]
    assert b"closed" in err and b"Traceback" not in err


# --- dead connections --------------------------------------------------------------------------


async def test_heartbeat_timeout_detects_a_frozen_gateway(
    settings: Settings, processes: list[subprocess.Popen[bytes]]
) -> None:
    port = free_port()
    env = process_env(settings, WEBSOCKET_HEARTBEAT_INTERVAL="0.2")
    gateway = spawn_cli(processes, env, "gateway", "--port", str(port))

    async def healthy() -> bool:
        with contextlib.suppress(aiohttp.ClientError):
            async with (
                aiohttp.ClientSession() as http,
                http.get(f"http://127.0.0.1:{port}/healthz") as reply,
            ):
                return reply.status == 200
        return False

    await wait_until(healthy, timeout=15, message="gateway up")
    client = OddstreamClient(
        f"ws://127.0.0.1:{port}/ws/v2/connect",
        backoff=FAST,
        max_attempts=None,
        connect_timeout=0.5,
    )
    events = recorder(client)
    async with client:
        sub = await client.subscribe("nhl")
        assert client.welcome is not None and client.welcome["data"]["heartbeat_interval"] == 0.2
        gateway.send_signal(signal.SIGSTOP)  # the socket stays open; nothing comes any more
        try:
            await wait_until(
                lambda: client.state is not ConnectionState.CONNECTED, timeout=3, message="dead"
            )
        finally:
            gateway.send_signal(signal.SIGCONT)
        await wait_until(
            lambda: client.state is ConnectionState.CONNECTED, timeout=10, message="back"
        )
        assert sub.active and client.stats.reconnects == 1
    dropped = next(e for e in events if e.state is ConnectionState.DISCONNECTED)
    assert "heartbeat timeout" in (dropped.reason or "")
    assert states(events)[-2:] == ["connected", "closed"]
