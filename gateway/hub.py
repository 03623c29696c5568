"""The gateway node: local rooms, its registration in Redis, and inbox fan-out.

One Hub per gateway process. It owns:
- the local room table (room id -> member connections), mirrored into the cluster registry
  (`shared.registry`) so workers route matching events to this gateway's inbox;
- one inbox reader: a single blocking XREAD loop; each delivery's frame is built once and
  written to the union of its rooms' members, so a client in two matching rooms gets the event
  once; a connection's frames from one read go out in one write; control deliveries in the
  inbox carry pipeline canaries and user revocations;
- the flusher that writes conflated frames to backed-up clients (`gateway.connection`);
- liveness beats (re-registering after being reaped or after Redis lost its data), canaries
  that prove the pipeline for `/readyz`, the application-level heartbeat, the idle and
  token-expiry sweep, and the batched drain on shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Coroutine
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from oddstream.gateway.auth import TokenVerifier
from oddstream.gateway.connection import Connection
from oddstream.gateway.frames import text_frame
from oddstream.gateway.metrics import GatewayMetrics
from oddstream.shared.events import CanaryEvent
from oddstream.shared.inbox import CANARY_TYPE, REVOKE_TYPE, decode_inbox_entry
from oddstream.shared.ingest import Ingester
from oddstream.shared.keys import Keys
from oddstream.shared.loops import Backoff, periodic, raise_if_cancelling, stop_tasks
from oddstream.shared.protocol import (
    CloseCode,
    ErrorCode,
    ProtocolError,
    ServerMessageType,
    server_frame,
)
from oddstream.shared.registry import Registry
from oddstream.shared.rooms import RoomSpec
from oddstream.shared.settings import Settings

__all__ = ["Hub", "slot_member"]

log = logging.getLogger("oddstream.gateway")

VERSION = "0.1.0"

#: Seconds between attempts to write conflated frames to backed-up clients.
FLUSH_INTERVAL = 0.05

#: Seconds between batches of closes while draining.
DRAIN_BATCH_INTERVAL = 0.1

#: Inbox entries per read. Each holds up to a worker batch of deliveries; the cap bounds what
#: one read can put in flight to one client while the gateway catches up on a backlog.
INBOX_READ_ENTRIES = 100

#: Seconds between trims of this gateway's inbox (one round trip; not worth one per read).
INBOX_TRIM_INTERVAL = 0.1


def slot_member(gateway_id: str, ws: object) -> str:
    """How one connection is counted in its user's cluster-wide connection set."""
    return f"{gateway_id}|{id(ws)}"


