"""`shared.client.OddstreamClient` against a real gateway, worker and Redis (no mocks)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from pydantic import SecretStr
from redis.asyncio import Redis

from oddstream.embedded import free_port
from oddstream.gateway.auth import issue_token
from oddstream.shared.ingest import Ingester, encode_event, parse_event
from oddstream.shared.keys import Keys
from oddstream.shared.settings import Settings
from oddstream_client import (
    AuthError,
    Backoff,
    ConnectionClosed,
    ConnectionState,
    OddstreamClient,
    ResumeEvent,
    StateEvent,
    Subscription,
    SubscriptionError,
)
from tests.harness import (
    ADMIN,
    RunningGateway,
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
            nba = await client.subscribe("odds_updates", {"sport": "NBA"}, snapshot=False)
            assert mlb.room and mlb.room.startswith("odds_updates.") and mlb.room != nba.room
            assert client.stats.subscriptions == 2
            # A new odds subscription starts with a snapshot of the room (nothing yet here).
            (snapshot,) = await take(mlb, 1)
            assert snapshot["type"] == "snapshot" and snapshot["room"] == mlb.room
            assert snapshot["data"]["events"] == [] and mlb.position == snapshot["position"]
            await wait_until(lambda: workers_synced(redis_client, keys), message="worker synced")

            ids = await publish_odds(redis_client, keys, "MLB", "G1", "G2")
            await publish_odds(redis_client, keys, "NHL", "X1")  # matches neither
            nba_ids = await publish_odds(redis_client, keys, "NBA", "B1")
            got = sorted(await take(mlb, 2), key=lambda f: f["data"]["game_id"])
            assert [f["event_id"] for f in got] == ids  # unique per event, across partitions
            assert [f["data"]["game_id"] for f in got] == ["G1", "G2"]
            assert all(f["type"] == "odds_update" and f["rooms"] == [mlb.room] for f in got)
            assert [f["event_id"] for f in await take(nba, 1)] == nba_ids
            assert mlb.received == 3 and nba.received == 1  # mlb's snapshot, then two

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
            sub = await client.subscribe("odds_updates", sport="NFL", snapshot=False)
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
            assert (await sub.__anext__())["type"] == "snapshot"  # delivered before the end
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
            "--url", f"{gw.ws}/ws/v2/connect", "--count", "3",
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
    assert len(frames) == 3
    # The client yields the room's snapshot first (empty: nothing was published yet).
    assert [f["type"] for f in frames] == ["snapshot", "odds_update", "odds_update"]
    assert frames[0]["data"]["events"] == []
    assert [f["event_id"] for f in frames[1:]] == ids[:2]
    assert [f["data"]["game_id"] for f in frames[1:]] == ["M1", "M1"]
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


# --- 7. gap-free resume, dedupe, snapshots --------------------------------------------------------
#
# The client keeps each subscription's position and sends it with every resubscribe: the
# gateway replays what the room got meanwhile, then live frames follow. One game per feed keeps
# the events in one ingest partition, so the room's order is the ingest order, exactly.

SLOW_FIRST = Backoff(base=0.4, factor=2.0, max_delay=0.8, jitter="none")


@contextlib.asynccontextmanager
async def game_feed(
    redis: Redis, keys: Keys, sport: str, game: str, interval: float = 0.01, kind: str = "odds"
) -> AsyncIterator[list[str]]:
    """Publish one event of `game` every `interval` s until the block ends; yields the ids
    published so far, in ingest order (one game: one partition, one order)."""
    sent: list[str] = []
    stop = asyncio.Event()

    async def feed() -> None:
        ingester = Ingester(redis, keys)
        n = 0
        while not stop.is_set():
            n += 1
            body: dict[str, Any] = {"kind": kind, "sport": sport, "game_id": game, "seq": n}
            if kind == "odds":
                body |= {"sportsbook": "FanDuel", "market": "total", "over_price": -100 - n}
            sent.append((await ingester.publish(parse_event(body))).decode())
            await asyncio.sleep(interval)

    task = asyncio.create_task(feed())
    try:
        yield sent
    finally:
        stop.set()
        await task


def drop_connections(gw: RunningGateway) -> int:
    """Cut every client's TCP connection from the gateway's side (no close frame: 1006)."""
    connections = list(gw.node.connections.values())
    for conn in connections:
        conn.transport.abort()
    return len(connections)


async def collect(sub: Subscription, until: Callable[[list[dict[str, Any]]], bool], timeout: float
                  ) -> list[dict[str, Any]]:  # fmt: skip
    """Frames of `sub` until `until(frames)`; then whatever else arrives within 0.5 s (a
    duplicate would have arrived by then)."""
    frames: list[dict[str, Any]] = []
    async with asyncio.timeout(timeout):
        while not until(frames):
            frames.append(await sub.__anext__())
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(0.5):
            while True:
                frames.append(await sub.__anext__())
    return frames


def data_ids(frames: list[dict[str, Any]]) -> list[str]:
    return [f["event_id"] for f in frames if f["type"] != "snapshot"]


def has_all(sent: list[str]) -> Callable[[list[dict[str, Any]]], bool]:
    return lambda frames: set(sent) <= set(data_ids(frames))


async def test_resumes_after_a_dropped_connection_with_every_missed_event_once_in_order(
    settings: Settings, redis_client: Redis, keys: Keys
) -> None:
    async with running_gateway(settings) as gw, running_worker(settings):
        client = OddstreamClient(f"{gw.ws}/ws/v2/connect", backoff=SLOW_FIRST, max_attempts=None)
        resumes: list[ResumeEvent] = []
        client.on_resume(resumes.append)
        async with client:
            sub = await client.subscribe("odds_updates", sport="MLB")
            assert sub.recovered is None  # a fresh subscription: a snapshot is next
            await wait_until(lambda: workers_synced(redis_client, keys), message="worker synced")
            async with game_feed(redis_client, keys, "MLB", "R1") as sent:
                await wait_until(lambda: len(sent) > 20 and sub.received > 10, message="flowing")
                before = sub.position
                assert before is not None
                assert drop_connections(gw) == 1
                # Away for the first backoff step (0.4 s) while ~40 events are published.
                await wait_until(lambda: client.stats.reconnects == 1, message="reconnected")
                await asyncio.sleep(0.5)
            frames = await collect(sub, has_all(sent), timeout=15)

        assert frames[0]["type"] == "snapshot" and frames[0]["data"]["events"] == []
        assert [f["type"] for f in frames[1:]] == ["odds_update"] * (len(frames) - 1)
        assert data_ids(frames) == sent, "every event once, in ingest order, across the drop"
        assert [f["data"]["seq"] for f in frames[1:]] == list(range(1, len(sent) + 1))
        replayed = [f for f in frames if f.get("replay")]
        assert replayed, "the events published while away came back as a replay"
        assert [f["event_id"] for f in replayed] == sent[sent.index(replayed[0]["event_id"]) :][
            : len(replayed)
        ]
        assert all(sub.room in f["positions"] for f in frames[1:])
        # The resubscribe carried the position; the gateway resumed from it.
        assert [(e.recovered, e.subscription) for e in resumes] == [(True, sub)]
        assert resumes[0].position != frames[-1]["positions"][sub.room]
        assert resumes[0].replayed == len(replayed)
        assert sub.recovered is True and sub.resumes == 1 and sub.resyncs == 0
        assert sub.position == frames[-1]["positions"][sub.room]
        assert client.stats.resumes == 1 and client.stats.reconnects == 1


async def test_resumes_across_a_gateway_restart_with_no_gap_and_no_duplicate(
    settings: Settings, redis_client: Redis, keys: Keys
) -> None:
    """The gateway drains (1001), is down for a while, and a new one takes the same port."""
    fixed = settings.model_copy(update={"port": free_port()})
    async with running_worker(fixed):
        first = gateway_on_port(fixed, fixed.port)
        gw = await first.__aenter__()
        second = gateway_on_port(fixed, fixed.port)
        client = OddstreamClient(f"{gw.ws}/ws/v2/connect", backoff=FAST, max_attempts=None)
        events = recorder(client)
        try:
            await client.connect()
            sub = await client.subscribe("nba", game_id="B7")
            await wait_until(lambda: workers_synced(redis_client, keys), message="worker synced")
            async with game_feed(redis_client, keys, "NBA", "B7", kind="predictions") as sent:
                await wait_until(lambda: sub.received > 10, message="flowing")
                await first.__aexit__(None, None, None)  # drains: 1001
                down = len(sent)
                await asyncio.sleep(0.8)  # nobody serves the room meanwhile
                assert len(sent) > down + 20
                again = await second.__aenter__()
                await wait_until(lambda: client.state is ConnectionState.CONNECTED, message="back")
                assert again.node.gateway_id != gw.node.gateway_id
                await asyncio.sleep(0.3)
            try:
                frames = await collect(sub, has_all(sent), timeout=15)
            finally:
                await second.__aexit__(None, None, None)
        finally:
            await client.close()
    assert next(e for e in events if e.state is ConnectionState.DISCONNECTED).close_code == 1001
    assert frames[0]["type"] == "snapshot"
    assert data_ids(frames) == sent
    assert all(f["type"] == "prediction_update" for f in frames[1:])
    assert any(f.get("replay") for f in frames)
    assert sub.recovered is True and sub.resumes == 1 and sub.duplicates == 0


async def test_a_replayed_duplicate_is_dropped_by_event_id(
    settings: Settings, redis_client: Redis, keys: Keys
) -> None:
    """The gateway drops duplicates at the seam; the client drops any that still come. Here
    the subscription's position is set back (as a stale saved position would be), so the
    resume replays two frames it already delivered: neither is yielded again."""
    async with (
        running_gateway(settings) as gw,
        running_worker(settings),
        OddstreamClient(f"{gw.ws}/ws/v2/connect", backoff=FAST) as client,
    ):
        sub = await client.subscribe("odds_updates", game_id="D1", snapshot=False)
        await wait_until(lambda: workers_synced(redis_client, keys), message="worker synced")
        sent = await publish_odds(redis_client, keys, "MLB", "D1", "D1", "D1")
        got = await take(sub, 3)
        assert data_ids(got) == sent  # snapshot=False: live frames only
        assert sub.position == got[2]["positions"][sub.room]

        sub._position = got[0]["positions"][sub.room]  # behind what it delivered
        assert drop_connections(gw) == 1
        await wait_until(lambda: client.stats.reconnects == 1, message="reconnected")
        assert sub.recovered is True and sub.replayed == 2  # sent[1:] again
        more = await publish_odds(redis_client, keys, "MLB", "D1")
        (live,) = await take(sub, 1)
        assert data_ids([live]) == more  # the replayed two were not yielded again
        assert sub.duplicates == 2 and sub.received == 4
        assert client.stats.duplicates == 2
        assert sub.position == live["positions"][sub.room]


async def test_a_new_odds_subscription_gets_the_latest_values_first(
    settings: Settings, redis_client: Redis, keys: Keys
) -> None:
    async with (
        running_gateway(settings) as gw,
        running_worker(settings),
        OddstreamClient(f"{gw.ws}/ws/v2/connect", backoff=FAST) as watcher,
        OddstreamClient(f"{gw.ws}/ws/v2/connect", backoff=FAST) as client,
    ):
        witness = await watcher.subscribe("odds_updates", sport="NHL", snapshot=False)
        await wait_until(lambda: workers_synced(redis_client, keys), message="worker synced")
        base = {"kind": "odds", "sport": "NHL", "sportsbook": "FanDuel"}
        bodies = [
            {**base, "game_id": "H1", "market": "total", "over_price": -110},
            {**base, "game_id": "H1", "market": "total", "over_price": -115},  # newer
            {**base, "game_id": "H1", "market": "spread", "home_price": 100},
            {**base, "game_id": "H2", "market": "total", "sportsbook": "BetMGM"},
            {**base, "game_id": "H2", "market": "total", "over_price": -120},
        ]
        events = [parse_event(b) for b in bodies]
        ids = [i.decode() for i in await Ingester(redis_client, keys).publish_many(events)]
        await take(witness, 5)  # the worker has recorded them all
        latest = {ids[1], ids[2], ids[3], ids[4]}  # one per game, book and market

        # A new subscriber (another connection: the watcher's is in the room already).
        sub = await client.subscribe("odds_updates", sport="NHL")
        assert sub.room == witness.room and sub.recovered is None
        more = await publish_odds(redis_client, keys, "NHL", "H1")
        snapshot, live = await take(sub, 2)
        assert snapshot["type"] == "snapshot" and snapshot["room"] == sub.room
        assert snapshot["data"]["subscription_type"] == "odds_updates"
        got = snapshot["data"]["events"]
        assert {e["event_id"] for e in got} == latest
        assert all(e["type"] == "odds_update" for e in got)
        h1_total = next(
            e for e in got if e["data"]["game_id"] == "H1" and e["data"]["market"] == "total"
        )
        assert h1_total["data"]["over_price"] == -115  # the newest value of that key
        assert live["event_id"] == more[0]  # live updates come after the snapshot
        assert sub.snapshots == 1 and sub.last_snapshot == snapshot
        assert sub.position == live["positions"][sub.room]

        # snapshot=False: live frames only.
        async with OddstreamClient(f"{gw.ws}/ws/v2/connect", backoff=FAST) as other:
            quiet = await other.subscribe("odds_updates", {"sport": "NHL"}, snapshot=False)
            more = await publish_odds(redis_client, keys, "NHL", "H2")
            assert data_ids(await take(quiet, 1)) == more and quiet.snapshots == 0


async def test_an_unusable_position_resyncs_with_a_snapshot_and_a_malformed_one_is_refused(
    settings: Settings, redis_client: Redis, keys: Keys
) -> None:
    async with (
        running_gateway(settings) as gw,
        running_worker(settings),
        OddstreamClient(f"{gw.ws}/ws/v2/connect", backoff=FAST) as client,
    ):
        resumes: list[ResumeEvent] = []
        client.on_resume(resumes.append)
        nba = await client.subscribe("odds_updates", sport="NBA", snapshot=False)
        await wait_until(lambda: workers_synced(redis_client, keys), message="worker synced")
        await publish_odds(redis_client, keys, "NBA", "N1")
        (frame,) = await take(nba, 1)
        other_room = frame["positions"][nba.room]

        # Well-formed, but another room's: not recovered, and a snapshot instead.
        mlb = await client.subscribe("odds_updates", sport="MLB", position=other_room)
        assert mlb.recovered is False and mlb.resyncs == 1
        assert [(e.subscription, e.recovered, e.position) for e in resumes] == [
            (mlb, False, other_room)
        ]
        (snapshot,) = await take(mlb, 1)
        assert snapshot["type"] == "snapshot" and snapshot["room"] == mlb.room
        assert mlb.position == snapshot["position"] != other_room
        assert client.stats.resyncs == 1

        with pytest.raises(SubscriptionError) as bad:
            await client.subscribe("odds_updates", sport="NHL", position="not a position")
        assert bad.value.code == "invalid_position" and bad.value.hint
        assert client.stats.subscriptions == 2


async def test_a_resume_past_the_window_resyncs_and_tells_the_application(
    settings: Settings, redis_client: Redis, keys: Keys
) -> None:
    """Away for longer than the room keeps history: `recovered: false`, `on_resync`, and the
    snapshot in the stream before the live frames."""
    short = settings.model_copy(update={"port": free_port(), "history_seconds": 0.5})
    async with running_worker(short):
        first = gateway_on_port(short, short.port)
        gw = await first.__aenter__()
        client = OddstreamClient(f"{gw.ws}/ws/v2/connect", backoff=FAST, max_attempts=None)
        try:
            await client.connect()
            sub = await client.subscribe("odds_updates", sport="NFL")
            resyncs: list[ResumeEvent] = []
            sub.on_resync(resyncs.append)
            await wait_until(lambda: workers_synced(redis_client, keys), message="worker synced")
            async with game_feed(redis_client, keys, "NFL", "F1", interval=0.02) as sent:
                await wait_until(lambda: sub.received > 5, message="flowing")
                await first.__aexit__(None, None, None)
                await asyncio.sleep(2.0)  # four windows
                async with gateway_on_port(short, short.port):
                    await wait_until(lambda: len(resyncs) == 1, message="resync reported")
                    mark = len(sent) + 5

                    def live_again(frames: list[dict[str, Any]]) -> bool:
                        return len(sent) > mark and sent[mark] in data_ids(frames)

                    frames = await collect(sub, live_again, timeout=15)
        finally:
            await client.close()
    assert resyncs[0].recovered is False and resyncs[0].subscription is sub
    assert sub.recovered is False and sub.resyncs == 1 and sub.resumes == 0
    kinds = [f["type"] for f in frames]
    assert kinds.count("snapshot") == 2, kinds  # the fresh one, and the resync's
    resync_at = kinds.index("snapshot", 1)
    (latest,) = frames[resync_at]["data"]["events"]  # one game, book and market
    before = data_ids(frames[:resync_at])
    after = data_ids(frames[resync_at:])
    assert latest["event_id"] not in before, "the snapshot holds what was missed"
    assert sent.index(latest["event_id"]) < sent.index(after[0])
    assert after == sent[sent.index(after[0]) : sent.index(after[0]) + len(after)]
    assert len(before) == len(set(before)) and before == sent[: len(before)]


async def test_offline_portfolio_updates_are_delivered_on_return_from_a_saved_position(
    settings: Settings, redis_client: Redis, keys: Keys
) -> None:
    """A process that stored its position and comes back later than the live window receives
    the portfolio updates sent meanwhile, once, in order."""
    secure = settings.model_copy(update={"jwt_secret": SecretStr(SECRET), "history_seconds": 0.5})
    token = issue_token(SECRET, "dora")

    async def publish(n: int) -> list[str]:
        events = [parse_event({"kind": "portfolio", "user": "dora", "n": i}) for i in range(n)]
        return [i.decode() for i in await Ingester(redis_client, keys).publish_many(events)]

    async with running_gateway(secure) as gw, running_worker(secure):
        url = f"{gw.ws}/ws/v2/connect"
        async with OddstreamClient(url, token=token, backoff=FAST) as client:
            sub = await client.subscribe("portfolio")
            await wait_until(lambda: workers_synced(redis_client, keys), message="worker synced")
            seen = await publish(3)
            assert data_ids(await take(sub, 3)) == seen
            saved = sub.position
        assert saved is not None
        missed = await publish(4)
        await asyncio.sleep(1.5)  # three live windows later
        async with OddstreamClient(url, token=token, backoff=FAST) as client:
            back = await client.subscribe("portfolio", position=saved)
            assert back.recovered is True and back.replayed == 4
            frames = await take(back, 4)
            assert data_ids(frames) == missed
            assert all(f.get("replay") and f["type"] == "portfolio_update" for f in frames)
            assert back.position == frames[-1]["positions"][back.room]


def cut_off(port: int) -> bool:
    """Whether the gateway on `port` has closed a slow consumer (4008), asking its /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as reply:
        return 'oddstream_closes_total{code="4008"}' in reply.read().decode()


