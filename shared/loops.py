"""Background loops that must survive: they re-raise cancellation, log and back off."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from structlog.typing import FilteringBoundLogger

__all__ = ["Backoff", "periodic", "raise_if_cancelling", "stop_tasks"]


def raise_if_cancelling() -> None:
    """Re-raise a cancellation that a library swallowed.

    On Python 3.11 `asyncio.wait_for` (which redis-py wraps around every command when a
    socket timeout is set) can drop a `cancel()` that lands as the command completes. The
    task still counts the request in `cancelling()`, so loops call this after each step
    and stop as asked instead of running forever.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def stop_tasks(tasks: list[asyncio.Task[None]], grace: float) -> None:
    """Cancel `tasks` and wait for them, at most `grace` seconds."""
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.wait(tasks, timeout=grace)


class Backoff:
    """Exponential backoff between failed attempts; `reset()` after a success."""

    def __init__(self, initial: float = 0.05, cap: float = 2.0) -> None:
        self.initial = initial
        self.cap = cap
        self.delay = initial

    def reset(self) -> None:
        self.delay = self.initial

    async def sleep(self) -> None:
        await asyncio.sleep(self.delay)
        self.delay = min(self.delay * 2, self.cap)


def periodic(
    name: str,
    interval: float,
    step: Callable[[], Awaitable[None]],
    log: FilteringBoundLogger,
    on_error: Callable[[], None] | None = None,
) -> asyncio.Task[None]:
    """Run `step` every `interval` s until cancelled; a failing step is logged, not fatal."""

    async def loop() -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await step()
            except asyncio.CancelledError:
                raise
            except Exception:
                if on_error is not None:
                    on_error()
                log.exception("loop.failed", loop=name)
            raise_if_cancelling()

    return asyncio.create_task(loop(), name=name)
