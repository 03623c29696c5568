"""Turning one matched event into one inbox entry per gateway, serialized once.

The event's JSON (`data`) and the frame head are built once per event; per gateway only the
list of that gateway's matched rooms is spliced in. The gateway writes the frame bytes to
every member socket as they are (see `gateway.hub`), so nothing is re-encoded per client.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import orjson

from shared.keys import INBOX_FRAME, INBOX_ROOMS, INBOX_TYPE
from shared.protocol import ServerMessageType

__all__ = ["InboxEntry", "build_entries"]


@dataclass(frozen=True, slots=True)
class InboxEntry:
    gateway: str
    fields: dict[bytes, bytes]


def _timestamp_of(entry_id: bytes) -> bytes:
    millis = int(entry_id.split(b"-", 1)[0])
    moment = datetime.fromtimestamp(millis / 1000, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z").encode()


def build_entries(
    message_type: ServerMessageType,
    entry_id: bytes,
    data_json: bytes,
    rooms_by_gateway: dict[str, list[str]],
) -> list[InboxEntry]:
    """One inbox entry per gateway for one event; `data_json` is the event as JSON."""
    type_bytes = message_type.value.encode()
    head = (
        b'{"type":"' + type_bytes + b'","status":"success","event_id":"' + entry_id
        + b'","timestamp":"' + _timestamp_of(entry_id) + b'","rooms":'
    )  # fmt: skip
    tail = b',"data":' + data_json + b"}"
    entries = []
    for gateway, rooms in rooms_by_gateway.items():
        frame = head + orjson.dumps(rooms) + tail
        entries.append(
            InboxEntry(
                gateway,
                {
                    INBOX_ROOMS: ",".join(rooms).encode(),
                    INBOX_FRAME: frame,
                    INBOX_TYPE: type_bytes,
                },
            )
        )
    return entries