def flood_until_cut_off(
    port: int,
    redis_url: str,
    keys: Keys,
    alert: Callable[[int], Any],
    first: int,
    *,
    chunk: int = 250,
    cap_bytes: int = 128 * 1024 * 1024,
    timeout: float = 60.0,
) -> list[str]:
    """Block this thread (and so the test's event loop: its client reads nothing) while another
    thread publishes alerts `first`, `first + 1`, ... in chunks until the gateway on `port` has
    closed the stalled client (4008). Returns the ids published.

    The flood grows until the cut-off, not to a fixed size: how much a stalled socket absorbs
    is the kernel's choice (its send buffer grows up to `net.ipv4.tcp_wmem`'s maximum, which
    differs between machines), and only what overflows it reaches the gateway's own buffer."""
    published: list[str] = []
    done = threading.Event()
    failure: list[BaseException] = []

    async def flood() -> None:
        redis = Redis.from_url(redis_url)
        try:
            ingester, n, sent_bytes = Ingester(redis, keys), first, 0
            while not done.is_set() and sent_bytes < cap_bytes:
                events = [alert(i) for i in range(n, n + chunk)]
                published.extend(i.decode() for i in await ingester.publish_many(events))
                sent_bytes += sum(len(encode_event(e)) for e in events)
                n += chunk
                await asyncio.sleep(0.05)
        finally:
            await redis.aclose()

    def run() -> None:
        try:
            asyncio.run(flood())
        except BaseException as error:  # reported in the test's thread below
            failure.append(error)

    feeder = threading.Thread(target=run, name="flood")
    feeder.start()
    deadline = time.monotonic() + timeout
    try:
        while not cut_off(port):
            if time.monotonic() > deadline or not feeder.is_alive():
                raise AssertionError(
                    f"the gateway did not close the stalled client within {timeout}s "
                    f"({len(published)} alerts published; failure: {failure})"
                )
            time.sleep(0.05)
    finally:
        done.set()
        feeder.join()
    assert not failure, failure
    return published


