"""Fault soak: does every event reach every client once, in order, while processes die?

    python -m tests.benchmarks.soak --minutes 10            # the README's run
    python -m tests.benchmarks.soak --minutes 1 --seed 7    # a quick look

What runs (all on 127.0.0.1): an embedded Redis with an append-only file (`appendonly yes`,
`appendfsync always`: `EmbeddedRedis(persistent=True)`), 2 gateway processes (each on its own
port) and 3 worker processes (`python -m oddstream.cli gateway|worker`, the environment of
`tests.harness.process_env` with the shipped heartbeats, TTLs and lease), a feeder in this
process and 200 clients in 2 client processes.

The feed: ~400 events/s (`--rate`) over 40 games (10 per sport), 85% odds and 15% predictions,
through `Ingester.publish_many` on the production Redis client (`create_redis`: it retries a
pipeline on a connection error), one pipeline every 25 ms. Every event carries `uid` (unique in
the run), `seq` (numbered per game) and `sent_at` (wall clock before the XADD). The feed's log
records, per event, the event id Redis answered (accepted) or nothing (the pipeline failed:
the event is in doubt, it may or may not be in Redis). An in-doubt event that any client
received was in Redis, so it is expected by every client whose room it matches.

The clients: `oddstream_client.OddstreamClient` (the Python client, with its automatic resume:
positions per subscription, dedupe by event id), `Backoff(base=0.5, max_delay=4)`, no attempt
limit, one subscription each, 10 per room in 20 rooms with different filters (by sport, games,
sportsbook, sport types, predictions). Client i starts on gateway i % 2. The client takes one
URL; on every `reconnecting` state event the soak points its `url` attribute at the other
gateway (the client reads it before each attempt), so a client whose gateway died reconnects
to the other one, and resumes there from its subscription's last position.

Faults, one at a time at random intervals (`--fault-every`, seeded by `--seed`) from 15 s in
until 30 s before the end: SIGKILL a worker and start a new one after 0.5-3 s; SIGKILL a
gateway and restart it on its port after 1-5 s (only while the other gateway is up); restart
Redis: SIGKILL or SIGTERM, down 0-3 s, then start again on the same port with the same AOF.

At the end (feed stopped, then waiting until no client receives anything for 5 s) it prints per
client and in total: expected (accepted events matching its room, by the soak's own reading of
the filter rules, not the server's matcher), delivered, lost, duplicated (same event id twice:
the delivery path; same uid under two event ids: the ingest path wrote one event twice),
out of order (per game, a seq lower than one already received), unexpected (an event not
matching its room), reconnects, resumes and resyncs (`recovered` true / false), duplicates the
client dropped, and the worst delay (receive - sent_at). Lost events are listed with their send
time and the faults around it. The last line is JSON; logs stay in the run directory printed
at the start.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import functools
import json
import multiprocessing
import os
import random
import signal
import subprocess
import sys
import time
from array import array
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection as Pipe
from pathlib import Path
from typing import Any

import aiohttp
from redis.exceptions import RedisError
from yarl import URL

from oddstream.embedded import EmbeddedRedis, find_redis_server, free_port
from oddstream.shared.events import IngestEvent, OddsEvent, PredictionEvent
from oddstream.shared.ingest import Ingester
from oddstream.shared.keys import Keys
from oddstream.shared.redis import create_redis
from oddstream.shared.settings import Settings
from oddstream_client import (
    Backoff,
    ConnectionState,
    OddstreamClient,
    ResumeEvent,
    StateEvent,
    Subscription,
)
from tests.benchmarks.load import machine, price_fields, recv, run, stop_process
from tests.harness import ADMIN, process_env

ROOT = Path(__file__).resolve().parents[2]
PREFIX = "soak"
SPORTS = ("MLB", "NBA", "NFL", "NHL")
GAMES = tuple(f"{s}-{n}" for s in SPORTS for n in range(10))
BOOKS = ("DraftKings", "FanDuel", "BetMGM", "Caesars")
MARKETS = ("moneyline", "spread", "total")
CLIENTS_PER_ROOM = 10
CLIENT_PROCS = 2
TICK = 0.025

#: The 20 rooms: (subscription type, filters). Every filter value is a list.
ROOMS: tuple[tuple[str, dict[str, list[str]]], ...] = (
    *(("odds_updates", {"sport": [s]}) for s in SPORTS),
    *(("odds_updates", {"game_id": [f"{s}-1", f"{s}-2"]}) for s in SPORTS),
    *(
        ("odds_updates", {"sport": [s], "sportsbook": [b]})
        for s, b in zip(SPORTS, BOOKS, strict=True)
    ),
    ("mlb", {}),
    ("nhl", {"game_id": ["NHL-3", "NHL-4", "NHL-5"]}),
    ("nba", {"sportsbook": ["FanDuel", "BetMGM"]}),
    ("nfl", {"game_id": ["NFL-6"]}),
    ("predictions", {"sport": ["NBA"]}),
    ("predictions", {"game_id": ["MLB-7", "NBA-7", "NFL-7", "NHL-7"]}),
    ("odds_updates", {"sport": ["MLB", "NFL"], "sportsbook": ["DraftKings", "FanDuel"]}),
    ("odds_updates", {"game_id": ["NBA-9"]}),
)


@dataclass(frozen=True, slots=True)
class FeedEvent:
    uid: int
    kind: str  # odds | predictions
    game: str
    seq: int
    book: str | None
    sent_at: float


def matches(room: tuple[str, dict[str, list[str]]], ev: FeedEvent) -> bool:
    """The README's filter rules, for the two kinds the feed sends (independent of the server's
    matcher, so a matching bug there shows up as lost or unexpected events here)."""
    type_, filters = room
    if type_ == "odds_updates" and ev.kind != "odds":
        return False
    if type_ == "predictions" and ev.kind != "predictions":
        return False
    if type_ in ("mlb", "nba", "nfl", "nhl") and ev.game.split("-")[0] != type_.upper():
        return False
    attrs = {"sport": ev.game.split("-")[0], "game_id": ev.game, "sportsbook": ev.book}
    return all(attrs[key] in allowed for key, allowed in filters.items())


def eid_int(event_id: str) -> int:
    """`<partition>:<ms>-<seq>` as one 63-bit int, to compare event ids cheaply."""
    partition, _, entry = event_id.partition(":")
    ms, _, seq = entry.partition("-")
    return ((int(ms) - 1_600_000_000_000) << 22) | (int(seq) % 4096) << 10 | int(partition)


# --- client processes --------------------------------------------------------------------------


@dataclass
class Record:
    """What one client saw."""

    cid: int
    room: int
    first_url: int
    uids: array[int] = field(default_factory=lambda: array("q"))
    eids: array[int] = field(default_factory=lambda: array("q"))
    times: array[float] = field(default_factory=lambda: array("d"))
    snapshots: int = 0
    resumes: list[tuple[float, bool, int]] = field(default_factory=list)
    disconnects: list[float] = field(default_factory=list)
    # Frames the client dropped as already delivered: (time, uid, was it a replayed frame).
    dropped: list[tuple[float, int, bool]] = field(default_factory=list)
    error: str | None = None


#: Subscription -> its client's record, for `trace_dropped_duplicates`.
TRACED: dict[int, Record] = {}


def trace_dropped_duplicates() -> None:
    """Diagnostics, not a change of behaviour: note each frame the client's dedupe drops (the
    gateway sent an event this subscription already had), to tell a resume seam from a live
    duplicate. Wraps `Subscription._data`, the client's dedupe step, in this process only."""
    original = Subscription._data

    def traced(sub: Subscription, frame: dict[str, Any]) -> bool:
        before = sub.duplicates
        delivered = original(sub, frame)
        rec = TRACED.get(id(sub))
        if sub.duplicates > before and rec is not None:
            uid = (frame.get("data") or {}).get("uid")
            rec.dropped.append((time.time(), uid if isinstance(uid, int) else -1,
                                frame.get("replay") is True))  # fmt: skip
        return delivered

    Subscription._data = traced  # type: ignore[method-assign,assignment]


