"""Compression benchmark: what permessage-deflate costs and saves, for odds frames and snapshots.

    python -m tests.benchmarks.compression                          # 100 games, 20 clients
    python -m tests.benchmarks.compression --games 200 --clients 50 --rounds 3

All local: an embedded Redis, one gateway and one worker process (`python -m oddstream.cli`,
per-IP connect limit lifted), and minimal WebSocket clients (asyncio streams) in this process.
`--games` MLB games get the latest odds of 4 books x 3 markets each through ingest, so an
`odds_updates` subscription to `sport=MLB` starts with a snapshot of games x 12 events.

1. Snapshots end to end. `--clients` clients subscribe to that room at once, read the
   confirmation and the snapshot, unsubscribe, `--rounds` times; plain clients (no offer) and
   deflate clients (offering what browsers offer, sending their messages compressed as
   browsers do) take turns, `--repeats` times each. Per snapshot: its size, the bytes its
   frame took on the socket, the gateway's CPU (utime + stime from /proc; the snapshot is
   built per subscriber, so that includes the Redis reads and the JSON work besides the
   compression) and this process's CPU (reading it; for deflate clients, inflating it).
2. Frames alone, in this process: a live odds frame and one of those snapshots, as the
   gateway sent them, compressed as `gateway.frames` does (level 1, reset after each message)
   and inflated: bytes and microseconds per message. A live data frame is compressed once per
   gateway whatever its members (`python -m tests.benchmarks.load --compress` measures it end
   to end); a snapshot once per subscriber.
3. Memory: the gateway's RSS per idle subscribed connection, `--idle` plain clients, then as
   many deflate clients that sent their subscribe compressed (aiohttp then keeps an inflater
   for the connection).

The last line of output is JSON with every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from oddstream.embedded import EmbeddedRedis, free_port
from oddstream.gateway.frames import deflate_frame
from oddstream.shared.ingest import Ingester, parse_event
from oddstream.shared.keys import Keys
from oddstream.shared.redis import create_redis
from tests.benchmarks.load import machine, price_fields, rss_kib, run, spawn, until
from tests.rfc6455 import masked, open_upgraded

KEYS = Keys("cbench")
BOOKS, MARKETS = ("DraftKings", "FanDuel", "BetMGM", "Caesars"), ("moneyline", "spread", "total")
OFFER = "permessage-deflate; client_max_window_bits"
TAIL = b"\x00\x00\xff\xff"


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Client:
    """A minimal RFC 6455 client: counts the bytes each message took on the socket."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.deflate: Any = None  # a compressor for what we send, when negotiated
        self.inflater: Any = None

    @classmethod
    async def connect(cls, port: int, deflate: bool) -> Client:
        offer = OFFER if deflate else None
        reader, writer, head = await open_upgraded(port, offer=offer, limit=1 << 24)
        client = cls(reader, writer)
        if deflate:
            if b"permessage-deflate" not in head:
                raise RuntimeError("permessage-deflate was not accepted")
            client.deflate = zlib.compressobj(6, zlib.DEFLATED, -15)  # with context, as Chrome
            client.inflater = zlib.decompressobj(-15)  # one per connection, as browsers keep
        await client.until(b"welcome")
        return client

    async def send(self, body: dict[str, Any]) -> None:
        payload = orjson.dumps(body)
        if self.deflate is not None:
            compressed = self.deflate.compress(payload) + self.deflate.flush(zlib.Z_SYNC_FLUSH)
            payload = compressed.removesuffix(TAIL)
        self.writer.write(masked(0x1, payload, compressed=self.deflate is not None))
        await self.writer.drain()

    async def message(self) -> tuple[int, bytes]:
        """(bytes on the socket, text) of the next text message; control frames skipped."""
        while True:
            first, second = await self.reader.readexactly(2)
            length, head = second & 0x7F, 2
            if length == 126:
                length, head = int.from_bytes(await self.reader.readexactly(2), "big"), 4
            elif length == 127:
                length, head = int.from_bytes(await self.reader.readexactly(8), "big"), 10
            wire = await self.reader.readexactly(length)
            if first & 0x0F == 0x8:
                raise RuntimeError(f"closed by the gateway: {wire!r}")
            if first & 0x0F != 0x1:
                continue
            if first & 0x40:
                wire = self.inflater.decompress(wire + TAIL)
            return head + length, wire

    async def until(self, type_: bytes) -> tuple[int, bytes]:
        marker = b'{"type":"' + type_ + b'"'
        while True:
            size, text = await self.message()
            if text.startswith(marker):
                return size, text

    def close(self) -> None:
        self.writer.close()


