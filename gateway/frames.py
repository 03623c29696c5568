"""Pre-built WebSocket frames: each built once, the same bytes written to many sockets.

The gateway turns each delivered event into a complete RFC 6455 text frame once (`Frame`) and
writes those bytes to every member's transport. For clients that negotiated permessage-deflate
(RFC 7692; browsers always offer it) the frame is also compressed once, the first time such a
member needs it, and those same bytes go to every such member: compression costs per frame,
not per client.

That is only valid because each compressed message stands alone. The gateway always declares
`server_no_context_takeover` (`DeflateResponse`), so a client never expects a message to
refer to an earlier one, and the compressor's history is reset after every message (a full
flush: a sync flush that also forgets what came before). Its compressed bytes are then the same
whoever receives them and whatever they received before. aiohttp's own writer is told the same
(`notakeover`: a full flush per message), so anything it compresses (`ws.send_*`; the gateway
sends nothing that way today) stays valid between our frames; control frames (ping, pong,
close) are never compressed. What clients send may use context takeover or not, as they offer:
aiohttp's reader inflates either (one inflater per connection).

Frames under `compression_min_bytes` of payload, and frames that would not shrink, are sent
uncompressed (RSV1 clear), which permessage-deflate allows for any message. So are frames to a
client that asked for a server window under 32 KiB (`server_max_window_bits` < 15, which no
browser does): one shared compressed frame serves every client only with one window size.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from aiohttp import hdrs, web
from aiohttp.web_request import BaseRequest
from multidict import CIMultiDict

__all__ = [
    "DEFLATE_STATS",
    "DEFLATE_WINDOW_BITS",
    "DeflateResponse",
    "DeflateStats",
    "Frame",
    "Item",
    "array_frame",
    "deflate_frame",
    "text_frame",
]

_FIN_TEXT = 0x81
_FIN_TEXT_DEFLATED = 0xC1  # FIN, RSV1 (permessage-deflate: a compressed message), text
_LEN2 = struct.Struct("!BBH")
_LEN8 = struct.Struct("!BBQ")
#: What a sync (or full) flush ends with; RFC 7692 7.2.1 has the sender strip it.
_TAIL = b"\x00\x00\xff\xff"
#: The window of the shared compressed frames: clients that negotiated a smaller one get
#: uncompressed frames.
DEFLATE_WINDOW_BITS = 15

#: One compressor for the process (the gateway is one thread): reset after every message, so
#: it keeps no state between them, and nothing is allocated per frame. Level 1: on our JSON it
#: compresses an odds frame as well as level 6 does, and a large snapshot 3-4 times faster for
#: about 20% more bytes.
_compressor = zlib.compressobj(1, zlib.DEFLATED, -DEFLATE_WINDOW_BITS)


@dataclass(slots=True)
class DeflateStats:
    """What compression did in this process: messages compressed, their payload bytes before
    and after. Counted per compression, so N members sharing one frame count it once."""

    compressed: int = 0
    plain_bytes: int = 0
    deflated_bytes: int = 0


DEFLATE_STATS = DeflateStats()


def _header(first: int, length: int) -> bytes:
    if length < 126:
        return bytes((first, length))
    if length < 65536:
        return _LEN2.pack(first, 126, length)
    return _LEN8.pack(first, 127, length)


def text_frame(payload: bytes) -> bytes:
    """An unmasked, final, uncompressed text frame carrying `payload` (UTF-8 JSON)."""
    return _header(_FIN_TEXT, len(payload)) + payload


def deflate_frame(payload: bytes, min_bytes: int) -> bytes | None:
    """A final text frame carrying `payload` compressed on its own (RFC 7692: raw deflate,
    flushed, the trailing 00 00 ff ff removed, RSV1 set); None when `payload` is shorter than
    `min_bytes` or does not get shorter."""
    if len(payload) < min_bytes:
        return None
    body = _compressor.compress(payload) + _compressor.flush(zlib.Z_FULL_FLUSH)
    if body.endswith(_TAIL):  # always, after a flush; checked so a surprise is only larger
        body = body[:-4]
    stats = DEFLATE_STATS
    stats.compressed += 1
    stats.plain_bytes += len(payload)
    stats.deflated_bytes += len(body)
    if len(body) >= len(payload):
        return None
    return _header(_FIN_TEXT_DEFLATED, len(body)) + body


class Frame:
    """One outgoing text message: the uncompressed frame, built at once, and the frame for
    clients that negotiated permessage-deflate, built the first time one of them needs it
    (`deflated`) and then the same bytes for all of them."""

    __slots__ = ("packed", "payload", "plain", "shard")

    def __init__(self, payload: bytes, shard: int = 0) -> None:
        self.payload = payload
        self.plain = text_frame(payload)
        #: The shard of the data path whose inbox delivered it (`shared.keys`).
        self.shard = shard
        #: The frame for deflate clients once made (compressed, or `plain` when not worth it).
        self.packed: bytes | None = None

    def deflated(self, min_bytes: int) -> bytes:
        """The frame for a client that negotiated permessage-deflate."""
        packed = self.packed
        if packed is None:
            packed = self.packed = deflate_frame(self.payload, min_bytes) or self.plain
        return packed


def array_frame(frames: list[Frame], deflate_min: int | None) -> bytes:
    """One text message whose payload is a JSON array of the `frames`' payloads, joined as
    they are (each is already one JSON object: nothing is decoded or encoded again). For a
    client that negotiated permessage-deflate (`deflate_min` not None) it is compressed, on its
    own, for this client alone: an array is one connection's, never shared."""
    payload = b"[" + b",".join([f.payload for f in frames]) + b"]"
    if deflate_min is not None:
        packed = deflate_frame(payload, deflate_min)
        if packed is not None:
            return packed
    return text_frame(payload)


#: A delivery as a connection receives it: (conflation key, frame).
Item = tuple[bytes, Frame]


class DeflateResponse(web.WebSocketResponse):
    """aiohttp's WebSocketResponse, always declaring `server_no_context_takeover` when it
    accepts permessage-deflate (RFC 7692 7.1.1.1 lets a server add it to any offer), and with
    its own writer resetting the compressor after every message to match (see the module)."""

    def _handshake(self, request: BaseRequest) -> tuple[CIMultiDict[str], str | None, int, bool]:
        headers, protocol, compress, notakeover = super()._handshake(request)
        if compress:
            accepted = headers.get(hdrs.SEC_WEBSOCKET_EXTENSIONS, "")
            if "server_no_context_takeover" not in accepted:
                headers[hdrs.SEC_WEBSOCKET_EXTENSIONS] = accepted + "; server_no_context_takeover"
            notakeover = True
        return headers, protocol, compress, notakeover
