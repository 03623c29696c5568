"""The matching worker: owns ingest partitions, matches their events, delivers to inboxes.

Guarantees:
- one worker at a time reads each ingest partition (`workers.leases`), from the partition's
  committed cursor, in stream order, so the events of one game (the partition key) reach
  every room in ingest order however many workers run;
- a batch's inbox entries, dead letters and the partition's new cursor are written by one
  script that first checks the lease and the cursor (`workers/lua/commit.lua`): a worker
  killed at any point leaves each entry delivered (behind the cursor) or not (after it),
  never half done; a worker that stalled past its lease and wakes up writes nothing for a
  partition another worker took over (also if it took the lease back meanwhile: the cursor
  moved); what a stale reader read is simply read again by the owner;
- a worker that takes a partition over continues from the committed cursor: the entries its
  previous owner read but did not commit come first, before anything newer;
- an entry that does not parse, or that the worker fails on, goes to the dead-letter stream
  with the reason; it never stops a partition;
- ingest streams are trimmed only behind the partition's cursor;
- once a read's commit has landed, its odds events go to the arbitrage stage
  (`workers.arbitrage`), which publishes what they change through ingest, at-least-once.

Pipelining: the next read is asked for before a read's commit is sent (so Redis answers it
first), and the worker matches it while that commit runs in Redis, and sends its commit
without waiting for the previous one to land (up to `MAX_IN_FLIGHT` on their way). Each
commit carries, per partition, the cursor its read started after, and writes a partition only
where Redis's cursor is that one: a partition's commits apply as a chain, so one that failed
or was skipped makes every later one of that partition skip too (never a gap, never a
duplicate). Once any commit reports a partition lost or stale, or fails, or the owned
partitions change, the worker waits for every commit on its way, drops the read ahead and the
matched read, and reads again from the committed cursors. Commits reach the arbitrage stage
in the order they were sent, and the feed follower acknowledges a room change only once every
commit matched before it landed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
import uuid
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any

import orjson
from pydantic import ValidationError
from redis.asyncio import Redis
from redis.exceptions import RedisError
from redis.typing import KeyT, StreamIdT

from oddstream.shared.collector import Collector
from oddstream.shared.events import (
    SCHEMA_STAMP,
    CanaryEvent,
    IngestEvent,
    OddsEvent,
    PredictionEvent,
    Routing,
    ingest_event_adapter,
    is_conflatable,
    routing_of,
    snapshot_key,
    stored_event,
)
from oddstream.shared.ingest import encode_event
from oddstream.shared.keys import Keys
from oddstream.shared.logs import get_logger
from oddstream.shared.loops import Backoff, periodic, raise_if_cancelling, stop_tasks
from oddstream.shared.protocol import describe_validation_error
from oddstream.shared.registry import Registry
from oddstream.shared.rooms import keeps_offline_history, offline_rooms
from oddstream.shared.settings import Settings
from oddstream.shared.streams import (
    EVENT_FIELD,
    STAMP_FIELD,
    entry_order,
    event_id,
    event_time,
)
from oddstream.workers.arbitrage import ArbitrageStage
from oddstream.workers.leases import PartitionLeases, lua
from oddstream.workers.matcher import RoomIndex

__all__ = ["MAX_IN_FLIGHT", "Worker", "WorkerStats"]

log = get_logger(__name__)

Entry = tuple[bytes, dict[bytes, bytes]]
#: One partition's part of a read: the partition, the cursor the read started after, entries.
Read = tuple[int, bytes, list[Entry]]

#: Commits a worker sends before the oldest has landed. Redis runs them one after the other;
#: more in flight only lets a busy worker fall further behind before it waits.
MAX_IN_FLIGHT = 4


#: Routings whose rooms a worker keeps (`Worker._rooms_for`); all are forgotten past it.
_ROUTES_KEPT = 20_000

#: What matching counts per event (`_Batch.tally`), added once the commit lands.
_TALLIED = ("processed", "matched", "deliveries", "deadlettered", "canaries")


@dataclass
class WorkerStats:
    """What a worker did. Events count once committed: a read whose commit skipped a
    partition (lost or stale) is read and matched again, and counted then."""

    processed: int = 0
    matched: int = 0
    deliveries: int = 0
    deadlettered: int = 0
    canaries: int = 0
    errors: int = 0
    stale: int = 0  # partitions a commit skipped because an earlier one did not land
    commits: int = 0  # commits that wrote at least one partition (events per commit: cost)
    arbitrage: int = 0  # arbitrage events published (workers.arbitrage)

    def add_committed(self, tally: WorkerStats) -> None:
        """Count a committed partition's part of a read (`_Batch.tally`)."""
        for name in _TALLIED:
            setattr(self, name, getattr(self, name) + getattr(tally, name))


