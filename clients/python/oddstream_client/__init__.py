"""Oddstream's Python client: asyncio, reconnects by close-code advice, resumes without gaps,
typed errors."""

from oddstream_client.backoff import Backoff
from oddstream_client.client import OddstreamClient
from oddstream_client.errors import (
    AuthError,
    ConnectionClosed,
    OddstreamError,
    SubscriptionError,
    error_for,
)
from oddstream_client.state import ClientStats, ConnectionState, StateEvent
from oddstream_client.subscription import SNAPSHOT_FRAME, SNAPSHOT_TYPES, ResumeEvent, Subscription

__all__ = [
    "SNAPSHOT_FRAME",
    "SNAPSHOT_TYPES",
    "AuthError",
    "Backoff",
    "ClientStats",
    "ConnectionClosed",
    "ConnectionState",
    "OddstreamClient",
    "OddstreamError",
    "ResumeEvent",
    "StateEvent",
    "Subscription",
    "SubscriptionError",
    "error_for",
]
