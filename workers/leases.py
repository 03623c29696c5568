"""Partition ownership: each ingest partition is read by one worker at a time.

A worker holds a partition through a lease, a Redis key with the worker's id and a TTL of
`partition_lease_ms`, renewed every third of that. Guarantees:

- one owner at a time: a lease is taken with `SET NX` and renewed or released only by its
  holder (Lua), and every batch is committed by a script that first checks the lease
  (`workers/lua/commit.lua`), so a worker that stalled past its lease and wakes up writes
  nothing for a partition another worker has taken over;
- fast failover: a dead worker's leases lapse after `partition_lease_ms`, and a worker takes a
  free partition within two rounds (a round is a third of the lease);
- balance: a worker takes free partitions up to its fair share (partitions / live workers;
  the shares of all live workers add up to the partitions), takes any partition that stays
  free for a whole round (a dead worker still counts as live until its beats lapse),
  and hands back what it holds beyond its share, between batches.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from oddstream.shared.keys import Keys
from oddstream.shared.logs import get_logger

__all__ = ["PartitionLeases", "lua"]

log = get_logger(__name__)

_SCRIPTS = Path(__file__).with_name("lua")


def lua(name: str) -> str:
    """A worker script from `workers/lua/<name>.lua`."""
    return (_SCRIPTS / f"{name}.lua").read_text()


class PartitionLeases:
    """The partitions one worker owns, kept by `step()`; the consumer acts on the changes.

    `owned` are the partitions this worker holds; `acquired` those taken since the consumer
    last looked (it must take over their pending entries first); `surplus` those to hand back
    once the batch in flight is committed."""

    def __init__(
        self, redis: Redis, keys: Keys, worker_id: str, *, lease_ms: int, alive_window_ms: int
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._worker_id = worker_id
        self._log = log.bind(worker=worker_id)
        self._lease_ms = lease_ms
        self._alive_window_ms = alive_window_ms
        self._renew = redis.register_script(lua("renew"))
        self._release = redis.register_script(lua("release"))
        self._free_since: dict[int, float] = {}
        self.owned: set[int] = set()
        self.acquired: set[int] = set()
        self.surplus: set[int] = set()

    @property
    def interval(self) -> float:
        """Seconds between rounds: a third of the lease."""
        return self._lease_ms / 3000

    async def step(self) -> None:
        """One round: renew what we hold, drop what we lost, take free partitions up to our
        share, mark what exceeds it."""
        await self._renew_owned()
        share = await self._fair_share()
        holders = await self._holders()
        now = time.monotonic()
        for partition, holder in enumerate(holders):
            if holder is not None:
                self._free_since.pop(partition, None)
                continue
            since = self._free_since.setdefault(partition, now)
            # Free for a whole round: its owner is gone, even if the count of live workers
            # (from beats, which lag) does not show it yet.
            stranded = now - since >= self.interval * 0.9
            if (len(self.owned) < share or stranded) and await self._take(partition):
                self._free_since.pop(partition, None)
        extra = len(self.owned) - len(self.surplus) - share
        for partition in sorted(self.owned - self.surplus, reverse=True)[: max(0, extra)]:
            self.surplus.add(partition)

    async def _holders(self) -> list[Any]:
        """Every partition's lease holder (None: free), in partition order: one GET each, in
        one round trip (a pipeline, which a cluster client sends to each key's master)."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for partition in range(self._keys.partitions):
                pipe.get(self._keys.lease(partition))
            holders: list[Any] = await pipe.execute()
        return holders

    async def _renew_owned(self) -> None:
        if not self.owned:
            return
        k = self._keys
        for shard in sorted({k.shard_of(p) for p in self.owned}):  # one script per shard
            await self._renew_shard(sorted(p for p in self.owned if k.shard_of(p) == shard))

    async def _renew_shard(self, order: list[int]) -> None:
        renewed: list[Any] = await self._renew(
            keys=[self._keys.lease(p) for p in order], args=[self._worker_id, self._lease_ms]
        )
        for partition, kept in zip(order, renewed, strict=True):
            if not int(kept):
                self._log.warning("worker.lease.lost", partition=partition)
                self._forget(partition)

    async def _fair_share(self) -> int:
        """This worker's share: partitions / live workers, the remainder going to the first
        workers by id, so the shares of all live workers add up to the partitions exactly."""
        seconds, micros = await self._redis.time()
        now_ms = seconds * 1000 + micros // 1000
        members: list[bytes] = await self._redis.zrangebyscore(  # type: ignore[assignment]
            self._keys.workers, now_ms - self._alive_window_ms, "+inf"
        )
        alive = sorted({m.decode() for m in members} | {self._worker_id})
        base, extra = divmod(self._keys.partitions, len(alive))
        return base + (1 if alive.index(self._worker_id) < extra else 0)

    async def _take(self, partition: int) -> bool:
        taken = await self._redis.set(
            self._keys.lease(partition), self._worker_id, nx=True, px=self._lease_ms
        )
        if taken:
            self.owned.add(partition)
            self.acquired.add(partition)
            self._log.info("worker.lease.acquired", partition=partition)
        return bool(taken)

    async def release(self, partition: int) -> None:
        """Hand a partition back (only if still ours); call between batches."""
        self._forget(partition)
        await self._release(keys=[self._keys.lease(partition)], args=[self._worker_id])
        self._log.info("worker.lease.released", partition=partition)

    def lost(self, partition: int) -> None:
        """A commit found the lease gone: another worker owns the partition now."""
        self._log.warning("worker.lease.fenced", partition=partition)
        self._forget(partition)

    def _forget(self, partition: int) -> None:
        self.owned.discard(partition)
        self.acquired.discard(partition)
        self.surplus.discard(partition)

    async def release_all(self) -> None:
        for partition in sorted(self.owned):
            await self.release(partition)