def default_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def _parse(fields: dict[bytes, bytes]) -> tuple[IngestEvent, bytes] | str:
    """The event of an ingest entry and its data JSON as frames carry it, or why it has none
    (it then goes to the dead letters). An entry our `Ingester` validated, stamped with this
    worker's schema, is trusted as stored (the data is its JSON as is); any other is
    validated in full (the data is its validated form)."""
    raw = fields.get(EVENT_FIELD)
    if raw is None:
        return f"entry has no '{EVENT_FIELD.decode()}' field"
    if fields.get(STAMP_FIELD) == SCHEMA_STAMP:
        try:  # not contextlib.suppress: this runs for every event
            return stored_event(raw), raw
        except (ValueError, KeyError, TypeError):
            pass
    try:
        event = ingest_event_adapter.validate_json(raw)
    except ValidationError as exc:
        return describe_validation_error(exc)
    except ValueError as exc:
        return str(exc)
    return event, encode_event(event)


#: The commit script's argument (1-based, in Lua) that holds the first event's data JSON.
_FIRST_DATA_ARG = 13


class _Batch:
    """The commit script's per-partition arguments for one read, the inboxes they go to, and
    the keys whose TTL it sets."""

    __slots__ = ("data", "gateways", "items", "odds", "refreshed", "shard", "tallies", "tally")

    def __init__(self, shard: int) -> None:
        self.shard = shard
        self.items: list[list[Any]] = []  # the current partition's items
        self.tally = WorkerStats()  # what the current partition's items count for
        self.tallies: dict[int, WorkerStats] = {}  # per partition, counted once committed
        self.data: list[bytes] = []  # each event's JSON: script arguments of their own
        self.gateways: dict[str, int] = {}  # gateway -> its inbox index in the script
        self.refreshed: set[str] = set()  # history rooms and games given a TTL by this commit
        self.odds: list[tuple[int, bytes, OddsEvent]] = []  # for the arbitrage stage

    def inbox(self, gateway: str) -> int:
        index = self.gateways.get(gateway)
        if index is None:
            index = self.gateways[gateway] = len(self.gateways) + 1
        return index

    def start(self, partition: int) -> None:
        """Start a partition's items."""
        self.tally = self.tallies[partition] = WorkerStats()

    def take_items(self) -> list[list[Any]]:
        """The current partition's items; starts the next partition's."""
        items, self.items = self.items, []
        return items


@dataclass(slots=True)
class _ShardCommit:
    """One shard's part of a read: its partitions' reads, and the commit script's keys and
    arguments."""

    reads: list[Read]
    keys: list[str]
    args: list[Any]
    batch: _Batch


class _Refreshes:
    """Which keys this worker gave a TTL recently: the commit sets a key's TTL on its first
    event of a period, not on every event (one `PEXPIRE` per key per period instead of one per
    event). Forgetting them all each period keeps memory bounded and every key in use
    refreshed at least once per period, well within its TTL."""

    def __init__(self, period: float) -> None:
        self._period = period
        self._since = time.monotonic()
        self._done: set[str] = set()

    def due(self, key: str) -> bool:
        now = time.monotonic()
        if now - self._since >= self._period:
            self._done.clear()
            self._since = now
        return key not in self._done

    def done(self, keys: set[str]) -> None:
        """After a commit that wrote them: only then, so a failed commit refreshes again."""
        self._done |= keys