class Hub:
    def __init__(
        self,
        settings: Settings,
        redis: Redis,
        metrics: GatewayMetrics,
        verifier: TokenVerifier | None = None,
    ) -> None:
        self.settings = settings
        self.verifier = verifier or TokenVerifier(settings)
        self.redis = redis
        self.metrics = metrics
        self.keys = Keys(settings.redis_prefix)
        self.ingester = Ingester(redis, self.keys)
        self.registry = Registry(
            redis, self.keys, gateway_ttl=settings.gateway_ttl, worker_ttl=settings.worker_ttl
        )
        self.gateway_id = f"gw-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.started_at = time.time()
        self.connections: dict[str, Connection] = {}
        self.rooms: dict[str, set[Connection]] = {}
        self.specs: dict[str, RoomSpec] = {}
        self.registered = False
        self.draining = False
        self.redis_ok = False
        self.url: str | None = settings.public_url
        self._inbox_position = b"0-0"
        self._lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Task[Any]] = set()
        self._closed_since_beat: list[str] = []
        self._out_children: dict[bytes, Any] = {}
        self.last_canary: float | None = None  # monotonic time the last canary came back
        self.backlogged: set[Connection] = set()  # connections holding conflated frames
        self._healthy_since: float | None = None  # monotonic; None while Redis is down

    # --- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        await self._register()
        await self._send_canary()
        self._tasks = [
            periodic("gateway.canary", self.settings.canary_interval, self._send_canary, log),
            periodic("gateway.flush", FLUSH_INTERVAL, self._flush_backlogged, log),
            asyncio.create_task(self._read_inbox(), name="gateway.inbox"),
            periodic("gateway.beat", self.settings.gateway_heartbeat, self._beat, log),
            periodic("gateway.ping", self.settings.heartbeat_interval, self._ping_all, log),
            periodic(
                "gateway.sweep",
                min(1.0, self.settings.connection_timeout / 4),
                self._sweep_idle,
                log,
            ),
        ]
        log.info("gateway.started id=%s", self.gateway_id)

    async def stop(self) -> None:
        """Drain: fail readiness, close clients with 1001 in batches spread over half the
        grace period (no thundering herd onto the other gateways) while the inbox keeps
        delivering to those not yet closed, then deregister and stop. Idempotent."""
        if self.draining:
            return
        self.draining = True
        started = time.monotonic()
        grace = self.settings.shutdown_grace
        log.info("gateway.draining id=%s connections=%d", self.gateway_id, len(self.connections))
        closing = await self._close_in_batches(list(self.connections.values()), grace / 2)
        remaining = max(0.1, grace - (time.monotonic() - started))
        if closing:
            # Each close waits for the client's answer; a silent client cannot hold us up.
            await asyncio.wait(closing, timeout=remaining * 0.8)
        with contextlib.suppress(RedisError):
            await self.registry.deregister_gateway(self.gateway_id)
        self.registered = False
        await stop_tasks(self._tasks, grace=max(0.5, grace - (time.monotonic() - started)))
        for task in list(self._background):
            task.cancel()
        log.info("gateway.stopped id=%s", self.gateway_id)

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
                if not conn.closing:
                    conn.closing = True
                    self.metrics.closes.labels(str(int(CloseCode.GOING_AWAY))).inc()
                    tasks.append(
                        asyncio.create_task(
                            conn.ws.close(
                                code=int(CloseCode.GOING_AWAY),
                                message=b"gateway draining: reconnect",
                            )
                        )
                    )
            if index + size < len(conns):
                await asyncio.sleep(DRAIN_BATCH_INTERVAL)
        return tasks

    def _set_redis_ok(self, ok: bool) -> None:
        """Track Redis health; on a change, tell every client (users see it, not just logs)."""
        if ok == self.redis_ok:
            return
        self.redis_ok = ok
        self._healthy_since = time.monotonic() if ok else None
        self.metrics.redis_up.set(1 if ok else 0)
        log.warning("gateway.redis.%s id=%s", "up" if ok else "down", self.gateway_id)
        if not self.registered and ok:
            return  # start-up, not a recovery
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
        self.metrics.messages_out.labels(ServerMessageType.SYSTEM_ALERT.value).inc(sent)

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
        event = CanaryEvent(kind="canary", gateway=self.gateway_id, sent_at=time.time())
        await self.ingester.publish(event)

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run a fire-and-forget coroutine, keeping a reference until it finishes."""
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

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
        """(Re-)register: fresh inbox, liveness, and every room this gateway holds."""
        async with self._lock:
            self._inbox_position = await self.registry.register_gateway(
                self.gateway_id, self.describe()
            )
            for room_id, members in self.rooms.items():
                await self.registry.join_room(self.gateway_id, self.specs[room_id], len(members))
            self.registered = True
            self._set_redis_ok(True)

    async def _beat(self) -> None:
        if self.draining:
            return
        dirty = {}
        for conn in self.connections.values():
            if conn.dirty or conn.messages_sent != conn.recorded_sent:
                conn.dirty = False
                conn.recorded_sent = conn.messages_sent
                dirty[conn.client_id] = conn.record()
        closed, self._closed_since_beat = self._closed_since_beat, []
        try:
            alive = await self.registry.beat_gateway(
                self.gateway_id, self.describe(), dirty, closed
            )
            self._set_redis_ok(True)
        except RedisError:
            self._set_redis_ok(False)
            for conn in self.connections.values():
                conn.dirty = True
            raise
        if alive and self.settings.max_connections_per_user:
            await self.registry.refresh_user_slots(
                [
                    (c.identity.user, slot_member(self.gateway_id, c.ws))
                    for c in self.connections.values()
                    if c.identity.user is not None
                ]
            )
        if not alive:
            log.warning(
                "gateway.reregister id=%s (was reaped or Redis lost its data)", self.gateway_id
            )
            self.registered = False
            for conn in self.connections.values():
                conn.dirty = True
            await self._register()
        # After an outage every beat in Redis is stale: reap only once this gateway has seen
        # Redis healthy for a whole TTL, so live peers have had time to beat again.
        healthy_since = self._healthy_since
        if healthy_since is not None and (
            time.monotonic() - healthy_since >= self.settings.gateway_ttl
        ):
            await self.registry.reap_dead()

    # --- rooms ---------------------------------------------------------------------------

    async def subscribe(self, conn: Connection, spec: RoomSpec) -> bool:
        """Add `conn` to the room; False if it was already a member. The room is registered
        in Redis before this returns, so a confirmation means events are routed here."""
        room_id = spec.room_id
        async with self._lock:
            members = self.rooms.get(room_id)
            if members is not None and conn in members:
                return False
            try:
                if members is None:
                    if not await self.registry.join_room(self.gateway_id, spec, 1):
                        raise RedisError("gateway not registered")
                    members = self.rooms[room_id] = set()
                    self.specs[room_id] = spec
                else:
                    await self.registry.set_room_count(self.gateway_id, room_id, len(members) + 1)
            except RedisError as exc:
                log.warning("gateway.subscribe.redis_failed room=%s error=%s", room_id, exc)
                raise ProtocolError(
                    ErrorCode.SERVICE_UNAVAILABLE,
                    "The subscription could not be registered (Redis unavailable).",
                ) from None
            members.add(conn)
            conn.rooms[room_id] = spec
            conn.dirty = True
            self.metrics.rooms.set(len(self.rooms))
            return True

    async def unsubscribe(self, conn: Connection, room_id: str) -> None:
        async with self._lock:
            await self._remove_member(conn, room_id)

    async def _remove_member(self, conn: Connection, room_id: str) -> None:
        conn.rooms.pop(room_id, None)
        conn.dirty = True
        members = self.rooms.get(room_id)
        if members is None:
            return
        members.discard(conn)
        try:
            if members:
                await self.registry.set_room_count(self.gateway_id, room_id, len(members))
            else:
                del self.rooms[room_id]
                del self.specs[room_id]
                await self.registry.leave_room(self.gateway_id, room_id)
        except RedisError as exc:
            # The next successful re-registration rewrites the holdings from local state.
            log.warning("gateway.unsubscribe.redis_failed room=%s error=%s", room_id, exc)
        self.metrics.rooms.set(len(self.rooms))

    # --- connections ---------------------------------------------------------------------

    def add(self, conn: Connection) -> None:
        self.connections[conn.client_id] = conn
        self.metrics.connections.set(len(self.connections))

    async def remove(self, conn: Connection) -> None:
        """Forget a closed connection and release its rooms."""
        conn.closing = True
        conn.pending = None
        self.backlogged.discard(conn)
        if self.connections.pop(conn.client_id, None) is None:
            return
        self._closed_since_beat.append(conn.client_id)
        self.metrics.connections.set(len(self.connections))
        async with self._lock:
            for room_id in list(conn.rooms):
                await self._remove_member(conn, room_id)

    # --- fan-out -------------------------------------------------------------------------

    async def _read_inbox(self) -> None:
        inbox = self.keys.inbox(self.gateway_id)
        backoff = Backoff()
        last_trim = 0.0
        while True:
            try:
                reply: Any = await self.redis.xread(
                    {inbox: self._inbox_position},
                    count=INBOX_READ_ENTRIES,
                    block=self.settings.worker_block_ms,
                )
                # A stream recreated under a blocked read (Redis restart) can answer with no
                # entries at all; that is an empty read, not a failure.
                entries = reply[0][1] if reply else []
                if entries:
                    self.fan_out(entries)
                    self._inbox_position = entries[-1][0]
                    now = time.monotonic()
                    if now - last_trim >= INBOX_TRIM_INTERVAL:
                        # Single reader: everything before our position is consumed.
                        last_trim = now
                        await self.redis.xtrim(inbox, minid=self._inbox_position, approximate=True)
                self._set_redis_ok(True)
                backoff.reset()
                raise_if_cancelling()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._set_redis_ok(False)
                log.warning("gateway.inbox.failed error=%s", exc)
                await backoff.sleep()

    def fan_out(self, entries: list[tuple[bytes, dict[bytes, bytes]]]) -> int:
        """Deliver a batch of inbox entries: each to every local member of its rooms, once.

        Frames for one connection are concatenated and written with one call per batch, so a
        gateway that falls behind catches up with fewer system calls, not more. Order per
        connection is the inbox order, and no control frame can interleave (no await here).
        """
        outgoing: dict[Connection, list[tuple[bytes, bytes]]] = {}
        per_type: dict[bytes, int] = {}
        deliveries = 0
        for entry_id, fields in entries:
            try:
                batch = list(decode_inbox_entry(fields))
            except (KeyError, ValueError):
                log.error("gateway.inbox.malformed id=%s", entry_id)
                continue
            deliveries += len(batch)
            for delivery in batch:
                if delivery.type == REVOKE_TYPE:
                    self.revoke(delivery.frame.decode())
                    continue
                if delivery.type == CANARY_TYPE:
                    self.last_canary = time.monotonic()
                    self.metrics.canary_seconds.set(time.time() - float(delivery.frame))
                    continue
                room_ids = delivery.rooms.decode().split(",")
                if len(room_ids) == 1:
                    members: set[Connection] = self.rooms.get(room_ids[0]) or set()
                else:
                    members = set()
                    for room_id in room_ids:
                        members.update(self.rooms.get(room_id, ()))
                if not members:
                    continue
                item = (delivery.key, text_frame(delivery.frame))
                for conn in members:
                    queued = outgoing.get(conn)
                    if queued is None:
                        outgoing[conn] = [item]
                    else:
                        queued.append(item)
                per_type[delivery.type] = per_type.get(delivery.type, 0) + len(members)
        sent = 0
        for conn, items in outgoing.items():
            sent += conn.deliver(items)
        self.metrics.inbox_deliveries.inc(deliveries)
        for type_, count in per_type.items():
            self._messages_out_child(type_).inc(count)
        return sent

    def _messages_out_child(self, type_: bytes) -> Any:
        child = self._out_children.get(type_)
        if child is None:
            child = self._out_children[type_] = self.metrics.messages_out.labels(type_.decode())
        return child

    def revoke(self, user: str) -> int:
        """Close every connection of `user` on this gateway (4503, terminal)."""
        closed = 0
        for conn in list(self.connections.values()):
            if conn.identity.user == user and not conn.closing:
                conn.close_soon(CloseCode.FORBIDDEN, "access revoked")
                closed += 1
        log.warning("gateway.revoked user=%s connections=%d", user, closed)
        return closed

    async def _flush_backlogged(self) -> None:
        for conn in list(self.backlogged):
            if conn.flush_pending():
                self.backlogged.discard(conn)

    # --- heartbeat -----------------------------------------------------------------------

    async def _ping_all(self) -> None:
        """Application-level ping (browsers cannot see protocol pings), one frame for all."""
        frame = text_frame(server_frame(ServerMessageType.PING))
        sent = sum(conn.write(frame) for conn in list(self.connections.values()))
        self.metrics.messages_out.labels(ServerMessageType.PING.value).inc(sent)

    async def _sweep_idle(self) -> None:
        """Close silent clients (4101) and enforce token expiry (notice, then 4401)."""
        deadline = time.monotonic() - self.settings.connection_timeout
        now = time.time()
        for conn in list(self.connections.values()):
            if conn.last_seen < deadline and not conn.closing:
                conn.close_soon(CloseCode.HEARTBEAT_TIMEOUT, "no message within the timeout")
            else:
                conn.check_expiry(now)
