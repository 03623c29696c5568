"""Inbox fan-out: this gateway's inbox readers, and the writer of held (conflated) frames.

Workers write one inbox entry per gateway per batch and shard (`shared.streams`,
`shared.keys`): a gateway has one inbox per shard, each read by its own blocking XREAD loop
(a room's events of one shard come through one inbox, in history order). With more than one
shard, each frame gets the whole position of its rooms here (`gateway.positions`). Each
delivery's frame is made a WebSocket frame once (compressed at most once too, for the members
that negotiated permessage-deflate: `gateway.frames.Frame`) and written to the union of its
rooms' local members, so a client in two matching rooms gets the event
once. A connection's frames from one read go out in one write, so a gateway that falls behind
catches up with fewer system calls, not more. Order per connection is the inbox order, and
no control frame can interleave (`fan_out` never awaits). Control items (canaries,
revocations, counter requests) are handed to the node. Usage analytics are counted per read
and per inbox item (frames by type, each written event's ingest-to-write latency), never per
member.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis

from oddstream.gateway.analytics import UsageAnalytics, ingest_millis
from oddstream.gateway.connection import Connection
from oddstream.gateway.frames import Frame, Item
from oddstream.gateway.metrics import GatewayMetrics
from oddstream.gateway.positions import RoomPositions
from oddstream.gateway.rooms import LocalRooms
from oddstream.shared.logs import get_logger
from oddstream.shared.loops import Backoff, raise_if_cancelling
from oddstream.shared.streams import (
    Canary,
    CounterRequest,
    Delivery,
    Revocation,
    decode_inbox_entry,
)

__all__ = ["InboxFanout"]

log = get_logger(__name__)

#: Inbox entries per read. Each holds up to a worker batch of deliveries; the cap bounds what
#: one read can put in flight to one client while the gateway catches up on a backlog.
INBOX_READ_ENTRIES = 100

#: Seconds between trims of this gateway's inbox (one round trip; not worth one per read).
INBOX_TRIM_INTERVAL = 0.1

Entry = tuple[bytes, dict[bytes, bytes]]


class InboxFanout:
    """Reads one gateway's inboxes and writes each delivery to the local members of its rooms."""

    def __init__(
        self,
        redis: Redis,
        inboxes: list[str],
        rooms: LocalRooms[Connection],
        metrics: GatewayMetrics,
        *,
        block_ms: int,
        on_canary: Callable[[Canary], None],
        on_revocation: Callable[[Revocation], None],
        on_counters: Callable[[CounterRequest], None],
        on_redis: Callable[[bool], None],
        analytics: UsageAnalytics,
    ) -> None:
        self._redis = redis
        self._inboxes = inboxes
        self._rooms = rooms
        self._metrics = metrics
        self._block_ms = block_ms
        self._on_canary = on_canary
        self._on_revocation = on_revocation
        self._on_counters = on_counters
        self._on_redis = on_redis
        self._analytics = analytics
        self._out_children: dict[bytes, Any] = {}
        #: Per shard, the inbox id read up to; set after (re-)registration, which empties the
        #: inboxes.
        self.read_after: list[bytes] = [b"0-0"] * len(inboxes)
        #: Each room's whole position, made here when there is more than one shard.
        self.positions = RoomPositions(len(inboxes)) if len(inboxes) > 1 else None
        #: Per shard, whether its inbox's last read worked: Redis is up for this gateway only
        #: when every shard's is (on a cluster, one master can fail alone).
        self._readable = [True] * len(inboxes)
        #: Connections holding conflated frames until their socket drains.
        self.backlogged: set[Connection] = set()

    async def run(self) -> None:
        """Read every inbox until cancelled."""
        if len(self._inboxes) == 1:
            await self._read(0)
            return
        readers = [
            asyncio.create_task(self._read(shard), name=f"gateway.inbox.{shard}")
            for shard in range(len(self._inboxes))
        ]
        try:
            await asyncio.gather(*readers)
        finally:
            for reader in readers:
                reader.cancel()
            await asyncio.gather(*readers, return_exceptions=True)

    async def _read(self, shard: int) -> None:
        """Read one shard's inbox until cancelled; a Redis failure is reported to the node,
        then retried."""
        inbox = self._inboxes[shard]
        backoff = Backoff()
        last_trim = 0.0
        while True:
            try:
                reply: Any = await self._redis.xread(
                    {inbox: self.read_after[shard]},
                    count=INBOX_READ_ENTRIES,
                    block=self._block_ms,
                )
                # A stream recreated under a blocked read (Redis restart) can answer with no
                # entries at all; that is an empty read, not a failure.
                entries = reply[0][1] if reply else []
                if entries:
                    self.fan_out(entries, shard)
                    self.read_after[shard] = entries[-1][0]
                    now = time.monotonic()
                    if now - last_trim >= INBOX_TRIM_INTERVAL:
                        # Single reader: everything before our position is consumed.
                        last_trim = now
                        await self._redis.xtrim(
                            inbox, minid=self.read_after[shard], approximate=True
                        )
                self._report(shard, True)
                backoff.reset()
                raise_if_cancelling()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._report(shard, False)
                log.warning("gateway.inbox.failed", stream=inbox, error=repr(exc))
                await backoff.sleep()

    def _report(self, shard: int, ok: bool) -> None:
        self._readable[shard] = ok
        self._on_redis(ok and all(self._readable))

    def fan_out(self, entries: list[Entry], shard: int = 0) -> int:
        """Deliver a batch of inbox entries: each to every local member of its rooms, once;
        returns the frames written."""
        outgoing: dict[Connection, list[Item]] = {}
        per_type: dict[bytes, int] = {}
        items = 0
        analytics = self._analytics
        ingested: list[int] | None = [] if analytics.enabled else None
        for entry_id, fields in entries:
            try:
                batch = list(decode_inbox_entry(fields))
            except (KeyError, ValueError):
                log.error("gateway.inbox.malformed", stream=self._inboxes[shard], entry_id=entry_id)
                continue
            items += len(batch)
            for item in batch:
                if isinstance(item, Delivery):
                    reached = self._route(item, outgoing, shard)
                    if reached:
                        per_type[item.type] = per_type.get(item.type, 0) + reached
                        if ingested is not None:
                            millis = ingest_millis(item.frame)
                            if millis is not None:
                                ingested.append(millis)
                elif isinstance(item, Canary):
                    self._on_canary(item)
                elif isinstance(item, Revocation):
                    self._on_revocation(item)
                else:
                    self._on_counters(item)
        sent = 0
        for conn, frames in outgoing.items():
            sent += conn.deliver(frames)
        self._metrics.inbox_deliveries.inc(items)
        for type_, count in per_type.items():
            self._messages_out_child(type_).inc(count)
            analytics.count("out|" + type_.decode(), count)
        if ingested:
            analytics.delivered(ingested, time.time() * 1000)
        return sent

    def _route(self, delivery: Delivery, outgoing: dict[Connection, list[Item]], shard: int) -> int:
        room_ids = delivery.rooms.decode().split(",")
        held: list[str] = []  # the rooms with members here
        if len(room_ids) == 1:
            members: set[Connection] = self._rooms.members(room_ids[0]) or set()
            if members:
                held = room_ids
        else:
            members = set()
            for room_id in room_ids:
                local = self._rooms.members(room_id)
                if local:
                    members.update(local)
                    held.append(room_id)
        if not members:
            return 0
        positions = self.positions
        if positions is None:
            item = (delivery.key, Frame(delivery.frame))
        else:
            item = (delivery.key, Frame(positions.stamp(shard, delivery.frame, held), shard))
        for conn in members:
            queued = outgoing.get(conn)
            if queued is None:
                outgoing[conn] = [item]
            else:
                queued.append(item)
        return len(members)

    def _messages_out_child(self, type_: bytes) -> Any:
        child = self._out_children.get(type_)
        if child is None:
            child = self._out_children[type_] = self._metrics.messages_out_of(type_.decode())
        return child

    def hold(self, conn: Connection) -> None:
        """Flush `conn`'s held frames on a later tick, once its socket has drained."""
        self.backlogged.add(conn)

    def release(self, conn: Connection) -> None:
        self.backlogged.discard(conn)

    async def flush_backlogged(self) -> None:
        for conn in list(self.backlogged):
            if conn.flush_pending():
                self.backlogged.discard(conn)
