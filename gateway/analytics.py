"""Usage analytics: per-minute rollups of what clients do, counted in memory per gateway and
flushed to Redis every few seconds; merged across gateways when read.

Cost stays flat as connections grow. Every figure is counted where the gateway already does
the work, with one dict increment: per connection opened or closed, per subscribe, per client
message, per frame type of an inbox read, per inbox item delivered (never per member socket).
The gauges (open connections, subscriptions by type and filter, the most-watched games) are
sampled at each flush by one pass over this gateway's room table, not its connections.

Storage: one hash per minute, `{p}:analytics:<minute>` (`Keys.analytics`, minute = Unix
seconds // 60 on the gateway's clock), shared by every gateway, expiring
`analytics_retention_seconds` after its minute began:
- counters, merged across gateways by HINCRBY: `<group>|<name>`, e.g. `out|odds_update`,
  `close|4008`, `lat|50` (deliveries that took at most 50 ms); groups below;
- gauges, one field per gateway, `@<gateway id>`: its last sample of that minute, as JSON.

Delivery latency is ingest to gateway write: from the ingest time an event id carries (its
stream entry id's milliseconds, on Redis's clock) to the moment the gateway wrote the frame to
the event's local members (on the gateway's clock; the two clocks must agree). It is kept in
fixed buckets (`LATENCY_BOUNDS_MS`), so minutes and gateways merge by adding, and percentiles
are computed when read by interpolating within a bucket. The same histogram is served on
`/metrics` as `oddstream_delivery_latency_seconds` (cumulative since start).

A flush is one MULTI, applied whole or not at all; a failed flush keeps its counts and sends
them with the next one (minutes older than the retention are dropped meanwhile). A flush whose
reply is lost after Redis applied it is sent again: such a minute counts those figures twice.
"""

from __future__ import annotations

import asyncio
import heapq
import time
from bisect import bisect_left
from collections.abc import Iterator, Sized
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any, Protocol

import orjson
from prometheus_client.metrics_core import HistogramMetricFamily, Metric
from redis.asyncio import Redis

from oddstream.shared.keys import Keys
from oddstream.shared.logs import get_logger
from oddstream.shared.loops import raise_if_cancelling
from oddstream.shared.rooms import RoomSpec
from oddstream.shared.settings import Settings

__all__ = [
    "LATENCY_BOUNDS_MS",
    "RoomTable",
    "UsageAnalytics",
    "ingest_millis",
    "latency_summary",
    "read_rollups",
]

log = get_logger(__name__)

#: Upper bounds (ms, inclusive) of the delivery-latency buckets; one more bucket takes the
#: rest (`lat|inf`). Changing them changes field names: readers merge any bound they find.
LATENCY_BOUNDS_MS: tuple[int, ...] = (
    1, 2, 3, 5, 7, 10, 15, 20, 30, 50, 75, 100, 150, 200, 300, 500, 750,
    1_000, 1_500, 2_000, 3_000, 5_000, 10_000, 30_000, 60_000,
)  # fmt: skip
_LATENCY_FIELDS = (*(f"lat|{b}" for b in LATENCY_BOUNDS_MS), "lat|inf")

#: Counter groups, each `<group>|<name>` in a minute's hash.
COUNTERS = {
    "conn": "connections: `opened`, `reconnects` (opened with ?reconnect=N)",
    "close": "connections closed, by close code",
    "sub": "new subscriptions (a connection joining a room), by subscription type",
    "filter": "new subscriptions by filter dimension (`none`: no filter)",
    "resume": "subscribes with a position: `recovered`, `resynced`",
    "in": "client messages, by type",
    "out": "frames sent, by type (`replay` and `snapshot` for catch-ups; pings not counted)",
    "lat": "deliveries by latency bucket (ms, inclusive upper bound)",
    "slow": "slow-consumer actions: `conflated`, `held`, `closed` (4008)",
}

#: Percentiles reported for each minute and for the window.
PERCENTILES = (("p50", 0.50), ("p90", 0.90), ("p99", 0.99))

_EVENT_ID = b'"event_id":"'


def ingest_millis(frame: bytes) -> int | None:
    """The ingest time (ms) of a data frame's event, from the `<partition>:<ms>-<seq>` id at
    the head of the frame (the worker's commit script builds it); None for a frame without one."""
    start = frame.find(_EVENT_ID, 0, 192)
    if start < 0:
        return None
    start += len(_EVENT_ID)
    colon = frame.find(b":", start, start + 12)
    dash = frame.find(b"-", colon + 1, colon + 24) if colon >= 0 else -1
    if dash < 0:
        return None
    try:
        return int(frame[colon + 1 : dash])
    except ValueError:
        return None


