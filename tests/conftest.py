"""Shared fixtures: one real redis-server per test session, a unique key prefix per test."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from pydantic import SecretStr
from redis.asyncio import Redis

from oddstream.embedded import EmbeddedRedis
from oddstream.shared.keys import Keys
from oddstream.shared.redis import check_redis_url, create_redis
from oddstream.shared.settings import Settings
from tests.harness import ADMIN_TOKEN, TEST_PARTITIONS, TEST_REDIS, TEST_SHARDS
from tests.redis_cluster import running_cluster


@pytest.fixture(scope="session")
def redis_server() -> Iterator[EmbeddedRedis]:
    """A private redis-server on a free port; never the machine's own Redis. With
    `ODDSTREAM_TEST_REDIS=cluster`, a node of a private three-master Redis Cluster instead
    (`tests/redis_cluster.py`): its URL names the cluster, and every client this process and
    the `oddstream` commands it starts make for it is a cluster client."""
    if TEST_REDIS == "cluster":
        with running_cluster() as cluster:
            assert check_redis_url(cluster.url) is True
            yield cluster.nodes[0]
        return
    with EmbeddedRedis() as server:
        yield server


@pytest.fixture
def private_redis() -> Iterator[EmbeddedRedis]:
    """A Redis of this test's own, so killing it disturbs no other test."""
    server = EmbeddedRedis().start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def keys(prefix: str) -> Keys:
    return Keys(prefix, TEST_PARTITIONS, TEST_SHARDS)


@pytest.fixture
def settings(redis_server: EmbeddedRedis, prefix: str) -> Settings:
    """Settings with short intervals so fault tests finish in seconds."""
    return Settings(
        redis_url=redis_server.url,
        redis_prefix=prefix,
        host="127.0.0.1",
        port=0,
        gateway_heartbeat=0.2,
        gateway_ttl=1.0,
        worker_heartbeat=0.2,
        worker_ttl=1.0,
        worker_block_ms=200,
        partitions=TEST_PARTITIONS,
        shards=TEST_SHARDS,
        partition_lease_ms=600,
        trim_interval=0.5,
        shutdown_grace=2.0,
        canary_interval=0.5,
        admin_token=SecretStr(ADMIN_TOKEN),
    )


@pytest.fixture
async def redis_client(redis_server: EmbeddedRedis) -> AsyncIterator[Redis]:
    client = create_redis(redis_server.url)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Subprocesses a test starts; killed and reaped whatever the test does."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
