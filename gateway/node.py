"""The gateway node: one per gateway process, the owner of its lifecycle and its parts.

The node registers the gateway in Redis and keeps it alive (beats, re-registering after it
was reaped or Redis lost its data), proves the pipeline with canaries for `/readyz`, tracks
Redis health and tells clients when it changes, closes revoked users, and drains on shutdown.
It owns the parts named for what they do:

- `LocalRooms` (`gateway.rooms`): room id -> local members, mirrored into the registry;
- `InboxFanout` (`gateway.fanout`): the inbox reader and the writer of held frames;
- `ClientHeartbeat` (`gateway.heartbeat`): pings, and closes for silence or token expiry;
- `UsageAnalytics` (`gateway.analytics`): per-minute usage counts, flushed to Redis.

Connections talk to it through `ConnectionHost` (`gateway.connection`), never the whole node.

Periodic work costs what changed, never the number of connections: a beat writes the records
of the connections that connected, subscribed, unsubscribed or refreshed their token since the
last one and deletes those of the ones that closed; counters (messages sent and received) are
read live when `/ws/v2/connections` asks (`live_records`); pings and the closes for silence
and token expiry go through the heartbeat's wheel and deadline heaps.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import random
import socket
import time
import uuid
from collections.abc import Coroutine
from importlib.metadata import version
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from oddstream.gateway.analytics import UsageAnalytics
from oddstream.gateway.auth import Identity, TokenVerifier
from oddstream.gateway.connection import Connection
from oddstream.gateway.fanout import InboxFanout
from oddstream.gateway.frames import text_frame
from oddstream.gateway.heartbeat import ClientHeartbeat
from oddstream.gateway.metrics import GatewayMetrics
from oddstream.gateway.positions import Position
from oddstream.gateway.resume import History, Replay, Snapshot
from oddstream.gateway.rooms import LocalRooms
from oddstream.shared.collector import Collector
from oddstream.shared.events import CanaryEvent
from oddstream.shared.ingest import Ingester
from oddstream.shared.keys import Keys
from oddstream.shared.logs import get_logger
from oddstream.shared.loops import periodic, stop_tasks
from oddstream.shared.protocol import CloseCode, ServerMessageType, server_frame
from oddstream.shared.registry import Registry
from oddstream.shared.rooms import RoomSpec
from oddstream.shared.settings import Settings
from oddstream.shared.streams import Canary, CounterRequest, Revocation

__all__ = ["GatewayNode", "slot_member"]

log = get_logger(__name__)

VERSION = version("oddstream")

#: Seconds between attempts to write conflated frames to backed-up clients.
FLUSH_INTERVAL = 0.05


#: Seconds between batches of closes while draining.
DRAIN_BATCH_INTERVAL = 0.1

#: Seconds `/ws/v2/connections` waits for other gateways' live counters.
COUNTERS_TIMEOUT = 1.0

#: Records serialized by a beat before it lets other callbacks run (a connect storm).
BEAT_SLICE = 256


def slot_member(gateway_id: str, ws: object) -> str:
    """How one connection is counted in its user's cluster-wide connection set."""
    return f"{gateway_id}|{id(ws)}"