class Worker:
    """One matching worker process (or task); any number share the partitions."""

    def __init__(self, settings: Settings, redis: Redis, *, worker_id: str | None = None) -> None:
        self.settings = settings
        self.redis = redis
        self.keys = Keys.of(settings)
        self.worker_id = worker_id or default_worker_id()
        self.log = log.bind(worker=self.worker_id)
        self.registry = Registry.of(redis, self.keys, settings)
        self.index = RoomIndex(linger=settings.history_seconds > 0)
        self._routes: dict[Routing, tuple[dict[str, list[str]], dict[str, bool]]] = {}
        self._routes_version = -1
        self.stats = WorkerStats()
        self.feed_position = b"0-0"
        self.started_at = time.time()
        self.stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._healthy_since: float | None = None  # monotonic; None after a Redis error
        self.leases = PartitionLeases(
            redis,
            self.keys,
            self.worker_id,
            lease_ms=settings.partition_lease_ms,
            alive_window_ms=int(2000 * settings.worker_heartbeat) + settings.partition_lease_ms,
        )
        self.commit_script = redis.register_script(lua("commit"))
        self.index_lock = asyncio.Lock()
        self.refreshes = _Refreshes(
            max(0.05, min(settings.history_seconds or 60, settings.snapshot_ttl) / 4)
        )
        #: Sees each committed odds event of the owned partitions; publishes arbitrage.
        self.arbitrage = ArbitrageStage(redis, self.keys, idle=settings.snapshot_ttl)
        #: Keeps collections from walking what start-up made (modules, the room index): a
        #: worker's full collections took ~40 ms each, several times a minute under load.
        self.collector = Collector(settings.gc_full_interval)
        #: One consumer per shard of the data path (`shared.keys`).
        self.consumers = [ShardConsumer(self, shard) for shard in range(self.keys.shards)]

    # --- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Create groups, load the room index, then start consuming (in that order, so no
        event is matched against an index missing rooms that already exist)."""
        await self._resync()
        await self._beat()
        try:
            await self.leases.step()  # take partitions now, not a lease round later
        except RedisError:
            # Redis went away since the beat: the lease loop takes them once it is back (the
            # worker must not exit half started, its beat already says it is here).
            self.count_error()
            self.log.warning("worker.start.leases_failed")
        self.collector.start()
        s = self.settings
        self._tasks = [
            asyncio.create_task(self._follow_feed(), name="worker.feed"),
            *(
                asyncio.create_task(c.run(), name=f"worker.consume.{c.shard}")
                for c in self.consumers
            ),
            periodic(
                "worker.leases", self.leases.interval, self.leases.step, self.log, self.count_error
            ),
            periodic("worker.trim", s.trim_interval, self._trim, self.log, self.count_error),
            periodic("worker.beat", s.worker_heartbeat, self._beat, self.log, self.count_error),
        ]
        self.log.info("worker.started", rooms=len(self.index))

    async def stop(self) -> None:
        """Stop reading, finish the batch in flight (within the grace period), deregister."""
        if self.stopping.is_set():
            return
        self.stopping.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                asyncio.gather(*(c.done.wait() for c in self.consumers)),
                self.settings.shutdown_grace,
            )
        try:
            await stop_tasks(self._tasks, grace=max(1.0, self.settings.shutdown_grace))
            await self._wind_down()
            with contextlib.suppress(RedisError):
                # Hand the partitions over now rather than after the leases lapse.
                await self.leases.release_all()
            with contextlib.suppress(RedisError):
                await self.registry.deregister_worker(self.worker_id)
        finally:
            self.collector.stop()  # never left frozen (see `shared/collector.py`)
        self.log.info("worker.stopped", **asdict(self.stats))

    async def _wind_down(self) -> None:
        """Once the consumers' tasks are done (or were given up on): wait for the reads and
        commits they left on their way (a read dropped unheard ends within its block time),
        so that when `stop` returns nothing of this worker still uses Redis; its owner may
        close the client then, and a command started after that would open a connection no
        one closes. What still runs after the wait is cancelled."""
        outstanding = [f for c in self.consumers for f in c.outstanding()]
        if not outstanding:
            return
        block = self.settings.worker_block_ms / 1000
        _, late = await asyncio.wait(outstanding, timeout=block + 1.0)
        for future in late:
            future.cancel()
        if late:
            await asyncio.wait(late, timeout=1.0)
        for future in outstanding:  # retrieved: a failure here was already handled or moot
            if future.done() and not future.cancelled():
                future.exception()

    async def run(self) -> None:
        """Start and run until `stop()` is called."""
        await self.start()
        await self.stopping.wait()

    # --- room index ----------------------------------------------------------------------

    async def _resync(self) -> None:
        self.feed_position, rooms = await self.registry.snapshot()
        self.index.load(rooms)

    def count_error(self) -> None:
        self.stats.errors += 1
        self._healthy_since = None

    async def _follow_feed(self) -> None:
        backoff = Backoff()
        needs_resync = False
        acked = b""
        while not self.stopping.is_set():
            try:
                if needs_resync:
                    async with self.index_lock:
                        await self._resync()
                    needs_resync = False
                entries = await self.registry.read_feed(
                    self.feed_position, self.settings.worker_block_ms
                )
                # Under the lock no batch is being matched, and the one matched before the
                # change is committed before the ack: once the ack is written every later
                # commit routes by the changed index. Gateways wait for the ack before they
                # read a just-joined room's history.
                async with self.index_lock:
                    for entry in entries:
                        self.index.apply(entry)
                        self.feed_position = entry.id
                    if acked != self.feed_position:
                        await self.commits_landed()
                        await self.registry.ack_feed(self.worker_id, self.feed_position)
                        acked = self.feed_position
                backoff.reset()
                raise_if_cancelling()
            except asyncio.CancelledError:
                raise
            except Exception:
                # Changes may have been trimmed or missed while away: reload from scratch.
                self.count_error()
                self.log.exception("worker.feed.failed")
                needs_resync = True
                await backoff.sleep()

    # --- consuming -----------------------------------------------------------------------

    async def index_caught_up(self) -> bool:
        """Wait (a lease round at most) until the room index has every feed change made so
        far. Before reading a partition it just took: a gateway that joined a room waited only
        for the partitions' previous holders to apply the join (`Registry.wait_applied`), so
        this worker must not commit for them with an index older than that join, or the
        room's new holder would miss those events."""
        tail = entry_order(await self.registry.feed_tail())
        deadline = time.monotonic() + self.leases.interval
        while entry_order(self.feed_position) < tail:
            if time.monotonic() >= deadline:
                self.log.warning("worker.partition.index_behind", feed=self.feed_position)
                return False
            await asyncio.sleep(0.002)
        return True

    def match(self, shard: int, reads: list[Read]) -> _ShardCommit:
        """The commit script's keys and arguments for one shard's partitions of a read
        (histories, latest values, one inbox entry per gateway in ingest order, dead
        letters, cursors)."""
        s, k = self.settings, self.keys
        batch = _Batch(shard)
        args: list[Any] = [
            self.worker_id, os.urandom(6).hex(), s.deadletter_maxlen,
            k.history_prefix(shard), s.history_size, int(s.history_seconds * 1000),
            s.offline_history_size, int(s.offline_history_seconds * 1000),
            k.latest_prefix(shard), k.games_prefix(shard), int(s.snapshot_ttl * 1000),
        ]  # fmt: skip
        read: list[Any] = []
        for partition, after, entries in reads:
            dead = self._match(partition, entries, batch)
            read.append([after.decode(), entries[-1][0].decode(), dead, batch.take_items()])
        args.append(orjson.dumps(read))
        args += batch.data
        keys = [k.deadletter(shard), k.epoch(shard), k.sports(shard)]
        for partition, _, _ in reads:
            keys += [k.lease(partition), k.cursor(partition)]
        keys += [k.inbox(shard, g) for g in batch.gateways]
        return _ShardCommit(reads, keys, args, batch)

    async def commits_landed(self) -> None:
        """Wait until every commit on its way (of every shard) has finished, leaving their
        outcome to the consumers."""
        await asyncio.gather(*(c.landed() for c in self.consumers))

    def _match(self, partition: int, entries: list[Entry], batch: _Batch) -> list[list[str]]:
        """Add one partition's events to the batch; returns its dead letters."""
        stream = self.keys.ingest(partition).encode()
        dead: list[list[str]] = []
        batch.start(partition)
        for entry_id, fields in entries:
            parsed = _parse(fields)
            if isinstance(parsed, str):
                dead.append(self._deadletter(stream, entry_id, fields, parsed))
                batch.tally.deadlettered += 1
                continue
            event, data = parsed
            try:
                self._route(event_id(partition, entry_id), event, data, batch)
                if isinstance(event, OddsEvent):
                    batch.odds.append((partition, entry_id, event))
            except Exception as exc:
                # A poison entry must not stop its partition: set it aside with the reason.
                self.log.exception("worker.entry.failed", stream=stream, entry_id=entry_id)
                reason = f"the worker failed on this entry: {type(exc).__name__}: {exc}"
                dead.append(self._deadletter(stream, entry_id, fields, reason))
                batch.tally.deadlettered += 1
        return dead

    def _route(self, event_id: bytes, event: IngestEvent, data: bytes, batch: _Batch) -> None:
        """Add an event (or a gateway's canary) to the batch's script arguments; `data`: its
        JSON as frames carry it."""
        if isinstance(event, CanaryEvent):
            batch.tally.canaries += 1
            batch.items.append(["c", batch.inbox(event.gateway), repr(event.sent_at)])
            return
        tally = batch.tally
        tally.processed += 1
        routing = routing_of(event)
        rooms_by_gateway, history = self._rooms_for(routing)
        key = snapshot_key(event)
        game = event.game_id if key and isinstance(event, OddsEvent | PredictionEvent) else ""
        # "d": the key is also the frame's conflation key; "m": the latest value's key only,
        # the frame must be delivered (an odds suspension or resume, `is_conflatable`).
        kind = "m" if key and not is_conflatable(event) else "d"
        if not rooms_by_gateway and not history and not game:
            return
        if rooms_by_gateway:
            tally.matched += 1
        message_type = routing.message_type
        refreshes = self.refreshes
        recorded: list[list[str]] = []
        for room_id, offline in history.items():
            mode = "o" if offline else "l"
            marker = f"{batch.shard}|{room_id}"  # a room has a history per shard
            if marker not in batch.refreshed and refreshes.due(marker):
                batch.refreshed.add(marker)
                mode = mode.upper()
            recorded.append([room_id, mode])
        deliveries: list[list[Any]] = []
        for gateway, rooms in rooms_by_gateway.items():
            deliveries.append([batch.inbox(gateway), rooms])
        tally.deliveries += len(deliveries)
        batch.data.append(data)
        batch.items.append([
            kind, event_id.decode(), message_type.value, key.decode(),
            _FIRST_DATA_ARG + len(batch.data) - 1, game, event_time(event_id).decode(),
            recorded, deliveries,
        ])  # fmt: skip
        if game:
            marker = "game:" + game
            if marker not in batch.refreshed and refreshes.due(marker):
                batch.refreshed.add(marker)
                batch.items.append(["g", game, routing.sport or ""])

    def _rooms_for(self, routing: Routing) -> tuple[dict[str, list[str]], dict[str, bool]]:
        """The rooms an event of `routing` goes to, by gateway, and those whose history
        records it (`_history_rooms`), read only. Kept per routing until the room index
        changes: a game's events of one book (and kind) share their routing, so most events
        are matched here with one lookup (matching and listing the history rooms were a
        third of the worker's time per event)."""
        if self._routes_version != self.index.version:
            self._routes.clear()
            self._routes_version = self.index.version
        rooms = self._routes.get(routing)
        if rooms is None:
            by_gateway, matched = self.index.match_all(routing)
            rooms = (by_gateway, self._history_rooms(routing, matched))
            if len(self._routes) >= _ROUTES_KEPT:
                self._routes.clear()
            self._routes[routing] = rooms
        return rooms

    def _history_rooms(self, routing: Routing, matched: list[str]) -> dict[str, bool]:
        """Rooms whose history records the event: every matching room (held or lingering),
        and the offline-delivery rooms whether held or not; value: keeps offline history."""
        if self.settings.history_seconds <= 0:
            return {}
        rooms = {room_id: keeps_offline_history(room_id) for room_id in matched}
        for spec in offline_rooms(routing):
            rooms[spec.room_id] = True
        return rooms

    def _deadletter(
        self, stream: bytes, entry_id: bytes, fields: dict[bytes, bytes], reason: str
    ) -> list[str]:
        """A dead letter's field/value pairs, flat, for the commit script."""
        self.log.warning("worker.deadletter", stream=stream, entry_id=entry_id, reason=reason)
        original = {k.decode(errors="replace"): v.decode(errors="replace")
                    for k, v in fields.items()}  # fmt: skip
        return [
            "stream", stream.decode(), "id", entry_id.decode(), "reason", reason,
            "worker", self.worker_id, "fields", orjson.dumps(original).decode(),
        ]  # fmt: skip

    async def _trim(self) -> None:
        """Trim delivered entries older than the retention; never one past the cursor."""
        seconds, micros = await self.redis.time()
        now_ms = seconds * 1000 + micros // 1000
        cutoff = (now_ms - int(self.settings.stream_retention * 1000), 0)
        for partition in sorted(self.leases.owned):
            cursor: Any = await self.redis.get(self.keys.cursor(partition))
            if not isinstance(cursor, bytes):
                continue
            minid = min(entry_order(cursor), cutoff)
            await self.redis.xtrim(
                self.keys.ingest(partition), minid=f"{minid[0]}-{minid[1]}", approximate=True
            )

    async def _beat(self) -> None:
        if self.collector.tick():
            self.log.info("worker.gc.full", ms=round(self.collector.last_full_ms, 1))
        await self.registry.beat_worker(self.worker_id, self.describe())
        now = time.monotonic()
        if self._healthy_since is None:
            self._healthy_since = now
        # After an outage every beat in Redis is stale: reap only once we have seen Redis
        # healthy for a whole TTL, so live gateways have had time to beat again.
        if now - self._healthy_since >= self.settings.gateway_ttl:
            await self.registry.reap_dead()

    def describe(self) -> dict[str, Any]:
        return {
            "worker_id": self.worker_id,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started_at": self.started_at,
            "rooms": len(self.index),
            "feed_position": self.feed_position.decode(),
            **asdict(self.stats),
        }


