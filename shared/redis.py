"""One way to build a Redis client, so every process gets the same timeouts and retries."""

from __future__ import annotations

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

__all__ = ["create_redis"]

#: Longer than any blocking read we issue (<= 4 s), so a quiet stream is not a timeout.
SOCKET_TIMEOUT = 10.0


def create_redis(url: str, *, max_connections: int = 64) -> Redis:
    """A bytes-in/bytes-out client: frames pass through to sockets without re-encoding."""
    return Redis.from_url(
        url,
        decode_responses=False,
        socket_timeout=SOCKET_TIMEOUT,
        socket_connect_timeout=5.0,
        health_check_interval=15,
        max_connections=max_connections,
        retry=Retry(ExponentialWithJitterBackoff(base=0.05, cap=1.0), retries=3),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
    )