class GatewayNode:
    """One gateway: registration, health, canaries, drain and revocation; owns its parts."""

    def __init__(
        self,
        settings: Settings,
        redis: Redis,
        metrics: GatewayMetrics,
        verifier: TokenVerifier | None = None,
    ) -> None:
        self.settings = settings
        self.redis = redis
        self.metrics = metrics
        self.verifier = verifier or TokenVerifier(settings)
        self.keys = Keys.of(settings)
        self.ingester = Ingester(redis, self.keys)
        self.registry = Registry.of(redis, self.keys, settings)
        self.gateway_id = f"gw-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.log = log.bind(gateway=self.gateway_id)
        self.started_at = time.time()
        self.url: str | None = settings.public_url
        self.connections: dict[str, Connection] = {}
        self.rooms: LocalRooms[Connection] = LocalRooms(self.registry, self.gateway_id)
        self.analytics = UsageAnalytics(
            redis, self.keys, settings, self.gateway_id, self.rooms, self.connections
        )
        if self.analytics.enabled:
            metrics.registry.register(self.analytics)
        self.fanout = InboxFanout(
            redis,
            self.keys.inboxes(self.gateway_id),
            self.rooms,
            metrics,
            block_ms=settings.worker_block_ms,
            on_canary=self._canary_back,
            on_revocation=self._revoke,
            on_counters=self._answer_counters,
            on_redis=self._inbox_readable,
            analytics=self.analytics,
        )
        self.history = History(redis, self.keys, settings)
        self.heartbeat = ClientHeartbeat(
            metrics,
            interval=settings.heartbeat_interval,
            timeout=settings.connection_timeout,
            notice=settings.token_expiry_notice,
        )
        self.collector = Collector(settings.gc_full_interval)
        self.registered = False
        self.draining = False
        self.redis_ok = False
        self._registry_ok = False
        self._inboxes_ok = True
        #: Set once `stop` has deregistered: closing connections then touch no Redis.
        self.stopped = False
        #: Redis went down after start-up and has not been back since (its return is told).
        self._in_outage = False
        self.last_canary: float | None = None  # monotonic time the last canary came back
        self._tasks: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Task[Any]] = set()
        #: Connections whose record changed since the last beat, and those closed since.
        self._changed: dict[str, Connection] = {}
        self._closed_since_beat: list[str] = []
        self._healthy_since: float | None = None  # monotonic; None while Redis is down
        self._canary_partitions = itertools.count(random.randrange(self.keys.partitions))
        #: Rooms just joined: the feed entry workers must apply before history is read (by
        #: every subscriber of the room until they have), so that every event is either in
        #: what a catch-up reads or routed here live.
        self._routing: dict[str, bytes] = {}

    # --- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        s = self.settings
        await self._register()
        await self._send_canary()
        self.collector.start()
        self._tasks = [
            periodic("gateway.canary", s.canary_interval, self._send_canary, self.log),
            periodic("gateway.flush", FLUSH_INTERVAL, self.fanout.flush_backlogged, self.log),
            asyncio.create_task(self.fanout.run(), name="gateway.inbox"),
            periodic("gateway.beat", s.gateway_heartbeat, self._beat, self.log),
            periodic("gateway.ping", self.heartbeat.tick_seconds, self.heartbeat.tick, self.log),
            periodic(
                "gateway.sweep",
                min(1.0, s.connection_timeout / 4),
                self.heartbeat.sweep,
                self.log,
            ),
        ]
        if self.analytics.enabled:
            self._tasks.append(asyncio.create_task(self.analytics.run(), name="gateway.analytics"))
        self.log.info("gateway.started")

    async def stop(self) -> None:
        """Drain: fail readiness, close clients with 1001 in batches spread over half the
        grace period (no thundering herd onto the other gateways) while the inbox keeps
        delivering to those not yet closed, then deregister and stop. Idempotent."""
        if self.draining:
            return
        self.draining = True
        started = time.monotonic()
        grace = self.settings.shutdown_grace
        self.log.info("gateway.draining", connections=len(self.connections))
        closing = await self._close_in_batches(list(self.connections.values()), grace / 2)
        remaining = max(0.1, grace - (time.monotonic() - started))
        if closing:
            # Each close waits for the client's answer; a silent client cannot hold us up.
            await asyncio.wait(closing, timeout=remaining * 0.8)
        try:
            with contextlib.suppress(RedisError):
                await self.registry.deregister_gateway(self.gateway_id)
            self.registered = False
            await self.flush_analytics()
        finally:
            self.stopped = True
            await stop_tasks(self._tasks, grace=max(0.5, grace - (time.monotonic() - started)))
            background = list(self._background)
            for task in background:
                task.cancel()
            if background:  # none still uses Redis once this returns (its owner closes it)
                left = grace - (time.monotonic() - started)
                await asyncio.wait(background, timeout=min(1.0, max(0.1, left)))
            self.collector.stop()
        self.log.info("gateway.stopped")

    async def _close_in_batches(
        self, conns: list[Connection], window: float
    ) -> list[asyncio.Task[Any]]:
        """Start 1001 closes in about ten batches a second across `window` seconds."""
        if not conns:
            return []
        batches = max(1, min(len(conns), int(window / DRAIN_BATCH_INTERVAL)))
        size = -(-len(conns) // batches)
        tasks: list[asyncio.Task[Any]] = []
        for index in range(0, len(conns), size):
            for conn in conns[index : index + size]:
                task = conn.close_soon(CloseCode.GOING_AWAY, "gateway draining: reconnect")
                if task is not None:
                    tasks.append(task)
            if index + size < len(conns):
                await asyncio.sleep(DRAIN_BATCH_INTERVAL)
        return tasks

    async def flush_analytics(self) -> None:
        """Write the usage counts not flushed yet (at shutdown: the drain's closes too)."""
        if self.analytics.enabled:
            with contextlib.suppress(RedisError):
                await self.analytics.flush()

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run a fire-and-forget coroutine, keeping a reference until it finishes."""
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    # --- health --------------------------------------------------------------------------

    def _inbox_readable(self, ok: bool) -> None:
        """The inbox readers' word: every shard's inbox read (on a cluster, one master can
        fail while the registry's is fine)."""
        self._inboxes_ok = ok
        self._set_redis_ok(self._registry_ok)

    def _set_redis_ok(self, ok: bool) -> None:
        """Track Redis health (what the registry's writes and every inbox read say); on a
        change, tell every client (users see it, not just logs)."""
        self._registry_ok = ok
        ok = ok and self._inboxes_ok
        if ok == self.redis_ok:
            return
        self.redis_ok = ok
        self._healthy_since = time.monotonic() if ok else None
        self.metrics.redis_up.set(1 if ok else 0)
        if ok:
            self.log.warning("gateway.redis.up")
        else:
            self.log.warning("gateway.redis.down")
        if ok and not self._in_outage:
            return  # start-up, not a recovery
        self._in_outage = not ok
        if ok:
            data = {"level": "info", "code": "service_restored",
                    "message": "Live updates have resumed."}  # fmt: skip
        else:
            self.metrics.redis_outages.inc()
            data = {
                "level": "warning",
                "code": "service_degraded",
                "message": "Live updates are paused: the gateway lost its data store and is "
                "reconnecting. Your connection stays open; no action is needed.",
            }
        frame = text_frame(server_frame(ServerMessageType.SYSTEM_ALERT, data))
        sent = sum(conn.write(frame) for conn in list(self.connections.values()))
        self.metrics.messages_out_of(ServerMessageType.SYSTEM_ALERT.value).inc(sent)
        if sent:
            self.analytics.count("out|" + ServerMessageType.SYSTEM_ALERT.value, sent)

    @property
    def pipeline_ok(self) -> bool:
        """A canary came back through ingest and a worker recently: this gateway is not deaf."""
        if self.last_canary is None:
            return False
        return time.monotonic() - self.last_canary < 3 * self.settings.canary_interval

    @property
    def ready(self) -> bool:
        return self.registered and self.redis_ok and not self.draining and self.pipeline_ok

    async def _send_canary(self) -> None:
        """Probe the pipeline through each ingest partition in turn: a partition no worker
        serves shows up as canaries that do not come back."""
        event = CanaryEvent(kind="canary", gateway=self.gateway_id, sent_at=time.time())
        partition = next(self._canary_partitions) % self.keys.partitions
        await self.ingester.publish(event, partition=partition)

    def _canary_back(self, canary: Canary) -> None:
        self.last_canary = time.monotonic()
        self.metrics.canary_seconds.set(time.time() - canary.sent_at)

    def describe(self) -> dict[str, Any]:
        return {
            "gateway_id": self.gateway_id,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "url": self.url,
            "version": VERSION,
            "started_at": self.started_at,
            "connections": len(self.connections),
            "rooms": len(self.rooms),
            "draining": self.draining,
        }

    # --- registration --------------------------------------------------------------------

    async def _register(self) -> None:
        """(Re-)register: fresh inboxes, liveness, and every room this gateway holds."""
        self.fanout.read_after = await self.registry.register_gateway(
            self.gateway_id, self.describe()
        )
        await self.rooms.restore()
        self.registered = True
        self._set_redis_ok(True)

    async def _beat(self) -> None:
        """Liveness, and the records of the connections that changed or closed since the last
        beat: its cost is what changed, not how many connections there are."""
        if self.draining:
            return
        if self.collector.tick(len(self.connections)):
            self.log.info("gateway.gc.full", ms=round(self.collector.last_full_ms, 1))
        changed, self._changed = self._changed, {}
        closed, self._closed_since_beat = self._closed_since_beat, []
        records: dict[str, bytes] = {}
        for conn in changed.values():
            if conn.client_id in self.connections:  # not closed while this beat yielded
                records[conn.client_id] = conn.record()
                if len(records) % BEAT_SLICE == 0:
                    await asyncio.sleep(0)
        try:
            alive = await self.registry.beat_gateway(
                self.gateway_id, self.describe(), records, closed
            )
            self._set_redis_ok(True)
        except RedisError:
            self._set_redis_ok(False)
            # Written at the next beat instead, with whatever changed meanwhile.
            self._changed = {**changed, **self._changed}
            self._closed_since_beat = closed + self._closed_since_beat
            raise
        for conn in changed.values():
            if conn.client_id not in self._changed:  # not changed again meanwhile
                conn.dirty = False
        if not alive:
            self.log.warning("gateway.reregister", reason="reaped, or Redis lost its data")
            self.registered = False
            for conn in self.connections.values():  # a rare event: every record again
                self._mark_changed(conn)
            await self._register()
            if self.settings.max_connections_per_user:
                self.spawn(self._reclaim_user_slots(list(self.connections.values())))
        # After an outage every beat in Redis is stale: reap only once this gateway has seen
        # Redis healthy for a whole TTL, so live peers have had time to beat again.
        healthy_since = self._healthy_since
        if healthy_since is not None and (
            time.monotonic() - healthy_since >= self.settings.gateway_ttl
        ):
            await self.registry.reap_dead()

    async def _reclaim_user_slots(self, conns: list[Connection]) -> None:
        """After a re-registration (reaped: the reaper released this gateway's slots; or
        Redis lost its data) count this gateway's connections against their users again."""
        for conn in conns:
            user = conn.identity.user
            if user is None or conn.client_id not in self.connections:
                continue
            with contextlib.suppress(RedisError):
                await self.registry.acquire_user_slot(
                    user, slot_member(self.gateway_id, conn.ws), 0
                )

    # --- connection listing --------------------------------------------------------------

    async def live_records(self, records: list[dict[str, Any]]) -> None:
        """Bring a page of `/ws/v2/connections` records up to date, in place: this gateway's
        from its connections (everything a record shows), the other gateways' counters
        (messages sent and received) asked of them through their inboxes; a gateway that
        does not answer within `COUNTERS_TIMEOUT` keeps the counters of its last record write
        (at connect, subscribe, unsubscribe or token refresh)."""
        wanted: dict[str, list[str]] = {}
        for record in records:
            gateway_id, client_id = record.get("gateway"), record.get("client_id")
            if not isinstance(gateway_id, str) or not isinstance(client_id, str):
                continue
            if gateway_id == self.gateway_id:
                conn = self.connections.get(client_id)
                if conn is not None:
                    record.update(conn.listing())
            else:
                wanted.setdefault(gateway_id, []).append(client_id)
        if not wanted:
            return
        try:
            counters = await self.registry.ask_counters(self.gateway_id, wanted, COUNTERS_TIMEOUT)
        except RedisError as exc:
            self.log.warning("gateway.counters.redis_failed", error=repr(exc))
            return
        for record in records:
            live = counters.get(record.get("client_id", ""))
            if live is not None:
                record["messages_sent"], record["messages_received"] = live

    def _answer_counters(self, request: CounterRequest) -> None:
        """Another gateway lists connections: the live counters of those asked that are here."""
        counters = {}
        for client_id in request.clients:
            conn = self.connections.get(client_id)
            if conn is not None:
                counters[client_id] = [conn.messages_sent, conn.messages_received]
        self.spawn(self._send_counters(request.reply, counters))

    async def _send_counters(self, reply: str, counters: dict[str, list[int]]) -> None:
        try:
            await self.registry.answer_counters(reply, counters)
        except RedisError as exc:
            self.log.warning("gateway.counters.redis_failed", error=repr(exc))

    # --- connections (the `ConnectionHost` side) -----------------------------------------

    def add(self, conn: Connection, reconnect: bool = False) -> None:
        """Count a new connection in; `reconnect`: it said so (`?reconnect=N`)."""
        self.connections[conn.client_id] = conn
        self.collector.opened()
        self._mark_changed(conn)
        self.heartbeat.watch(conn)
        self.metrics.connections.set(len(self.connections))
        self.analytics.opened(len(self.connections), reconnect)

    def changed(self, conn: Connection, identity: bool = False) -> None:
        """Something `/ws/v2/connections` shows changed (subscriptions, identity): the record
        is written at the next beat; an identity change also reschedules the token's expiry."""
        if conn.client_id in self.connections:
            self._mark_changed(conn)
            if identity:
                self.heartbeat.expiry_changed(conn)

    def _mark_changed(self, conn: Connection) -> None:
        conn.dirty = True
        self._changed[conn.client_id] = conn

    async def remove(self, conn: Connection) -> None:
        """Forget a closed connection and release its rooms."""
        conn.closing = True
        conn.pending = None
        self.fanout.release(conn)
        if self.connections.pop(conn.client_id, None) is None:
            return
        self.heartbeat.forget(conn)
        self._changed.pop(conn.client_id, None)
        self._closed_since_beat.append(conn.client_id)
        self.collector.closed()
        self.metrics.connections.set(len(self.connections))
        self.analytics.closed(conn.close_code())
        await self.leave(conn, list(conn.rooms))

    async def join(self, conn: Connection, spec: RoomSpec) -> bool:
        feed_id = await self.rooms.join(conn, spec)
        self.metrics.rooms.set(len(self.rooms))
        if feed_id:
            # Kept until the workers applied it (`catch_up`): every subscriber of the room
            # meanwhile waits for it too, not only the one whose join registered the room.
            self._routing[spec.room_id] = feed_id
        if feed_id is not None:
            self.analytics.subscribed(spec)
        return feed_id is not None

    async def leave(self, conn: Connection, room_ids: list[str]) -> None:
        # Once stopped, no more Redis: deregistering took this gateway's rooms out already,
        # and whoever made the Redis client may close it as soon as `stop` returns (a command
        # after that would open a connection no one closes).
        await self.rooms.leave(conn, room_ids, registered=not self.stopped)
        for room_id in room_ids:
            if self.rooms.members(room_id) is None:
                self._routing.pop(room_id, None)  # gone here: a rejoin registers anew
                if self.fanout.positions is not None:
                    self.fanout.positions.forget(room_id)  # a rejoin starts from its catch-up
        self.metrics.rooms.set(len(self.rooms))

    async def verify_token(self, token: str) -> Identity:
        return await self.verifier.verify(token)

    def hold_backlog(self, conn: Connection) -> None:
        self.fanout.hold(conn)

    async def catch_up(
        self, spec: RoomSpec, position: str | None, snapshot: bool
    ) -> tuple[Replay, Snapshot | None]:
        try:
            # The room's registration here, while workers may not have applied it yet: a
            # history read before they did could end before events they still route
            # elsewhere only (recorded, never sent here). Found in the fault soak: a second
            # client resuming in a room that a first had just registered here read at once,
            # and missed the event committed in between.
            feed_id = self._routing.get(spec.room_id, b"")
            # Long enough for a stalled worker's leases to lapse (it then cannot commit).
            within = 2 * self.settings.partition_lease_ms / 1000 + 1.0
            if feed_id:
                if not await self.registry.wait_applied(feed_id, within):
                    # No proof that every later event reaches this gateway: no resume claim.
                    self.log.warning("gateway.catch_up.routing_slow", room=spec.room_id)
                    return await self._resync(spec, position, snapshot)
                if self._routing.get(spec.room_id) == feed_id:
                    del self._routing[spec.room_id]  # applied: later subscribers need not wait
            replay = await self.history.replay(spec, position)
            snap = None
            if snapshot and replay.recovered is not True:
                snap = await self.history.snapshot(spec, replay.position)
        except RedisError as exc:
            # Redis went away between the join and here: no position to give (null), and a
            # resume is not recovered; the client takes the positions of the frames that follow.
            self.log.warning("gateway.catch_up.redis_failed", room=spec.room_id, error=repr(exc))
            return Replay("", False if position else None), None
        return self._counted(spec, replay, snap)

    async def _resync(
        self, spec: RoomSpec, position: str | None, snapshot: bool
    ) -> tuple[Replay, Snapshot | None]:
        replay = await self.history.replay(spec, None)
        replay.recovered = False if position is not None else None
        snap = await self.history.snapshot(spec, replay.position) if snapshot else None
        return self._counted(spec, replay, snap)

    def _counted(
        self, spec: RoomSpec, replay: Replay, snap: Snapshot | None
    ) -> tuple[Replay, Snapshot | None]:
        positions = self.fanout.positions
        if positions is not None and replay.position:
            # Where the room is, for the shards this gateway has delivered nothing of yet.
            positions.seed(spec.room_id, Position.parse(replay.position))
        if replay.recovered is not None:
            self.metrics.resumes.labels("recovered" if replay.recovered else "resynced").inc()
            self.analytics.resumed(replay.recovered)
        if snap is not None:
            self.metrics.snapshots.inc()
        return replay, snap

    def _revoke(self, revocation: Revocation) -> None:
        """Close every connection of the user on this gateway (4503, terminal)."""
        closed = 0
        for conn in list(self.connections.values()):
            if conn.identity.user == revocation.user and not conn.closing:
                conn.close_soon(CloseCode.FORBIDDEN, "access revoked")
                closed += 1
        self.log.warning("gateway.revoked", user=revocation.user, connections=closed)
