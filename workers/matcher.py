"""The worker's in-memory room index: which rooms (and gateways) an event belongs to.

Rooms are indexed per subscription type under their most selective filter
(game_id > player > sportsbook > sport > none), so matching an event looks at a handful of
buckets, then checks each candidate's full filter with `RoomSpec.matches`. The index is fed
by the registry snapshot and change feed (`shared.registry`).
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Iterator
from functools import lru_cache

from oddstream.shared.events import EventKind, Routing
from oddstream.shared.protocol import SPORT_TYPES, SubscriptionType
from oddstream.shared.registry import FeedEntry, RoomHolding
from oddstream.shared.rooms import KINDS_OF_TYPE, RoomSpec

__all__ = ["RoomIndex"]

_INDEXED_DIMENSIONS = ("game_id", "player", "sportsbook", "sport")

#: Non-sport subscription types that receive each event kind; sport types are added per event.
_PLAIN_TYPES_OF_KIND: dict[EventKind, tuple[SubscriptionType, ...]] = {
    kind: tuple(t for t, kinds in KINDS_OF_TYPE.items() if kind in kinds and t not in SPORT_TYPES)
    for kind in EventKind
}


@lru_cache(maxsize=1024)  # sports are free text: bounded
def _types_of_sport(kind: EventKind, sport: str) -> tuple[SubscriptionType, ...]:
    """The room types an event of a kind and sport can match, worked out once per kind and
    sport, not per event (the enum lookup by value was ~1 µs per event)."""
    types = _PLAIN_TYPES_OF_KIND[kind]
    with contextlib.suppress(ValueError):
        sport_type = SubscriptionType(sport.lower())
        if sport_type in SPORT_TYPES:
            return (*types, sport_type)
    return types


class _TypeIndex:
    """Rooms of one subscription type, bucketed by one filter dimension each."""

    __slots__ = ("buckets", "rooms", "unfiltered")

    def __init__(self) -> None:
        self.rooms: set[str] = set()
        self.unfiltered: set[str] = set()
        self.buckets: dict[str, dict[str, set[str]]] = {d: {} for d in _INDEXED_DIMENSIONS}

    @staticmethod
    def _placement(spec: RoomSpec) -> tuple[str, tuple[str, ...]] | None:
        for dimension in _INDEXED_DIMENSIONS:
            value = spec.get(dimension)
            if isinstance(value, tuple):
                return dimension, value
        return None

    def add(self, room_id: str, spec: RoomSpec) -> None:
        if room_id in self.rooms:
            return
        self.rooms.add(room_id)
        placement = self._placement(spec)
        if placement is None:
            self.unfiltered.add(room_id)
            return
        dimension, values = placement
        for value in values:
            self.buckets[dimension].setdefault(value, set()).add(room_id)

    def remove(self, room_id: str, spec: RoomSpec) -> None:
        if room_id not in self.rooms:
            return
        self.rooms.discard(room_id)
        placement = self._placement(spec)
        if placement is None:
            self.unfiltered.discard(room_id)
            return
        dimension, values = placement
        bucket = self.buckets[dimension]
        for value in values:
            members = bucket.get(value)
            if members is not None:
                members.discard(room_id)
                if not members:
                    del bucket[value]

    def candidates(self, event: Routing) -> Iterator[str]:
        yield from self.unfiltered
        if event.game_id is not None:
            yield from self.buckets["game_id"].get(event.game_id, ())
        if event.player is not None:
            yield from self.buckets["player"].get(event.player, ())
        for book in event.sportsbooks:
            yield from self.buckets["sportsbook"].get(book, ())
        if event.sport is not None:
            yield from self.buckets["sport"].get(event.sport, ())
        else:
            # Sport-less alerts reach sport-filtered alert rooms too (see shared.filters).
            for members in self.buckets["sport"].values():
                yield from members


class RoomIndex:
    """Room id -> (spec, holding gateways), plus the per-type match index."""

    def __init__(self, *, linger: bool = False) -> None:
        self.rooms: dict[str, RoomHolding] = {}
        #: Rooms no gateway holds any more, still matched so their history is recorded
        #: (`linger`: the registry keeps them for the resume window, then feeds `expire`).
        self.lingering: dict[str, RoomSpec] = {}
        self._linger = linger
        self._types: dict[SubscriptionType, _TypeIndex] = defaultdict(_TypeIndex)
        #: Changes with every change to the index: what was matched against an older version
        #: may be out of date (`Worker` keeps its answers per routing until it changes).
        self.version = 0

    def __len__(self) -> int:
        return len(self.rooms)

    def load(self, rooms: dict[str, RoomHolding]) -> None:
        """Replace the whole index (after a snapshot); rooms without holders linger."""
        self.version += 1
        self.rooms = {}
        self.lingering = {}
        self._types = defaultdict(_TypeIndex)
        for room_id, holding in rooms.items():
            for gateway in holding.gateways:
                self.join(room_id, holding.spec, gateway)
            if not holding.gateways and self._linger:
                self.lingering[room_id] = holding.spec
                self._types[holding.spec.type].add(room_id, holding.spec)

    def join(self, room_id: str, spec: RoomSpec, gateway: str) -> None:
        self.version += 1
        holding = self.rooms.get(room_id)
        if holding is None:
            holding = self.rooms[room_id] = RoomHolding(spec)
            if self.lingering.pop(room_id, None) is None:
                self._types[spec.type].add(room_id, spec)
        holding.gateways.add(gateway)

    def leave(self, room_id: str, gateway: str) -> None:
        self.version += 1
        holding = self.rooms.get(room_id)
        if holding is None:
            return
        holding.gateways.discard(gateway)
        if not holding.gateways:
            del self.rooms[room_id]
            if self._linger:
                self.lingering[room_id] = holding.spec
            else:
                self._types[holding.spec.type].remove(room_id, holding.spec)

    def expire(self, room_id: str) -> None:
        """A lingering room's time is up: stop matching it."""
        self.version += 1
        spec = self.lingering.pop(room_id, None)
        if spec is not None:
            self._types[spec.type].remove(room_id, spec)

    def drop_gateway(self, gateway: str) -> None:
        for room_id in [r for r, h in self.rooms.items() if gateway in h.gateways]:
            self.leave(room_id, gateway)

    def apply(self, entry: FeedEntry) -> None:
        if entry.op == "join" and entry.room and entry.spec:
            self.join(entry.room, entry.spec, entry.gateway)
        elif entry.op == "leave" and entry.room:
            self.leave(entry.room, entry.gateway)
        elif entry.op == "gateway_down":
            self.drop_gateway(entry.gateway)
        elif entry.op == "expire" and entry.room:
            self.expire(entry.room)

    def _types_for(self, event: Routing) -> tuple[SubscriptionType, ...]:
        if event.broadcast_to is not None:
            return (event.broadcast_to,)
        if event.sport is None or event.kind is EventKind.PORTFOLIO:
            return _PLAIN_TYPES_OF_KIND[event.kind]
        return _types_of_sport(event.kind, event.sport)

    def match(self, event: Routing) -> dict[str, list[str]]:
        """Matching rooms grouped by the gateway holding them: gateway -> room ids."""
        return self.match_all(event)[0]

    def match_all(self, event: Routing) -> tuple[dict[str, list[str]], list[str]]:
        """Matching held rooms by gateway, and every matching room (lingering ones too)."""
        by_gateway: dict[str, list[str]] = {}
        matched: list[str] = []
        for type_ in self._types_for(event):
            index = self._types.get(type_)
            if index is None:
                continue
            if event.broadcast_to is not None:
                candidates: Iterator[str] | set[str] = index.rooms
            else:
                candidates = index.candidates(event)
            seen: set[str] = set()
            for room_id in candidates:
                if room_id in seen:
                    continue
                seen.add(room_id)
                holding = self.rooms.get(room_id)
                spec = holding.spec if holding is not None else self.lingering[room_id]
                if spec.matches(event):
                    matched.append(room_id)
                    for gateway in holding.gateways if holding is not None else ():
                        by_gateway.setdefault(gateway, []).append(room_id)
        return by_gateway, matched
