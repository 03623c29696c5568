"""The pieces of one matched event's frames, built once per event.

A data frame is `head + [,"positions":{...}] + ,"data":<event JSON>}`. The head (type, event
id, timestamp and the receiving gateway's matched rooms) is built here once per event and
gateway; the commit script (`workers/lua/commit.lua`) adds each room's position, which Redis
assigns as it records the event in the room's history, and the event's JSON, serialized once.
The gateway writes the finished frame to every member socket as it is (see
`gateway.fanout`), so nothing is re-encoded per client. Text (`str`): the commit script gets
them inside one JSON argument.
"""

from __future__ import annotations

from collections.abc import Iterator

import orjson

from oddstream.shared.protocol import ServerMessageType
from oddstream.shared.streams import event_time

__all__ = ["event_head", "frame_heads"]


def event_head(message_type: ServerMessageType, event_id: bytes) -> str:
    """The frame's opening up to its rooms; as it is, how a snapshot lists the event (before
    its `,"data":...}`)."""
    return (
        '{"type":"' + message_type.value + '","status":"success","event_id":"'
        + event_id.decode() + '","timestamp":"' + event_time(event_id).decode() + '"'
    )  # fmt: skip


def frame_heads(
    head: str, rooms_by_gateway: dict[str, list[str]]
) -> Iterator[tuple[str, list[str], str]]:
    """(gateway, its matched rooms, the frame's head) for each gateway holding a match, from
    the event's `event_head`."""
    prefix = head + ',"rooms":'
    for gateway, rooms in rooms_by_gateway.items():
        yield gateway, rooms, prefix + orjson.dumps(rooms).decode()
