"""Run a gateway or a worker in this process until told to stop: what `oddstream gateway`,
`oddstream worker` and `oddstream dev` share."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Callable

from aiohttp import web

from oddstream.gateway.app import create_app, make_runner
from oddstream.shared.logs import get_logger
from oddstream.shared.redis import create_redis
from oddstream.shared.settings import Settings
from oddstream.workers.consumer import Worker

__all__ = ["run_gateway", "run_worker", "stop_on_signals"]

log = get_logger(__name__)


def stop_on_signals(stop: asyncio.Event) -> None:
    """SIGINT and SIGTERM set `stop` (first one); a second one exits at once."""
    loop = asyncio.get_running_loop()

    def handle(signum: int) -> None:
        if stop.is_set():
            log.warning("signal.again", signal=signal.Signals(signum).name, action="exit now")
            sys.exit(130)
        log.info("signal.received", signal=signal.Signals(signum).name, action="drain")
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, handle, signum)


async def run_gateway(
    settings: Settings, stop: asyncio.Event, on_ready: Callable[[int], None] | None = None
) -> None:
    """Serve until `stop` is set, then drain within the grace period."""
    runner = make_runner(create_app(settings), settings)
    await runner.setup()
    try:
        site = web.TCPSite(runner, settings.host, settings.port)
        await site.start()
        port = int(runner.addresses[0][1])  # the real port when settings.port is 0
        log.info("gateway.listening", host=settings.host, port=port)
        if on_ready:
            on_ready(port)
        await stop.wait()
    finally:
        await runner.cleanup()


async def run_worker(settings: Settings, stop: asyncio.Event, worker_id: str | None = None) -> None:
    """Match and deliver until `stop` is set, then finish the batch in flight."""
    redis = create_redis(settings.effective_redis_url)
    worker = Worker(settings, redis, worker_id=worker_id)
    try:
        await worker.start()
        await stop.wait()
    finally:
        await worker.stop()
        await redis.aclose()
