"""Reconnect storm: the clients of a killed gateway all resume on another one.

    python -m tests.benchmarks.storm                   # the four cases below, 5,000 clients
    python -m tests.benchmarks.storm --cases 100:0 --clients 1000    # one quick case

Each case runs on a fresh system (all 127.0.0.1): an embedded Redis, gateways A and B and one
worker (`python -m oddstream.cli`, shipped intervals, per-IP connect limit lifted, history kept
up to `--history-size` entries and an hour per room, so only the case decides its length), and
`--clients` minimal WebSocket clients (the frame parser of `tests.benchmarks.load`, no JSON
decode of data frames) in `--client-procs` processes (each under the open-file limit).

1. History. Room r is `odds_updates` with `game_id` [G<r>, PREFILL], for `--rooms` rooms. A
   throw-away client subscribes to every room and leaves, so the rooms linger (still recorded),
   and the feeder publishes HISTORY events of game PREFILL: the worker records each in every
   room's history, so each room holds HISTORY entries before the storm (checked with XLEN).
2. Live. Every client connects to gateway A and subscribes to room i % rooms (no snapshot), and
   the feeder publishes `--rate` events/s over games G0..G<rooms-1>, numbered per game, for the
   rest of the case. Clients keep the last position of their room (`positions` of data frames).
3. Storm. Once every client has live frames: INFO commandstats and CPU times, SIGKILL gateway
   A. Every client sees its socket die, waits GAP seconds (0: at once), then connects to
   gateway B and subscribes with its last position (`--connect-concurrency` handshakes in flight
   per client process; a refused or failed connect is retried after 0.1-0.3 s). Per client:
   the confirmation's `recovered` and `replayed`, the replayed frames, the first live frame
   after them, and every seq of its game (a gap or a repeat is counted).
4. Figures. Time from the kill (and from the reconnect wave, for GAP > 0) until all clients have
   `recovered: true`, have all their replayed frames, and have a live frame again; Redis work
   during the reconnect wave (from the kill, or from GAP after it, until every client is live
   again: INFO commandstats, calls and usec per command, and Redis CPU), next to the same work
   over an equal steady window before the kill (what the feed and worker cost anyway; with
   gateway A gone, the worker writes one inbox fewer, so the difference is an estimate);
   XRANGE is the replay read (the gateway's only XRANGEs: per resume, one of the position's
   own entry and one of the entries after it), so XRANGE usec per resume is the replay cost of
   one resume in Redis; gateway B's CPU per resume.

Cases (`--cases HISTORY:GAP,...`, default `100:0,50000:0,100:20,50000:20`): a short and a long
history with the same gap, and a short and a long gap with the same history. If replay cost
follows what clients missed and not the history length, XRANGE usec per resume is flat across
histories and grows with the gap. The last line of output is JSON with every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import multiprocessing
import os
import random
import secrets
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import Connection as Pipe
from pathlib import Path
from typing import Any, cast

import aiohttp
import orjson
from redis.asyncio import Redis

from oddstream.embedded import EmbeddedRedis, find_redis_server, free_port
from oddstream.shared.events import IngestEvent, OddsEvent
from oddstream.shared.ingest import Ingester
from oddstream.shared.keys import Keys
from oddstream.shared.redis import create_redis
from tests.benchmarks.load import (
    WS_PATH,
    machine,
    price_fields,
    recv,
    run,
    spawn,
)
from tests.rfc6455 import accepted, masked, upgrade_request

ROOT = Path(__file__).resolve().parents[2]
KEYS = Keys("storm")
PREFILL = "PREFILL"
BOOKS, MARKETS = ("DraftKings", "FanDuel", "BetMGM", "Caesars"), ("moneyline", "spread", "total")
TICK = 0.01


# --- client processes --------------------------------------------------------------------------


@dataclass
class Logical:
    """One client across its two connections (gateway A, then B)."""

    idx: int
    room: int
    position: str | None = None
    last_seq: int = 0
    live_before: int = 0  # frames of its game before the storm
    gaps: int = 0  # events of its game never seen (seq jumped)
    dups: int = 0  # events of its game seen twice
    recovered: bool | None = None
    replayed: int = 0  # announced by the confirmation
    replay_got: int = 0
    snapshots: int = 0
    retries: int = 0
    sent_position: str | None = None  # what the resume sent, and what the gateway confirmed
    confirmed_position: str | None = None
    errors: list[str] = field(default_factory=list)
    t_lost: float = 0.0
    t_connected: float = 0.0  # welcome from gateway B
    t_confirmed: float = 0.0
    t_caught_up: float = 0.0  # last replayed frame (or the confirmation if none)
    t_live: float = 0.0  # first live frame after the resume

    @property
    def game(self) -> bytes:
        return f"G{self.room}".encode()


def _int_after(data: bytes, key: bytes) -> int | None:
    i = data.find(key)
    if i < 0:
        return None
    i += len(key)
    j = i
    while j < len(data) and 48 <= data[j] <= 57:
        j += 1
    return int(data[i:j]) if j > i else None


class Conn(asyncio.Protocol):
    """One WebSocket connection of a Logical client: upgrade, welcome, subscribe, frames."""

    def __init__(self, owner: Logical, host: str, proc: ClientProc, storm: bool) -> None:
        self.owner, self.proc, self.storm = owner, proc, storm
        self.key, self.request = upgrade_request(host, WS_PATH)
        loop = asyncio.get_running_loop()
        self.confirmed: asyncio.Future[None] = loop.create_future()
        self.buf = bytearray()
        self.open = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.confirmed.done():
            self.confirmed.set_exception(ConnectionError(f"lost before confirmation: {exc}"))
        self.proc.lost(self)

    def send_json(self, body: dict[str, Any]) -> None:
        assert self.transport is not None
        # Any length: positions make subscribes longer than 125 bytes.
        self.transport.write(masked(0x1, orjson.dumps(body)))

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        if not self.open:
            head = buf.find(b"\r\n\r\n")
            if head < 0:
                return
            headers = bytes(buf[:head])
            if not accepted(headers, self.key):
                self.fail(f"upgrade refused: {headers[:120]!r}")
                return
            self.open = True
            del buf[: head + 4]
        pos, size = 0, len(buf)
        while size - pos >= 2:
            first, length = buf[pos], buf[pos + 1] & 0x7F
            start = pos + 2
            if length == 126:
                start += 2
                if start > size:
                    break
                length = buf[pos + 2] << 8 | buf[pos + 3]
            elif length == 127:
                start += 8
                if start > size:
                    break
                length = int.from_bytes(buf[pos + 2 : start], "big")
            end = start + length
            if end > size:
                break
            opcode = first & 0x0F
            if opcode == 0x1:
                self.text(bytes(buf[start:end]))
            elif opcode == 0x8:
                assert self.transport is not None
                self.transport.close()
                break
            elif opcode == 0x9:
                assert self.transport is not None
                self.transport.write(masked(0xA, bytes(buf[start:end])))
            pos = end
        del buf[:pos]

    def fail(self, why: str) -> None:
        self.owner.errors.append(why)
        if not self.confirmed.done():
            self.confirmed.set_exception(RuntimeError(why))
        if self.transport is not None:
            self.transport.abort()

    def text(self, data: bytes) -> None:
        o = self.owner
        if data.startswith(b'{"type":"odds_update"'):
            now = time.time()
            # Positions of data frames: {"<room>":"<position>"} (one room per frame here).
            i = data.find(b'"positions":{"')
            if i >= 0:
                j = data.find(b'":"', i + 14) + 3
                o.position = data[j : data.find(b'"', j)].decode()
            if data.find(b'"game_id":"' + o.game + b'"') < 0:
                return  # a PREFILL event (none are published once clients are in)
            seq = _int_after(data, b'"seq":')
            if seq is None:
                return
            if seq <= o.last_seq:
                o.dups += 1
            else:
                o.gaps += seq - o.last_seq - 1 if o.last_seq else 0
                o.last_seq = seq
            replay = b'"replay":true' in data
            if not self.storm:
                o.live_before += 1
            elif replay:
                o.replay_got += 1
                if o.replay_got >= o.replayed:
                    o.t_caught_up = now
            elif not o.t_live and o.t_confirmed:
                o.t_live = now
            return
        body = orjson.loads(data)
        kind = body.get("type")
        if kind == "ping":
            self.send_json({"type": "pong"})
        elif kind == "welcome":
            if self.storm:
                o.t_connected = time.time()
            spec: dict[str, Any] = {"type": "subscribe", "subscription_type": "odds_updates",
                                    "filters": {"game_id": [f"G{o.room}", PREFILL]},
                                    "snapshot": False}  # fmt: skip
            if self.storm and o.position is not None:
                spec["position"] = o.sent_position = o.position
            self.send_json(spec)
        elif kind == "subscription_confirmed":
            data_ = body["data"]
            if self.storm:
                o.t_confirmed = time.time()
                o.recovered, o.replayed = data_.get("recovered"), data_.get("replayed") or 0
                o.confirmed_position = data_.get("position")
                if o.replayed == 0:
                    o.t_caught_up = o.t_confirmed
            else:
                o.position = data_["position"]
            if not self.confirmed.done():
                self.confirmed.set_result(None)
        elif kind == "snapshot":
            o.snapshots += 1
            o.position = body.get("position") or o.position
        elif kind == "error":
            self.fail(f"error: {body.get('code')} {body.get('error')}"[:200])


class ClientProc:
    def __init__(self, ids: Sequence[int], rooms: int, concurrency: int) -> None:
        self.clients = [Logical(i, i % rooms) for i in ids]
        self.sem = asyncio.Semaphore(concurrency)
        self.storm_url: str | None = None
        self.gap = 0.0
        self.tasks: set[asyncio.Task[None]] = set()
        self.conns: dict[int, Conn] = {}

    async def open(self, o: Logical, url: str, storm: bool) -> None:
        host, port = url.split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)
        loop = asyncio.get_running_loop()
        while True:
            async with self.sem:
                conn: Conn | None = None
                try:
                    _, conn = await loop.create_connection(
                        lambda: Conn(o, f"{host}:{port}", self, storm), host, int(port)
                    )
                    async with asyncio.timeout(30):
                        await conn.confirmed
                    self.conns[o.idx] = conn
                    return
                except (OSError, RuntimeError, TimeoutError) as exc:
                    o.retries += 1
                    if conn is not None and conn.transport is not None:
                        conn.transport.abort()
                    if not storm and o.retries > 20:
                        raise RuntimeError(f"client {o.idx}: {exc}") from exc
            await asyncio.sleep(random.uniform(0.1, 0.3))

    def lost(self, conn: Conn) -> None:
        o = conn.owner
        if self.conns.get(o.idx) is not conn:
            return  # a failed attempt, retried by `open`
        del self.conns[o.idx]
        if conn.storm or self.storm_url is None:
            return
        o.t_lost = time.time()

        async def again() -> None:
            await asyncio.sleep(self.gap)
            assert self.storm_url is not None
            await self.open(o, self.storm_url, storm=True)

        task = asyncio.create_task(again())
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def status(self) -> dict[str, int]:
        c = self.clients
        return {
            "clients": len(c),
            "live": sum(1 for o in c if o.live_before >= 2),
            "lost": sum(1 for o in c if o.t_lost),
            "confirmed": sum(1 for o in c if o.t_confirmed),
            "recovered": sum(1 for o in c if o.recovered is True),
            "not_recovered": sum(1 for o in c if o.recovered is False),
            "caught_up": sum(1 for o in c if o.t_caught_up),
            "resumed_live": sum(1 for o in c if o.t_live),
        }


async def clients_async(pipe: Pipe, ids: list[int], rooms: int, concurrency: int) -> None:
    proc = ClientProc(ids, rooms, concurrency)
    while (cmd := await recv(pipe, 3600))[0] != "stop":
        if cmd[0] == "connect":
            await asyncio.gather(*(proc.open(o, cmd[1], storm=False) for o in proc.clients))
            pipe.send(("ready", len(proc.conns)))
        elif cmd[0] == "arm":
            proc.storm_url, proc.gap = cmd[1], cmd[2]
            pipe.send(("armed",))
        elif cmd[0] == "status":
            pipe.send(("status", proc.status()))
        elif cmd[0] == "result":
            pipe.send(("result", [asdict(o) for o in proc.clients]))
    for conn in list(proc.conns.values()):
        if conn.transport is not None:
            conn.transport.abort()


def client_process(pipe: Pipe, ids: list[int], rooms: int, concurrency: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        run(clients_async(pipe, ids, rooms, concurrency))
    except Exception as exc:
        pipe.send(("error", f"{type(exc).__name__}: {exc}"))


# --- orchestration -----------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def redis_work(redis: Redis) -> dict[str, Any]:
    stats: Any = await redis.info("commandstats")
    cpu: Any = await redis.info("cpu")
    commands = {k.removeprefix("cmdstat_"): {"calls": int(v["calls"]), "usec": int(v["usec"])}
                for k, v in stats.items()}  # fmt: skip
    return {"commands": commands, "cpu_s": float(cpu["used_cpu_sys"]) + float(cpu["used_cpu_user"]),
            "at": time.monotonic()}  # fmt: skip


def work_between(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for name, after in b["commands"].items():
        before = a["commands"].get(name, {"calls": 0, "usec": 0})
        calls, usec = after["calls"] - before["calls"], after["usec"] - before["usec"]
        if calls:
            out[name] = {"calls": calls, "usec": usec}
    return {"seconds": round(b["at"] - a["at"], 3), "cpu_ms": round(1000 * (b["cpu_s"] -
            a["cpu_s"]), 1), "commands": out}  # fmt: skip


def pct(values: list[float], q: float) -> float | None:
    values = sorted(values)
    return round(values[min(len(values) - 1, int(q * len(values)))], 3) if values else None


class Case:
    def __init__(self, a: argparse.Namespace, history: int, gap: float) -> None:
        self.a, self.history, self.gap = a, history, gap
        self.seq = [0] * a.rooms
        self.stop_feed = asyncio.Event()
        self.unrecovered: list[dict[str, Any]] = []

    async def feeder(self, ingester: Ingester) -> None:
        a, start, published = self.a, time.monotonic(), 0
        while not self.stop_feed.is_set():
            now = time.monotonic()
            due = min(int((now - start) * a.rate) - published, int(a.rate))
            if due > 0:
                events: list[IngestEvent] = []
                for j in range(due):
                    r = (published + j) % a.rooms
                    self.seq[r] += 1
                    n = self.seq[r]
                    events.append(OddsEvent(kind="odds", sport="MLB", game_id=f"G{r}",
                                            sportsbook=BOOKS[n % 4], market=MARKETS[n % 3],
                                            **price_fields(MARKETS[n % 3], n),
                                            seq=n, sent_at=time.time()))  # fmt: skip
                await ingester.publish_many(events)
                published += due
            await asyncio.sleep(max(0.0, TICK - (time.monotonic() - now)))

    async def run(self, stack: contextlib.ExitStack) -> dict[str, Any]:
        a = self.a
        if a.logs:
            tmp = Path(a.logs) / f"history{self.history}-gap{self.gap:g}"
            tmp.mkdir(parents=True, exist_ok=True)
        else:
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="storm-")))
        self.logs = tmp
        redis_server = stack.enter_context(EmbeddedRedis())
        assert redis_server.process is not None
        ports = {"A": free_port(), "B": free_port()}
        admin = secrets.token_urlsafe(24)
        limit = str(a.clients + 500)
        env = {**os.environ, "REDIS_URL": redis_server.url, "ODDSTREAM_REDIS_PREFIX": KEYS.prefix,
               "ODDSTREAM_PARTITIONS": str(KEYS.partitions), "ODDSTREAM_HOST": "127.0.0.1",
               "WEBSOCKET_MAX_CONNECTIONS": limit, "ODDSTREAM_CONNECT_RATE_PER_IP": limit,
               "ODDSTREAM_CONNECT_BURST_PER_IP": limit, "ODDSTREAM_LOG_LEVEL": "WARNING",
               "ODDSTREAM_ADMIN_TOKEN": admin, "ODDSTREAM_HISTORY_SIZE": str(a.history_size),
               "ODDSTREAM_HISTORY_SECONDS": "3600"}  # fmt: skip
        env.pop("JWT_SECRET", None)
        procs = {name: spawn(stack, tmp / f"{name}.log", args, env)
                 for name, args in (("A", ["gateway", "--port", str(ports["A"])]),
                                    ("B", ["gateway", "--port", str(ports["B"])]),
                                    ("worker", ["worker"]))}  # fmt: skip
        url = {g: f"ws://127.0.0.1:{p}/ws/v2/connect" for g, p in ports.items()}

        def alive() -> None:
            for name, proc in procs.items():
                if proc.poll() is not None and not (name == "A" and self.killed):
                    tail = (tmp / f"{name}.log").read_text()[-2000:]
                    raise RuntimeError(f"{name} exited: {tail}")

        self.killed = False
        async with create_redis(redis_server.url) as redis, aiohttp.ClientSession() as session:

            async def ready(g: str) -> bool:
                alive()
                with contextlib.suppress(aiohttp.ClientError, OSError):
                    async with session.get(f"http://127.0.0.1:{ports[g]}/readyz") as resp:
                        return resp.status == 200
                return False

            for g in ("A", "B"):
                await until(f"gateway {g}", 60, functools.partial(ready, g))
            # 1. History: the rooms linger while the feeder fills them with PREFILL events.
            rooms: dict[int, str] = {}
            for first in range(0, a.rooms, 40):  # at most 50 subscriptions a connection
                async with session.ws_connect(url["B"]) as ws:
                    for r in range(first, min(a.rooms, first + 40)):
                        if r % 20 == 0 and r > first:
                            await asyncio.sleep(1.0)  # 20 messages a second per connection
                        await ws.send_json({"type": "subscribe",
                                            "subscription_type": "odds_updates",
                                            "filters": {"game_id": [f"G{r}", PREFILL]},
                                            "snapshot": False, "id": r})  # fmt: skip
                    while len(rooms) < min(a.rooms, first + 40):
                        msg = orjson.loads((await ws.receive(timeout=30)).data)
                        if msg["type"] == "subscription_confirmed":
                            rooms[msg["id"]] = msg["data"]["room"]
                        elif msg["type"] == "error":
                            raise RuntimeError(f"subscribe failed: {msg}")
            await asyncio.sleep(1.0)  # the worker follows the room feed
            ingester, started = Ingester(redis, KEYS), time.monotonic()
            for first in range(0, self.history, 1000):
                await ingester.publish_many([
                    OddsEvent(kind="odds", sport="MLB", game_id=PREFILL, sportsbook=BOOKS[n % 4],
                              market=MARKETS[n % 3], n=n)
                    for n in range(first, min(self.history, first + 1000))
                ])  # fmt: skip

            async def filled() -> bool:
                alive()
                async with redis.pipeline(transaction=False) as pipe:
                    for room in rooms.values():
                        pipe.xlen(KEYS.history(0, room))
                    lengths = await pipe.execute()
                return bool(min(lengths) >= self.history)

            await until("history filled", 900, filled)
            prefill_s = round(time.monotonic() - started, 1)
            info: Any = await redis.info("memory")
            print(f"  history: {self.history} entries in each of {a.rooms} rooms in {prefill_s}s"
                  f" (Redis used_memory {info['used_memory_human']})", flush=True)  # fmt: skip

            # 2. Clients on gateway A, live feed.
            ctx, pipes = multiprocessing.get_context("spawn"), []
            for n in range(a.client_procs):
                parent, child = ctx.Pipe()
                ids = list(range(n, a.clients, a.client_procs))
                proc = ctx.Process(target=client_process,
                                   args=(child, ids, a.rooms, a.connect_concurrency))  # fmt: skip
                proc.daemon = True
                proc.start()
                stack.callback(proc.join, 5)
                stack.callback(proc.terminate)
                pipes.append(parent)
            started = time.monotonic()
            for pipe in pipes:
                pipe.send(("connect", url["A"]))
            for pipe in pipes:
                if (reply := await recv(pipe, 300))[0] != "ready":
                    raise RuntimeError(f"client process failed: {reply[1]}")
            connect_s = round(time.monotonic() - started, 1)
            feeder = asyncio.create_task(self.feeder(ingester))

            async def status() -> dict[str, int]:
                alive()
                if feeder.done():
                    feeder.result()
                for pipe in pipes:
                    pipe.send(("status",))
                total: dict[str, int] = {}
                for pipe in pipes:
                    reply = await recv(pipe, 30)
                    if reply[0] != "status":
                        raise RuntimeError(f"client process failed: {reply[1]}")
                    for k, v in reply[1].items():
                        total[k] = total.get(k, 0) + v
                return total

            async def all_live() -> bool:
                return bool((await status())["live"] == a.clients)

            await until("live frames on every client", 60, all_live)
            deliveries = a.rate * a.clients / a.rooms
            print(f"  {a.clients} clients on gateway A in {connect_s}s; live at {a.rate:.0f} "
                  f"events/s ({deliveries:.0f} deliveries/s)", flush=True)  # fmt: skip
            for pipe in pipes:
                pipe.send(("arm", url["B"], self.gap))
                await recv(pipe, 30)
            # 3. Steady window (the cost of the feed alone), then the storm.
            steady0, b_cpu0 = await redis_work(redis), cpu_seconds(procs["B"].pid)
            await asyncio.sleep(a.steady)
            steady1, b_cpu1 = await redis_work(redis), cpu_seconds(procs["B"].pid)
            t_kill = time.time()
            procs["A"].kill()
            self.killed = True
            t0 = time.monotonic()
            wave0, b_wave0 = steady1, b_cpu1
            if self.gap > 0:  # measure the reconnect wave, not the quiet wait before it
                await asyncio.sleep(max(0.0, self.gap - 0.05))
                wave0, b_wave0 = await redis_work(redis), cpu_seconds(procs["B"].pid)

            async def all_resumed() -> bool:
                s = await status()
                return bool(s["resumed_live"] + s["not_recovered"] >= a.clients)

            try:
                await until("every client resumed with live frames", 120 + self.gap, all_resumed)
            except TimeoutError:
                print(f"  not all resumed: {await status()}", flush=True)
            storm1, b_cpu2 = await redis_work(redis), cpu_seconds(procs["B"].pid)
            storm_s = time.monotonic() - t0
            self.stop_feed.set()
            await feeder
            for pipe in pipes:
                pipe.send(("result",))
            clients: list[dict[str, Any]] = []
            for pipe in pipes:
                clients.extend((await recv(pipe, 60))[1])
            for pipe in pipes:
                pipe.send(("stop",))
            self.unrecovered = [await self.why_not(redis, c, rooms[c["room"]])
                                for c in clients if c["recovered"] is False][:5]  # fmt: skip
        return self.figures(clients, t_kill, storm_s, work_between(steady0, steady1),
                            work_between(wave0, storm1), b_cpu1 - b_cpu0, b_cpu2 - b_wave0,
                            prefill_s)  # fmt: skip

    @staticmethod
    async def why_not(redis: Redis, c: dict[str, Any], room: str) -> dict[str, Any]:
        """What the history held around a position that did not recover."""
        out: dict[str, Any] = {k: c[k] for k in ("idx", "room", "sent_position",
                                                 "confirmed_position", "last_seq")}  # fmt: skip
        epoch: Any = await redis.get(KEYS.epoch(0))
        out["epoch"] = epoch.decode() if epoch else None
        if c["sent_position"]:
            entry = c["sent_position"].rsplit(":", 1)[1]
            key = KEYS.history(0, room)
            at: Any = await redis.xrange(key, entry, entry)
            after: Any = await redis.xrange(key, "(" + entry, "+", count=2)
            first: Any = await redis.xrange(key, "-", "+", count=1)
            out["entry_in_history"] = bool(at)
            out["next_entries"] = [i.decode() for i, _ in after]
            out["oldest_entry"] = first[0][0].decode() if first else None
        return out

    def warnings(self) -> dict[str, int]:
        """WARNING/ERROR lines of gateway B's log, counted by their event name."""
        counts: dict[str, int] = {}
        for line in (self.logs / "B.log").read_text(errors="replace").splitlines():
            parts = line.split()
            if len(parts) > 4 and parts[2] in ("WARNING", "ERROR"):
                counts[parts[4]] = counts.get(parts[4], 0) + 1
        return counts

    def figures(self, clients: list[dict[str, Any]], t_kill: float, storm_s: float,
                steady: dict[str, Any], storm: dict[str, Any], b_steady: float, b_storm: float,
                prefill_s: float) -> dict[str, Any]:  # fmt: skip
        wave = t_kill + self.gap  # when the reconnects begin

        def since(key: str, origin: float) -> list[float]:
            return [c[key] - origin for c in clients if c[key]]

        resumed = [c for c in clients if c["recovered"] is True]
        replayed = [c["replayed"] for c in resumed]
        cmds = storm["commands"]
        xr = cmds.get("xrange", {"calls": 0, "usec": 0})
        scale = storm["seconds"] / max(steady["seconds"], 1e-9)
        excess_cpu = storm["cpu_ms"] - steady["cpu_ms"] * scale
        n = max(1, len(resumed))
        top = sorted(cmds.items(), key=lambda kv: -kv[1]["usec"])[:12]
        return {
            "history": self.history, "gap_s": self.gap, "clients": len(clients),
            "recovered": len(resumed),
            "not_recovered": sum(1 for c in clients if c["recovered"] is False),
            "never_confirmed": sum(1 for c in clients if not c["t_confirmed"]),
            "replayed_per_client": {"mean": round(sum(replayed) / n, 1),
                                    "min": min(replayed, default=0),
                                    "max": max(replayed, default=0)},
            "replay_frames_missing": sum(max(0, c["replayed"] - c["replay_got"]) for c in resumed),
            "gaps": sum(c["gaps"] for c in clients), "dups": sum(c["dups"] for c in clients),
            "snapshots": sum(c["snapshots"] for c in clients),
            "connect_retries": sum(c["retries"] for c in clients),
            "errors": [e for c in clients for e in c["errors"]][:5],
            "seconds_from_kill": {
                "all_lost": pct(since("t_lost", t_kill), 1.0),
                "all_recovered": pct(since("t_confirmed", t_kill), 1.0),
                "all_caught_up": pct(since("t_caught_up", t_kill), 1.0),
                "all_live": pct(since("t_live", t_kill), 1.0),
                "p50_live": pct(since("t_live", t_kill), 0.5),
            },
            "seconds_from_reconnect_wave": {
                "all_recovered": pct(since("t_confirmed", wave), 1.0),
                "all_live": pct(since("t_live", wave), 1.0),
            },
            "redis": {
                "storm_window_s": storm["seconds"], "storm_cpu_ms": storm["cpu_ms"],
                "steady_cpu_ms_same_length": round(steady["cpu_ms"] * scale, 1),
                "excess_cpu_ms_per_resume": round(excess_cpu / n, 3),
                "xrange_calls": xr["calls"], "xrange_usec": xr["usec"],
                "xrange_usec_per_call": round(xr["usec"] / max(1, xr["calls"]), 1),
                "xrange_usec_per_resume": round(xr["usec"] / n, 1),
                "xrange_usec_per_replayed_entry": round(xr["usec"] / max(1, sum(replayed)), 3),
                "storm_commands": dict(top),
                "steady_commands_same_length": {
                    k: {"calls": round(v["calls"] * scale), "usec": round(v["usec"] * scale)}
                    for k, v in steady["commands"].items() if k in dict(top)},
            },
            "gateway_b_cpu_ms": {"storm": round(1000 * b_storm, 1),
                                 "steady_same_length": round(1000 * b_steady * scale, 1),
                                 "excess_per_resume": round(1000 * (b_storm - b_steady * scale)
                                                            / n, 3)},
            "prefill_s": prefill_s, "storm_s": round(storm_s, 2),
            "gateway_b_warnings": self.warnings(),
            "not_recovered_detail": self.unrecovered,
        }  # fmt: skip