async def one_client(
    rec: Record, urls: list[str], tasks: set[asyncio.Task[None]]
) -> OddstreamClient:
    state = {"url": rec.first_url}
    client = OddstreamClient(
        urls[rec.first_url],
        backoff=Backoff(base=0.5, max_delay=4.0),
        max_attempts=None,
        ping_interval=None,
        max_buffered=100_000,
    )

    def on_state(event: StateEvent) -> None:
        if event.state is ConnectionState.DISCONNECTED:
            rec.disconnects.append(time.time())
        elif event.state is ConnectionState.RECONNECTING:
            state["url"] = (state["url"] + 1) % len(urls)  # the other gateway
            client.url = URL(urls[state["url"]])

    def on_resume(event: ResumeEvent) -> None:
        rec.resumes.append((time.time(), event.recovered, event.replayed))

    client.on_state(on_state)
    client.on_resume(on_resume)
    await client.connect()
    type_, filters = ROOMS[rec.room]
    sub = await client.subscribe(type_, dict(filters))
    TRACED[id(sub)] = rec

    async def consume() -> None:
        try:
            async for frame in sub:
                if frame.get("type") == "snapshot":
                    rec.snapshots += 1
                    continue
                data = frame.get("data") or {}
                uid = data.get("uid")
                if isinstance(uid, int):
                    rec.uids.append(uid)
                    rec.eids.append(eid_int(str(frame.get("event_id"))))
                    rec.times.append(time.time())
        except Exception as exc:  # the client gave up: report it, never hide it
            rec.error = f"{type(exc).__name__}: {exc}"

    tasks.add(asyncio.create_task(consume()))  # ends when the client is closed
    return client


async def clients_async(pipe: Pipe, urls: list[str], cids: list[int]) -> None:
    trace_dropped_duplicates()
    records = [Record(cid, cid % len(ROOMS), cid % len(urls)) for cid in cids]
    sem = asyncio.Semaphore(20)
    tasks: set[asyncio.Task[None]] = set()

    async def start(rec: Record) -> OddstreamClient:
        async with sem:
            return await one_client(rec, urls, tasks)

    clients = await asyncio.gather(*(start(r) for r in records))
    pipe.send(("ready", len(clients)))
    try:
        while (cmd := await recv(pipe, 7200))[0] != "finish":
            if cmd[0] == "count":
                pipe.send(("count", sum(len(r.uids) for r in records)))
        out = []
        for rec, client in zip(records, clients, strict=True):
            stats = client.stats
            out.append({
                "cid": rec.cid, "room": rec.room, "first_url": rec.first_url,
                "uids": rec.uids.tobytes(), "eids": rec.eids.tobytes(),
                "times": rec.times.tobytes(), "snapshots": rec.snapshots,
                "resumes": rec.resumes, "disconnects": rec.disconnects, "error": rec.error,
                "dropped": rec.dropped,
                "reconnects": stats.reconnects, "dropped_duplicates": stats.duplicates,
                "state": client.state.value,
            })  # fmt: skip
        pipe.send(("result", out))
    finally:
        await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)
        for task in tasks:
            task.cancel()


