"""Pre-built WebSocket frames: one header + payload built once, written to many sockets.

The gateway turns each delivered event into a complete RFC 6455 text frame once and writes
those bytes to every member's transport. This is only valid because the gateway never
negotiates permessage-deflate (`compress=False`): an uncompressed server frame is the same
bytes for every client.
"""

from __future__ import annotations

import struct

__all__ = ["payload_of", "text_frame"]

_FIN_TEXT = 0x81
_LEN2 = struct.Struct("!BBH")
_LEN8 = struct.Struct("!BBQ")


def text_frame(payload: bytes) -> bytes:
    """An unmasked, final, uncompressed text frame carrying `payload` (UTF-8 JSON)."""
    length = len(payload)
    if length < 126:
        return bytes((_FIN_TEXT, length)) + payload
    if length < 65536:
        return _LEN2.pack(_FIN_TEXT, 126, length) + payload
    return _LEN8.pack(_FIN_TEXT, 127, length) + payload


def payload_of(frame: bytes) -> bytes:
    """The payload of a frame built by `text_frame`."""
    length = frame[1]
    if length < 126:
        return frame[2:]
    return frame[4:] if length == 126 else frame[10:]
