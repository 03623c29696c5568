"""Oddstream's Python client: asyncio, reconnects by close-code advice, typed errors."""

from oddstream_client.client import (
    AuthError,
    Backoff,
    ClientStats,
    ConnectionClosed,
    ConnectionState,
    OddstreamClient,
    OddstreamError,
    StateEvent,
    Subscription,
    SubscriptionError,
    error_for,
)

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
