"""Resume and snapshots: what a subscription gets between its confirmation and live frames.

Positions (`gateway.positions`). Workers record every event of a room in the room's history
stream of the event's shard (`{p.s}:history:<room>`) and stamp frames with that shard's part
of the room's position: `<epoch>:<room tag>:<history entry id>`; a position has one part per
shard. The epoch is made once per data set of a shard (`{p.s}:epoch`), so a position from
before Redis lost its data is recognised; the room tag (the room id's last 8 characters)
stops a position of one room from being used in another. A history is only trimmed from its
oldest end and is deleted when its room stops being recorded, so a replay is continuous
exactly when each part's own entry is still there. Everything below holds per shard: a
resume reads each shard's history of the room (one MULTI each, concurrently) and recovers
only when every shard does; the replay merges the shards' events by time.

Empty rooms. A position taken while the room's history was empty names no entry: it is
`0-<T>`, T being Redis's time then (ms, read in the MULTI that saw the history empty). Every
entry written later has a larger id, so what it missed is the whole history; it is
recovered only when no history it may have missed is gone (`_empty_room_continues`):
(a) it is younger than the room's retention (the live window; offline-delivery rooms: the
offline retention), which covers a history that expired by its TTL since T; (b) no
tombstone says a history of the room was deleted with its room (`Registry.expire_rooms`)
at or after T; (c) the history is empty, or its first entry, marked `f` by the commit that
started it, is still there. A position from before positions of empty rooms held a time
(`0-0`) fails (a), and so does that of a room that stayed empty longer than its retention:
nothing proves that no history came and went meanwhile, and the client is resynced. A
resume that finds the room still empty confirms a position of now.

Resume (`replay`). A subscribe that carries a position gets, after the confirmation, the
room's events after it, in order, marked `replay`, or `recovered: false` when that cannot
be done in full: a position of another epoch or room, in the future, older than the
history, that missed an event older than a live room's window, that an empty room's rules
refuse, or further behind than `max_replay` frames or `max_replay_bytes`. Recovery is never
partial. Cost, per shard: one script (`lua/read_after.lua`, whole as a MULTI) of an XRANGE
of the events missed, an XRANGE of the position's entry, a GET of the room's tombstone and
a TIME (constant work besides what was missed).

Snapshots (`snapshot`). A new or resynced odds, predictions or sport subscription gets the
latest value of every conflation key its filters cover, kept by the workers per game
(`{p.s}:latest:<game>`, in the game's shard), in one frame, before any live update.

Seam. The room is joined, and the gateway waits until every live worker routes it here
(`Registry.wait_applied`), before history and snapshot are read: every event is then either
in what the catch-up read or on its way to this gateway's inbox. Live frames for the
connection are held during the catch-up (`Connection.held`); afterwards, until the room's
live frames pass the position the catch-up read to (`Seam`), frames that the replay or the
snapshot already covered are dropped: no gap, no duplicate, never an older value after a
newer one.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from pydantic import ValidationError
from redis.asyncio import Redis

from oddstream.gateway.frames import Frame, Item
from oddstream.gateway.positions import EntryId, Part, Position, room_tag
from oddstream.shared.events import EventKind, ingest_event_adapter, routing_of
from oddstream.shared.keys import Keys
from oddstream.shared.protocol import (
    SPORT_TYPES,
    ProtocolError,
    ServerMessageType,
    SubscriptionType,
    utc_now_iso,
)
from oddstream.shared.rooms import RoomSpec, keeps_offline_history
from oddstream.shared.settings import Settings
from oddstream.shared.streams import entry_order, event_order, event_time

__all__ = ["History", "Replay", "Seam", "Snapshot", "parse_position", "seam_of", "through_seams"]

#: Event kinds a snapshot of each type holds; types not listed get none (arbitrage alerts
#: expire, analytics and alerts are a feed of happenings, portfolio uses offline history).
SNAPSHOT_KINDS: dict[SubscriptionType, frozenset[EventKind]] = {
    SubscriptionType.ODDS_UPDATES: frozenset({EventKind.ODDS}),
    SubscriptionType.PREDICTIONS: frozenset({EventKind.PREDICTIONS}),
    **{t: frozenset({EventKind.ODDS, EventKind.PREDICTIONS}) for t in SPORT_TYPES},
}


def parse_position(text: str) -> Position:
    """A position as a client sent it; `invalid_position` if it is none."""
    return Position.parse(text)


@dataclass(slots=True)
class Replay:
    """What a resume gives: the position to confirm, whether it recovered, the frames, and
    `tail`: per shard, the history id up to which this catch-up read (the seam, see `Seam`).
    `position` is "" when it is not known (Redis failed during the catch-up): confirmed as
    null."""

    position: str
    recovered: bool | None
    frames: list[bytes] = field(default_factory=list)
    event_ids: set[bytes] = field(default_factory=set)
    tail: list[EntryId] = field(default_factory=list)


@dataclass(slots=True)
class Snapshot:
    """One `snapshot` frame, per conflation key the event id it holds, and per shard the
    history id read after it: frames up to there may be older than the snapshot (see
    `Seam`)."""

    frame: bytes
    latest: dict[bytes, bytes]
    events: int
    tail: list[EntryId] = field(default_factory=list)


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


@dataclass(slots=True)
class _Read:
    """One shard's catch-up read of a room: whether its history continues from the
    position's part, the entries after it, and Redis's time (ms)."""

    own: bool
    entries: list[Any]
    now: int


class History:
    """Reads rooms' histories and latest values for one gateway."""

    def __init__(self, redis: Redis, keys: Keys, settings: Settings) -> None:
        self._redis = redis
        self._keys = keys
        self._shards = keys.shards
        self._max_replay = settings.max_replay
        self._max_bytes = settings.max_replay_bytes
        self._enabled = settings.history_seconds > 0
        self._window = int(settings.history_seconds * 1000)  # ms, as the commit trims live rooms
        self._offline_window = int(settings.offline_history_seconds * 1000)  # ms, the TTL
        self._read_after_script = redis.register_script(_lua("read_after"))
        self._tail_script = redis.register_script(_lua("tail"))

    async def epochs(self) -> list[str]:
        """Each shard's epoch (made here if no worker made it yet). Read on every subscribe,
        never cached: a gateway that kept an epoch across a loss of Redis's data would give
        old-epoch positions that its own later reads could take for the new data's. One
        round trip (per shard `SET NX` then `GET`, in order on one connection)."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for shard in range(self._shards):
                pipe.set(self._keys.epoch(shard), uuid.uuid4().hex[:12], nx=True)
                pipe.get(self._keys.epoch(shard))
            replies = await pipe.execute()
        return [raw.decode() if raw else "" for raw in replies[1::2]]

    def position(self, epochs: list[str], room_id: str, entries: list[EntryId]) -> str:
        parts = tuple(Part(e, entry) for e, entry in zip(epochs, entries, strict=True))
        return Position(room_tag(room_id), parts).render()

    async def replay(self, spec: RoomSpec, position: str | None) -> Replay:
        """The room's events after `position` (already parsed as well formed), or why not."""
        epochs = await self.epochs()
        room = spec.room_id
        if not self._enabled:  # no history, no resume
            zero = [(0, 0)] * self._shards
            return Replay(self.position(epochs, room, zero), None, tail=zero)
        if position is None:
            tail = await self._tails(room)
            return Replay(self.position(epochs, room, tail), None, tail=tail)
        given = Position.parse(position)
        parts = given.parts
        if (
            given.tag != room_tag(room)
            or len(parts) != self._shards
            or any(p is None or p.epoch != e for p, e in zip(parts, epochs, strict=True))
        ):
            return await self._not_recovered(epochs, room)
        afters = [p.entry for p in parts if p is not None]
        reads = await asyncio.gather(
            *(self._read_after(shard, room, after) for shard, after in enumerate(afters))
        )
        missed = sum(len(r.entries) for r in reads)
        if (
            not all(r.own for r in reads)
            or missed > self._max_replay
            or any(self._too_old(room, r.entries, r.now) for r in reads)
        ):
            return await self._not_recovered(epochs, room)
        # Where each shard's part stands: a part of a room still empty is its time of now,
        # as a new one's; else the part given, until a replayed entry moves it.
        running = [
            (0, r.now) if after[0] == 0 and not r.entries else after
            for after, r in zip(afters, reads, strict=True)
        ]
        if not missed:  # nothing missed
            return Replay(self.position(epochs, room, running), True, tail=running)
        replay = Replay(position, True)
        # What every frame of this replay shares, built once: per entry only its type, event
        # id, time, position and data differ.
        rooms = b'","rooms":' + orjson.dumps([room]) + b',"positions":{' + orjson.dumps(room)
        tag = room_tag(room)
        texts = [f"{e}:{tag}:{a}-{b}".encode() for e, (a, b) in zip(epochs, running, strict=True)]
        prefixes = [f"{e}:{tag}:".encode() for e in epochs]
        # One shard's entries in their order; several shards' merged by time (their order
        # between shards is not promised, but is as near ingest order as the clocks allow).
        merged = sorted(
            (entry_order(entry_id), shard, entry_id, fields)
            for shard, r in enumerate(reads)
            for entry_id, fields in r.entries
        )
        size = 0
        for _, shard, entry_id, fields in merged:
            texts[shard] = prefixes[shard] + entry_id
            event_id = fields[b"e"]
            frame = (
                b'{"type":"' + fields[b"t"] + b'","status":"success","event_id":"' + event_id
                + b'","timestamp":"' + event_time(event_id) + rooms + b':"'
                + b",".join(texts) + b'"},"replay":true,"data":' + fields[b"d"] + b"}"
            )  # fmt: skip
            size += len(frame)
            if size > self._max_bytes:
                return await self._not_recovered(epochs, room)
            replay.frames.append(frame)
            replay.event_ids.add(event_id)
            running[shard] = entry_order(entry_id)
        replay.position = b",".join(texts).decode()
        replay.tail = running
        return replay

    async def _read_after(self, shard: int, room: str, after: EntryId) -> _Read:
        """Whether the room's history of `shard` continues from `after` (a position's
        history id), the entries after it (up to one more than `max_replay`) and Redis's time
        (ms)."""
        k = self._keys
        at = f"{after[0]}-{after[1]}"
        # One script: the entry at the position, the entries after it, the room's tombstone
        # and the time, from the same moment, or an event committed between two reads would
        # look like a gap. A history is only ever trimmed from its oldest end, so when the
        # position's own entry is still there nothing after it is missing; when it is not, it
        # was trimmed, expired with its room, lost with Redis's data, or never existed (forged).
        own, raw, gone, clock = await self._read_after_script(
            keys=[k.history(shard, room), k.history_gone(shard, room)],
            args=[at, self._max_replay + 1],
        )
        entries = _entries(raw)
        now = _ms(clock)
        if after[0] == 0:  # taken while the room was empty: it names no entry
            own = self._empty_room_continues(room, after[1], entries, gone, now)
        return _Read(bool(own), entries, now)

    def _empty_room_continues(
        self, room: str, taken: int, entries: list[Any], gone: bytes | None, now: int
    ) -> bool:
        """Whether a position taken at `taken` (Redis ms) while the room's history was empty
        still continues: no history written since is gone, and its first entry is there.

        Histories written after `taken` leave in two ways, each caught by one rule:
        - (a) by their TTL: the commit sets it (to the retention) only when it writes to the
          history, and a history that did not exist at `taken` was written to only after it.
          One that had expired by `now` got its last TTL at a write at `w >= taken` and
          expired at `w + retention <= now`: so `taken <= now - retention`, refused. (A
          position from the future is not one this gateway gave: refused too.)
        - (b) deleted with their room (`Registry.expire_rooms`, live rooms only) at or after
          `taken`: the deletion leaves a tombstone of its time for the live window; once that
          expired, `now > deleted + window >= taken + window` and (a) refuses.
        - (c) what is there now is whole: empty, or its first entry (marked `f` by the commit
          that started it) not trimmed.
        Entry ids and all three times are from Redis's clock."""
        retention = self._offline_window if keeps_offline_history(room) else self._window
        if not now - retention < taken <= now:
            return False  # (a)
        if gone is not None and int(gone) >= taken:
            return False  # (b)
        return not entries or b"f" in entries[0][1]  # (c)

    def _too_old(self, room: str, entries: list[Any], now: int) -> bool:
        """Whether the first event missed is older than a live room's window. The age trim is
        approximate (`XTRIM MINID ~` drops whole stream nodes), so such an event may still be
        there; the window is what the README promises, so it decides, not the trim's slack.
        Measured on Redis's clock (`now`, ms), as the trim is."""
        if not entries or keeps_offline_history(room):
            return False  # nothing missed; offline histories are kept by count and TTL only
        return entry_order(entries[0][0])[0] < now - self._window

    async def _tails(self, room: str) -> list[EntryId]:
        """Per shard, the room's last history id, or, when that history is empty, (0, Redis's
        time in ms): what a position taken now names (an empty room's, see
        `_empty_room_continues`). One MULTI per shard, so the time is the moment the history
        was seen empty."""
        return list(await asyncio.gather(*(self._tail(s, room) for s in range(self._shards))))

    async def _tail(self, shard: int, room: str) -> EntryId:
        top, now = await self._tail_script(keys=[self._keys.history(shard, room)])
        return entry_order(top[0][0]) if top else (0, _ms(now))

    async def _not_recovered(self, epochs: list[str], room: str) -> Replay:
        tail = await self._tails(room)
        return Replay(self.position(epochs, room, tail), False, tail=tail)

    async def snapshot(self, spec: RoomSpec, position: str) -> Snapshot | None:
        """The latest value of every conflation key the room's filters cover, or None for a
        type that has no snapshot."""
        kinds = SNAPSHOT_KINDS.get(spec.type)
        if kinds is None:
            return None
        k = self._keys
        by_shard: dict[int, list[str]] = {shard: [] for shard in range(self._shards)}
        for game in await self._games(spec):
            by_shard[k.game_shard(game)].append(game)
        # One round trip: per shard, the latest values of its games, then the room's history's
        # last id there, in that order (on one connection): frames up to that id may be older
        # than the snapshot (see `Seam`).
        async with self._redis.pipeline(transaction=False) as pipe:
            for shard, games in by_shard.items():
                for game in games:
                    pipe.hgetall(k.latest(game))
                pipe.xrevrange(k.history(shard, spec.room_id), count=1)
            replies = iter(await pipe.execute())
        values: list[dict[bytes, bytes]] = []
        tail: list[EntryId] = []
        for games in by_shard.values():
            values += [next(replies) for _ in games]
            top = next(replies)
            tail.append(entry_order(top[0][0]) if top else (0, 0))
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
        return Snapshot(frame, latest, len(events), tail)

    async def _games(self, spec: RoomSpec) -> list[str]:
        wanted = spec.get("game_id")
        if isinstance(wanted, tuple):
            return list(wanted)
        k = self._keys
        sport_filter = spec.get("sport")
        if spec.type.sport is not None:
            sports = [spec.type.sport]
        elif isinstance(sport_filter, tuple):
            sports = list(sport_filter)
        else:
            async with self._redis.pipeline(transaction=False) as pipe:
                for shard in range(self._shards):
                    pipe.smembers(k.sports(shard))
                members: list[set[bytes]] = await pipe.execute()
            sports = sorted({m.decode() for per_shard in members for m in per_shard})
        if not sports:
            return []
        # One SUNION per shard (its index is in its slot), not in a pipeline: a cluster's
        # pipeline takes no SUNION.
        unions: Any = await asyncio.gather(
            *(
                self._redis.sunion([k.games(shard, s) for s in sports])
                for shard in range(self._shards)
            )
        )
        return sorted({g.decode() for union in unions for g in union})