class ShardConsumer:
    """Reads the owned partitions of one shard from their committed cursors, has the worker
    match each read, and sends its fenced commit (pipelined, see the module's doc). A worker
    runs one per shard: a shard's partitions are read with one blocking XREAD (they share a
    Redis Cluster slot) and committed by one script, and a quiet shard never holds up a busy
    one."""

    def __init__(self, worker: Worker, shard: int) -> None:
        self.worker = worker
        self.shard = shard
        self.partitions = frozenset(worker.keys.partitions_of(shard))
        #: Set once `run` has returned (everything it sent has landed).
        self.done = asyncio.Event()
        #: This shard's owned partitions being read, and the last entry id read from each
        #: (committed, or in a commit on its way, `_in_flight`).
        self._cursors: dict[int, bytes] = {}
        #: Commits sent and not yet heard of, oldest first: each gives the partitions it
        #: found lost or stale (see `_send`).
        self._in_flight: deque[asyncio.Future[set[int]]] = deque()
        #: The next read, asked for before the commit in flight: (its generation, the read).
        self._ahead: tuple[int, asyncio.Future[Any]] | None = None
        #: Bumped whenever the cursors are reset or the owned partitions change: a read asked
        #: for before that is dropped, not matched.
        self._generation = 0
        #: Reads dropped while in flight, left to end (see `_drop_ahead`).
        self._dropped: set[asyncio.Future[Any]] = set()

    async def run(self) -> None:
        """Read, match and commit until the worker stops."""
        backoff = Backoff()
        try:
            while not self.worker.stopping.is_set():
                try:
                    await self._apply_lease_changes()
                    await self._consume_once()
                    backoff.reset()
                    raise_if_cancelling()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    # Nothing past the committed cursors was delivered: read every owned
                    # partition again from its cursor, once no commit is on its way.
                    self.worker.count_error()
                    self.worker.log.exception("worker.consume.failed")
                    with contextlib.suppress(Exception):
                        await self._settle()
                    self._reread()
                    await backoff.sleep()
        finally:
            self._drop_ahead()
            with contextlib.suppress(Exception):
                await self._settle()
            if self._dropped:
                await asyncio.wait(self._dropped)  # they end within their block time
            self.done.set()

    def _reread(self) -> None:
        """Forget where reading got to: every owned partition is read again from its committed
        cursor (after an error, or when a commit found a partition lost while the next read
        was already matched)."""
        leases = self.worker.leases
        leases.acquired |= leases.owned & self.partitions
        self._cursors.clear()
        self._drop_ahead()

    def _drop_ahead(self) -> None:
        """Forget the read asked for ahead (its cursors, or its partitions, are stale). Not
        cancelled: redis-py drops a connection whose command is cancelled mid-read, and its
        socket can outlive the loop; the read ends within its block time, unheard (`run` waits
        for such reads before it returns)."""
        self._generation += 1
        ahead, self._ahead = self._ahead, None
        if ahead is not None:
            future = ahead[1]
            self._dropped.add(future)
            future.add_done_callback(self._dropped.discard)
            # Retrieved, so a read that failed is not reported as an exception never heard.
            future.add_done_callback(lambda f: f.cancelled() or f.exception())

    async def _apply_lease_changes(self) -> None:
        """Between batches: hand back this shard's surplus partitions, start reading its newly
        acquired ones from their committed cursors (once the commit on its way has landed)."""
        w, mine = self.worker, self.partitions
        leases = w.leases
        if not (
            leases.surplus & mine or leases.acquired & mine or self._cursors.keys() - leases.owned
        ):
            return
        self._drop_ahead()
        if await self._settle():
            self._reread()
        for partition in sorted(leases.surplus & mine):
            self._cursors.pop(partition, None)
            await leases.release(partition)
        for partition in [p for p in self._cursors if p not in leases.owned]:
            del self._cursors[partition]
        w.arbitrage.keep_only(leases.owned)
        acquired = sorted(leases.acquired & leases.owned & mine)
        if acquired and not await w.index_caught_up():
            return  # they stay acquired: tried again next time
        if acquired:
            # One MGET: a shard's cursors share its slot.
            committed: list[Any] = await w.redis.mget([w.keys.cursor(p) for p in acquired])
            # Before the first read: the arbitrage state as of the committed cursors.
            w.stats.arbitrage += await w.arbitrage.take_over(acquired)
            for partition, cursor in zip(acquired, committed, strict=True):
                # No cursor yet: from the start, so events ingested before any worker count.
                self._cursors[partition] = cursor or b"0-0"
                w.log.info("worker.partition.reading", partition=partition, after=cursor)
        # Only now, and only these: a Redis error above leaves them to be taken up again, and
        # a partition the lease loop took during the await above stays for the next round.
        leases.acquired -= set(acquired)

    def _read(self, *, wait: bool = True) -> asyncio.Future[Any]:
        """Ask for the next read of this shard's owned partitions, from where reading got to
        (one XREAD: they share the shard's slot); with `wait` false, what is there now."""
        w = self.worker
        streams: dict[KeyT, StreamIdT] = {
            w.keys.ingest(p): cursor for p, cursor in sorted(self._cursors.items())
        }
        # Short enough to act on a new lease within a lease round.
        block = min(w.settings.worker_block_ms, int(w.leases.interval * 1000)) if wait else None

        async def read() -> Any:  # redis-py's command made inside: a cancel before it starts
            return await w.redis.xread(  # leaves no coroutine unawaited
                streams, count=w.settings.worker_batch, block=block
            )

        return asyncio.ensure_future(read())

    async def _consume_once(self) -> None:
        if not self._cursors:
            await asyncio.sleep(self.worker.leases.interval)
            return
        ahead, self._ahead = self._ahead, None
        if ahead is not None and ahead[0] == self._generation:
            reply: Any = await ahead[1]
        else:
            reply = await self._read()
        reads: dict[int, Read] = {}
        self._take(reply, reads)
        if reply and len(reply) == 1 and len(self._cursors) > 1:
            # Redis before 7.2 answers a blocked XREAD with the one stream that woke it,
            # though one ingest batch lands in several partitions at once: what the others
            # hold now joins this read, so the batch costs one commit, not two.
            self._take(await self._read(wait=False), reads)
        if not reads:
            if await self._settle():
                self._reread()
            return
        async with self.worker.index_lock:
            commit = self.worker.match(self.shard, list(reads.values()))
            # Earlier commits ran in Redis while this read was matched. Sent after one that
            # failed or was skipped, this one would only be skipped too (its cursors would
            # not match): read again from the committed cursors instead.
            while True:
                if self._troubled():
                    await self._settle()  # raises what a commit raised
                    self._reread()
                    return
                if len(self._in_flight) < MAX_IN_FLIGHT:
                    break
                await asyncio.wait([self._in_flight[0]])
            # Asked for first, so Redis answers it before running this commit, and the worker
            # matches it meanwhile.
            self._ahead = (self._generation, self._read())
            previous = self._in_flight[-1] if self._in_flight else None
            self._in_flight.append(asyncio.ensure_future(self._send(commit, previous)))

    def _take(self, reply: Any, reads: dict[int, Read]) -> None:
        """Add an XREAD reply's entries to `reads` (one per partition, from the cursor its
        first entry was read after) and move the cursors past them."""
        for stream, entries in reply or []:
            partition = int(stream.rsplit(b":", 1)[1])
            if partition in self._cursors and entries:
                taken = reads.get(partition)
                if taken is None:
                    reads[partition] = (partition, self._cursors[partition], entries)
                else:
                    taken[2].extend(entries)
                self._cursors[partition] = entries[-1][0]  # read up to here

    def _troubled(self) -> bool:
        """Whether a commit that landed failed or found a partition lost or stale (left in
        `_in_flight` for `_settle` to report); forgets those that landed cleanly."""
        in_flight = self._in_flight
        while in_flight and in_flight[0].done():
            commit = in_flight[0]
            if commit.cancelled() or commit.exception() is not None or commit.result():
                return True
            in_flight.popleft()
        return False

    async def _settle(self) -> set[int]:
        """Wait for every commit on its way; returns the partitions they found lost or stale.
        Raises the first error a commit raised, once all have landed (of a commit that failed,
        nothing was written, or all of it: the committed cursors say which)."""
        found: set[int] = set()
        error: Exception | None = None
        while self._in_flight:
            commit = self._in_flight.popleft()
            try:
                found |= await commit
            except asyncio.CancelledError:
                raise_if_cancelling()  # this task is being cancelled: so be it
                # Only the commit was: a failure like any other, not the consumer's end.
                error = error or RuntimeError("a commit was cancelled on its way")
            except Exception as exc:
                error = error or exc
        if error is not None:
            raise error
        return found

    def outstanding(self) -> list[asyncio.Future[Any]]:
        """The reads and commits this consumer started that have not finished."""
        futures: list[asyncio.Future[Any]] = [*self._dropped, *self._in_flight]
        if self._ahead is not None:
            futures.append(self._ahead[1])
        return [f for f in futures if not f.done()]

    async def landed(self) -> None:
        """Wait until every commit on its way has finished, leaving their outcome to the
        consumer."""
        if self._in_flight:
            await asyncio.wait(list(self._in_flight))

    async def _send(
        self, commit: _ShardCommit, previous: asyncio.Future[set[int]] | None
    ) -> set[int]:
        """Run the fenced commit of one read, then (once `previous`, the commit sent before
        it, has finished) feed its odds to the arbitrage stage. Returns the partitions it
        skipped, nothing of them written: those another worker owns now (their new owner
        delivers those entries itself), and those whose cursor was not where the read
        started (read again from the committed cursor)."""
        w = self.worker
        skipped: list[list[int]] = await w.commit_script(keys=commit.keys, args=commit.args)
        lost = {commit.reads[int(n) - 1][0] for n in skipped[0]}
        stale = {commit.reads[int(n) - 1][0] for n in skipped[1]}
        for partition in lost:
            self._cursors.pop(partition, None)
            w.leases.lost(partition)
        if stale:
            w.stats.stale += len(stale)
            w.log.info("worker.commit.stale", partitions=sorted(stale))
        if previous is not None:
            await asyncio.wait([previous])  # the arbitrage stage sees commits in order
        batch = commit.batch
        for partition, tally in batch.tallies.items():
            if partition not in lost and partition not in stale:
                w.stats.add_committed(tally)
        if len(lost) + len(stale) < len(commit.reads):
            w.stats.commits += 1
        if not lost and not stale:
            w.refreshes.done(batch.refreshed)
        committed = [odds for odds in batch.odds if odds[0] not in lost and odds[0] not in stale]
        w.stats.arbitrage += await w.arbitrage.committed(committed)
        return lost | stale
