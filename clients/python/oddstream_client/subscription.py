"""Subscriptions: they outlive connections, resume where they left off, and drop duplicates.

Each subscription keeps the latest **position** of its room (from confirmations, data frames'
`positions[room]` and snapshot frames; opaque strings, never parsed) and sends it with every
resubscribe, so the gateway replays what was missed while the client was away. Frames are
deduplicated by `event_id` over the last `dedupe_window` ids, so a frame replayed at the seam
of a resume is never yielded twice. When the gateway cannot replay (`recovered: false`), the
subscription says so (`recovered`, `on_resync`) and, for types that have one, the **snapshot**
frame that follows is yielded in order like any other frame (type `"snapshot"`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from oddstream_client.errors import OddstreamError

__all__ = ["SNAPSHOT_FRAME", "SNAPSHOT_TYPES", "ResumeEvent", "Subscription", "SubscriptionOwner"]

log = logging.getLogger(__name__)

Frame = dict[str, Any]
FrameCallback = Callable[[Frame], Awaitable[None] | None]

#: The frame type of a snapshot (the latest value per key, sent after a fresh subscribe).
SNAPSHOT_FRAME = "snapshot"
#: Subscription types the gateway sends a snapshot for (odds and predictions, and the sports).
SNAPSHOT_TYPES: frozenset[str] = frozenset(
    {"odds_updates", "predictions", "mlb", "nba", "nfl", "nhl"}
)
#: Event ids remembered per subscription to drop duplicates (the most recent ones).
DEDUPE_WINDOW = 10_000


@dataclass(frozen=True)
class ResumeEvent:
    """How a subscribe that carried a position came back.

    `recovered` True: the `replayed` missed frames follow, then live ones, with no gap.
    False: the missed frames are gone (too old, another epoch, unusable position); a snapshot
    follows for snapshot types, and the application should rebuild its state from it.
    `position` is the position that was sent; `confirmation` the gateway's reply.
    """

    subscription: Subscription
    recovered: bool
    replayed: int
    position: str
    confirmation: Frame


ResumeCallback = Callable[[ResumeEvent], Awaitable[None] | None]


class SubscriptionOwner(Protocol):
    """What a subscription needs from the client that made it."""

    async def _unsubscribe(self, sub: Subscription) -> None: ...

    def _track(self, future: asyncio.Future[Any]) -> None: ...


class Subscription:
    """One subscription; an async iterator of its frames that survives reconnects.

    Iteration yields data frames (replayed ones carry `"replay": true`) and snapshot frames
    (`{"type": "snapshot", "room", "position", "data": {"events": [...]}}`), in the order the
    gateway sent them, each event at most once. It ends when unsubscribed or the client is
    closed by the caller; it raises the client's final error if the client gave up (terminal
    close, attempts exhausted). Frames are buffered up to `max_buffered`; past that the oldest
    is dropped and counted in `dropped` (odds are only useful fresh; a slow reader must not
    grow without bound).
    """

    def __init__(
        self,
        client: SubscriptionOwner,
        subscription_type: str,
        filters: dict[str, Any],
        max_buffered: int,
        *,
        position: str | None = None,
        snapshot: bool = True,
        dedupe_window: int = DEDUPE_WINDOW,
    ) -> None:
        self.client = client
        self.subscription_type = subscription_type
        self.filters = filters
        self.room: str | None = None
        self.confirmation: Frame | None = None
        self.received = 0
        self.dropped = 0
        #: Frames dropped because their `event_id` was already delivered.
        self.duplicates = 0
        #: `recovered` of the last confirmation: True/False after a resume, None for a fresh
        #: subscribe (no position sent).
        self.recovered: bool | None = None
        #: Frames the last confirmation announced as replayed.
        self.replayed = 0
        #: Resumes that recovered everything, and ones that could not (state rebuilt).
        self.resumes = 0
        self.resyncs = 0
        #: Snapshot frames received, and the last one.
        self.snapshots = 0
        self.last_snapshot: Frame | None = None
        #: Whether subscribes ask for a snapshot (when fresh or not recovered; the default).
        self.snapshot_requested = snapshot
        self._position = position
        self._awaiting_snapshot = False
        self._seen: set[str] = set()
        self._seen_order: deque[str] = deque()
        self._dedupe_window = max(1, dedupe_window)
        self._buffer: deque[Frame] = deque(maxlen=max_buffered)
        self._ready = asyncio.Event()
        self._callbacks: list[FrameCallback] = []
        self._resync_callbacks: list[ResumeCallback] = []
        self._snapshot_callbacks: list[FrameCallback] = []
        self._ended = False
        self._error: OddstreamError | None = None

    def __repr__(self) -> str:
        return f"Subscription({self.subscription_type!r}, {self.filters!r}, room={self.room!r})"

    @property
    def active(self) -> bool:
        return not self._ended

    @property
    def position(self) -> str | None:
        """Where this subscription is in its room's stream (opaque): the latest position
        received, which every resubscribe sends. None before the first one.

        It can be ahead of the frames your loop has taken from the iterator (they wait in the
        buffer): to resume later from what you processed (`client.subscribe(type, filters,
        position=...)`, e.g. in another process), save `position_of(frame)` of the last frame
        you handled."""
        return self._position

    def position_of(self, frame: Frame) -> str | None:
        """The room's position right after `frame` (a data or snapshot frame of this
        subscription), or None for frames without one (the gateway's own alerts)."""
        if frame.get("type") == SNAPSHOT_FRAME:
            position = frame.get("position")
        else:
            positions = frame.get("positions")
            position = positions.get(self.room) if isinstance(positions, dict) else None
        return position if isinstance(position, str) and position else None

    def add_callback(self, callback: FrameCallback) -> Callable[[], None]:
        """Call `callback(frame)` for every frame (coroutines are scheduled); returns a remover.

        Snapshot frames come through here too, in order (check `frame["type"]`)."""
        return _add(self._callbacks, callback)

    def on_resync(self, callback: ResumeCallback) -> Callable[[], None]:
        """Call `callback(event)` when a resume could not recover what was missed
        (`recovered: false`): rebuild state from the snapshot that follows (snapshot types)."""
        return _add(self._resync_callbacks, callback)

    def on_snapshot(self, callback: FrameCallback) -> Callable[[], None]:
        """Call `callback(frame)` for each snapshot frame (also yielded by the iterator)."""
        return _add(self._snapshot_callbacks, callback)

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

    # --- called by the client, in the order frames arrive ------------------------------------

    def _subscribe_body(self) -> Frame:
        body: Frame = {
            "type": "subscribe",
            "subscription_type": self.subscription_type,
            "filters": self.filters,
        }
        if self._position is not None:
            body["position"] = self._position
        if not self.snapshot_requested:
            body["snapshot"] = False
        return body

    def _forget_position(self) -> None:
        """The gateway called our position malformed: subscribe afresh next time."""
        self._position = None

    def _confirmed(self, frame: Frame, sent: str | None) -> ResumeEvent | None:
        """Apply a confirmation (synchronously, before any frame after it is routed).

        Returns the resume outcome when `sent` (the position sent) was not None."""
        data = frame.get("data") or {}
        room = data.get("room")
        if isinstance(room, str) and room:
            self.room = room
        self.confirmation = frame
        if data.get("already_subscribed") is True and "recovered" not in data:
            # This connection is in the room already (for another subscription of this client):
            # this one shares its frames from here; nothing is replayed or sent for it alone.
            self.recovered = None
            self.replayed = 0
            if self._position is None and isinstance(data.get("position"), str):
                self._position = data["position"]
            return None
        recovered = data.get("recovered")
        self.recovered = recovered if isinstance(recovered, bool) else None
        if sent is not None and self.recovered is None:
            self.recovered = False  # resent without its (refused) position: nothing replayed
        replayed = data.get("replayed")
        self.replayed = replayed if isinstance(replayed, int) else 0
        current = data.get("position")
        current = current if isinstance(current, str) and current else None
        if self.recovered is True:
            self.resumes += 1
            self._awaiting_snapshot = False
            # With frames to replay, keep ours: the replayed frames advance it one by one, so
            # a drop in the middle of the replay resumes from the last one received.
            if self.replayed == 0 and current is not None:
                self._position = current
        elif self.snapshot_requested and self.subscription_type in SNAPSHOT_TYPES:
            # The snapshot comes next; its position is adopted with it, so a drop before it
            # arrives subscribes afresh (and gets a snapshot) instead of skipping it.
            self._awaiting_snapshot = True
        elif current is not None:
            self._position = current
        if sent is None:
            return None
        event = ResumeEvent(self, self.recovered is True, self.replayed, sent, frame)
        if not event.recovered:
            self.resyncs += 1
            self._notify(self._resync_callbacks, event)
        return event

    def _data(self, frame: Frame) -> bool:
        """A data frame for this subscription's room: deliver it unless already delivered."""
        if self._ended:
            return False
        event_id = frame.get("event_id")
        if isinstance(event_id, str):
            if event_id in self._seen:
                self.duplicates += 1
                return False
            self._remember(event_id)
        positions = frame.get("positions")
        if isinstance(positions, dict) and self.room is not None:
            position = positions.get(self.room)
            if isinstance(position, str) and position:
                self._position = position
        self._deliver(frame)
        return True

    def _wants_snapshot(self) -> bool:
        return self._awaiting_snapshot

    def _snapshot(self, frame: Frame) -> None:
        if self._ended:
            return
        self._awaiting_snapshot = False
        position = frame.get("position")
        if isinstance(position, str) and position:
            self._position = position
        events = (frame.get("data") or {}).get("events") or []
        for event in events:
            event_id = event.get("event_id") if isinstance(event, dict) else None
            if isinstance(event_id, str) and event_id not in self._seen:
                self._remember(event_id)
        self.snapshots += 1
        self.last_snapshot = frame
        self._deliver(frame)
        self._notify(self._snapshot_callbacks, frame)

    def _remember(self, event_id: str) -> None:
        self._seen.add(event_id)
        self._seen_order.append(event_id)
        while len(self._seen_order) > self._dedupe_window:
            self._seen.discard(self._seen_order.popleft())

    def _deliver(self, frame: Frame) -> None:
        if self._ended:
            return
        self.received += 1
        if len(self._buffer) == self._buffer.maxlen:
            self.dropped += 1
        self._buffer.append(frame)
        self._ready.set()
        self._notify(self._callbacks, frame)

    def _notify(self, callbacks: list[Callable[[Any], Awaitable[None] | None]], arg: Any) -> None:
        for callback in list(callbacks):
            try:
                result = callback(arg)
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


def _add(callbacks: list[Any], callback: Any) -> Callable[[], None]:
    callbacks.append(callback)

    def remove() -> None:
        with contextlib.suppress(ValueError):
            callbacks.remove(callback)

    return remove
