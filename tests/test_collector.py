"""Gateways and workers keep the garbage collector from walking what they hold (`shared.collector`).

The policy on the real collector (no stand-in: `gc` itself is what is measured), then on a
running gateway: after connections open and a beat passes, the objects a collection would
walk do not grow with the connections held.
"""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator

import pytest

from oddstream.shared.collector import Collector
from oddstream.shared.settings import Settings
from tests.harness import Client, running_gateway, running_worker, wait_until


class Node:
    """An object that can sit in a reference cycle and be watched with a weak reference."""

    other: Node | None = None


@pytest.fixture
def unfrozen() -> Iterator[None]:
    """Whatever a test freezes goes back to the collector afterwards."""
    yield
    gc.unfreeze()


def cycle() -> weakref.ref[Node]:
    a, b = Node(), Node()
    a.other, b.other = b, a
    return weakref.ref(a)


def test_freezes_when_a_burst_of_connections_settles(unfrozen: None) -> None:
    collector = Collector(full_interval=3600, settle=3)
    collector.start()
    assert collector.freezes == 1
    collector.tick()
    assert collector.freezes == 1  # nothing opened: nothing to freeze
    fresh = [Node() for _ in range(10)]
    assert any(o is fresh for o in gc.get_objects())  # young: a collection walks it
    collector.opened()
    collector.tick()
    assert collector.freezes == 1  # still opening: not yet
    collector.tick()
    assert collector.freezes == 2  # a beat without opens: the burst is over
    assert not any(o is fresh for o in gc.get_objects())  # frozen: collections skip it


def test_freezes_during_a_long_storm(unfrozen: None) -> None:
    collector = Collector(full_interval=3600, settle=3)
    for _ in range(3):
        collector.opened()
        collector.tick()
    assert collector.freezes == 1  # `settle` opened, though they keep coming


def test_a_full_collection_reclaims_cycles_among_frozen_objects(unfrozen: None) -> None:
    collector = Collector(full_interval=60, settle=1)
    ref = cycle()
    collector.opened()
    collector.tick()  # the cycle is frozen while still referenced
    gc.collect()
    assert ref() is not None  # frozen cyclic garbage survives ordinary collections ...
    assert collector.tick(now=collector.last_full_at + 61)  # ... until the full one
    assert ref() is None
    assert collector.full_collections == 1
    assert collector.last_full_ms > 0


def test_closed_connections_bring_the_full_collection_forward(unfrozen: None) -> None:
    collector = Collector(full_interval=3600, settle=4)
    ref = cycle()
    collector.opened()
    collector.tick()  # frozen
    for _ in range(5):
        collector.closed()
    assert not collector.tick(connections=48)  # 5 closed: under an eighth of 48 open
    assert ref() is not None
    collector.closed()
    assert collector.tick(connections=48)  # 6: an eighth turned over
    assert ref() is None
    for _ in range(3):
        collector.closed()
    assert not collector.tick(connections=0)  # counted afresh, and never below `settle`


def test_zero_interval_leaves_the_collector_as_cpython_has_it(unfrozen: None) -> None:
    gc.unfreeze()
    collector = Collector(full_interval=0, settle=1)
    collector.start()
    collector.opened()
    assert not collector.tick(now=10**9)
    assert gc.get_freeze_count() == 0
    ref = cycle()
    gc.collect()
    assert ref() is None


async def test_a_gateway_freezes_its_connections(settings: Settings) -> None:
    """Objects a collection walks, per connection opened: a handful once a beat froze them
    (each connection, the gateway's side and this test's aiohttp client, holds about 190
    tracked objects: measured with `gc_full_interval` 0, this fails with 192)."""
    quick = settings.model_copy(update={
        "gc_full_interval": 600.0, "max_connections": 1000,
        "connect_rate_per_ip": 100_000.0, "connect_burst_per_ip": 100_000,
        "analytics_enabled": False,
    })  # fmt: skip
    count = 300
    clients: list[Client] = []
    async with running_gateway(quick) as gw:
        try:
            await wait_until(lambda: gw.node.collector.freezes >= 1, timeout=5, message="start")
            gc.collect()
            before = len(gc.get_objects())
            gate = asyncio.Semaphore(50)

            async def opened(i: int) -> Client:
                async with gate:
                    client = await Client.connect(f"{gw.ws}/ws/v2/connect")
                    await client.subscribe("odds_updates", game_id=f"G{i % 30}")
                    return client

            clients = list(await asyncio.gather(*(opened(i) for i in range(count))))
            await wait_until(lambda: not gw.node.collector.pending, timeout=5, message="freeze")
            walked = (len(gc.get_objects()) - before) / count
            assert walked < 10, f"{walked:.0f} tracked objects per connection left unfrozen"

            # Closed, they leave cyclic garbage among the frozen objects: a full collection
            # at the next beat frees it, and the frozen set shrinks.
            frozen, full = gc.get_freeze_count(), gw.node.collector.full_collections
            await asyncio.gather(*(c.close() for c in clients))
            clients = []
            await wait_until(
                lambda: gw.node.collector.full_collections > full, timeout=5, message="full"
            )
            assert gc.get_freeze_count() < frozen - 20 * count
        finally:
            await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)


async def test_a_worker_freezes_what_it_started_with(settings: Settings) -> None:
    """A worker freezes what start-up made, so its collections skip it, and runs the scheduled
    full collection at a beat (without it, CPython walked all ~80,000 of a worker's objects
    several times a minute under load); stopped, it gives everything back."""
    quick = settings.model_copy(update={"gc_full_interval": 0.3, "worker_heartbeat": 0.1})
    gc.unfreeze()
    async with running_worker(quick) as worker:
        assert worker.collector.freezes >= 1
        assert gc.get_freeze_count() > 1000  # modules, settings, the room index
        await wait_until(
            lambda: worker.collector.full_collections >= 1, timeout=5, message="full collection"
        )
        assert gc.get_freeze_count() > 1000  # frozen again after it
    assert gc.get_freeze_count() == 0