def _ms(clock: list[bytes]) -> int:
    """Milliseconds of a Redis `TIME` reply (seconds, microseconds) as a script returns it."""
    return int(clock[0]) * 1000 + int(clock[1]) // 1000


def _entries(raw: list[Any]) -> list[tuple[bytes, dict[bytes, bytes]]]:
    """Stream entries as a script returns them (id, flat field list), as redis-py's."""
    return [(entry_id, dict(zip(flat[::2], flat[1::2], strict=True))) for entry_id, flat in raw]


_SCRIPTS = Path(__file__).with_name("lua")


def _lua(name: str) -> str:
    """A gateway script from `gateway/lua/<name>.lua`."""
    return (_SCRIPTS / f"{name}.lua").read_text()


#: Seconds a seam keeps filtering a connection's frames at most: by then every inbox entry
#: written before the catch-up read has been fanned out.
SEAM_SECONDS = 5.0


@dataclass(slots=True)
class Seam:
    """Where a subscription's catch-up ended, for the live frames that follow it.

    Per shard, frames of the room at or before its part of `tail` (a history id) were
    written before the catch-up read, so the replay carried them (`replayed`), or the
    snapshot holds their key's value or a newer one (`latest`); such frames are dropped. A
    frame past its shard's part of `tail` ends the seam of that shard: positions only grow
    within a shard, so nothing after it can repeat what the catch-up gave. With more than
    one shard, frames written meanwhile get the catch-up's parts where theirs are older
    (`position`): this gateway's parts of a room it was already delivering may still lag a
    catch-up that read later than the frames on their way here."""

    room: str
    tail: list[EntryId]
    replayed: set[bytes]
    latest: dict[bytes, bytes]
    until: float
    position: Position | None = None
    passed: set[int] = field(default_factory=set)

    def covers(self, key: bytes, event_id: bytes) -> bool:
        """Whether the catch-up already gave this event, or a newer value of its key."""
        if event_id in self.replayed:
            return True
        newest = self.latest.get(key) if key else None
        return newest is not None and event_order(event_id) <= event_order(newest)