TEAMS = (
    "New York Yankees",
    "Boston Red Sox",
    "Los Angeles Dodgers",
    "San Francisco Giants",
    "Chicago Cubs",
    "St. Louis Cardinals",
    "Houston Astros",
    "Texas Rangers",
    "Atlanta Braves",
    "Philadelphia Phillies",
    "Seattle Mariners",
    "Toronto Blue Jays",
)


def odds(game: int, book: str, market: str) -> Any:
    """One book's price of one market of a game; teams, lines and prices vary as real ones do
    (with the books' margin, as `tests.benchmarks.load` quotes them: no arbitrage)."""
    k = game * 7 + BOOKS.index(book) * 3 + MARKETS.index(market)
    extra = {"line": 7.5 + k % 4} if market == "total" else {}
    if market == "spread":
        extra = {"line": -1.5 if k % 2 else 1.5}
    return parse_event({"kind": "odds", "sport": "MLB", "game_id": f"MLB-{game:04}",
                        "sportsbook": book, "market": market,
                        "home_team": TEAMS[game % len(TEAMS)],
                        "away_team": TEAMS[(game * 5 + 1) % len(TEAMS)],
                        **price_fields(market, k), **extra})  # fmt: skip


SUBSCRIBE = {"type": "subscribe", "subscription_type": "odds_updates", "filters": {"sport": "MLB"}}


async def snapshot_phase(port: int, gateway: int, a: argparse.Namespace, deflate: bool) -> Any:
    clients = await asyncio.gather(*(Client.connect(port, deflate) for _ in range(a.clients)))
    sizes: list[tuple[int, int]] = []  # (bytes on the wire, snapshot bytes)
    sample = b""

    async def one(client: Client) -> None:
        nonlocal sample
        await client.send(SUBSCRIBE)
        confirmed = orjson.loads((await client.until(b"subscription_confirmed"))[1])
        wire, text = await client.until(b"snapshot")
        sizes.append((wire, len(text)))
        sample = text
        await client.send({"type": "unsubscribe", "room": confirmed["data"]["room"]})
        await client.until(b"unsubscribed")

    try:
        gw0, me0, t0 = cpu_seconds(gateway), time.process_time(), time.monotonic()
        for _ in range(a.rounds):
            await asyncio.gather(*(one(c) for c in clients))
        gw1, me1, t1 = cpu_seconds(gateway), time.process_time(), time.monotonic()
    finally:
        for client in clients:
            client.close()
    n = len(sizes)
    return {
        "snapshots": n,
        "snapshot_bytes": round(statistics.mean(s for _, s in sizes)),
        "wire_bytes_per_snapshot": round(statistics.mean(w for w, _ in sizes)),
        "gateway_cpu_ms_per_snapshot": round(1000 * (gw1 - gw0) / n, 3),
        "client_cpu_ms_per_snapshot": round(1000 * (me1 - me0) / n, 3),
        "seconds": round(t1 - t0, 2),
    }, sample


def frame_costs(payload: bytes, repeat: int) -> dict[str, Any]:
    """Compress `payload` as the gateway does, and inflate it, `repeat` times: best of 3."""
    frame = deflate_frame(payload, 0)
    assert frame is not None
    body = frame[2 if frame[1] < 126 else 4 if frame[1] == 126 else 10 :]
    best_c = best_i = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        for _ in range(repeat):
            deflate_frame(payload, 0)
        best_c = min(best_c, (time.perf_counter() - t) / repeat)
        inflater = zlib.decompressobj(-15)
        t = time.perf_counter()
        for _ in range(repeat):
            inflater.decompress(body + TAIL)
        best_i = min(best_i, (time.perf_counter() - t) / repeat)
    return {"plain_bytes": len(payload), "deflated_bytes": len(body),
            "ratio": round(len(body) / len(payload), 3), "compress_us": round(best_c * 1e6, 1),
            "inflate_us": round(best_i * 1e6, 1)}  # fmt: skip


async def memory(port: int, gateway: int, n: int) -> dict[str, float]:
    """KiB of gateway RSS per idle subscribed connection: plain, then deflate."""
    out: dict[str, float] = {}
    opened: list[Client] = []
    try:
        for name, deflate in (("plain", False), ("deflate", True)):
            await asyncio.sleep(0.5)
            before = rss_kib(gateway)
            for _ in range(n):
                client = await Client.connect(port, deflate)
                opened.append(client)
                await client.send({**SUBSCRIBE, "filters": {"game_id": "idle"},
                                   "snapshot": False})  # fmt: skip
                await client.until(b"subscription_confirmed")
            await asyncio.sleep(0.5)
            out[f"{name}_kib_per_connection"] = round((rss_kib(gateway) - before) / n, 2)
    finally:
        for client in opened:
            client.close()
    return out


