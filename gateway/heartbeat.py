"""Client liveness: the application-level ping, and the sweep for silence and token expiry."""

from __future__ import annotations

import time
from collections.abc import Mapping

from oddstream.gateway.connection import Connection
from oddstream.gateway.frames import text_frame
from oddstream.gateway.metrics import GatewayMetrics
from oddstream.shared.protocol import CloseCode, ServerMessageType, server_frame

__all__ = ["ClientHeartbeat"]


class ClientHeartbeat:
    """Pings every connection and closes the silent ones; the node runs both periodically."""

    def __init__(
        self, connections: Mapping[str, Connection], metrics: GatewayMetrics, timeout: float
    ) -> None:
        self._connections = connections
        self._metrics = metrics
        self._timeout = timeout

    async def ping_all(self) -> None:
        """Application-level ping (browsers cannot see protocol pings), one frame for all."""
        frame = text_frame(server_frame(ServerMessageType.PING))
        sent = sum(conn.write(frame) for conn in list(self._connections.values()))
        self._metrics.messages_out.labels(ServerMessageType.PING.value).inc(sent)

    async def sweep(self) -> None:
        """Close silent clients (4101) and enforce token expiry (notice, then 4401)."""
        deadline = time.monotonic() - self._timeout
        now = time.time()
        for conn in list(self._connections.values()):
            if conn.last_seen < deadline and not conn.closing:
                conn.close_soon(CloseCode.HEARTBEAT_TIMEOUT, "no message within the timeout")
            else:
                conn.check_expiry(now)
