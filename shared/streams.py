"""What travels through Redis Streams: ingest entries and gateway inbox entries.

Ingest entries hold one event as JSON in `EVENT_FIELD`. An inbox entry is a batch that a
worker (or a management call) writes for one gateway, read by that gateway only. Each item of
the batch is one of four distinct types:

- `Delivery`, data: a pre-built frame (serialized once per event), the comma-separated rooms
  it matched on the receiving gateway, its message type, and its conflation key;
- `Canary`, control: the gateway's own pipeline probe coming back, with its send time;
- `Revocation`, control: close every connection of this user;
- `CounterRequest`, control: another gateway answering `/ws/v2/connections` asks for the live
  counters of some of this gateway's connections, to be pushed to a reply list.

An inbox entry comes in one of two wire formats; gateways read both.

- **Compact** (what workers write: deliveries and canaries): `N` (count), then for each item i
  one field `<i>` (`0`, `1`, ...) whose value is the item's parts joined by the unit separator
  0x1F: a delivery `<type>␟<rooms>␟<frame>[␟<key>]` (the key absent when every event must be
  delivered), a canary `canary␟<send time>`. Neither a message type, a room id nor a JSON frame
  (whose strings escape control characters) holds 0x1F; the key, last, may. One field per item
  instead of four: adding items to the entry and the inbox `XADD` were a third of the commit
  script's time in Redis.
- **Fields** (what `encode_inbox_entry` writes: gateways' revocations and counter requests,
  and workers before the compact format; kept so that gateways read both during an upgrade):
  `n` (count), then for each item i, `t<i>` (its type: a server message type for data,
  `canary` or `revoke` for control) and its fields: data `r<i>` rooms, `f<i>` frame, `k<i>`
  conflation key (absent when every event must be delivered); canary `s<i>` send time (Unix
  seconds); revocation `u<i>` user; counter request (`counters`) `y<i>` reply key, `c<i>`
  comma-separated client ids.

Upgrades: gateways first (they read both formats), then workers.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache

__all__ = [
    "EVENT_FIELD",
    "STAMP_FIELD",
    "Canary",
    "CounterRequest",
    "Delivery",
    "InboxItem",
    "Revocation",
    "decode_inbox_entry",
    "encode_compact_entry",
    "encode_inbox_entry",
    "entry_order",
    "event_id",
    "event_order",
    "event_time",
    "game_partition_key",
    "partition_for",
]

#: The ingest stream-entry field holding the event JSON.
EVENT_FIELD = b"e"
#: The ingest stream-entry field with the stamp of the schema the event was validated with
#: (`events.SCHEMA_STAMP`); absent on entries other writers add.
STAMP_FIELD = b"v"


def partition_for(key: str, partitions: int) -> int:
    """The ingest partition of an ordering key (stable across processes and restarts)."""
    return zlib.crc32(key.encode()) % partitions


def game_partition_key(game_id: str) -> str:
    """The ordering key of a game's events (see `shared.events.partition_key`)."""
    return f"game|{game_id}"


def event_id(partition: int, entry_id: bytes) -> bytes:
    """An event's id, unique across partitions: `<partition>:<stream entry id>`."""
    return b"%d:%s" % (partition, entry_id)


def entry_order(entry_id: bytes | str) -> tuple[int, int]:
    """(ms, seq) of a stream entry id, which compare in the stream's order."""
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


def event_order(event_id: bytes) -> tuple[int, int, int]:
    """(partition, ms, seq) of an event id: ids of one partition compare in ingest order."""
    partition, _, entry_id = event_id.partition(b":")
    ms, _, seq = entry_id.partition(b"-")
    return int(partition), int(ms), int(seq or 0)


def event_time(event_id: bytes) -> bytes:
    """The ingest time an event id carries, as ISO 8601 with milliseconds (UTC)."""
    return _iso_millis(event_order(event_id)[1])


