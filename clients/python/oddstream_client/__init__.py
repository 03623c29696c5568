"""Oddstream's Python client: asyncio, reconnects by close-code advice, typed errors."""

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
from oddstream_client.subscription import Subscription

__all__ = [
    "AuthError",
    "Backoff",
    "ClientStats",
    "ConnectionClosed",
    "ConnectionState",
    "OddstreamClient",
    "OddstreamError",
    "StateEvent",
    "Subscription",
    "SubscriptionError",
    "error_for",
]
