"""Resume and snapshots: what a subscription gets between its confirmation and live frames.

Positions. Workers record every event of a room in its history stream (`{p}:history:<room>`)
and stamp frames with the room's position: `<epoch>:<room tag>:<history entry id>`. The epoch
is made once per data set (`{p}:epoch`), so a position from before Redis lost its data is
recognised; the room tag (the room id's last 8 characters) stops a position of one room
from being used in another. Each history entry also names its predecessor (`p`), so a
replay can prove it is continuous: nothing trimmed, expired or unrecorded in between.

Resume (`replay`). A subscribe that carries a position gets, after the confirmation, the
room's events after it, in order, marked `replay`, or `recovered: false` when that cannot
be done in full: a position of another epoch or room, in the future, older than the
history, or further behind than `max_replay` frames or `max_replay_bytes`. Recovery is never
partial. Cost: one XRANGE of the events missed (plus one XREVRANGE when there are none).

Snapshots (`snapshot`). A new or resynced odds, predictions or sport subscription gets the
latest value of every conflation key its filters cover, kept by the workers per game
(`{p}:latest:<game>`), in one frame, before any live update.

Seam. The room is joined before history and snapshot are read, and live frames for the
connection are held meanwhile (`Connection`), then released minus what the replay or the
snapshot already gave: no gap, no duplicate, and never an older value after a newer one.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from typing import Any

import orjson
from pydantic import ValidationError
from redis.asyncio import Redis

from oddstream.gateway.frames import payload_of
from oddstream.shared.events import EventKind, ingest_event_adapter, routing_of
from oddstream.shared.keys import Keys
from oddstream.shared.protocol import (
    SPORT_TYPES,
    ErrorCode,
    ProtocolError,
    ServerMessageType,
    SubscriptionType,
    utc_now_iso,
)
from oddstream.shared.rooms import RoomSpec
from oddstream.shared.settings import Settings
from oddstream.shared.streams import event_order, event_time

__all__ = ["History", "Replay", "Snapshot", "after_seam", "parse_position"]

_POSITION = re.compile(r"^([0-9a-f]{1,32}):([0-9a-f]{8}):(\d{1,20})-(\d{1,20})$")

#: Event kinds a snapshot of each type holds; types not listed get none (arbitrage alerts
#: expire, analytics and alerts are a feed of happenings, portfolio uses offline history).
SNAPSHOT_KINDS: dict[SubscriptionType, frozenset[EventKind]] = {
    SubscriptionType.ODDS_UPDATES: frozenset({EventKind.ODDS}),
    SubscriptionType.PREDICTIONS: frozenset({EventKind.PREDICTIONS}),
    **{t: frozenset({EventKind.ODDS, EventKind.PREDICTIONS}) for t in SPORT_TYPES},
}

EntryId = tuple[int, int]


def _entry_id(raw: bytes | str) -> EntryId:
    text = raw.decode() if isinstance(raw, bytes) else raw
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


def room_tag(room_id: str) -> str:
    return room_id[-8:]


def parse_position(text: str) -> tuple[str, str, EntryId]:
    """(epoch, room tag, history id) of a position; `invalid_position` if it is none."""
    match = _POSITION.match(text)
    if match is None:
        raise ProtocolError(
            ErrorCode.INVALID_POSITION, f"{text[:60]!r} is not a position this gateway gave."
        )
    return match[1], match[2], (int(match[3]), int(match[4]))


@dataclass(slots=True)
class Replay:
    """What a resume gives: the position to confirm, whether it recovered, the frames."""

    position: str
    recovered: bool | None
    frames: list[bytes] = field(default_factory=list)
    event_ids: set[bytes] = field(default_factory=set)


@dataclass(slots=True)
class Snapshot:
    """One `snapshot` frame, and per conflation key the event id it holds (for the seam)."""

    frame: bytes
    latest: dict[bytes, bytes]
    events: int


class History:
    """Reads rooms' histories and latest values for one gateway."""

    def __init__(self, redis: Redis, keys: Keys, settings: Settings) -> None:
        self._redis = redis
        self._keys = keys
        self._max_replay = settings.max_replay
        self._max_bytes = settings.max_replay_bytes
        self._enabled = settings.history_seconds > 0

    async def epoch(self) -> str:
        """The data set's epoch (made here if no worker made it yet)."""
        await self._redis.set(self._keys.epoch, uuid.uuid4().hex[:12], nx=True)
        raw: Any = await self._redis.get(self._keys.epoch)
        return raw.decode() if raw else ""

    def position(self, epoch: str, room_id: str, entry: EntryId) -> str:
        return f"{epoch}:{room_tag(room_id)}:{entry[0]}-{entry[1]}"

    async def replay(self, spec: RoomSpec, position: str | None) -> Replay:
        """The room's events after `position` (already parsed as well formed), or why not."""
        epoch = await self.epoch()
        room = spec.room_id
        history = self._keys.history(room)
        if position is None or not self._enabled:
            top: Any = await self._redis.xrevrange(history, count=1) if self._enabled else []
            tail = _entry_id(top[0][0]) if top else (0, 0)
            return Replay(self.position(epoch, room, tail), None)
        their_epoch, tag, after = parse_position(position)
        if their_epoch != epoch or tag != room_tag(room):
            return await self._not_recovered(epoch, room)
        start = f"({after[0]}-{after[1]}"
        entries: Any = await self._redis.xrange(history, start, "+", count=self._max_replay + 1)
        if not entries:
            top = await self._redis.xrevrange(history, count=1)
            if top and _entry_id(top[0][0]) == after:
                return Replay(position, True)  # nothing missed
            return await self._not_recovered(epoch, room)
        first_prev = _entry_id(entries[0][1].get(b"p", b"0-0"))
        if first_prev != after or len(entries) > self._max_replay:
            return await self._not_recovered(epoch, room)
        replay = Replay(position, True)
        size = 0
        for entry_id, fields in entries:
            entry = _entry_id(entry_id)
            pos = self.position(epoch, room, entry)
            frame = self._frame(room, pos, fields)
            size += len(frame)
            if size > self._max_bytes:
                return await self._not_recovered(epoch, room)
            replay.frames.append(frame)
            replay.event_ids.add(fields[b"e"])
            replay.position = pos
        return replay

    async def _not_recovered(self, epoch: str, room: str) -> Replay:
        top: Any = await self._redis.xrevrange(self._keys.history(room), count=1)
        tail = _entry_id(top[0][0]) if top else (0, 0)
        return Replay(self.position(epoch, room, tail), False)

    @staticmethod
    def _frame(room: str, position: str, fields: dict[bytes, bytes]) -> bytes:
        event_id = fields[b"e"]
        return (
            b'{"type":"' + fields[b"t"] + b'","status":"success","event_id":"' + event_id
            + b'","timestamp":"' + event_time(event_id) + b'","rooms":' + orjson.dumps([room])
            + b',"positions":' + orjson.dumps({room: position}) + b',"replay":true,"data":'
            + fields[b"d"] + b"}"
        )  # fmt: skip

    async def snapshot(self, spec: RoomSpec, position: str) -> Snapshot | None:
        """The latest value of every conflation key the room's filters cover, or None for a
        type that has no snapshot."""
        kinds = SNAPSHOT_KINDS.get(spec.type)
        if kinds is None:
            return None
        games = await self._games(spec)
        values: list[dict[bytes, bytes]] = []
        if games:
            async with self._redis.pipeline(transaction=False) as pipe:
                for game in games:
                    pipe.hgetall(self._keys.latest(game))
                values = await pipe.execute()
        events: list[bytes] = []
        latest: dict[bytes, bytes] = {}
        size, truncated = 0, False
        for per_game in values:
            for key, value in sorted(per_game.items()):
                event = _covered(spec, kinds, value)
                if event is None:
                    continue
                if size + len(value) > self._max_bytes:
                    truncated = True
                    break
                size += len(value)
                events.append(value)
                latest[key] = event
        frame = (
            b'{"type":"' + ServerMessageType.SNAPSHOT.value.encode() + b'","status":"success",'
            b'"timestamp":"' + utc_now_iso().encode() + b'","room":' + orjson.dumps(spec.room_id)
            + b',"position":' + orjson.dumps(position) + b',"data":{"subscription_type":"'
            + spec.type.value.encode() + b'","truncated":' + (b"true" if truncated else b"false")
            + b',"events":[' + b",".join(events) + b"]}}"
        )  # fmt: skip
        return Snapshot(frame, latest, len(events))

    async def _games(self, spec: RoomSpec) -> list[str]:
        wanted = spec.get("game_id")
        if isinstance(wanted, tuple):
            return list(wanted)
        sport_filter = spec.get("sport")
        if spec.type.sport is not None:
            sports = [spec.type.sport]
        elif isinstance(sport_filter, tuple):
            sports = list(sport_filter)
        else:
            members: Any = await self._redis.smembers(self._keys.sports)
            sports = sorted(m.decode() for m in members)
        if not sports:
            return []
        union: Any = await self._redis.sunion([self._keys.games(s) for s in sports])
        return sorted(g.decode() for g in union)


