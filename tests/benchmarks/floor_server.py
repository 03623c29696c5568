"""The bare-aiohttp floor: the least a WebSocket server fed from Redis can do per delivery.

    python -m tests.benchmarks.floor_server gateway --port 8099 --redis-url redis://127.0.0.1:6379/0

`tests.benchmarks.floor` runs it beside Oddstream with the same clients, feeder and Redis, and
prints Oddstream's figures as ratios to it (issue #13's yardstick). What it does, and nothing
more: plain aiohttp (`web.WebSocketResponse`, no heartbeat, no compression), one process on
uvloop, no worker. It reads every ingest partition with one blocking `XREAD` (the entries our
`Ingester` writes: the event's JSON in field `e`), decodes each event's JSON once for its
`game_id`, builds one text frame per event (`{"type":"odds_update","data":<event>}`, header
and payload prebuilt) and writes those bytes to the transport of every member of that game's
room. A client subscribes with the same message as to Oddstream
(`{"type":"subscribe","subscription_type":"odds_updates","filters":{"game_id":...}}`) and gets
the same `welcome` and `subscription_confirmed` shapes that the benchmark's client waits for.

What it leaves out, and Oddstream pays for: authentication, limits, validation of what clients
send, room filters beyond one game id, the worker stage (matching, history, snapshots,
positions), the inbox hop through Redis, backpressure (a slow client's buffer grows without
bound here), pings, registries and metrics. `/readyz` and `/ws/v2/rooms` answer just enough
for the benchmark to know it is up and every room is joined.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from collections import defaultdict
from typing import Any

import orjson
from aiohttp import WSMsgType, web
from redis.asyncio import Redis

from oddstream.gateway.frames import text_frame  # RFC 6455 framing only: what aiohttp does
from oddstream.shared.keys import DEFAULT_PARTITIONS, Keys
from oddstream.shared.streams import EVENT_FIELD

WELCOME = b'{"type":"welcome","status":"success"}'
FRAME_HEAD = b'{"type":"odds_update","status":"success","data":'


class Floor:
    """Rooms (game id -> members' transports), the WebSocket endpoint and the Redis reader."""

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self.redis, self.keys = redis, keys
        self.rooms: defaultdict[str, set[asyncio.Transport]] = defaultdict(set)

    async def connect(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        transport: Any = request.transport
        joined: set[str] = set()
        await ws.send_str(WELCOME.decode())
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                body = orjson.loads(msg.data)
                if body.get("type") != "subscribe":
                    continue  # pongs and the rest: nothing to do
                game = str(body.get("filters", {}).get("game_id", ""))
                self.rooms[game].add(transport)
                joined.add(game)
                await ws.send_str(orjson.dumps(
                    {"type": "subscription_confirmed", "status": "success", "room": game}
                ).decode())  # fmt: skip
        finally:
            for game in joined:
                self.rooms[game].discard(transport)
                if not self.rooms[game]:
                    del self.rooms[game]
        return ws

    async def ready(self, _: web.Request) -> web.Response:
        return web.json_response({"ready": bool(await self.redis.ping())})

    async def room_list(self, _: web.Request) -> web.Response:
        rooms = [{"room_id": g, "subscribers": len(m)} for g, m in self.rooms.items()]
        return web.json_response({"rooms": rooms})

    async def pump(self) -> None:
        """Read every ingest partition from its current end; fan each event out."""
        streams: dict[Any, Any] = {}
        for key in self.keys.ingest_streams:
            top: Any = await self.redis.xrevrange(key, count=1)
            streams[key.encode()] = top[0][0] if top else b"0-0"  # XREAD names it in bytes
        rooms = self.rooms
        while True:
            reply: Any = await self.redis.xread(streams, count=1000, block=1000)
            for stream, entries in reply:
                streams[stream] = entries[-1][0]
                for _, fields in entries:
                    data = fields[EVENT_FIELD]
                    members = rooms.get(orjson.loads(data).get("game_id"))
                    if members:
                        frame = text_frame(FRAME_HEAD + data + b"}")
                        for transport in members:
                            transport.write(frame)


async def serve(port: int, redis_url: str, prefix: str, partitions: int) -> None:
    redis = Redis.from_url(redis_url)
    floor = Floor(redis, Keys(prefix, partitions))
    app = web.Application()
    app.add_routes([web.get("/ws/v2/connect", floor.connect), web.get("/readyz", floor.ready),
                    web.get("/ws/v2/rooms", floor.room_list)])  # fmt: skip
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, backlog=4096).start()
    pump = asyncio.create_task(floor.pump())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    pump.add_done_callback(lambda _: stop.set())  # a reader that failed ends the server
    await stop.wait()
    pump.cancel()
    try:
        with contextlib.suppress(asyncio.CancelledError):
            await pump  # raises what the reader failed with, if it did
    finally:
        await runner.cleanup()
        await redis.aclose()


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m tests.benchmarks.floor_server", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("role", choices=("gateway",), help="what it stands in for (gateway)")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--redis-url", required=True)
    p.add_argument("--prefix", default="bench", help="the deployment's key prefix (bench)")
    p.add_argument("--partitions", type=int, default=DEFAULT_PARTITIONS)
    a = p.parse_args()
    coro = serve(a.port, a.redis_url, a.prefix, a.partitions)
    try:
        import uvloop

        uvloop.run(coro)
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        asyncio.run(coro)


if __name__ == "__main__":
    main()
