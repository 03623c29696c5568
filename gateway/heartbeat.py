"""Client liveness: the application-level ping, and the closes for silence and token expiry.

What runs periodically costs what is due, never a walk over every connection:

- **Pings** go round a wheel of buckets. Each connection sits in one bucket (dealt out in
  turn, so buckets stay even), and each tick pings one bucket: every connection is pinged
  once per interval, and a tick writes about N * tick / interval pings, so the pings (and the
  pongs they bring back) are spread over the interval instead of arriving all at once. A
  connection is pinged whatever else it was sent: a ping is what makes a client answer, and
  the answer is what keeps it from the silence timeout.
- **Silence and token expiry** are deadlines in two heaps. A connection's silence deadline is
  `last_seen + timeout` (monotonic); its expiry deadline is the time of its next token action
  (the notice, then the close; wall clock, like a token's `exp`). A sweep pops the entries
  whose time passed: a stale one (the client spoke since, the token was refreshed) is pushed
  again with its current deadline, the others close or warn. A sweep's work is the entries
  that came due, and a client that keeps talking costs one pop and push per timeout.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from typing import Any

from oddstream.gateway.connection import Connection
from oddstream.gateway.frames import text_frame
from oddstream.gateway.metrics import GatewayMetrics
from oddstream.shared.protocol import CloseCode, ServerMessageType, server_frame

__all__ = ["PING_TICK", "ClientHeartbeat"]

#: Seconds between ping ticks, at least (see `ClientHeartbeat.tick`).
PING_TICK = 0.002
#: The most buckets of the ping wheel (ticks per interval): 30 s intervals tick every 30 ms.
MAX_PING_BUCKETS = 1000
#: Pings written before a late tick lets other callbacks run.
PING_SLICE = 256
#: Heap entries handled before a sweep lets other callbacks run.
SWEEP_SLICE = 128

#: A heap entry: [deadline, sequence (ties), connection; None once it was forgotten].
_Entry = list[Any]


class ClientHeartbeat:
    """Pings every connection once per interval, a bucket per tick, and closes the silent
    ones and those whose token expired; the node runs `tick` and `sweep` periodically and
    tells it of each connection (`watch`, `forget`, `expiry_changed`)."""

    def __init__(
        self, metrics: GatewayMetrics, *, interval: float, timeout: float, notice: float
    ) -> None:
        self._metrics = metrics
        self._timeout = timeout
        self._notice = notice
        self.buckets = min(MAX_PING_BUCKETS, max(1, round(interval / PING_TICK)))
        #: Seconds between ticks: the wheel turns once per interval.
        self.tick_seconds = interval / self.buckets
        self._wheel: list[set[Connection]] = [set() for _ in range(self.buckets)]
        self._bucket_of: dict[Connection, int] = {}
        self._deal = itertools.count()
        self._turned = 0  # ticks done since `_started`
        self._started: float | None = None
        self._seq = itertools.count()
        self._idle: list[_Entry] = []
        self._idle_entry: dict[Connection, _Entry] = {}
        self._expiry: list[_Entry] = []
        self._expiry_entry: dict[Connection, _Entry] = {}

    # --- bookkeeping (O(log n) per connection event) -------------------------------------

    def watch(self, conn: Connection) -> None:
        """A new connection: into a ping bucket, and its deadlines into the heaps."""
        bucket = next(self._deal) % self.buckets
        self._wheel[bucket].add(conn)
        self._bucket_of[conn] = bucket
        entry = [conn.last_seen + self._timeout, next(self._seq), conn]
        heapq.heappush(self._idle, entry)
        self._idle_entry[conn] = entry
        self.expiry_changed(conn)

    def forget(self, conn: Connection) -> None:
        """A connection that ended: out of the wheel; its heap entries are dropped lazily."""
        bucket = self._bucket_of.pop(conn, None)
        if bucket is not None:
            self._wheel[bucket].discard(conn)
        for entries in (self._idle_entry, self._expiry_entry):
            entry = entries.pop(conn, None)
            if entry is not None:
                entry[2] = None

    def expiry_changed(self, conn: Connection) -> None:
        """(Re)schedule the connection's next token action: after a refresh it may be later,
        or earlier, than the one scheduled."""
        old = self._expiry_entry.pop(conn, None)
        if old is not None:
            old[2] = None
        when = self._next_expiry_action(conn)
        if when is not None:
            entry = [when, next(self._seq), conn]
            heapq.heappush(self._expiry, entry)
            self._expiry_entry[conn] = entry

    def _next_expiry_action(self, conn: Connection) -> float | None:
        expires_at = conn.identity.expires_at
        if expires_at is None or conn.closing:
            return None
        return expires_at if conn.expiry_notified else expires_at - self._notice

    # --- periodic work -------------------------------------------------------------------

    async def tick(self) -> None:
        """Ping the buckets whose turn came: application-level pings (browsers cannot see
        protocol pings), one frame for all. The wheel keeps time, so every connection is
        pinged once per interval however late the ticks come (a busy loop must not delay
        pings past the clients' silence timeouts): a late tick pings every bucket it owes,
        letting other callbacks run after each `PING_SLICE` pings, and a loop late by more
        than a turn pings each bucket once."""
        now = time.monotonic()
        if self._started is None:
            self._started = now
        due = int((now - self._started) / self.tick_seconds) + 1
        if due - self._turned > self.buckets:
            self._turned = due - self.buckets
        frame = text_frame(server_frame(ServerMessageType.PING))
        sent = written = 0
        while self._turned < due:
            bucket = self._wheel[self._turned % self.buckets]
            self._turned += 1
            for conn in list(bucket):
                sent += conn.write(frame)
            if len(bucket) + written >= PING_SLICE and self._turned < due:
                written = 0
                await asyncio.sleep(0)
            else:
                written += len(bucket)
        if sent:
            self._metrics.messages_out_of(ServerMessageType.PING.value).inc(sent)

    async def sweep(self) -> None:
        """Close silent clients (4101) and enforce token expiry (notice, then 4401): only the
        deadlines that passed are looked at."""
        await self._sweep_idle(time.monotonic())
        await self._sweep_expiry(time.time())

    async def _sweep_idle(self, now: float) -> None:
        heap, timeout, handled = self._idle, self._timeout, 0
        while heap and heap[0][0] <= now:
            entry = heapq.heappop(heap)
            conn = entry[2]
            if conn is None:
                continue
            if conn.closing:
                del self._idle_entry[conn]
                continue
            deadline = conn.last_seen + timeout
            if deadline <= now:
                del self._idle_entry[conn]
                conn.close_soon(CloseCode.HEARTBEAT_TIMEOUT, "no message within the timeout")
            else:  # the client spoke since: its deadline moved
                entry[0], entry[1] = deadline, next(self._seq)
                heapq.heappush(heap, entry)
            handled += 1
            if handled % SWEEP_SLICE == 0:
                await asyncio.sleep(0)

    async def _sweep_expiry(self, now: float) -> None:
        heap, handled = self._expiry, 0
        while heap and heap[0][0] <= now:
            entry = heapq.heappop(heap)
            conn = entry[2]
            if conn is None:
                continue
            del self._expiry_entry[conn]
            conn.check_expiry(now)
            self.expiry_changed(conn)  # the next action, if any (a stale entry: the same)
            handled += 1
            if handled % SWEEP_SLICE == 0:
                await asyncio.sleep(0)
