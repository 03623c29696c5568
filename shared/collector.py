"""The cyclic garbage collector, kept from pausing in proportion to what a process holds.

Gateways use all of it (below); workers the start-up freeze and the scheduled full
collection (`tick()` at each beat, no connections): a worker holds ~80,000 tracked objects
after start-up (modules, the room index), and under load CPython ran a full collection over
all of them (~40 ms, a pause in every room's delivery) several times a minute.

CPython's collector walks every object of the generations it collects. A gateway's
connections are long-lived objects (aiohttp's protocol, request and WebSocket response, each
one's pending read, our `Connection`), so the older generations grow with connections: at
15,000 connections a full collection took 83-103 ms and a middle one ~30 ms, and they came
often enough to put the p99 latency at 5k deliveries/s at 112-258 ms (18 ms with the
collector off; `tests.benchmarks.floor`, README "Against the bare-aiohttp floor").

Policy (`Collector.tick`, once per gateway beat):
- **Freeze what has settled.** When connections opened since the last freeze and either
  none opened since the last beat (a burst is over) or at least `settle` did (a long
  storm), `gc.freeze()` moves every object tracked so far into the permanent generation,
  which collections skip (a list splice: it costs nothing). Collections then walk only what
  was made since, so their pauses stay small however many connections are held. Garbage
  freed by reference counting (nearly all of it) is freed as before.
- **A full collection when closed connections add up, and on a schedule.** What freezing
  hides is cyclic garbage among frozen objects, and a closed connection leaves some: about
  50 objects, several KiB, that only the cyclic collector frees (aiohttp's protocol,
  transport and request refer to each other). So once the connections closed since the last
  full collection reach an eighth of those open (at least `settle`), and in any case every
  `full_interval` seconds (`ODDSTREAM_GC_FULL_INTERVAL`), everything is unfrozen, collected
  and frozen again, at a beat, logged. Memory held by closed connections' garbage stays
  within an eighth of the connections' own; the pause (~100 ms at 15,000 connections) comes
  once per eighth of the connections turned over, where CPython's thresholds would run one
  each time survivors grow by a quarter, and never during a burst of opens. 0 turns the
  policy off (CPython's defaults).
"""

from __future__ import annotations

import gc
import time

__all__ = ["Collector"]


class Collector:
    """Freezes long-lived objects after connections open; a full collection every interval."""

    def __init__(self, full_interval: float, settle: int = 256) -> None:
        self._full_interval = full_interval
        self._settle = settle
        self._opened = 0  # since the last freeze
        self._recent = 0  # since the last tick
        self._closed = 0  # since the last full collection
        self._last_full = time.monotonic()
        self.freezes = 0
        self.full_collections = 0
        self.last_full_ms = 0.0

    @property
    def enabled(self) -> bool:
        return self._full_interval > 0

    @property
    def last_full_at(self) -> float:
        """When (monotonic) the interval to the next scheduled full collection started."""
        return self._last_full

    @property
    def pending(self) -> int:
        """Connections opened since the last freeze."""
        return self._opened

    def start(self) -> None:
        """Freeze what start-up made (modules, settings, the app): never garbage."""
        if self.enabled:
            self._freeze()

    def opened(self) -> None:
        """A connection opened: its objects will be long-lived."""
        self._opened += 1
        self._recent += 1

    def closed(self) -> None:
        """A connection closed: its cyclic garbage may be frozen."""
        self._closed += 1

    def tick(self, connections: int = 0, now: float | None = None) -> bool:
        """Freeze or collect if due, `connections` being those open; True if a full
        collection ran."""
        if not self.enabled:
            return False
        now = time.monotonic() if now is None else now
        turned_over = self._closed >= max(self._settle, connections // 8)
        if turned_over or now - self._last_full >= self._full_interval:
            self._collect_all(now)
            return True
        recent, self._recent = self._recent, 0
        if self._opened and (self._opened >= self._settle or not recent):
            self._freeze()
        return False

    def stop(self) -> None:
        """Give everything back to the collector (a drained gateway, a test's end)."""
        if self.enabled:
            gc.unfreeze()

    def _freeze(self) -> None:
        gc.freeze()
        self._opened = 0
        self.freezes += 1

    def _collect_all(self, now: float) -> None:
        started = time.perf_counter()
        gc.unfreeze()
        gc.collect()
        self._freeze()
        self._last_full = now
        self._closed = 0
        self.full_collections += 1
        self.last_full_ms = (time.perf_counter() - started) * 1000
