"""This gateway's room table: room id -> member connections, mirrored into the registry.

Invariants:
- a room is in the table exactly while it has local members;
- a room is registered in Redis (`Registry.join_room`) before its first member is added, so a
  confirmation sent after `join` means events for the room are routed to this gateway;
- holdings are rewritten from this table after the gateway re-registers (`restore`), so Redis
  losing its data loses no room;
- changes to one room, with their registry writes, happen one at a time and in order (a lock
  per room); different rooms do not wait for each other, so a reconnect storm's subscribes
  go to Redis side by side instead of one round trip at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Hashable, Iterator
from typing import Any, Generic, TypeVar

from redis.exceptions import RedisError

from oddstream.shared.logs import get_logger
from oddstream.shared.protocol import ErrorCode, ProtocolError
from oddstream.shared.registry import Registry
from oddstream.shared.rooms import RoomSpec

__all__ = ["LocalRooms"]

log = get_logger(__name__)

M = TypeVar("M", bound=Hashable)


class LocalRooms(Generic[M]):
    """Local members per room; a lock per room orders its changes with their registry
    writes."""

    def __init__(self, registry: Registry, gateway_id: str) -> None:
        self._registry = registry
        self._gateway_id = gateway_id
        self._log = log.bind(gateway=gateway_id)
        self._members: dict[str, set[M]] = {}
        self._specs: dict[str, RoomSpec] = {}
        #: room id -> [its lock, tasks holding or waiting for it]; gone when none does.
        self._locks: dict[str, list[Any]] = {}

    def __len__(self) -> int:
        return len(self._members)

    def __iter__(self) -> Iterator[str]:
        return iter(self._members)

    def members(self, room_id: str) -> set[M] | None:
        """The members of a room (the live set: do not keep it across an await)."""
        return self._members.get(room_id)

    def spec(self, room_id: str) -> RoomSpec | None:
        return self._specs.get(room_id)

    @contextlib.asynccontextmanager
    async def _room(self, room_id: str) -> AsyncIterator[None]:
        """Hold the room's lock: its changes and their registry writes happen one at a time,
        in the order they were asked for (asyncio locks are fair)."""
        held = self._locks.get(room_id)
        if held is None:
            held = self._locks[room_id] = [asyncio.Lock(), 0]
        held[1] += 1
        try:
            async with held[0]:
                yield
        finally:
            held[1] -= 1
            if not held[1]:
                del self._locks[room_id]

    async def join(self, member: M, spec: RoomSpec) -> bytes | None:
        """Add `member` to the room; None if it was already in, else the room feed entry the
        workers must apply before events are routed here (b"" if this gateway held the room
        already). Raises `ProtocolError` (`service_unavailable`) when the room cannot be
        registered."""
        room_id = spec.room_id
        async with self._room(room_id):
            members = self._members.get(room_id)
            if members is not None and member in members:
                return None
            feed_id = b""
            try:
                if members is None:
                    joined = await self._registry.join_room(self._gateway_id, spec, 1)
                    if joined is None:
                        raise RedisError("gateway not registered")
                    feed_id = joined
                    members = self._members[room_id] = set()
                    self._specs[room_id] = spec
                else:
                    await self._registry.set_room_count(self._gateway_id, room_id, len(members) + 1)
            except RedisError as exc:
                self._log.warning("gateway.subscribe.redis_failed", room=room_id, error=repr(exc))
                raise ProtocolError(
                    ErrorCode.SERVICE_UNAVAILABLE,
                    "The subscription could not be registered (Redis unavailable).",
                ) from None
            members.add(member)
            return feed_id

    async def leave(self, member: M, room_ids: list[str], *, registered: bool = True) -> None:
        """Remove `member` from rooms; a room left empty leaves the registry. A Redis failure
        is logged only: the next re-registration rewrites the holdings from this table. Not
        `registered` (the gateway deregistered, which took its rooms out of the registry):
        this table only."""
        for room_id in room_ids:
            async with self._room(room_id):
                members = self._members.get(room_id)
                if members is None or member not in members:
                    continue
                members.discard(member)
                if not registered:
                    if not members:
                        del self._members[room_id]
                        del self._specs[room_id]
                    continue
                try:
                    if members:
                        await self._registry.set_room_count(self._gateway_id, room_id, len(members))
                    else:
                        del self._members[room_id]
                        del self._specs[room_id]
                        await self._registry.leave_room(self._gateway_id, room_id)
                except RedisError as exc:
                    self._log.warning(
                        "gateway.unsubscribe.redis_failed", room=room_id, error=repr(exc)
                    )

    async def restore(self) -> None:
        """Register every room of the table again (after the gateway re-registered); each
        room under its lock, with its count then (a room joined or left meanwhile registers
        or leaves itself)."""
        for room_id in list(self._members):
            async with self._room(room_id):
                members = self._members.get(room_id)
                if members:
                    await self._registry.join_room(
                        self._gateway_id, self._specs[room_id], len(members)
                    )
