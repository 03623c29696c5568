"""Connection state, its change events, and the client's counters."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from oddstream_client.errors import OddstreamError

__all__ = ["ClientStats", "ConnectionState", "StateEvent"]


class ConnectionState(StrEnum):
    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    DISCONNECTED = "disconnected"
    CLOSED = "closed"


@dataclass(frozen=True)
class StateEvent:
    """One state change; `delay` is set when reconnecting, `close_code`/`reason` say why."""

    state: ConnectionState
    at: float  # time.monotonic()
    attempt: int = 0
    delay: float | None = None
    close_code: int | None = None
    reason: str | None = None
    error: OddstreamError | None = None

    def describe(self) -> str:
        parts = [self.state.value]
        if self.attempt:
            parts.append(f"attempt={self.attempt}")
        if self.delay is not None:
            parts.append(f"delay={self.delay:.3f}s")
        if self.close_code is not None:
            parts.append(f"close_code={self.close_code}")
        if self.reason:
            parts.append(f"reason={self.reason}")
        return " ".join(parts)


@dataclass(frozen=True)
class ClientStats:
    """A snapshot of the client's counters."""

    messages_received: int
    data_messages: int
    reconnects: int
    token_refreshes: int
    latency: float | None  # seconds, last ping -> pong round trip
    subscriptions: int
    duplicates: int = 0  # frames dropped by the subscriptions as already delivered
    resumes: int = 0  # resubscribes whose missed frames were replayed (`recovered: true`)
    resyncs: int = 0  # resubscribes that could not recover (`recovered: false`)
