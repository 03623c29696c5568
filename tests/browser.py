"""Real-browser test helpers: Debian's Chromium driven by Playwright, and a live system for it.

Chromium is the system package (`/usr/bin/chromium`, installed by `.ci/run` when missing);
Playwright's own browser download is never used. A missing browser fails the tests with the
command that installs it: a page nobody tested is not a page that works.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web
from playwright.async_api import Browser, Page, async_playwright
from pydantic import SecretStr

from oddstream.embedded import free_port
from oddstream.gateway.app import create_app, make_runner
from oddstream.gateway.auth import issue_token
from oddstream.shared.ingest import Ingester
from oddstream.shared.keys import Keys
from oddstream.shared.redis import create_redis
from oddstream.shared.settings import Settings
from oddstream.simulator import Simulator
from tests.harness import RunningGateway, running_worker

CHROMIUM = os.environ.get("ODDSTREAM_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-quic",
    "--disable-sync",
]
SECRET = "browser-test-secret-0123456789abcdef0123"
ROOT = Path(__file__).resolve().parents[1]
#: Where the browser tests save their screenshots: a git-ignored folder, so a test run leaves
#: the checkout clean; `ODDSTREAM_SCREENSHOTS=tests/screenshots pytest ...` refreshes the
#: README's pictures.
SCREENSHOTS = ROOT / os.environ.get("ODDSTREAM_SCREENSHOTS", ".test-output/screenshots")


def chromium_path() -> str:
    path = shutil.which(CHROMIUM) or (CHROMIUM if os.path.exists(CHROMIUM) else None)
    if path is None:
        raise AssertionError(
            f"Chromium not found at {CHROMIUM}: install it with "
            "`apt-get install -y chromium` (or set ODDSTREAM_CHROMIUM)."
        )
    return path


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            await browser.close()


@dataclass
class PageLog:
    """What the page printed and threw; tests assert it stayed free of errors."""

    console: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


async def open_page(
    browser: Browser, width: int = 1440, height: int = 1000
) -> tuple[Page, PageLog]:
    page = await browser.new_page(viewport={"width": width, "height": height})
    log = PageLog()
    page.on("console", lambda m: log.console.append(f"{m.type}: {m.text}"))
    page.on("pageerror", lambda e: log.errors.append(str(e)))
    return page, log


@dataclass
class LiveSystem:
    """A gateway on a fixed port (so it can be stopped and started again at the same URL),
    a worker, and the simulator feeding live data, all on the test session's Redis."""

    settings: Settings
    port: int
    gateway: RunningGateway | None = None

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def token(self, user: str = "alice", ttl: float = 3600) -> str:
        return issue_token(SECRET, user, ttl=ttl)

    async def stop_gateway(self) -> None:
        assert self.gateway is not None
        await self.gateway.runner.cleanup()
        self.gateway = None

    async def start_gateway(self) -> None:
        assert self.gateway is None
        app = create_app(self.settings)
        runner = make_runner(app, self.settings)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", self.port).start()
        self.gateway = RunningGateway(app, runner, self.port)


@contextlib.asynccontextmanager
async def live_system(settings: Settings, rate: float = 60.0) -> AsyncIterator[LiveSystem]:
    settings = settings.model_copy(update={"jwt_secret": SecretStr(SECRET)})
    system = LiveSystem(settings, free_port())
    redis = create_redis(settings.effective_redis_url)
    stop = asyncio.Event()
    feed: asyncio.Task[int] | None = None
    try:
        async with running_worker(settings):
            await system.start_gateway()
            simulator = Simulator(rate=rate, portfolio_users=("alice",))
            feed = asyncio.create_task(simulator.run(Ingester(redis, Keys.of(settings)), stop=stop))
            try:
                yield system
            finally:
                stop.set()
                await feed
                if system.gateway is not None:
                    await system.stop_gateway()
    finally:
        await redis.aclose()