async def until(what: str, timeout: float, check: Any) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.1)


def print_case(r: dict[str, Any]) -> None:
    s, w, rd, g = (
        r["seconds_from_kill"],
        r["seconds_from_reconnect_wave"],
        r["redis"],
        r["gateway_b_cpu_ms"],
    )
    print(
        f"  resumed: {r['recovered']}/{r['clients']} recovered: true ({r['not_recovered']} "
        f"false, {r['never_confirmed']} never confirmed), replayed per client "
        f"{r['replayed_per_client']}, {r['replay_frames_missing']} replayed frames missing, "
        f"gaps {r['gaps']}, duplicates {r['dups']}, connect retries {r['connect_retries']}; "
        f"gateway B log warnings {r['gateway_b_warnings']}"
    )
    for d in r["not_recovered_detail"]:
        print(f"  not recovered: {d}")
    print(
        f"  seconds from the kill: all sockets lost {s['all_lost']}, all recovered "
        f"{s['all_recovered']}, all caught up {s['all_caught_up']}, all live again "
        f"{s['all_live']} (median {s['p50_live']}); from the reconnect wave: all recovered "
        f"{w['all_recovered']}, all live {w['all_live']}"
    )
    print(
        f"  Redis over the reconnect wave ({rd['storm_window_s']} s): CPU {rd['storm_cpu_ms']} ms "
        f"(steady feed alone: {rd['steady_cpu_ms_same_length']} ms), excess "
        f"{rd['excess_cpu_ms_per_resume']} ms per resume; XRANGE {rd['xrange_calls']} calls, "
        f"{rd['xrange_usec_per_call']} us per call, {rd['xrange_usec_per_resume']} us per "
        f"resume, {rd['xrange_usec_per_replayed_entry']} us "
        f"per replayed entry; gateway B CPU {g['storm']} ms (steady {g['steady_same_length']}"
        f" ms), excess {g['excess_per_resume']} ms per resume"
    )
    print(
        "  commands (storm window / steady window of the same length): "
        + "; ".join(
            f"{k} {v['calls']} calls {v['usec']} us / "
            f"{rd['steady_commands_same_length'].get(k, {}).get('calls', 0)} calls "
            f"{rd['steady_commands_same_length'].get(k, {}).get('usec', 0)} us"
            for k, v in rd["storm_commands"].items()
        ),
        flush=True,
    )


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.benchmarks.storm", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--clients", type=int, default=5000)
    p.add_argument("--rooms", type=int, default=100)
    p.add_argument("--rate", type=float, default=500, help="live events/s over the rooms (500)")
    p.add_argument("--client-procs", type=int, default=4)
    p.add_argument("--connect-concurrency", type=int, default=200,
                   help="handshakes in flight per client process (200)")  # fmt: skip
    p.add_argument("--cases", default="100:0,50000:0,100:20,50000:20",
                   help="HISTORY:GAP_SECONDS,... (100:0,50000:0,100:20,50000:20)")  # fmt: skip
    p.add_argument("--history-size", type=int, default=60000,
                   help="ODDSTREAM_HISTORY_SIZE for every case (60000)")  # fmt: skip
    p.add_argument("--logs", help="keep the gateways' and worker's logs here (default: none)")
    p.add_argument("--steady", type=float, default=5.0, help="steady window before the kill (5)")
    a = p.parse_args(argv)
    cases = [(int(h), float(g)) for h, g in (c.split(":") for c in a.cases.split(","))]
    info = machine() | {"redis_server": find_redis_server()}
    print(f"machine: {info['cpu']}, {info['cores']} cores, Python {info['python']}, "
          f"{info['redis_server']}; {a.clients} clients in {a.rooms} rooms, "
          f"{a.client_procs} client processes", flush=True)  # fmt: skip
    signal.signal(signal.SIGINT, signal.default_int_handler)
    results = []
    for history, gap in cases:
        print(f"\ncase: history {history} entries per room, gap {gap:g} s", flush=True)
        with contextlib.ExitStack() as stack:
            try:
                result = run(Case(a, history, gap).run(stack))
            except KeyboardInterrupt:
                print("interrupted: stopping everything", file=sys.stderr)
                return 130
        print_case(result)
        results.append(result)
    print("\n history  gap s  replayed/client  all recovered s  all live s  XRANGE us/resume  "
          "us/replayed entry  Redis excess ms/resume  gateway ms/resume")  # fmt: skip
    for r in results:
        s, rd = r["seconds_from_kill"], r["redis"]
        print(f"{r['history']:>8} {r['gap_s']:>6g} {r['replayed_per_client']['mean']:>16} "
              f"{s['all_recovered']:>16} {s['all_live']:>11} {rd['xrange_usec_per_resume']:>17} "
              f"{rd['xrange_usec_per_replayed_entry']:>18} {rd['excess_cpu_ms_per_resume']:>23} "
              f"{r['gateway_b_cpu_ms']['excess_per_resume']:>18}")  # fmt: skip
    print(json.dumps({"machine": info, "config": vars(a), "cases": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
