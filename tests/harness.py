"""Helpers to run real gateways, workers and WebSocket clients inside tests."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
from aiohttp import web
from redis.asyncio import Redis

from oddstream.gateway.app import create_app, make_runner
from oddstream.gateway.node import GatewayNode
from oddstream.gateway.state import NODE
from oddstream.shared.keys import Keys
from oddstream.shared.redis import create_redis
from oddstream.shared.settings import Settings
from oddstream.workers.consumer import Worker
from tests.rfc6455 import masked, open_upgraded

ADMIN_TOKEN = "test-admin-token-0123456789"
#: Ingest partitions in tests: fewer than the default, so every worker holds several.
TEST_PARTITIONS = 4
#: Shards of the data path in the tests' deployments: 1 unless `ODDSTREAM_TEST_SHARDS` says
#: otherwise (CI runs the core tests again with several shards on one Redis).
TEST_SHARDS = int(os.environ.get("ODDSTREAM_TEST_SHARDS", "1"))
#: What the session's Redis is: `single` (a redis-server), or `cluster` (a node of a
#: three-master Redis Cluster; CI runs the core tests on one too).
TEST_REDIS = os.environ.get("ODDSTREAM_TEST_REDIS", "single")
#: Headers for management endpoints in tests.
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


async def wait_until(
    predicate: Callable[[], Awaitable[bool]] | Callable[[], bool],
    timeout: float = 10.0,
    interval: float = 0.05,
    message: str = "condition",
) -> None:
    """Poll until `predicate` is true; fail with `message` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        await asyncio.sleep(interval)


async def wait_healthy(port: int, timeout: float = 20.0, message: str = "gateway up") -> None:
    """Poll a gateway process's `/healthz` on 127.0.0.1 until it answers 200."""
    async with aiohttp.ClientSession() as session:

        async def healthy() -> bool:
            try:
                async with session.get(f"http://127.0.0.1:{port}/healthz") as reply:
                    return reply.status == 200
            except aiohttp.ClientError:
                return False

        await wait_until(healthy, timeout=timeout, interval=0.2, message=message)


@dataclass
class RunningGateway:
    app: web.Application
    runner: web.AppRunner
    port: int

    @property
    def node(self) -> GatewayNode:
        return self.app[NODE]

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}"


@contextlib.asynccontextmanager
async def running_gateway(settings: Settings) -> AsyncIterator[RunningGateway]:
    app = create_app(settings)
    runner = make_runner(app, settings)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = int(runner.addresses[0][1])
    try:
        yield RunningGateway(app, runner, port)
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def gateway_on_port(settings: Settings, port: int) -> AsyncIterator[RunningGateway]:
    """Like `running_gateway`, on a fixed port, so a restarted gateway has the same URL."""
    app = create_app(settings)
    runner = make_runner(app, settings)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield RunningGateway(app, runner, port)
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def running_worker(settings: Settings, worker_id: str | None = None) -> AsyncIterator[Worker]:
    redis = create_redis(settings.effective_redis_url)
    worker = Worker(settings, redis, worker_id=worker_id)
    await worker.start()
    try:
        yield worker
    finally:
        await worker.stop()
        await redis.aclose()


async def held_rooms(redis: Redis, keys: Keys) -> set[str]:
    """Rooms some gateway holds (the registry also keeps lingering rooms for a while)."""
    rooms = {r.decode() for r in await redis.hkeys(keys.rooms)}
    return rooms - {r.decode() for r in await redis.zrange(keys.lingering, 0, -1)}


async def lingers(redis: Redis, keys: Keys, room: str) -> bool:
    """A room no gateway holds that is still recorded for clients coming back."""
    return await redis.zscore(keys.lingering, room) is not None


async def workers_synced(redis: Redis, keys: Keys, expected_workers: int = 1) -> bool:
    """True when `expected_workers` live workers have applied every room-feed entry."""
    last = await redis.xrevrange(keys.room_feed, count=1)
    position = last[0][0].decode() if last else "0-0"
    beats = await redis.zrange(keys.workers, 0, -1)
    if len(beats) < expected_workers:
        return False
    for worker_id in beats:
        raw = await redis.hget(keys.worker_info(worker_id.decode()), "info")
        if raw is None:
            return False
        info = orjson.loads(raw)
        if tuple(map(int, info["feed_position"].split("-"))) < tuple(map(int, position.split("-"))):
            return False
    return True


