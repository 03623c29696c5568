"""The pieces of one matched event's frames, built once per event.

A data frame is `head + [,"positions":{...}] + ,"data":<event JSON>}`. The head (type, event
id, timestamp and the receiving gateway's matched rooms) is built here once per event and
gateway; the commit script (`workers/lua/commit.lua`) adds each room's position, which Redis
assigns as it records the event in the room's history, and the event's JSON, serialized once.
The gateway writes the finished frame to every member socket as it is (see
`gateway.fanout`), so nothing is re-encoded per client.
"""

from __future__ import annotations

from collections.abc import Iterator

import orjson

from oddstream.shared.protocol import ServerMessageType
from oddstream.shared.streams import event_time

__all__ = ["frame_heads", "snapshot_head"]


def _prefix(message_type: ServerMessageType, event_id: bytes) -> bytes:
    return (
        b'{"type":"' + message_type.value.encode() + b'","status":"success","event_id":"'
        + event_id + b'","timestamp":"' + event_time(event_id) + b'"'
    )  # fmt: skip


def frame_heads(
    message_type: ServerMessageType, event_id: bytes, rooms_by_gateway: dict[str, list[str]]
) -> Iterator[tuple[str, list[str], bytes]]:
    """(gateway, its matched rooms, the frame's head) for each gateway holding a match."""
    prefix = _prefix(message_type, event_id) + b',"rooms":'
    for gateway, rooms in rooms_by_gateway.items():
        yield gateway, rooms, prefix + orjson.dumps(rooms)


def snapshot_head(message_type: ServerMessageType, event_id: bytes) -> bytes:
    """How a snapshot lists the event, before its `,"data":...}`."""
    return _prefix(message_type, event_id)
