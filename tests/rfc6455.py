"""The pieces of RFC 6455 that the minimal WebSocket clients of the tests and benchmarks share.

Those clients (`tests.benchmarks.load`'s `WSClient`, which `storm` and `test_periodic` build
on, the compression clients, the harness's `StallableClient`) speak the protocol themselves
so that they can stall, count bytes on the wire or hold thousands of sockets cheaply; what
they all need of it is here: the upgrade request and its check, and a client's masked frame.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import socket

__all__ = ["WS_GUID", "accepted", "masked", "open_upgraded", "upgrade_request"]

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 1.3


def upgrade_request(host: str, path: str, offer: str | None = None) -> tuple[str, bytes]:
    """A fresh `Sec-WebSocket-Key` and the HTTP/1.1 upgrade request carrying it (and `offer`,
    a `Sec-WebSocket-Extensions` value, if given)."""
    key = base64.b64encode(os.urandom(16)).decode()
    extension = f"Sec-WebSocket-Extensions: {offer}\r\n" if offer else ""
    request = (f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n{extension}"
               "Sec-WebSocket-Version: 13\r\n\r\n")  # fmt: skip
    return key, request.encode()


def accepted(head: bytes | bytearray, key: str) -> bool:
    """Whether a response head (up to the blank line) is the `101` that completes the upgrade
    asked with `key`: its `Sec-WebSocket-Accept` is the key's (RFC 6455 4.1)."""
    accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest())
    return bytes(head).startswith(b"HTTP/1.1 101 ") and b": " + accept in head


def masked(opcode: int, payload: bytes, compressed: bool = False) -> bytes:
    """A final client frame (RFC 6455 5.3: clients mask), RSV1 set if `compressed`."""
    n = len(payload)
    mask = os.urandom(4)
    key = int.from_bytes((mask * (n // 4 + 1))[:n], "big")
    body = (int.from_bytes(payload, "big") ^ key).to_bytes(n, "big")
    first = 0x80 | (0x40 if compressed else 0) | opcode
    if n < 126:
        return bytes((first, 0x80 | n)) + mask + body
    if n < 65536:
        return bytes((first, 0x80 | 126)) + n.to_bytes(2, "big") + mask + body
    return bytes((first, 0x80 | 127)) + n.to_bytes(8, "big") + mask + body


async def open_upgraded(
    port: int,
    host: str = "127.0.0.1",
    path: str = "/ws/v2/connect",
    offer: str | None = None,
    limit: int = 1 << 22,
    sock: socket.socket | None = None,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes]:
    """Connect (over `sock` if given), upgrade, check the answer; the streams and its head.
    Raises `ConnectionError` when the upgrade is refused."""
    if sock is not None:
        reader, writer = await asyncio.open_connection(sock=sock, limit=limit)
    else:
        reader, writer = await asyncio.open_connection(host, port, limit=limit)
    key, request = upgrade_request(f"{host}:{port}", path, offer)
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    if not accepted(head, key):
        writer.close()
        raise ConnectionError(f"upgrade refused: {head[:300]!r}")
    return reader, writer, head