class RoomTable(Protocol):
    """What the gauges are sampled from: this gateway's rooms (`gateway.rooms.LocalRooms`)."""

    def __iter__(self) -> Iterator[str]: ...

    def spec(self, room_id: str) -> RoomSpec | None: ...

    def members(self, room_id: str) -> Sized | None: ...


def _minute_of(now: float) -> int:
    return int(now // 60)


class UsageAnalytics:
    """One gateway's usage counts for the current minute, and their flushes to Redis.

    Recording methods are synchronous, O(1) and never touch Redis; `run` flushes every
    `analytics_flush_interval` s and at each minute boundary, so each count lands in the
    minute it happened in (to within the loop's lag). Disabled (`analytics_enabled` false),
    nothing is flushed and the fan-out skips latency.
    """

    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        settings: Settings,
        gateway_id: str,
        rooms: RoomTable,
        connections: Sized,
    ) -> None:
        self.enabled = settings.analytics_enabled
        self._redis = redis
        self._keys = keys
        self._retention = settings.analytics_retention_seconds
        self._interval = settings.analytics_flush_interval
        self._top_games = settings.analytics_top_games
        self._gauge_field = "@" + gateway_id
        self._rooms = rooms
        self._connections = connections
        self._counts: dict[str, int] = {}
        self._latency = [0] * len(_LATENCY_FIELDS)
        self._latency_sum_ms = 0.0
        #: Since start, for `/metrics`: deliveries per bucket flushed so far.
        self._latency_total = [0] * len(_LATENCY_FIELDS)
        self._latency_total_sum_ms = 0.0
        self._minute = _minute_of(time.time())
        self._peak = 0
        #: The current minute's most watchers per game seen by a sample (at most 2N games).
        self._watchers: dict[str, int] = {}
        #: Sealed but not yet written: minute -> counters, minute -> gauge JSON.
        self._pending: dict[int, dict[str, int]] = {}
        self._gauges: dict[int, bytes] = {}
        self._flushing = asyncio.Lock()

    # --- recording (hot paths: one dict increment each) --------------------------------

    def count(self, field: str, n: int = 1) -> None:
        """Add `n` to counter `<group>|<name>` of the current minute (nothing when off)."""
        if not self.enabled:
            return
        counts = self._counts
        counts[field] = counts.get(field, 0) + n

    def opened(self, open_now: int, reconnect: bool) -> None:
        """A connection was accepted; `open_now` connections are open with it."""
        self.count("conn|opened")
        if reconnect:
            self.count("conn|reconnects")
        if open_now > self._peak:
            self._peak = open_now

    def closed(self, code: int) -> None:
        self.count(f"close|{code}")

    def subscribed(self, spec: RoomSpec) -> None:
        """A connection joined a room (not an `already_subscribed` repeat)."""
        self.count("sub|" + spec.type.value)
        if not spec.filters:
            self.count("filter|none")
        for key, _ in spec.filters:
            self.count("filter|" + key)

    def resumed(self, recovered: bool) -> None:
        self.count("resume|recovered" if recovered else "resume|resynced")

    def delivered(self, ingest_ms: list[int], now_ms: float) -> None:
        """Latency of deliveries written at `now_ms` (Unix ms), from their ingest times."""
        latency = self._latency
        total = 0.0
        for ms in ingest_ms:
            age = now_ms - ms
            if age < 0:  # clocks apart by more than the latency: count it as immediate
                age = 0.0
            latency[bisect_left(LATENCY_BOUNDS_MS, age)] += 1
            total += age
        self._latency_sum_ms += total

    # --- flushing ----------------------------------------------------------------------

    async def run(self) -> None:
        """Flush every interval and at each minute boundary until cancelled."""
        while True:
            await asyncio.sleep(self._until_next_flush(time.time()))
            try:
                await self.flush()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("gateway.analytics.flush_failed", error=repr(exc))
            raise_if_cancelling()

    def _until_next_flush(self, now: float) -> float:
        boundary = (self._minute + 1) * 60
        return max(0.0, min(self._interval, boundary - now + 0.001))

    async def flush(self) -> None:
        """Seal the current counts into their minute and write every sealed minute in one
        MULTI; on failure the sealed minutes stay for the next flush (and it raises)."""
        async with self._flushing:
            self._seal(time.time())
            minutes = sorted(self._pending.keys() | self._gauges.keys())
            if not minutes:
                return
            pipe = self._redis.pipeline(transaction=True)
            for minute in minutes:
                key = self._keys.analytics(minute)
                for field, n in self._pending.get(minute, {}).items():
                    pipe.hincrby(key, field, n)
                gauge = self._gauges.get(minute)
                if gauge is not None:
                    pipe.hset(key, self._gauge_field, gauge)
                pipe.expireat(key, minute * 60 + self._retention)
            await pipe.execute()
            self._pending.clear()
            self._gauges.clear()

    def _seal(self, now: float) -> None:
        minute = self._minute
        counts, self._counts = self._counts, {}
        latency, self._latency = self._latency, [0] * len(_LATENCY_FIELDS)
        latency_sum, self._latency_sum_ms = self._latency_sum_ms, 0.0
        for index, n in enumerate(latency):
            if n:
                counts[_LATENCY_FIELDS[index]] = n
                self._latency_total[index] += n
        self._latency_total_sum_ms += latency_sum
        sealed = self._pending.setdefault(minute, {})
        for field, n in counts.items():
            sealed[field] = sealed.get(field, 0) + n
        self._gauges[minute] = self._sample()
        current = _minute_of(now)
        if current != minute:
            self._minute = current
            self._peak = len(self._connections)
            self._watchers = {}
        oldest = current - self._retention // 60
        for stale in [m for m in self._gauges.keys() | self._pending.keys() if m < oldest]:
            self._pending.pop(stale, None)
            self._gauges.pop(stale, None)

    def _sample(self) -> bytes:
        """This gateway's gauges: connections and subscriptions now, and each game's most
        watchers at any sample of this minute (top N); one pass over its rooms, not its
        connections."""
        types: dict[str, int] = {}
        dimensions: dict[str, int] = {}
        games: dict[str, int] = {}
        rooms = self._rooms
        for room_id in rooms:
            spec, members = rooms.spec(room_id), rooms.members(room_id)
            if spec is None or not members:
                continue
            n = len(members)
            types[spec.type.value] = types.get(spec.type.value, 0) + n
            if not spec.filters:
                dimensions["none"] = dimensions.get("none", 0) + n
            for key, value in spec.filters:
                dimensions[key] = dimensions.get(key, 0) + n
                if key == "game_id" and isinstance(value, tuple):
                    for game in value:
                        games[game] = games.get(game, 0) + n
        watchers = self._watchers
        for game, n in heapq.nlargest(self._top_games, games.items(), key=itemgetter(1)):
            if n > watchers.get(game, 0):
                watchers[game] = n
        top = heapq.nlargest(self._top_games, watchers.items(), key=itemgetter(1))
        if len(watchers) > 2 * self._top_games:
            self._watchers = dict(top)
        open_now = len(self._connections)
        return orjson.dumps(
            {
                "connections": open_now,
                "peak": max(self._peak, open_now),
                "subscriptions": types,
                "filters": dimensions,
                "games": dict(top),
            }
        )

    # --- /metrics ----------------------------------------------------------------------

    def collect(self) -> Iterator[Metric]:
        """The latency histogram for Prometheus: everything counted since start."""
        buckets: list[tuple[str, float]] = []
        cumulative = 0
        for index, bound in enumerate((*LATENCY_BOUNDS_MS, None)):
            cumulative += self._latency_total[index] + self._latency[index]
            buckets.append(("+Inf" if bound is None else repr(bound / 1000), cumulative))
        yield HistogramMetricFamily(
            "oddstream_delivery_latency_seconds",
            "Ingest to gateway write of each delivered event (event id time to socket write)",
            buckets=buckets,
            sum_value=(self._latency_total_sum_ms + self._latency_sum_ms) / 1000,
        )


