"""`oddstream dev`: the whole system in one process for a newcomer.

Embedded Redis (unless REDIS_URL is set), one gateway, one worker and the simulator, each the
same code the production commands run; with `--feed-file`, a saved The Odds API answer
(`feeds.recorded`) instead of the simulator. Ctrl-C stops the feed, then the gateway (clients
get 1001), then the worker, then Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import sys
from pathlib import Path

from pydantic import SecretStr

from oddstream.embedded import EmbeddedRedis
from oddstream.runners import run_gateway, run_worker, stop_on_signals
from oddstream.shared.logs import get_logger
from oddstream.shared.settings import Settings

__all__ = ["dev_main"]

log = get_logger(__name__)

DEMO_USER = "demo"


def _banner(
    settings: Settings,
    port: int,
    token: str | None,
    admin: str | None,
    embedded: bool,
    feed: str | None = None,
    cluster: bool = False,
) -> str:
    base_http = f"http://{settings.host}:{port}"
    base_ws = f"ws://{settings.host}:{port}"
    redis_note = "embedded, nothing kept on disk" if embedded else "from REDIS_URL"
    if cluster:
        redis_note = f"a Redis Cluster, from REDIS_URL; {settings.shards} shards"
    lines = [
        "",
        "Oddstream dev is running.",
        f"  Dashboard   {base_http}/" + (f"#token={token}" if token else ""),
        f"  JS client   {base_http}/static/oddstream.js (types: oddstream.d.ts)",
        f"  WebSocket   {base_ws}/ws/v2/connect",
        f"  Odds feed   {base_ws}/ws/v2/odds?sport=MLB",
        f"  Status      {base_http}/ws/v2/status",
        f"  Rooms       {base_http}/ws/v2/rooms",
        f"  Connections {base_http}/ws/v2/connections",
        f"  Metrics     {base_http}/metrics",
        f"  Schema      {base_http}/ws/v2/schema",
        f"  Redis       {settings.effective_redis_url} ({redis_note})",
    ]
    if feed:
        lines.append(f"  Feed        {feed}")
    if token:
        lines.append(f"  Dev token   (user '{DEMO_USER}', for ?token= or portfolio) {token}")
    if admin:
        lines.append(f"  Admin token (management: -H 'Authorization: Bearer ...') {admin}")
    lines += ["Press Ctrl-C to stop.", ""]
    return "\n".join(lines)


async def dev_main(
    settings: Settings, rate: float, feed_file: Path | None = None, feed_moves: float = 2.0
) -> int:
    from oddstream.feeds.recorded import RecordedFeed
    from oddstream.gateway.auth import issue_token
    from oddstream.shared.ingest import Ingester
    from oddstream.shared.keys import Keys
    from oddstream.shared.redis import create_redis, is_cluster
    from oddstream.simulator import Simulator

    recorded: RecordedFeed | None = None
    if feed_file is not None:
        try:
            recorded = RecordedFeed(feed_file, moves=feed_moves)
        except ValueError as exc:
            print(f"oddstream dev: --feed-file: {exc}", file=sys.stderr)
            return 2
    # Development: no production start-up checks. Origins are not widened: the gateway
    # accepts its own (the dashboard at http://127.0.0.1:PORT or http://localhost:PORT) and
    # those ODDSTREAM_ALLOWED_ORIGINS lists, e.g. a Vite dev server's.
    settings = settings.model_copy(update={"env": "development"})
    stop = asyncio.Event()
    stop_on_signals(stop)
    embedded: EmbeddedRedis | None = None
    if settings.redis_url is None:
        embedded = EmbeddedRedis().start()
        settings = settings.model_copy(update={"redis_url": embedded.url})
    if settings.jwt_secret is None:
        # A throw-away secret so the printed dev token works; never used outside `dev`.
        settings = settings.model_copy(update={"jwt_secret": SecretStr(secrets.token_hex(32))})
    if settings.admin_token is None:
        # A throw-away admin credential so the seed's curl examples work with one header.
        settings = settings.model_copy(update={"admin_token": SecretStr(secrets.token_hex(16))})
    admin = settings.admin_token.get_secret_value() if settings.admin_token else None
    secret = settings.jwt_secret.get_secret_value() if settings.jwt_secret else None
    token = issue_token(secret, DEMO_USER) if secret else None

    gateway_ready = asyncio.Event()
    bound_port: list[int] = []

    def ready(port: int) -> None:
        bound_port.append(port)
        gateway_ready.set()

    redis = create_redis(settings.effective_redis_url)
    simulator_stop = asyncio.Event()
    tasks: list[asyncio.Task[object]] = []
    try:
        worker_stop, gateway_stop = asyncio.Event(), asyncio.Event()
        tasks.append(asyncio.create_task(run_worker(settings, worker_stop)))
        tasks.append(asyncio.create_task(run_gateway(settings, gateway_stop, ready)))
        waiter = asyncio.create_task(gateway_ready.wait())
        done, _ = await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)
        if waiter not in done:
            waiter.cancel()
            for task in done:
                task.result()  # raises the start-up failure
        ingester = Ingester(redis, Keys.of(settings))
        feed: str | None = None
        if recorded is not None:
            tasks.append(asyncio.create_task(recorded.run(ingester, simulator_stop)))
            feed = (
                f"{recorded.path} (The Odds API answer, {recorded.games} games, "
                f"{feed_moves:g} random moves/s) instead of the simulator"
            )
        else:
            simulation = Simulator(rate=rate, portfolio_users=(DEMO_USER,)).run(
                ingester, stop=simulator_stop
            )
            tasks.append(asyncio.create_task(simulation))
        print(
            _banner(
                settings, bound_port[0], token, admin, embedded is not None, feed, is_cluster(redis)
            ),
            file=sys.stderr,
            flush=True,
        )
        await stop.wait()
        simulator_stop.set()
        gateway_stop.set()
        await asyncio.gather(tasks[1], tasks[2], return_exceptions=True)
        worker_stop.set()
        await asyncio.gather(tasks[0], return_exceptions=True)
    finally:
        for task in tasks:
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.gather(*tasks, return_exceptions=True)
        await redis.aclose()
        if embedded is not None:
            embedded.close()
    log.info("dev.stopped")
    return 0