async def test_resumes_after_a_slow_consumer_close_with_nothing_lost(
    settings: Settings,
    redis_client: Redis,
    keys: Keys,
    processes: list[subprocess.Popen[bytes]],
) -> None:
    """Must-deliver data (arbitrage) overflows the gateway's send buffer while the client is
    stalled (its event loop blocked): the gateway closes it with 4008. The client reconnects
    at once and resumes from its position: every alert once, in order."""
    port = free_port()
    env = process_env(
        settings,
        ODDSTREAM_SEND_BUFFER_BYTES="65536",
        ODDSTREAM_HISTORY_SIZE="50000",
        ODDSTREAM_MAX_REPLAY="50000",
        ODDSTREAM_MAX_REPLAY_BYTES=str(256 * 1024 * 1024),
    )
    spawn_cli(processes, env, "gateway", "--port", str(port))
    spawn_cli(processes, env, "worker")
    url = f"ws://127.0.0.1:{port}/ws/v2/connect"

    async def up() -> bool:
        with contextlib.suppress(aiohttp.ClientError):
            async with (
                aiohttp.ClientSession() as http,
                http.get(f"http://127.0.0.1:{port}/readyz") as reply,
            ):
                return reply.status == 200
        return False

    await wait_until(up, timeout=20, message="gateway ready")
    # Uncompressed: the flood must reach the socket at its full size, not deflated away.
    client = OddstreamClient(url, backoff=FAST, max_attempts=None, compression=False)
    events = recorder(client)
    resumes: list[ResumeEvent] = []
    client.on_resume(resumes.append)
    pad = "x" * 4000  # 4 kB alerts: the flood overflows the socket's buffers in a few MB
    ingester = Ingester(redis_client, keys)

    def alert(n: int) -> Any:
        return parse_event({"kind": "arbitrage", "sport": "NBA", "game_id": "SLOW",
                            "profit_pct": 1.5, "sportsbooks": ["FanDuel", "BetMGM"],
                            "n": n, "pad": pad})  # fmt: skip

    async with client:
        sub = await client.subscribe("arbitrage", game_id="SLOW")
        await wait_until(lambda: workers_synced(redis_client, keys), message="worker synced")
        sent = [i.decode() for i in await ingester.publish_many([alert(n) for n in range(3)])]
        assert data_ids(await take(sub, 3)) == sent
        # A stalled client: it reads nothing while the flood arrives.
        sent += flood_until_cut_off(port, settings.redis_url, keys, alert, first=3)
        await wait_until(lambda: client.stats.reconnects >= 1, timeout=10, message="reconnect")
        frames = await collect(sub, has_all(sent[3:]), timeout=30)
    dropped = next(e for e in events if e.state is ConnectionState.DISCONNECTED)
    assert dropped.close_code == 4008, dropped
    assert data_ids(frames) == sent[3:], "every alert once, in order, across the 4008"
    assert [f["data"]["n"] for f in frames] == list(range(3, len(sent)))
    # Cut off once or more (a big replay can overflow the buffer again): every resume recovered.
    assert resumes and all(e.recovered for e in resumes), resumes
    assert any(f.get("replay") for f in frames) and resumes[0].replayed > 0
    assert sub.duplicates == 0