async def bench(a: argparse.Namespace, stack: contextlib.ExitStack) -> dict[str, Any]:
    tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
    redis_server = stack.enter_context(EmbeddedRedis())
    port = free_port()
    env = {**os.environ, "REDIS_URL": redis_server.url, "ODDSTREAM_REDIS_PREFIX": KEYS.prefix,
           "ODDSTREAM_LOG_LEVEL": "WARNING", "ODDSTREAM_HOST": "127.0.0.1",
           "WEBSOCKET_MAX_CONNECTIONS": str(2 * a.idle + a.clients + 100),
           "ODDSTREAM_CONNECT_RATE_PER_IP": "100000", "ODDSTREAM_CONNECT_BURST_PER_IP": "100000",
           "ODDSTREAM_MAX_REPLAY_BYTES": str(64 * 1024 * 1024)}  # fmt: skip
    env.pop("JWT_SECRET", None)
    procs = {name: spawn(stack, tmp / f"{name}.log", args, env)
             for name, args in (("gateway", ["gateway", "--port", str(port)]),
                                ("worker", ["worker"]))}  # fmt: skip
    gateway = procs["gateway"].pid
    async with create_redis(redis_server.url) as redis, aiohttp.ClientSession() as http:

        async def up() -> bool:
            for name, proc in procs.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"the {name} exited: {(tmp / f'{name}.log').read_text()}")
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(f"http://127.0.0.1:{port}/readyz") as reply:
                    return reply.status == 200 and bool(await redis.zcard(KEYS.workers))
            return False

        await until("gateway and worker", 30, up)
        warm = await Client.connect(port, True)  # one-time lazy state, before any measurement
        warm.close()
        mem = await memory(port, gateway, a.idle)
        print(f"memory: {mem}", flush=True)

        ingester = Ingester(redis, KEYS)
        for game in range(a.games):
            await ingester.publish_many([odds(game, b, m) for b in BOOKS for m in MARKETS])

        async def recorded() -> bool:
            return bool(await redis.hlen(KEYS.latest(f"MLB-{a.games - 1:04}")) == 12)

        await until("latest values recorded", 60, recorded)
        await asyncio.sleep(1.0)
        phases: dict[str, list[dict[str, Any]]] = {"plain": [], "deflate": []}
        snapshot = b""
        for _ in range(a.repeats):
            for name in ("plain", "deflate"):
                figures, snapshot = await snapshot_phase(port, gateway, a, name == "deflate")
                phases[name].append(figures)
                print(f"{name:>7}: {figures}", flush=True)

        # One live odds frame, as the gateway sends it.
        live = await Client.connect(port, False)
        await live.send({**SUBSCRIBE, "snapshot": False})
        await live.until(b"subscription_confirmed")
        await asyncio.sleep(1.0)  # the worker follows the room feed
        await ingester.publish(odds(0, "FanDuel", "spread"))
        _, odds_frame = await live.until(b"odds_update")
        live.close()
    frames = {"odds_update": frame_costs(odds_frame, 2000),
              "snapshot": frame_costs(snapshot, max(5, 200_000 // len(snapshot)))}  # fmt: skip
    for name, f in frames.items():
        print(f"{name:>11}: {f}", flush=True)
    medians = {
        name: {k: statistics.median(run[k] for run in runs) for k in runs[0]}
        for name, runs in phases.items()
    }
    return {"memory": mem, "snapshots": phases, "snapshot_medians": medians, "frames": frames}


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.benchmarks.compression", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--games", type=int, default=100, help="MLB games in the snapshot (100)")
    p.add_argument("--clients", type=int, default=20, help="clients subscribing at once (20)")
    p.add_argument("--rounds", type=int, default=5, help="subscribes per client per phase (5)")
    p.add_argument("--repeats", type=int, default=2, help="plain/deflate phases each (2)")
    p.add_argument("--idle", type=int, default=500, help="idle connections per kind (500)")
    a = p.parse_args(argv)
    info = machine()
    print(f"machine: {info['cpu']}, {info['cores']} cores, Python {info['python']}")
    print(f"setup: {a.games} games x 12 latest odds; {a.clients} clients x {a.rounds} subscribes "
          f"per phase, {a.repeats} phases of each kind; {a.idle} idle connections per kind",
          flush=True)  # fmt: skip
    with contextlib.ExitStack() as stack:
        report = run(bench(a, stack))
    m = report["snapshot_medians"]
    print("\nmedians per snapshot   plain      deflate")
    for key in ("snapshot_bytes", "wire_bytes_per_snapshot", "gateway_cpu_ms_per_snapshot",
                "client_cpu_ms_per_snapshot"):  # fmt: skip
        print(f"{key:<30}{m['plain'][key]:>10}{m['deflate'][key]:>12}")
    print(json.dumps({"machine": info, "config": vars(a), **report}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
