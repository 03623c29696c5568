"""Subscriptions: they outlive connections and keep yielding frames across reconnects."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from oddstream_client.errors import OddstreamError

__all__ = ["Subscription", "SubscriptionOwner"]

log = logging.getLogger(__name__)

Frame = dict[str, Any]
FrameCallback = Callable[[Frame], Awaitable[None] | None]


class SubscriptionOwner(Protocol):
    """What a subscription needs from the client that made it."""

    async def _unsubscribe(self, sub: Subscription) -> None: ...

    def _track(self, future: asyncio.Future[Any]) -> None: ...


class Subscription:
    """One subscription; an async iterator of its data frames that survives reconnects.

    Iteration ends when it is unsubscribed or the client is closed by the caller; it raises
    the client's final error if the client gave up (terminal close, attempts exhausted).
    Frames are buffered up to `max_buffered`; past that the oldest is dropped and counted in
    `dropped` (odds are only useful fresh; a slow reader must not grow without bound).
    """

    def __init__(
        self,
        client: SubscriptionOwner,
        subscription_type: str,
        filters: dict[str, Any],
        max_buffered: int,
    ) -> None:
        self.client = client
        self.subscription_type = subscription_type
        self.filters = filters
        self.room: str | None = None
        self.confirmation: Frame | None = None
        self.received = 0
        self.dropped = 0
        self._buffer: deque[Frame] = deque(maxlen=max_buffered)
        self._ready = asyncio.Event()
        self._callbacks: list[FrameCallback] = []
        self._ended = False
        self._error: OddstreamError | None = None

    def __repr__(self) -> str:
        return f"Subscription({self.subscription_type!r}, {self.filters!r}, room={self.room!r})"

    @property
    def active(self) -> bool:
        return not self._ended

    def add_callback(self, callback: FrameCallback) -> Callable[[], None]:
        """Call `callback(frame)` for every frame (coroutines are scheduled); returns a remover."""
        self._callbacks.append(callback)

        def remove() -> None:
            with contextlib.suppress(ValueError):
                self._callbacks.remove(callback)

        return remove

    async def unsubscribe(self) -> None:
        """Stop this subscription; the room is left once no other subscription shares it."""
        await self.client._unsubscribe(self)

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Frame:
        while not self._buffer:
            if self._ended:
                if self._error is not None:
                    raise self._error
                raise StopAsyncIteration
            self._ready.clear()
            await self._ready.wait()
        return self._buffer.popleft()

    def _deliver(self, frame: Frame) -> None:
        if self._ended:
            return
        self.received += 1
        if len(self._buffer) == self._buffer.maxlen:
            self.dropped += 1
        self._buffer.append(frame)
        self._ready.set()
        for callback in list(self._callbacks):
            try:
                result = callback(frame)
            except Exception:
                log.exception("client.callback.failed room=%s", self.room)
                continue
            if result is not None:
                self.client._track(asyncio.ensure_future(result))

    def _end(self, error: OddstreamError | None = None) -> None:
        if not self._ended:
            self._ended = True
            self._error = error
            self._ready.set()