@lru_cache(maxsize=16384)
def _iso_millis(millis: int) -> bytes:
    # Cached: a batch's events mostly share their millisecond, and formatting was ~4% of CPU;
    # a reconnect storm replays the same recent entries to thousands of clients (~1.6 MB).
    moment = datetime.fromtimestamp(millis / 1000, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z").encode()


_COUNT = b"n"
_CANARY = b"canary"
_REVOKE = b"revoke"
_COUNTERS = b"counters"


@dataclass(frozen=True, slots=True)
class Delivery:
    """One event for one gateway: the frame its members get, and the rooms it matched."""

    rooms: bytes  # comma-separated room ids on the receiving gateway
    frame: bytes  # the complete JSON frame
    type: bytes  # server message type, for metrics
    key: bytes = b""  # conflation key: a newer frame with the same key may replace this one


@dataclass(frozen=True, slots=True)
class Canary:
    """A gateway's pipeline probe, back through ingest and a worker."""

    sent_at: float  # Unix seconds, the gateway's clock


@dataclass(frozen=True, slots=True)
class Revocation:
    """Close every connection of `user` on the receiving gateway."""

    user: str


@dataclass(frozen=True, slots=True)
class CounterRequest:
    """Push the live counters of these connections (those still open here) to `reply`."""

    reply: str  # a Redis list the asking gateway pops from
    clients: tuple[str, ...]


InboxItem = Delivery | Canary | Revocation | CounterRequest


def _field(kind: bytes, index: int) -> bytes:
    return kind + str(index).encode()


def encode_inbox_entry(items: Sequence[InboxItem]) -> dict[bytes, bytes]:
    fields = {_COUNT: str(len(items)).encode()}
    for i, item in enumerate(items):
        match item:
            case Delivery():
                fields[_field(b"t", i)] = item.type
                fields[_field(b"r", i)] = item.rooms
                fields[_field(b"f", i)] = item.frame
                if item.key:
                    fields[_field(b"k", i)] = item.key
            case Canary():
                fields[_field(b"t", i)] = _CANARY
                fields[_field(b"s", i)] = repr(item.sent_at).encode()
            case Revocation():
                fields[_field(b"t", i)] = _REVOKE
                fields[_field(b"u", i)] = item.user.encode()
            case CounterRequest():
                fields[_field(b"t", i)] = _COUNTERS
                fields[_field(b"y", i)] = item.reply.encode()
                fields[_field(b"c", i)] = ",".join(item.clients).encode()
    return fields


_COMPACT_COUNT = b"N"
_SEPARATOR = b"\x1f"


def encode_compact_entry(items: Sequence[Delivery | Canary]) -> dict[bytes, bytes]:
    """A compact inbox entry (module docstring), as the commit script writes it."""
    fields = {_COMPACT_COUNT: str(len(items)).encode()}
    for i, item in enumerate(items):
        if isinstance(item, Canary):
            parts = [_CANARY, repr(item.sent_at).encode()]
        else:
            parts = [item.type, item.rooms, item.frame] + ([item.key] if item.key else [])
        fields[str(i).encode()] = _SEPARATOR.join(parts)
    return fields


def _decode_compact(fields: dict[bytes, bytes], count: int) -> Iterator[InboxItem]:
    for i in range(count):
        value = fields[str(i).encode()]
        type_, _, rest = value.partition(_SEPARATOR)
        if type_ == _CANARY:
            yield Canary(float(rest))
            continue
        rooms, separated, rest = rest.partition(_SEPARATOR)
        if not separated or not rooms:
            raise ValueError(f"inbox item {i}: no rooms and frame")
        frame, _, key = rest.partition(_SEPARATOR)
        yield Delivery(rooms, frame, type_, key)


def decode_inbox_entry(fields: dict[bytes, bytes]) -> Iterator[InboxItem]:
    """The items of an entry, in either format; raises KeyError/ValueError on a malformed
    one."""
    compact = fields.get(_COMPACT_COUNT)
    if compact is not None:
        yield from _decode_compact(fields, int(compact))
        return
    for i in range(int(fields[_COUNT])):
        type_ = fields[_field(b"t", i)]
        if type_ == _CANARY:
            yield Canary(float(fields[_field(b"s", i)]))
        elif type_ == _REVOKE:
            yield Revocation(fields[_field(b"u", i)].decode())
        elif type_ == _COUNTERS:
            clients = fields[_field(b"c", i)].decode()
            yield CounterRequest(
                fields[_field(b"y", i)].decode(), tuple(clients.split(",")) if clients else ()
            )
        else:
            yield Delivery(
                fields[_field(b"r", i)],
                fields[_field(b"f", i)],
                type_,
                fields.get(_field(b"k", i), b""),
            )