def client_process(pipe: Pipe, urls: list[str], cids: list[int]) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us
    try:
        run(clients_async(pipe, urls, cids))
    except Exception as exc:
        pipe.send(("error", f"{type(exc).__name__}: {exc}"))


# --- the system under test ---------------------------------------------------------------------


@dataclass
class Fault:
    at: float  # wall clock of the kill
    kind: str  # worker | gateway | redis
    target: str
    how: str  # SIGKILL | SIGTERM
    down: float  # seconds until the restart began
    back: float = 0.0  # wall clock when the restarted process was started/answering
    notes: list[str] = field(default_factory=list)


class Cluster:
    """Redis, gateways and workers as subprocesses, each incarnation with its own log."""

    def __init__(self, run_dir: Path, stack: contextlib.ExitStack, log_level: str) -> None:
        self.dir, self.stack = run_dir, stack
        self.redis = EmbeddedRedis(persistent=True)  # appendonly yes, appendfsync always
        self.redis.start()
        stack.callback(self.redis.close)
        settings = Settings(redis_url=self.redis.url, redis_prefix=PREFIX)
        shipped = Settings()
        self.env = process_env(
            settings,
            ODDSTREAM_GATEWAY_HEARTBEAT=str(shipped.gateway_heartbeat),
            ODDSTREAM_GATEWAY_TTL=str(shipped.gateway_ttl),
            ODDSTREAM_WORKER_HEARTBEAT=str(shipped.worker_heartbeat),
            ODDSTREAM_WORKER_TTL=str(shipped.worker_ttl),
            ODDSTREAM_WORKER_BLOCK_MS=str(shipped.worker_block_ms),
            ODDSTREAM_PARTITION_LEASE_MS=str(shipped.partition_lease_ms),
            ODDSTREAM_HOST="127.0.0.1",
            ODDSTREAM_LOG_LEVEL=log_level,
            ODDSTREAM_CONNECT_RATE_PER_IP="1000",  # every client is 127.0.0.1
            ODDSTREAM_CONNECT_BURST_PER_IP="1000",
        )
        self.env.pop("JWT_SECRET", None)
        self.ports = {"A": free_port(), "B": free_port()}
        self.gateways: dict[str, subprocess.Popen[bytes]] = {}
        self.workers: dict[str, subprocess.Popen[bytes]] = {}
        self.incarnations: Counter[str] = Counter()
        self.redis_starts = 1
        self.why: dict[str, str] = {}

    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        self.incarnations[name] += 1
        log = self.stack.enter_context((self.dir / f"{name}.{self.incarnations[name]}.log")
                                       .open("wb"))  # fmt: skip
        proc = subprocess.Popen([sys.executable, "-m", "oddstream.cli", *args], cwd=ROOT,
                                env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)  # fmt: skip
        self.stack.callback(stop_process, proc)
        return proc

    def start_gateway(self, name: str) -> None:
        self.gateways[name] = self._spawn(f"gateway-{name}", ["gateway", "--port",
                                                              str(self.ports[name])])  # fmt: skip

    def start_worker(self, name: str) -> None:
        self.workers[name] = self._spawn(f"worker-{name}", ["worker"])

    def url(self, name: str) -> str:
        return f"ws://127.0.0.1:{self.ports[name]}/ws/v2/connect"

    async def ready(self, session: aiohttp.ClientSession, name: str) -> bool:
        """`/readyz` answers 200; its last answer is kept in `self.why[name]`."""
        try:
            async with session.get(
                f"http://127.0.0.1:{self.ports[name]}/readyz",
                timeout=aiohttp.ClientTimeout(total=2),
            ) as resp:
                self.why[name] = f"{resp.status} {await resp.text()}"
                return resp.status == 200
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            self.why[name] = f"{type(exc).__name__}: {exc}"
        return False

    def exited(self) -> list[str]:
        procs = {**{f"gateway-{k}": v for k, v in self.gateways.items()},
                 **{f"worker-{k}": v for k, v in self.workers.items()}}  # fmt: skip
        return [name for name, p in procs.items() if p.poll() is not None]


async def until(what: str, timeout: float, check: Callable[[], Any]) -> None:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.1)