# --- reading -----------------------------------------------------------------------------


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")


def _bound(name: str) -> float:
    return float("inf") if name == "inf" else float(name)


def latency_summary(buckets: dict[str, int]) -> dict[str, Any]:
    """Count, percentiles (ms, interpolated within their bucket; a percentile in the last,
    unbounded bucket is given as its lower bound) and the non-empty buckets."""
    ordered = sorted(((_bound(k), k, n) for k, n in buckets.items() if n > 0))
    total = sum(n for _, _, n in ordered)
    body: dict[str, Any] = {"count": total}
    for name, q in PERCENTILES:
        body[name] = _percentile(ordered, total, q) if total else None
    body["buckets"] = {k: n for _, k, n in ordered}
    return body


def _percentile(ordered: list[tuple[float, str, int]], total: int, q: float) -> float:
    rank = q * total
    seen = 0
    for bound, _, n in ordered:
        if seen + n >= rank:
            # The bucket's lower edge: the bound below it in the fixed table.
            below = [b for b in LATENCY_BOUNDS_MS if b < bound]
            low = float(below[-1]) if below else 0.0
            if bound == float("inf"):
                return low
            return round(low + (bound - low) * (rank - seen) / n, 2)
        seen += n
    return ordered[-1][0]


class _Minute:
    """One minute's hash, parsed: counters by group and name, and each gateway's gauges."""

    def __init__(self, fields: dict[bytes, bytes]) -> None:
        self.counters: dict[str, dict[str, int]] = {group: {} for group in COUNTERS}
        self.gauges: list[dict[str, Any]] = []
        for raw_field, raw_value in fields.items():
            field = raw_field.decode()
            if field.startswith("@"):
                try:
                    gauge = orjson.loads(raw_value)
                except orjson.JSONDecodeError:
                    continue
                if isinstance(gauge, dict):
                    self.gauges.append(gauge)
                continue
            group, _, name = field.partition("|")
            if group not in self.counters or not name:
                continue
            try:
                value = int(raw_value)
            except ValueError:
                continue
            named = self.counters[group]
            named[name] = named.get(name, 0) + value

    def gauge_sum(self, name: str) -> int:
        return sum(int(g.get(name, 0)) for g in self.gauges)

    def gauge_merge(self, name: str) -> dict[str, int]:
        merged: dict[str, int] = {}
        for gauge in self.gauges:
            for key, value in dict(gauge.get(name) or {}).items():
                merged[key] = merged.get(key, 0) + int(value)
        return merged