def _covered(spec: RoomSpec, kinds: frozenset[EventKind], value: bytes) -> bytes | None:
    """The event id of a latest value the room covers, else None."""
    try:
        item = orjson.loads(value)
        event = ingest_event_adapter.validate_python(item["data"])
    except (orjson.JSONDecodeError, KeyError, TypeError, ValidationError):
        return None
    routing = routing_of(event)
    if routing.kind not in kinds or not spec.matches(routing):
        return None
    event_id = item.get("event_id")
    return event_id.encode() if isinstance(event_id, str) else None


def after_seam(
    held: list[tuple[bytes, bytes]], replay: Replay, snapshot: Snapshot | None
) -> list[tuple[bytes, bytes]]:
    """The live frames held while a subscription caught up, minus what it already got: an
    event the replay or snapshot carried, or a value older than the snapshot's for its key
    (events of one conflation key share a partition, so their ids compare in ingest order)."""
    if not held or (not replay.event_ids and snapshot is None):
        return held
    latest = snapshot.latest if snapshot is not None else {}
    kept = []
    for key, frame in held:
        try:
            event_id = orjson.loads(payload_of(frame)).get("event_id")
        except orjson.JSONDecodeError:  # pragma: no cover - frames are ours
            event_id = None
        if isinstance(event_id, str):
            eid = event_id.encode()
            if eid in replay.event_ids:
                continue
            newest = latest.get(key) if key else None
            if newest is not None and event_order(eid) <= event_order(newest):
                continue
        kept.append((key, frame))
    return kept