class Soak:
    def __init__(self, args: argparse.Namespace, stack: contextlib.ExitStack) -> None:
        self.a, self.stack = args, stack
        stamp = time.strftime("%Y%m%d-%H%M%S")
        self.dir = Path(args.run_dir or f"/tmp/oddstream-soak-{stamp}")
        self.dir.mkdir(parents=True, exist_ok=True)
        self.rng = random.Random(args.seed)
        self.feed: list[FeedEvent] = []
        self.accepted: dict[int, int] = {}  # uid -> eid int (Redis answered)
        self.in_doubt: set[int] = set()  # the pipeline failed: maybe in Redis, maybe not
        self.publish_errors: list[tuple[float, str]] = []
        self.faults: list[Fault] = []
        self.pipes: list[Pipe] = []
        self.stop_feed = asyncio.Event()
        self.t0 = self.t_end = 0.0
        self.samples: list[dict[str, float]] = []
        self.client_pids: list[int] = []

    async def feeder(self, ingester: Ingester) -> None:
        rng, seq = random.Random(self.a.seed + 1), dict.fromkeys(GAMES, 0)
        start, published = time.monotonic(), 0
        while not self.stop_feed.is_set():
            now = time.monotonic()
            due = min(int((now - start) * self.a.rate) - published, int(self.a.rate))
            if due > 0:
                events: list[IngestEvent] = []
                batch: list[FeedEvent] = []
                sent = time.time()
                for _ in range(due):
                    game = rng.choice(GAMES)
                    seq[game] += 1
                    uid = len(self.feed) + len(batch)
                    common = {"sport": game.split("-")[0], "game_id": game, "uid": uid,
                              "seq": seq[game], "sent_at": sent}  # fmt: skip
                    if rng.random() < 0.85:
                        book = rng.choice(BOOKS)
                        market = rng.choice(MARKETS)
                        events.append(OddsEvent(kind="odds", sportsbook=book, market=market,
                                                **price_fields(market, seq[game]),
                                                **common))  # fmt: skip
                        batch.append(FeedEvent(uid, "odds", game, seq[game], book, sent))
                    else:
                        events.append(PredictionEvent(kind="predictions",
                                                      market=rng.choice(MARKETS),
                                                      win_probability=round(rng.random(), 3),
                                                      **common))  # fmt: skip
                        batch.append(FeedEvent(uid, "predictions", game, seq[game], None, sent))
                self.feed.extend(batch)
                published += due
                try:
                    ids = await ingester.publish_many(events)
                except (RedisError, OSError) as exc:
                    self.in_doubt.update(e.uid for e in batch)
                    self.publish_errors.append((sent, f"{type(exc).__name__}: {exc}"[:200]))
                else:
                    for ev, event_id in zip(batch, ids, strict=True):
                        self.accepted[ev.uid] = eid_int(event_id.decode())
            await asyncio.sleep(max(0.0, TICK - (time.monotonic() - now)))

    def around(self, r: dict[str, Any], feed: dict[int, FeedEvent], ev: FeedEvent,
               uids: array[int], times: array[float]) -> dict[str, Any]:  # fmt: skip
        """What a client saw around an event it lost: its connection events, and the frames
        of the same game it received from 3 s before the event was sent to 10 s after."""
        t0, lo, hi = self.t0, ev.sent_at - 3, ev.sent_at + 10
        frames = []
        for u, t in zip(uids, times, strict=True):
            other = feed.get(u)
            if other is not None and other.game == ev.game and lo <= other.sent_at <= hi:
                frames.append((other.seq, round(other.sent_at - t0, 3), round(t - t0, 3)))
        return {
            "client": r["cid"], "room": r["room"], "uid": ev.uid, "game": ev.game,
            "seq": ev.seq, "sent_at_s": round(ev.sent_at - t0, 3),
            "disconnects_s": [round(t - t0, 3) for t in r["disconnects"] if lo <= t <= hi],
            "resumes_s": [(round(t - t0, 3), rec, n) for t, rec, n in r["resumes"]
                          if lo <= t <= hi],
            "frames_same_game (seq, sent, received)": frames,
        }  # fmt: skip

    def timeline(self, worst: dict[int, float], late: Counter[int]) -> list[dict[str, Any]]:
        rows = []
        for b in sorted(set(worst) | {int(x["t"] // 10) for x in self.samples}):
            got = [x for x in self.samples if int(x["t"] // 10) == b]

            def peak(key: str, got: list[dict[str, float]] = got) -> float | None:
                values = [x[key] for x in got if key in x]
                return max(values) if values else None

            def mean(key: str, got: list[dict[str, float]] = got) -> float | None:
                values = [x[key] for x in got if key in x]
                return round(sum(values) / len(values)) if values else None

            rows.append({
                "t": b * 10, "worst_ms": round(1000 * worst.get(b, 0.0)), "late": late[b],
                "ingest_lag": peak("ingest_lag"), "inbox": peak("inbox"),
                **{k: mean(k) for k in ("machine_busy", "other", "clients", "gateways",
                                        "workers", "redis")},
                "faults": ", ".join(f"{f.how} {f.target.split(' ')[0]} +{f.at - self.t0:.0f}s"
                                    for f in self.faults if int((f.at - self.t0) // 10) == b),
            })  # fmt: skip
        return rows

    async def monitor(self, cluster: Cluster, keys: Keys, client_pids: list[int]) -> None:
        """Every 2 s: CPU % per process group and of the whole machine (other programs share
        it), ingest entries past the workers' cursors, and each gateway inbox's length; the
        report prints them next to the delays, to show where a backlog sat."""
        tick = os.sysconf("SC_CLK_TCK")

        def cpu(pid: int) -> float | None:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                return None
            return (int(fields[11]) + int(fields[12])) / tick

        def machine_jiffies() -> tuple[int, int]:
            j = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
            return sum(j), sum(j) - j[3] - j[4]

        before: dict[int, float] = {}
        total0, busy0, t_prev = *machine_jiffies(), time.monotonic()
        redis = create_redis(cluster.redis.url)
        try:
            while True:
                await asyncio.sleep(2.0)
                groups: dict[str, list[int]] = {
                    "gateways": [p.pid for p in cluster.gateways.values()],
                    "workers": [p.pid for p in cluster.workers.values()],
                    "redis": [cluster.redis.process.pid] if cluster.redis.process else [],
                    "clients": client_pids,
                    "feeder": [os.getpid()],
                }
                now, (total1, busy1) = time.monotonic(), machine_jiffies()
                wall, sample = now - t_prev, {"t": round(time.time() - self.t0, 1)}
                after: dict[int, float] = {}
                ours = 0.0
                for name, pids in groups.items():
                    used = 0.0
                    for pid in pids:
                        if (c := cpu(pid)) is not None:
                            after[pid] = c
                            used += c - before.get(pid, c)
                    sample[name] = round(100 * used / wall, 1)
                    ours += sample[name]
                machine = 100 * (busy1 - busy0) / max(1, total1 - total0)
                sample["machine_busy"] = round(machine, 1)
                sample["other"] = round(machine * (os.cpu_count() or 1) - ours, 1)
                before, total0, busy0, t_prev = after, total1, busy1, now
                with contextlib.suppress(RedisError, OSError):
                    lag = 0
                    for partition in range(keys.partitions):
                        cursor: Any = await redis.get(keys.cursor(partition))
                        start = b"(" + cursor if cursor else b"-"
                        lag += len(await redis.xrange(keys.ingest(partition), start, "+",
                                                      count=10_000))  # fmt: skip
                    sample["ingest_lag"] = lag
                    ids: Any = await redis.zrange(keys.gateways, 0, -1)
                    sample["inbox"] = sum(
                        [await redis.xlen(keys.inbox(0, g.decode())) for g in ids]
                    )
                self.samples.append(sample)
        finally:
            await redis.aclose()

    @staticmethod
    async def wait_ready(
        cluster: Cluster, session: aiohttp.ClientSession, name: str, timeout: float
    ) -> bool:
        deadline = time.monotonic() + timeout
        while not await cluster.ready(session, name):
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.1)
        return True

    async def faulter(self, cluster: Cluster, session: aiohttp.ClientSession, end: float) -> None:
        rng, a = self.rng, self.a
        workers_made = len(cluster.workers)
        await asyncio.sleep(15)
        while True:
            wait = rng.uniform(0.5 * a.fault_every, 1.5 * a.fault_every)
            if time.monotonic() + wait > end - 30:
                return
            await asyncio.sleep(wait)
            kind = rng.choices(("worker", "gateway", "redis"), weights=(0.4, 0.35, 0.25))[0]
            if kind == "worker":
                name = rng.choice(sorted(cluster.workers))
                proc, down = cluster.workers.pop(name), rng.uniform(0.5, 3.0)
                fault = Fault(time.time(), "worker", f"worker-{name}", "SIGKILL", down)
                proc.kill()
                proc.wait()
                await asyncio.sleep(down)
                workers_made += 1
                cluster.start_worker(str(workers_made))
                fault.back = time.time()
                fault.target += f" -> worker-{workers_made}"
            elif kind == "gateway":
                name = rng.choice(sorted(cluster.gateways))
                other = "B" if name == "A" else "A"
                down = rng.uniform(1.0, 5.0)
                fault = Fault(time.time(), "gateway", f"gateway-{name}", "SIGKILL", down)
                if not await self.wait_ready(cluster, session, other, 60):
                    fault.notes.append(f"gateway {other} not ready: {cluster.why[other]}")
                fault.at = time.time()
                cluster.gateways[name].kill()
                cluster.gateways[name].wait()
                await asyncio.sleep(down)
                cluster.start_gateway(name)
                if not await self.wait_ready(cluster, session, name, 60):
                    fault.notes.append(f"not ready within 60 s: {cluster.why[name]}")
                fault.back = time.time()
            else:
                how, down = rng.choice(("SIGKILL", "SIGTERM")), rng.uniform(0.0, 3.0)
                fault = Fault(time.time(), "redis", "redis", how, down)
                if how == "SIGKILL":
                    cluster.redis.kill()
                else:
                    cluster.redis.stop()
                await asyncio.sleep(down)
                cluster.redis.start()  # same port, same directory: the AOF is loaded
                cluster.redis_starts += 1
                fault.back = time.time()
            self.faults.append(fault)
            print(f"  fault {len(self.faults)} at +{fault.at - self.t0:.0f}s: {fault.how} "
                  f"{fault.target}, down {fault.down:.1f}s {'; '.join(fault.notes)}",
                  flush=True)  # fmt: skip
            if dead := cluster.exited():
                raise RuntimeError(f"exited on their own: {dead} (logs in {self.dir})")

    async def main(self) -> dict[str, Any]:
        a = self.a
        print(f"run directory (logs): {self.dir}", flush=True)
        cluster = Cluster(self.dir, self.stack, a.log_level)
        for g in ("A", "B"):
            cluster.start_gateway(g)
        for w in range(1, a.workers + 1):
            cluster.start_worker(str(w))
        urls = [cluster.url("A"), cluster.url("B")]
        keys = Keys(PREFIX)
        async with create_redis(cluster.redis.url) as redis, aiohttp.ClientSession() as session:
            for g in ("A", "B"):
                await until(f"gateway {g}", 60, functools.partial(cluster.ready, session, g))
            ctx = multiprocessing.get_context("spawn")
            n = len(ROOMS) * CLIENTS_PER_ROOM
            for p in range(CLIENT_PROCS):
                parent, child = ctx.Pipe()
                proc = ctx.Process(target=client_process,
                                   args=(child, urls, list(range(p, n, CLIENT_PROCS))))  # fmt: skip
                proc.daemon = True
                proc.start()
                self.client_pids.append(proc.pid or 0)
                self.stack.callback(proc.join, 10)
                self.stack.callback(proc.terminate)
                self.pipes.append(parent)
            for pipe in self.pipes:
                if (reply := await recv(pipe, 180))[0] != "ready":
                    raise RuntimeError(f"client process failed: {reply[1]}")

            async def rooms_held() -> bool:
                async with session.get(f"http://127.0.0.1:{cluster.ports['A']}/ws/v2/rooms",
                                       headers=ADMIN) as resp:  # fmt: skip
                    body = await resp.json()
                return sum(1 for r in body["rooms"] if r["subscribers"]) == len(ROOMS)

            await until("every room registered", 30, rooms_held)
            await asyncio.sleep(2.0)  # workers follow the room feed
            print(f"{n} clients in {len(ROOMS)} rooms on gateways A and B; feeding "
                  f"{a.rate:.0f} events/s for {a.minutes} min", flush=True)  # fmt: skip
            self.t0 = time.time()
            end = time.monotonic() + a.minutes * 60
            feeder = asyncio.create_task(self.feeder(Ingester(redis, keys)))
            faulter = asyncio.create_task(self.faulter(cluster, session, end))
            monitor = asyncio.create_task(self.monitor(cluster, keys, self.client_pids))
            while time.monotonic() < end:
                await asyncio.sleep(1.0)
                for task in (feeder, faulter):
                    if task.done() and task.exception() is not None:
                        raise RuntimeError("a soak task failed") from task.exception()
            await faulter
            self.stop_feed.set()
            await feeder
            monitor.cancel()
            self.t_end = time.time()
            # Drain: until no client process has received anything new for 5 s (at most 120 s).
            last, quiet, limit = -1, time.monotonic(), time.monotonic() + 120
            while time.monotonic() < limit and time.monotonic() - quiet < 5:
                for pipe in self.pipes:
                    pipe.send(("count",))
                total = sum([(await recv(pipe, 30))[1] for pipe in self.pipes])
                if total != last:
                    last, quiet = total, time.monotonic()
                await asyncio.sleep(0.5)
            for pipe in self.pipes:
                pipe.send(("finish",))
            results: list[dict[str, Any]] = []
            for pipe in self.pipes:
                reply = await recv(pipe, 120)
                if reply[0] != "result":
                    raise RuntimeError(f"client process failed: {reply[1]}")
                results.extend(reply[1])
            dead = cluster.exited()
            info = await redis.info("persistence")
        errors = {p.name: sum(1 for line in p.read_text(errors="replace").splitlines()
                              if "Traceback" in line or " ERROR " in line)
                  for p in sorted(self.dir.glob("*.log"))}  # fmt: skip
        return self.analyse(results) | {
            "exited_on_their_own": dead,
            "log_errors": {k: v for k, v in errors.items() if v},
            "aof_enabled": info.get("aof_enabled"),
            "redis_starts": cluster.redis_starts,
        }

    def analyse(self, results: list[dict[str, Any]]) -> dict[str, Any]:
        feed = {ev.uid: ev for ev in self.feed}
        seen_anywhere: set[int] = set()
        for r in results:
            seen_anywhere.update(array("q", r["uids"]))
        promoted = self.in_doubt & seen_anywhere  # in Redis after all: their answer was lost
        expected_uids = sorted(set(self.accepted) | promoted)
        per_room = [[u for u in expected_uids if matches(room, feed[u])] for room in ROOMS]
        fault_times = [f.at for f in self.faults]
        # Worst delay of events sent from 2 s before a fault until 2 s before the next one
        # (index 0: before the first fault).
        worst_by_fault = [0.0] * (len(self.faults) + 1)
        # Per 10 s of send time: the worst delay, and deliveries later than 1 s.
        worst_by_bin: dict[int, float] = defaultdict(float)
        late_by_bin: Counter[int] = Counter()
        rows, lost_events = [], []
        lost_detail: list[dict[str, Any]] = []
        delays_all: list[float] = []
        for r in sorted(results, key=lambda r: r["cid"]):
            uids, eids = array("q", r["uids"]), array("q", r["eids"])
            times = array("d", r["times"])
            expected = per_room[r["room"]]
            got = Counter(uids)
            by_uid_eids: dict[int, set[int]] = defaultdict(set)
            for u, e in zip(uids, eids, strict=True):
                by_uid_eids[u].add(e)
            dup_delivery = sum(c - len(by_uid_eids[u]) for u, c in got.items() if c > 1)
            dup_ingest = sum(len(by_uid_eids[u]) - 1 for u, c in got.items() if c > 1)
            lost = [u for u in expected if u not in got]
            room = ROOMS[r["room"]]
            unexpected = sum(1 for u in got if u not in feed or not matches(room, feed[u]))
            last_seq: dict[str, int] = {}
            out_of_order = 0
            delays = []
            for u, t in zip(uids, times, strict=True):
                ev = feed.get(u)
                if ev is None:
                    continue
                delays.append(t - ev.sent_at)
                slot = bisect.bisect_right(fault_times, ev.sent_at + 2.0)
                worst_by_fault[slot] = max(worst_by_fault[slot], t - ev.sent_at)
                b = int((ev.sent_at - self.t0) // 10)
                worst_by_bin[b] = max(worst_by_bin[b], t - ev.sent_at)
                if t - ev.sent_at > 1.0:
                    late_by_bin[b] += 1
                if ev.seq < last_seq.get(ev.game, 0):
                    out_of_order += 1
                last_seq[ev.game] = max(ev.seq, last_seq.get(ev.game, 0))
            delays_all.extend(delays)
            for u in lost:
                lost_events.append((r["cid"], feed[u]))
                if len(lost_detail) < 20:
                    lost_detail.append(self.around(r, feed, feed[u], uids, times))
            rows.append({
                "cid": r["cid"], "room": r["room"], "start": "AB"[r["first_url"]],
                "expected": len(expected), "delivered": len(got), "lost": len(lost),
                "dup_delivery": dup_delivery, "dup_ingest": dup_ingest,
                "out_of_order": out_of_order, "unexpected": unexpected,
                "reconnects": r["reconnects"],
                "resumes": sum(1 for x in r["resumes"] if x[1]),
                "resyncs": sum(1 for x in r["resumes"] if not x[1]),
                "replayed": sum(x[2] for x in r["resumes"]),
                "client_dropped_dups": r["dropped_duplicates"], "snapshots": r["snapshots"],
                "worst_delay_ms": round(1000 * max(delays), 1) if delays else None,
                "error": r["error"], "state": r["state"],
            })  # fmt: skip
        delays_all.sort()

        def q(p: float) -> float | None:
            if not delays_all:
                return None
            return round(1000 * delays_all[min(len(delays_all) - 1, int(p * len(delays_all)))], 1)

        keys = ("expected", "delivered", "lost", "dup_delivery", "dup_ingest", "out_of_order",
                "unexpected", "reconnects", "resumes", "resyncs", "replayed",
                "client_dropped_dups")  # fmt: skip
        total = {k: sum(row[k] for row in rows) for k in keys}
        total |= {"delay_ms": {"p50": q(0.5), "p99": q(0.99), "p999": q(0.999), "max": q(1.0)}}
        # Frames the client dropped as duplicates, by the last fault before they arrived.
        dropped: dict[str, Counter[str]] = defaultdict(Counter)
        for r in results:
            for t, _uid, replay in r.get("dropped", []):
                i = bisect.bisect_right(fault_times, t) - 1
                label = f"fault {i + 1}" if i >= 0 else "before the first fault"
                dropped[label]["replayed" if replay else "live"] += 1
        # Lost events, grouped by the last fault before they were sent (or "before any fault").
        by_fault: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for cid, ev in lost_events:
            i = bisect.bisect_right(fault_times, ev.sent_at + 1.0) - 1
            label = f"fault {i + 1}" if i >= 0 else "before the first fault"
            by_fault[label].append({"client": cid, "uid": ev.uid, "game": ev.game, "seq": ev.seq,
                                    "sent_at_s": round(ev.sent_at - self.t0, 3),
                                    "in_doubt": ev.uid in self.in_doubt})  # fmt: skip
        return {
            "total": total,
            "clients": rows,
            "feed": {
                "published": len(self.feed),
                "accepted": len(self.accepted),
                "in_doubt": len(self.in_doubt),
                "in_doubt_delivered": len(promoted),
                "publish_errors": len(self.publish_errors),
                "first_publish_errors": [
                    (round(t - self.t0, 2), e) for t, e in self.publish_errors[:5]
                ],
                "seconds": round(self.t_end - self.t0, 1),
            },
            "faults": [
                {
                    "n": i + 1,
                    "at_s": round(f.at - self.t0, 1),
                    "kind": f.kind,
                    "target": f.target,
                    "how": f.how,
                    "down_s": round(f.down, 2),
                    "back_s": round(f.back - self.t0, 1),
                    "notes": f.notes,
                    "worst_delay_ms_after": round(1000 * worst_by_fault[i + 1], 1),
                }
                for i, f in enumerate(self.faults)
            ],
            "worst_delay_ms_before_faults": round(1000 * worst_by_fault[0], 1),
            "client_dropped_dups_by_fault": {k: dict(v) for k, v in dropped.items()},
            "timeline": self.timeline(worst_by_bin, late_by_bin),
            "lost_detail": lost_detail,
            "lost_by_fault": {k: {"count": len(v), "first": v[:20]} for k, v in by_fault.items()},
        }


def print_timeline(report: dict[str, Any]) -> None:
    print("\ntimeline per 10 s of send time: worst delay ms, deliveries > 1 s late | the "
          "monitor over those 10 s: ingest entries unread (max), inbox entries (max), machine "
          "busy % of all cores, CPU % (100 = one core) of other programs, clients, gateways, "
          "workers, Redis (means) | faults")  # fmt: skip
    cols = ("ingest_lag", "inbox", "machine_busy", "other", "clients", "gateways", "workers",
            "redis")  # fmt: skip
    for row in report["timeline"]:
        cells = " ".join(f"{row[c]!s:>6}" for c in cols)
        print(f"  +{row['t']:>4}s {row['worst_ms']:>9} {row['late']:>7} | {cells} | "
              f"{row['faults']}")  # fmt: skip


def print_report(report: dict[str, Any]) -> None:
    print("\n cid room gw expected delivered lost dup(dlv) dup(ingest) ooo unexp reconn resumed "
          "resync replayed dropped-dups worst-ms")  # fmt: skip
    for r in report["clients"]:
        print(f"{r['cid']:>4} {r['room']:>4} {r['start']:>2} {r['expected']:>8} "
              f"{r['delivered']:>9} {r['lost']:>4} {r['dup_delivery']:>8} {r['dup_ingest']:>11} "
              f"{r['out_of_order']:>3} {r['unexpected']:>5} {r['reconnects']:>6} "
              f"{r['resumes']:>7} {r['resyncs']:>6} {r['replayed']:>8} "
              f"{r['client_dropped_dups']:>12} {r['worst_delay_ms']:>8}"
              + (f"  ERROR {r['error']}" if r["error"] else ""))  # fmt: skip
    t = report["total"]
    print("\nfaults:")
    for f in report["faults"]:
        notes = "; ".join(f["notes"])
        print(f"  {f['n']:>2}. +{f['at_s']:>6.1f}s {f['how']} {f['target']}, down "
              f"{f['down_s']:.1f}s, back at +{f['back_s']:.1f}s; worst delay of events sent "
              f"from 2 s before it to 2 s before the next: {f['worst_delay_ms_after']} ms "
              f"{notes}")  # fmt: skip
    print(f"  (before the first fault: worst delay {report['worst_delay_ms_before_faults']} ms)")
    feed = report["feed"]
    print(
        f"\nfeed: {feed['published']} events in {feed['seconds']}s, {feed['accepted']} "
        f"accepted by Redis, {feed['in_doubt']} in doubt (pipeline failed during a Redis "
        f"restart; {feed['in_doubt_delivered']} of them were delivered, so Redis had them)"
    )
    print(
        f"TOTAL over {len(report['clients'])} clients: expected {t['expected']}, delivered "
        f"{t['delivered']}, lost {t['lost']}, duplicated {t['dup_delivery']} (delivery) + "
        f"{t['dup_ingest']} (ingest), out of order {t['out_of_order']}, unexpected "
        f"{t['unexpected']}; reconnects {t['reconnects']}, resumes {t['resumes']} recovered / "
        f"{t['resyncs']} not, {t['replayed']} frames replayed, {t['client_dropped_dups']} "
        f"duplicates dropped by the client; delay ms p50 {t['delay_ms']['p50']} p99 "
        f"{t['delay_ms']['p99']} p99.9 {t['delay_ms']['p999']} max {t['delay_ms']['max']}"
    )
    if report["client_dropped_dups_by_fault"]:
        print(
            "frames the gateway sent twice to a subscription (dropped by the client's dedupe), "
            "by the last fault before they arrived: "
            + "; ".join(f"{k}: {v}" for k, v in report["client_dropped_dups_by_fault"].items())
        )
    for label, group in report["lost_by_fault"].items():
        print(f"lost, {label}: {group['count']} (client, uid, game, seq, sent at): "
              + ", ".join(f"({x['client']}, {x['uid']}, {x['game']}, {x['seq']}, "
                          f"+{x['sent_at_s']}s)" for x in group["first"][:8]))  # fmt: skip
    for d in report["lost_detail"]:
        print(f"  lost detail: {d}")
    if report["exited_on_their_own"]:
        print(f"processes that exited on their own: {report['exited_on_their_own']}")
    if report["log_errors"]:
        print(f"logs with errors or tracebacks: {report['log_errors']}")
    clean = t["lost"] == t["dup_delivery"] == t["dup_ingest"] == t["out_of_order"] == 0
    print(f"target zero lost, zero duplicated, zero out of order: {'MET' if clean else 'NOT MET'}")


def code_version(module: Any, *paths: str) -> str:
    """Which code ran: the checkout a package was imported from, its commit, and whether
    `paths` (folders of that checkout) have uncommitted edits."""

    def git(*args: str) -> str:
        where = Path(module.__file__).parent
        out = subprocess.run(["git", *args], cwd=where, capture_output=True, text=True)
        return out.stdout.strip()

    top = git("rev-parse", "--show-toplevel")
    dirty = git("-C", top, "status", "--porcelain", "--", *paths)
    return f"{top} at {git('rev-parse', '--short', 'HEAD')}" + (
        f" + uncommitted changes in {len(dirty.splitlines())} file(s)" if dirty else ""
    )


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.benchmarks.soak", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--minutes", type=float, default=10.0, help="feed duration (10)")
    p.add_argument("--rate", type=float, default=400.0, help="events per second (400)")
    p.add_argument("--workers", type=int, default=3, help="worker processes (3)")
    p.add_argument(
        "--fault-every",
        type=float,
        default=25.0,
        help="mean seconds between faults (25); each waits 0.5x-1.5x of it",
    )
    p.add_argument("--seed", type=int, default=1, help="random seed for feed and faults (1)")
    p.add_argument("--log-level", default="WARNING", help="of gateways and workers (WARNING)")
    p.add_argument("--run-dir", help="where logs and the JSON report go (default /tmp/...)")
    a = p.parse_args(argv)
    info = machine()
    print(f"machine: {info['cpu']}, {info['cores']} cores, Python {info['python']}; "
          f"{find_redis_server()}", flush=True)  # fmt: skip
    import oddstream
    import oddstream_client

    info["server"] = code_version(oddstream, "gateway", "shared", "workers", "deploy")
    info["client"] = code_version(oddstream_client, "clients/python")
    print(f"server code: {info['server']}\nPython client: {info['client']}", flush=True)
    signal.signal(signal.SIGINT, signal.default_int_handler)

    def interrupt(*_: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    with contextlib.ExitStack() as stack:
        soak = Soak(a, stack)
        try:
            report = run(soak.main())
        except KeyboardInterrupt:
            print("interrupted: stopping everything", file=sys.stderr)
            return 130
    print_report(report)
    print_timeline(report)
    report = {"machine": info, "config": vars(a), **report}
    (soak.dir / "soak.json").write_text(json.dumps(report))
    print(json.dumps({k: v for k, v in report.items() if k != "clients"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