def _top(counts: dict[str, int], n: int, label: str) -> list[dict[str, Any]]:
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n]
    return [{"game_id": game, label: value} for game, value in ranked]


def _minute_view(minute: int, parsed: _Minute, top: int) -> dict[str, Any]:
    c = parsed.counters
    return {
        "minute": _iso(minute * 60),
        "start": minute * 60,
        "gateways": len(parsed.gauges),
        "connections": {
            "open": parsed.gauge_sum("connections"),
            "peak": parsed.gauge_sum("peak"),
            "opened": c["conn"].get("opened", 0),
            "closed": sum(c["close"].values()),
            "reconnects": c["conn"].get("reconnects", 0),
        },
        "subscriptions": {
            "active": parsed.gauge_merge("subscriptions"),
            "by_filter": parsed.gauge_merge("filters"),
            "new": c["sub"],
            "new_by_filter": c["filter"],
        },
        "games": _top(parsed.gauge_merge("games"), top, "watchers"),
        **_traffic(c),
    }


def _traffic(c: dict[str, dict[str, int]]) -> dict[str, Any]:
    """The figures a minute and a window show alike, from their summed counters."""
    return {
        "messages": {"out": c["out"], "in": c["in"]},
        "resumes": {
            "recovered": c["resume"].get("recovered", 0),
            "resynced": c["resume"].get("resynced", 0),
        },
        "closes": c["close"],
        "latency_ms": latency_summary(c["lat"]),
        "slow_consumers": {
            "conflated": c["slow"].get("conflated", 0),
            "held": c["slow"].get("held", 0),
            "closed": c["slow"].get("closed", 0),
        },
    }


def _add(into: dict[str, int], counts: dict[str, int]) -> None:
    for key, value in counts.items():
        into[key] = into.get(key, 0) + value


def _window_view(minutes: list[_Minute], views: list[dict[str, Any]], top: int) -> dict[str, Any]:
    groups: dict[str, dict[str, int]] = {group: {} for group in COUNTERS}
    peak_watchers: dict[str, int] = {}
    for parsed in minutes:
        for group, counts in parsed.counters.items():
            _add(groups[group], counts)
        for game, watchers in parsed.gauge_merge("games").items():
            peak_watchers[game] = max(peak_watchers.get(game, 0), watchers)
    return {
        "connections": {
            "peak": max((v["connections"]["peak"] for v in views), default=0),
            "opened": groups["conn"].get("opened", 0),
            "closed": sum(groups["close"].values()),
            "reconnects": groups["conn"].get("reconnects", 0),
        },
        "subscriptions": {"new": groups["sub"], "new_by_filter": groups["filter"]},
        "games": _top(peak_watchers, top, "peak_watchers"),
        **_traffic(groups),
    }


async def read_rollups(
    redis: Redis, keys: Keys, *, minutes: int, top: int, now: float | None = None
) -> dict[str, Any]:
    """The last `minutes` minutes (the current one included, still filling), merged across
    gateways: one entry per minute, oldest first, empty minutes as zeros; plus the window's
    totals. One pipelined HGETALL per minute."""
    current = _minute_of(time.time() if now is None else now)
    span = range(current - minutes + 1, current + 1)
    pipe = redis.pipeline(transaction=False)
    for minute in span:
        pipe.hgetall(keys.analytics(minute))
    replies: list[dict[bytes, bytes]] = await pipe.execute()
    parsed = [_Minute(fields) for fields in replies]
    views = [_minute_view(minute, p, top) for minute, p in zip(span, parsed, strict=True)]
    return {
        "minutes": minutes,
        "from": _iso(span[0] * 60),
        "to": _iso((current + 1) * 60),
        "current_minute": _iso(current * 60),
        "latency_bounds_ms": list(LATENCY_BOUNDS_MS),
        "series": views,
        "window": _window_view(parsed, views, top),
    }
