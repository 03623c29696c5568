"""A real Redis Cluster for tests: three masters with one replica each, on free loopback ports.

Every node is a `redis-server` from the binary the rest of the suite uses
(`oddstream.embedded.find_redis_server`), killed with the test run even if it dies (see
`EmbeddedRedis`). The cluster is made with cluster commands (ADDSLOTS, MEET, REPLICATE), not
`redis-cli --cluster create`, so it needs no `redis-cli` and runs on Redis 6.2 too.

A node's cluster bus listens on its port + 10000: ports are picked below 55536 with both
free.
"""

from __future__ import annotations

import asyncio
import random
import socket
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from typing import Any

from redis.asyncio import Redis

from oddstream.embedded import EmbeddedRedis
from tests.harness import wait_until

#: A node silent for this long is failing: its replica takes over about two of these later.
NODE_TIMEOUT_MS = 1000
SLOTS = 16384
BUS_OFFSET = 10000


def _free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def cluster_port(taken: set[int]) -> int:
    """A free port below 55536 whose bus port (port + 10000) is free too."""
    for _ in range(1000):
        port = random.randint(20000, 55535 - BUS_OFFSET)
        if port in taken or port + BUS_OFFSET in taken:
            continue
        if _free(port) and _free(port + BUS_OFFSET):
            taken.update({port, port + BUS_OFFSET})
            return port
    raise RuntimeError("no free port pair for a cluster node")


def direct(port: int) -> Redis:
    """A plain client of one node: to look at its state or change it."""
    return Redis(host="127.0.0.1", port=port, socket_timeout=5.0)


class RedisCluster:
    """`masters` masters, each with `replicas_each` replicas; `start()` waits until every
    node says the cluster is `ok` and every replica is in sync."""

    def __init__(self, masters: int = 3, replicas_each: int = 1) -> None:
        taken: set[int] = set()
        self.masters_count = masters
        self.nodes: list[EmbeddedRedis] = []
        for _ in range(masters * (1 + replicas_each)):
            port = cluster_port(taken)
            self.nodes.append(
                EmbeddedRedis(
                    port=port,
                    persistent=True,  # a replica's data comes through its master's stream
                    extra_args=(
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        f"nodes-{port}.conf",
                        "--cluster-node-timeout",
                        str(NODE_TIMEOUT_MS),
                        # A master whose replica took over comes back as its replica.
                        "--cluster-replica-validity-factor",
                        "0",
                    ),
                )
            )
        self._stack = ExitStack()

    # --- addresses ---------------------------------------------------------------------
    @property
    def ports(self) -> list[int]:
        return [node.port for node in self.nodes]

    @property
    def url(self) -> str:
        """A `REDIS_URL` naming one node (any node leads to the whole cluster)."""
        return self.nodes[0].url

    def node(self, port: int) -> EmbeddedRedis:
        return next(n for n in self.nodes if n.port == port)

    # --- lifecycle -----------------------------------------------------------------------
    def start(self) -> RedisCluster:
        try:
            for node in self.nodes:
                self._stack.enter_context(node)
            asyncio.run(self._form())
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        self._stack.close()

    async def _form(self) -> None:
        clients = [direct(port) for port in self.ports]
        try:
            masters, replicas = clients[: self.masters_count], clients[self.masters_count :]
            ids = [await _command(c, "CLUSTER", "MYID") for c in clients]
            for number, client in enumerate(masters):
                low = number * SLOTS // len(masters)
                high = (number + 1) * SLOTS // len(masters)
                await _command(client, "CLUSTER", "ADDSLOTS", *range(low, high))
            for port in self.ports[1:]:
                await _command(clients[0], "CLUSTER", "MEET", "127.0.0.1", port)

            async def all_known() -> bool:
                for client in clients:
                    nodes = await _command(client, "CLUSTER", "NODES")
                    if len(_lines(nodes)) < len(clients):
                        return False
                return True

            await wait_until(all_known, timeout=20, interval=0.05, message="nodes met")
            for number, replica in enumerate(replicas):
                master_id = ids[number % len(masters)]
                await _retry(lambda r=replica, m=master_id: _command(r, "CLUSTER", "REPLICATE", m))
        finally:
            for client in clients:
                await client.aclose()
        await self.wait_ok()

    async def wait_ok(self, timeout: float = 30.0) -> None:
        """Until every running node says `cluster_state:ok`, every slot is served, and every
        replica is in sync with its master."""

        async def ok() -> bool:
            for node in self.running():
                client = direct(node.port)
                try:
                    info = await _command(client, "CLUSTER", "INFO")
                    text = _text(info)
                    if "cluster_state:ok" not in text or f"cluster_slots_ok:{SLOTS}" not in text:
                        return False
                    replication = await client.info("replication")
                    if replication.get("role") == "slave" and (
                        replication.get("master_link_status") != "up"
                    ):
                        return False
                finally:
                    await client.aclose()
            return True

        await wait_until(ok, timeout=timeout, interval=0.1, message="cluster ok")

    def running(self) -> list[EmbeddedRedis]:
        return [n for n in self.nodes if n.process is not None and n.process.poll() is None]

    # --- roles -------------------------------------------------------------------------
    async def roles(self) -> dict[int, str]:
        """Port -> "master" or "slave", for every running node, as the nodes say."""
        roles: dict[int, str] = {}
        for node in self.running():
            client = direct(node.port)
            try:
                info: dict[str, Any] = await client.info("replication")
                roles[node.port] = str(info["role"])
            finally:
                await client.aclose()
        return roles

    async def master_of(self, key: str) -> int:
        """The port of the master serving `key`'s slot."""
        client = direct(self.running()[0].port)
        try:
            slot = int(await _command(client, "CLUSTER", "KEYSLOT", key))
            shards = await _command(client, "CLUSTER", "SLOTS")
        finally:
            await client.aclose()
        for low, high, master, *_ in shards:
            if int(low) <= slot <= int(high):
                return int(master[1])
        raise AssertionError(f"no master serves slot {slot}")


async def _command(client: Redis, *args: Any) -> Any:
    """A raw command (redis-py's `execute_command` is untyped)."""
    return await client.execute_command(*args)  # type: ignore[no-untyped-call]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _lines(nodes: Any) -> list[str]:
    if isinstance(nodes, dict):  # redis-py may parse CLUSTER NODES into a dict
        return list(nodes)
    return [line for line in _text(nodes).splitlines() if line.strip()]


async def _retry(call: Any, attempts: int = 100) -> None:
    """A replica learns of its master through gossip: REPLICATE may name an unknown node for
    a moment."""
    for _ in range(attempts - 1):
        with suppress(Exception):
            await call()
            return
        await asyncio.sleep(0.05)
    await call()


@contextmanager
def running_cluster(masters: int = 3, replicas_each: int = 1) -> Iterator[RedisCluster]:
    cluster = RedisCluster(masters, replicas_each).start()
    try:
        yield cluster
    finally:
        cluster.close()
