"""The gateway inbox entry: a batch of deliveries, written by a worker, read by one gateway.

A worker writes one entry per gateway per batch it processes (not per event), so the Redis
cost of delivery is one XADD per gateway per batch. Each delivery keeps its own pre-built
frame, serialized once per event. Fields: `n` (count), then `r<i>` (comma-separated room
ids), `f<i>` (the JSON frame), `t<i>` (the message type), `k<i>` (conflation key, absent
when every event must be delivered) for i in 0..n-1.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

__all__ = ["CANARY_TYPE", "REVOKE_TYPE", "Delivery", "decode_inbox_entry", "encode_inbox_entry"]

#: Delivery type of a pipeline canary: `frame` holds the gateway's send time, `rooms` is empty.
CANARY_TYPE = b"canary"
#: Delivery type of a revocation: `frame` holds the user whose connections must close.
REVOKE_TYPE = b"revoke"

_COUNT = b"n"


@dataclass(frozen=True, slots=True)
class Delivery:
    rooms: bytes  # comma-separated room ids on the receiving gateway
    frame: bytes  # the complete JSON frame
    type: bytes  # server message type, for metrics
    key: bytes = b""  # conflation key: a newer frame with the same key may replace this one


def _field(kind: bytes, index: int) -> bytes:
    return kind + str(index).encode()


def encode_inbox_entry(deliveries: Sequence[Delivery]) -> dict[bytes, bytes]:
    fields = {_COUNT: str(len(deliveries)).encode()}
    for i, delivery in enumerate(deliveries):
        fields[_field(b"r", i)] = delivery.rooms
        fields[_field(b"f", i)] = delivery.frame
        fields[_field(b"t", i)] = delivery.type
        if delivery.key:
            fields[_field(b"k", i)] = delivery.key
    return fields


def decode_inbox_entry(fields: dict[bytes, bytes]) -> Iterator[Delivery]:
    """The deliveries of an entry; raises KeyError/ValueError on a malformed one."""
    for i in range(int(fields[_COUNT])):
        yield Delivery(
            fields[_field(b"r", i)],
            fields[_field(b"f", i)],
            fields[_field(b"t", i)],
            fields.get(_field(b"k", i), b""),
        )
