"""Abuse limits that live in one gateway: token buckets per client IP and per connection.

Hand-written rather than a library: both are a few lines, on the hot path of every message,
and need no storage. Cluster-wide limits (connections per user) live in Redis
(`shared.registry`).
"""

from __future__ import annotations

import ipaddress
import time
from collections import OrderedDict

from aiohttp import web

__all__ = ["IpRateLimiter", "TokenBucket", "client_ip"]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class TokenBucket:
    """`rate` tokens a second up to `burst`; `take()` spends one if it can."""

    __slots__ = ("burst", "rate", "stamp", "tokens")

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.tokens = float(burst)
        self.stamp = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False

    def wait_time(self) -> float:
        """Seconds until one token is available."""
        return max(0.0, (1.0 - self.tokens) / self.rate)


class IpRateLimiter:
    """A token bucket per client IP for new connections, remembering at most `capacity` IPs
    (least recently seen forgotten first), so a flood of addresses cannot grow memory."""

    def __init__(self, rate: float, burst: int, capacity: int = 100_000) -> None:
        self.rate = rate
        self.burst = burst
        self.capacity = capacity
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def allow(self, ip: str) -> tuple[bool, float]:
        """(allowed, seconds to wait before retrying)."""
        bucket = self._buckets.get(ip)
        if bucket is None:
            bucket = self._buckets[ip] = TokenBucket(self.rate, self.burst)
            if len(self._buckets) > self.capacity:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(ip)
        if bucket.take():
            return True, 0.0
        return False, bucket.wait_time()


def parse_networks(entries: list[str]) -> list[Network]:
    return [ipaddress.ip_network(entry, strict=False) for entry in entries]


def client_ip(request: web.BaseRequest, trusted: list[Network]) -> str:
    """The client's address: `X-Forwarded-For` is believed only from trusted proxies, and
    read from the right, skipping trusted hops, so a client cannot spoof it."""
    peer = request.remote or ""
    if not trusted or not _is_trusted(peer, trusted):
        return peer
    hops = [h.strip() for h in request.headers.get("X-Forwarded-For", "").split(",") if h.strip()]
    for hop in reversed(hops):
        if not _is_trusted(hop, trusted):
            return hop
    return hops[0] if hops else peer


def _is_trusted(address: str, trusted: list[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in trusted)