def through_seams(items: list[Item], seams: dict[str, Seam], now: float) -> list[Item]:
    """The frames a connection with open seams still needs; closes the seams they pass.
    Parses each frame (only while a seam is open: the moments after a subscribe)."""
    for room in [r for r, seam in seams.items() if now > seam.until]:
        del seams[room]
    kept = []
    for key, frame in items:
        if not seams:
            kept.append((key, frame))
            continue
        body = orjson.loads(frame.payload)
        event_id = body.get("event_id")
        positions = body.get("positions") or {}
        drop = False
        payload = frame.payload
        for room, text in positions.items():
            seam = seams.get(room)
            if seam is None:
                continue
            try:
                given = Position.parse(text)
            except ProtocolError:  # pragma: no cover - positions are ours
                continue
            shard = frame.shard if len(given.parts) > 1 else 0
            part = given.parts[shard] if shard < len(given.parts) else None
            if part is None or shard >= len(seam.tail):  # pragma: no cover - ours
                continue
            if part.entry > seam.tail[shard]:
                seam.passed.add(shard)  # the live stream of this shard passed the catch-up
                if len(seam.passed) == len(seam.tail):
                    del seams[room]
            elif isinstance(event_id, str) and seam.covers(key, event_id.encode()):
                drop = True
            if seam.position is not None and not drop:
                merged = given.merged(seam.position)
                if merged != given:
                    label = orjson.dumps(room) + b':"'
                    payload = payload.replace(
                        label + text.encode() + b'"', label + merged.render().encode() + b'"', 1
                    )
        if drop:
            continue
        kept.append((key, frame if payload is frame.payload else Frame(payload, frame.shard)))
    return kept


def seam_of(spec: RoomSpec, replay: Replay, snapshot: Snapshot | None, now: float) -> Seam:
    tail = replay.tail
    if snapshot is not None:
        tail = [max(a, b) for a, b in zip(replay.tail, snapshot.tail, strict=True)]
    position = None
    if len(tail) > 1 and replay.position:
        position = Position.parse(replay.position)
    return Seam(
        spec.room_id,
        tail,
        replay.event_ids,
        snapshot.latest if snapshot is not None else {},
        now + SEAM_SECONDS,
        position,
    )
