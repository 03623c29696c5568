"""Positions: where a client is in a room, one part per shard of the data path.

A room's events of one shard (`shared.keys`) are recorded in that shard's history of the
room, whose entry ids are the part of that shard: `<epoch>:<room tag>:<history entry id>`. A
position is its parts in shard order, joined by commas; with one shard (one Redis) it is one
part, as it always was. The epoch is the shard's (it changes when that shard's Redis loses its
data); the room tag (the room id's last 8 characters) stops a position of one room from being
used in another. A part is `-` when it is not known (a frame stamped while a room was being
joined here, before any catch-up told this gateway where the room was; such a position is
never recovered).

Workers stamp each frame with its own shard's part only; with more than one shard this
gateway makes the whole position (`RoomPositions.stamp`): per room it keeps the newest part
of each shard it has delivered, and writes them all into the frame, so every data frame
carries a position a client can resume from, opaque as ever. Within a shard, frames reach a
gateway in history order (one inbox per shard), so a part only grows.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass

import orjson

from oddstream.shared.protocol import ErrorCode, ProtocolError
from oddstream.shared.streams import entry_order

__all__ = [
    "UNKNOWN",
    "EntryId",
    "Part",
    "Position",
    "RoomPositions",
    "newer",
    "room_tag",
]

EntryId = tuple[int, int]

#: The text of a part this gateway does not know.
UNKNOWN = "-"

_PART = re.compile(r"^([0-9a-f]{1,32}):([0-9a-f]{8}):(\d{1,20})-(\d{1,20})$")


def room_tag(room_id: str) -> str:
    return room_id[-8:]


@dataclass(frozen=True, slots=True)
class Part:
    """One shard's part of a position: the shard's epoch and a history entry id."""

    epoch: str
    entry: EntryId

    def render(self, tag: str) -> str:
        return f"{self.epoch}:{tag}:{self.entry[0]}-{self.entry[1]}"


def newer(old: Part | None, new: Part) -> Part:
    """The later of two parts of one shard: the new one when its epoch differs (the shard's
    data was lost: what came before means nothing)."""
    if old is None or old.epoch != new.epoch or new.entry > old.entry:
        return new
    return old


@dataclass(frozen=True, slots=True)
class Position:
    """A room's position: its tag and one part per shard (None: not known)."""

    tag: str
    parts: tuple[Part | None, ...]

    @classmethod
    def parse(cls, text: str) -> Position:
        """A position as a client sends it back; `invalid_position` if it is none this
        gateway (or any of its deployment) could have given."""
        tag: str | None = None
        parts: list[Part | None] = []
        for piece in text.split(","):
            if piece == UNKNOWN:
                parts.append(None)
                continue
            match = _PART.match(piece)
            if match is None or (tag is not None and match[2] != tag):
                raise ProtocolError(
                    ErrorCode.INVALID_POSITION,
                    f"{text[:60]!r} is not a position this gateway gave.",
                )
            tag = match[2]
            parts.append(Part(match[1], (int(match[3]), int(match[4]))))
        if tag is None:
            raise ProtocolError(
                ErrorCode.INVALID_POSITION, f"{text[:60]!r} is not a position this gateway gave."
            )
        return cls(tag, tuple(parts))

    def render(self) -> str:
        return ",".join(UNKNOWN if p is None else p.render(self.tag) for p in self.parts)

    def merged(self, other: Position) -> Position:
        """Per shard, the later part of the two (same room)."""
        return Position(
            self.tag,
            tuple(
                b if a is None else a if b is None else newer(a, b)
                for a, b in zip(self.parts, other.parts, strict=True)
            ),
        )


def part_of(text: str) -> Part:
    """A worker's one-part position (`<epoch>:<tag>:<id>`)."""
    epoch, _, rest = text.partition(":")
    _, _, entry = rest.partition(":")
    return Part(epoch, entry_order(entry))


class RoomPositions:
    """This gateway's newest part per shard of each room it delivers (more than one shard
    only): what it writes into a frame as the room's whole position."""

    def __init__(self, shards: int) -> None:
        self.shards = shards
        self._rooms: dict[str, list[Part | None]] = {}

    def seed(self, room_id: str, position: Position) -> None:
        """Parts a catch-up read for the room, for the shards not known here yet. Never
        raises a known part: an older member may still be owed the frames in between."""
        parts = self._rooms.get(room_id)
        if parts is None:
            self._rooms[room_id] = list(position.parts)
            return
        for shard, part in enumerate(position.parts):
            if parts[shard] is None:
                parts[shard] = part

    def forget(self, room_id: str) -> None:
        """The room has no member here any more."""
        self._rooms.pop(room_id, None)

    def position(self, room_id: str) -> Position | None:
        parts = self._rooms.get(room_id)
        return None if parts is None else Position(room_tag(room_id), tuple(parts))

    def stamp(self, shard: int, frame: bytes, held: Collection[str]) -> bytes:
        """The frame with the whole position of each of its rooms `held` here (with members),
        their part of `shard` taken from the frame; the other rooms' positions are left as
        the worker wrote them (no member here reads them). A frame without positions is
        returned as it is."""
        start = frame.find(b',"positions":{')
        if start < 0:
            return frame
        end = frame.index(b"}", start)
        given: dict[str, str] = orjson.loads(frame[start + 13 : end + 1])
        whole: dict[str, str] = {}
        for room_id, text in given.items():
            if room_id not in held:
                whole[room_id] = text
                continue
            parts = self._rooms.get(room_id)
            if parts is None:
                parts = self._rooms[room_id] = [None] * self.shards
            parts[shard] = newer(parts[shard], part_of(text))
            whole[room_id] = Position(room_tag(room_id), tuple(parts)).render()
        return frame[: start + 13] + orjson.dumps(whole) + frame[end + 1 :]