class Client:
    """A real WebSocket client that records every frame it receives."""

    def __init__(self, session: aiohttp.ClientSession, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.session = session
        self.ws = ws
        self.frames: list[dict[str, Any]] = []
        self.received_at: list[float] = []  # wall clock per frame, for latency checks
        self.client_id: str | None = None
        self._new = asyncio.Event()
        self._reader = asyncio.create_task(self._read())
        self.closed_code: int | None = None
        self.closed_at: float | None = None

    @classmethod
    async def connect(cls, url: str, **kwargs: Any) -> Client:
        session = aiohttp.ClientSession()
        try:
            ws = await session.ws_connect(url, autoping=True, **kwargs)
        except BaseException:
            await session.close()
            raise
        client = cls(session, ws)
        welcome = await client.next_of("welcome")
        client.client_id = welcome["client_id"]
        return client

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type is aiohttp.WSMsgType.TEXT:
                self.frames.append(orjson.loads(msg.data))
                self.received_at.append(time.time())
                self._new.set()
        self.closed_code = self.ws.close_code
        self.closed_at = time.monotonic()
        self._new.set()

    async def send(self, body: dict[str, Any] | str | bytes) -> None:
        if isinstance(body, dict):
            await self.ws.send_str(orjson.dumps(body).decode())
        elif isinstance(body, bytes):
            await self.ws.send_bytes(body)
        else:
            await self.ws.send_str(body)

    def of(self, type_: str) -> list[dict[str, Any]]:
        return [f for f in self.frames if f["type"] == type_]

    async def next_of(self, type_: str, timeout: float = 5.0, after: int = 0) -> dict[str, Any]:
        """The first frame of `type_` at index >= `after`, waiting for it if needed."""
        deadline = time.monotonic() + timeout
        while True:
            for frame in self.frames[after:]:
                if frame["type"] == type_:
                    return frame
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._reader.done():
                seen = [f["type"] for f in self.frames[after:]]
                raise AssertionError(f"no {type_!r} frame within {timeout}s; saw {seen}")
            self._new.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._new.wait(), remaining)

    async def request(
        self, body: dict[str, Any], reply: str, timeout: float = 5.0
    ) -> dict[str, Any]:
        """Send and wait for the reply of type `reply` (or an error) sent after it."""
        mark = len(self.frames)
        await self.send(body)
        deadline = time.monotonic() + timeout
        while True:
            for frame in self.frames[mark:]:
                if frame["type"] in (reply, "error"):
                    return frame
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._reader.done():
                raise AssertionError(f"no {reply!r} reply within {timeout}s")
            self._new.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._new.wait(), remaining)

    async def resume(self, subscription_type: str, position: str, **filters: Any) -> dict[str, Any]:
        """Subscribe from `position`; the reply (a confirmation, or an error)."""
        return await self.request(
            {"type": "subscribe", "subscription_type": subscription_type, "filters": filters,
             "position": position},
            "subscription_confirmed",
        )  # fmt: skip

    async def subscribe(self, subscription_type: str, **filters: Any) -> dict[str, Any]:
        reply = await self.request(
            {"type": "subscribe", "subscription_type": subscription_type, "filters": filters},
            "subscription_confirmed",
        )
        assert reply["type"] == "subscription_confirmed", reply
        return reply

    async def close(self) -> None:
        await self.ws.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._reader, 2)
        await self.session.close()


def process_env(settings: Settings, **extra: str) -> dict[str, str]:
    """Environment for an `oddstream` subprocess on the test Redis, with short intervals."""
    env = dict(os.environ)
    env.update(
        REDIS_URL=settings.effective_redis_url,
        ODDSTREAM_REDIS_PREFIX=settings.redis_prefix,
        ODDSTREAM_GATEWAY_HEARTBEAT="0.2",
        ODDSTREAM_GATEWAY_TTL="1.0",
        ODDSTREAM_WORKER_HEARTBEAT="0.2",
        ODDSTREAM_WORKER_TTL="1.0",
        ODDSTREAM_WORKER_BLOCK_MS="200",
        ODDSTREAM_PARTITIONS=str(settings.partitions),
        ODDSTREAM_SHARDS=str(settings.shards),
        ODDSTREAM_PARTITION_LEASE_MS=str(settings.partition_lease_ms),
        ODDSTREAM_LOG_LEVEL="WARNING",
        ODDSTREAM_ADMIN_TOKEN=ADMIN_TOKEN,
    )
    env.update(extra)  # a test's own values win
    return env


def spawn_cli(
    processes: list[subprocess.Popen[bytes]], env: dict[str, str], *args: str
) -> subprocess.Popen[bytes]:
    """`oddstream ARGS...` as a subprocess, killed at the end of the test."""
    return spawn_module(processes, env, "oddstream.cli", *args)


def spawn_module(
    processes: list[subprocess.Popen[bytes]], env: dict[str, str], module: str, *args: str
) -> subprocess.Popen[bytes]:
    """`python -m MODULE ARGS...` as a subprocess, killed at the end of the test."""
    proc = subprocess.Popen(
        [sys.executable, "-m", module, *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    processes.append(proc)
    return proc


class StallableClient:
    """A minimal WebSocket client on a raw socket with tiny buffers.

    Unlike aiohttp's client it can stop reading, so the gateway sees a real slow consumer:
    the kernel buffers fill and the gateway's transport backs up.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, host: str, port: int, path: str = "/ws/v2/connect") -> StallableClient:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (host, port))
        reader, writer, _ = await open_upgraded(port, host, path, limit=4096, sock=sock)
        return cls(reader, writer)

    async def send(self, body: dict[str, Any]) -> None:
        self.writer.write(masked(0x1, orjson.dumps(body)))
        await self.writer.drain()

    async def frame(self) -> tuple[int, bytes]:
        """The next (opcode, payload); server frames are never masked."""
        first, second = await self.reader.readexactly(2)
        assert not second & 0x80, "server frames must not be masked"
        length = second & 0x7F
        if length == 126:
            length = int.from_bytes(await self.reader.readexactly(2), "big")
        elif length == 127:
            length = int.from_bytes(await self.reader.readexactly(8), "big")
        return first & 0x0F, await self.reader.readexactly(length)

    async def until(self, type_: str) -> dict[str, Any]:
        while True:
            opcode, payload = await self.frame()
            if opcode == 1:
                body: dict[str, Any] = orjson.loads(payload)
                if body["type"] == type_:
                    return body

    async def read_all(self, quiet: float = 1.0) -> tuple[list[dict[str, Any]], int | None]:
        """Read until nothing arrives for `quiet` s or the socket ends: (frames, close code)."""
        frames: list[dict[str, Any]] = []
        while True:
            try:
                opcode, payload = await asyncio.wait_for(self.frame(), quiet)
            except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
                return frames, None
            if opcode == 8:
                return frames, int.from_bytes(payload[:2], "big") if payload else None
            if opcode == 1:
                frames.append(orjson.loads(payload))

    def close(self) -> None:
        self.writer.close()


@contextlib.asynccontextmanager
async def odds_feed(
    redis: Redis, keys: Keys, sport: str, interval: float = 0.01
) -> AsyncIterator[list[str]]:
    """Publish one odds event of `sport` every `interval` s until the block ends; yields the
    ids published so far (in order)."""
    from oddstream.shared.ingest import Ingester, parse_event

    sent: list[str] = []
    stop = asyncio.Event()

    async def feed() -> None:
        ingester = Ingester(redis, keys)
        n = 0
        while not stop.is_set():
            event = parse_event({"kind": "odds", "sport": sport, "game_id": f"G{n}",
                                 "sportsbook": "FanDuel", "market": "total"})  # fmt: skip
            sent.append((await ingester.publish(event)).decode())
            n += 1
            await asyncio.sleep(interval)

    task = asyncio.create_task(feed())
    try:
        yield sent
    finally:
        stop.set()
        await task


async def http_status(session: aiohttp.ClientSession, url: str) -> int | None:
    """The status of a GET of `url`, or None when nothing answers (within 2 s)."""
    try:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=2)) as resp:
            return resp.status
    except (aiohttp.ClientError, TimeoutError):
        return None


@contextlib.asynccontextmanager
async def readiness(url: str) -> AsyncIterator[list[int | None]]:
    """Poll `url` every 50 ms while the block runs; yields the statuses seen, in order."""
    seen: list[int | None] = []
    stop = asyncio.Event()

    async def poll() -> None:
        async with aiohttp.ClientSession() as session:
            while not stop.is_set():
                seen.append(await http_status(session, url))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 0.05)

    task = asyncio.create_task(poll())
    try:
        await wait_until(lambda: bool(seen), message=f"a first answer from {url}")
        yield seen
    finally:
        stop.set()
        await task
