"""The cluster registry in Redis: which gateways are alive, which rooms each holds, and a
change feed that lets workers keep an in-memory room index current without polling.

Invariants, kept by Lua scripts so that concurrent gateways and reapers cannot break them:
- a room's spec is in `rooms` exactly while its holder set is non-empty or it lingers: a room
  whose last holder left (or was reaped) stays for `linger` seconds in `lingering`, so workers
  keep recording its history for clients that come back; then it expires (feed `expire`);
- every change of a holder set appends one entry to the room feed (join, leave, gateway_down,
  expire);
- a gateway reaped for silence is removed from every holder set before `gateway_down` is fed.
Liveness timestamps come from Redis's own clock (`TIME`), so host clock skew cannot reap a
healthy gateway.

What a gateway writes costs what changed, never its number of connections: a beat refreshes
its liveness and writes only the connection records that changed since the last one; a user's
connection slots count while their gateway is registered, so nothing refreshes them; the
counters of a connection listing are asked of their gateways when it is read
(`ask_counters`).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from redis.asyncio import Redis

from oddstream.shared.keys import CONTROL_SHARD, Keys
from oddstream.shared.redis import is_cluster
from oddstream.shared.rooms import RoomSpec, keeps_offline_history
from oddstream.shared.settings import Settings
from oddstream.shared.streams import (
    CounterRequest,
    Revocation,
    encode_inbox_entry,
    entry_order,
)

__all__ = ["FeedEntry", "Registry", "RoomHolding"]

# Feed entries older than this are trimmed; a worker that falls further behind resyncs.
FEED_RETENTION_MS = 300_000

#: How long an answer to a counter request is kept for an asker that gave up waiting.
COUNTERS_REPLY_TTL_MS = 10_000

_SCRIPTS = Path(__file__).with_name("lua")


def _lua(name: str) -> str:
    """A registry script from `shared/lua/<name>.lua` (their header comments say KEYS/ARGV)."""
    return (_SCRIPTS / f"{name}.lua").read_text()


@dataclass(slots=True)
class RoomHolding:
    """A room as the cluster sees it: its spec and the gateways holding it."""

    spec: RoomSpec
    gateways: set[str] = field(default_factory=set)


@dataclass(frozen=True, slots=True)
class FeedEntry:
    id: bytes
    op: str
    gateway: str
    room: str | None
    spec: RoomSpec | None


class Registry:
    """Typed operations on the registry keys; one instance per process, sharing its client."""

    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        *,
        gateway_ttl: float,
        worker_ttl: float,
        linger: float = 0.0,
        window: float | None = None,
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.gateway_ttl_ms = int(gateway_ttl * 1000)
        self.worker_ttl_ms = int(worker_ttl * 1000)
        self.linger_ms = int(linger * 1000)
        #: The live history window (ms): how long a deleted history's tombstone is kept.
        #: Rooms linger for that window, hence the default.
        self.window_ms = self.linger_ms if window is None else int(window * 1000)
        #: Catch-ups waiting for the workers to apply a room change, and the task polling
        #: for them (see `wait_applied`).
        self._floor_waiters: list[tuple[tuple[int, int], asyncio.Future[bool]]] = []
        self._floor_poller: asyncio.Task[None] | None = None
        self._beat = redis.register_script(_lua("beat"))
        self._join = redis.register_script(_lua("join_room"))
        self._leave = redis.register_script(_lua("leave_room"))
        self._reap_gateway = redis.register_script(_lua("reap_gateway"))
        self._reap_worker = redis.register_script(_lua("reap_worker"))
        self._acquire_user_slot = redis.register_script(_lua("acquire_user_slot"))
        self._release_user_slot = redis.register_script(_lua("release_user_slot"))
        self._release_gateway_slots = redis.register_script(_lua("release_gateway_slots"))
        self._due_rooms = redis.register_script(_lua("due_rooms"))
        self._expire_rooms = redis.register_script(_lua("expire_rooms"))
        self._forget_history = redis.register_script(_lua("forget_history"))

    # --- gateways ------------------------------------------------------------------------

    @property
    def inbox_ttl_ms(self) -> int:
        # An inbox outlives its gateway by a few TTLs at most, even if no reaper deletes it.
        return self.gateway_ttl_ms * 6

    @classmethod
    def of(cls, redis: Redis, keys: Keys, settings: Settings) -> Registry:
        """The registry as a deployment's settings configure it (TTLs, linger)."""
        return cls(
            redis,
            keys,
            gateway_ttl=settings.gateway_ttl,
            worker_ttl=settings.worker_ttl,
            linger=settings.history_seconds,
            window=settings.history_seconds,
        )

    async def register_gateway(self, gateway_id: str, info: Mapping[str, Any]) -> list[bytes]:
        """Mark the gateway alive and create its (empty) inboxes, one per shard; returns, per
        shard, the id to read after. One MULTI per inbox: each is in its shard's slot."""
        hello_ids: list[bytes] = []
        for inbox in self.keys.inboxes(gateway_id):
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.xadd(inbox, {"hello": gateway_id})
                pipe.xtrim(inbox, maxlen=0)
                pipe.pexpire(inbox, self.inbox_ttl_ms)
                results = await pipe.execute()
            hello_ids.append(results[0])
        await self._beat(
            keys=[self.keys.gateways, self.keys.gateway_info(gateway_id)],
            args=[gateway_id, orjson.dumps(info), "1"],
        )
        return hello_ids

    async def beat_gateway(
        self,
        gateway_id: str,
        info: Mapping[str, Any],
        connections: Mapping[str, bytes],
        closed: Iterable[str],
    ) -> bool:
        """Refresh liveness, write the connection records in `connections` (those that
        changed) and delete the `closed` ones; False when the gateway was reaped. Costs what
        it is given, not the gateway's number of connections."""
        alive = await self._beat(
            keys=[self.keys.gateways, self.keys.gateway_info(gateway_id)],
            args=[gateway_id, orjson.dumps(info), "0"],
        )
        if not alive:
            return False
        conns_key = self.keys.gateway_connections(gateway_id)
        async with self.redis.pipeline(transaction=False) as pipe:
            closed = list(closed)
            if closed:
                pipe.hdel(conns_key, *closed)
            if connections:
                pipe.hset(conns_key, mapping=dict(connections))  # type: ignore[arg-type]
            for inbox in self.keys.inboxes(gateway_id):
                pipe.pexpire(inbox, self.inbox_ttl_ms)
            await pipe.execute()
        return True

    async def join_room(self, gateway_id: str, spec: RoomSpec, count: int) -> bytes | None:
        """Record that this gateway holds `spec`. Returns the feed entry id workers must apply
        before they route the room here (b"" when the gateway held it already), None when
        the gateway is not registered."""
        result = await self._join(
            keys=[
                self.keys.rooms,
                self.keys.room_holders(spec.room_id),
                self.keys.gateway_rooms(gateway_id),
                self.keys.room_feed,
                self.keys.gateways,
                self.keys.lingering,
            ],
            args=[
                spec.room_id,
                orjson.dumps(spec.to_dict()),
                gateway_id,
                count,
                FEED_RETENTION_MS,
            ],
        )
        if isinstance(result, int):
            return None  # -1: not registered
        return bytes(result)

    async def ack_feed(self, worker_id: str, position: bytes) -> None:
        """A worker applied the room feed up to `position` (see `wait_applied`)."""
        await self.redis.hset(self.keys.feed_acks, worker_id, position)

    async def wait_applied(self, feed_id: bytes, within: float) -> bool:
        """Wait until every worker that can commit (it holds a partition lease) applied the
        feed up to `feed_id`, so every event committed from then on is routed by an index
        that has the change. A stalled worker stops counting once its leases lapse (it can
        no longer commit; the next owner follows the feed before it reads). False on
        timeout, which a caller treats as "no gap-free guarantee". Concurrent waiters (a
        reconnect storm) share one poll of Redis at a time and are each woken once, when a
        poll that began after they started waiting shows their change applied."""
        waiter: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._floor_waiters.append((entry_order(feed_id), waiter))
        if self._floor_poller is None or self._floor_poller.done():
            self._floor_poller = asyncio.create_task(self._poll_floor_for_waiters())
        try:
            return await asyncio.wait_for(asyncio.shield(waiter), within)
        except TimeoutError:
            return False
        finally:
            if not waiter.done():
                waiter.cancel()

    async def _poll_floor_for_waiters(self) -> None:
        """Poll the applied floor while anyone waits; resolve the waiters it satisfies."""
        while self._floor_waiters:
            waiting, self._floor_waiters = self._floor_waiters, []
            try:
                floor = await self._poll_applied_floor()
            except Exception as exc:
                for _, waiter in waiting:
                    if not waiter.done():
                        waiter.set_exception(exc)
                continue
            for wanted, waiter in waiting:
                if waiter.done():
                    continue  # timed out
                if floor >= wanted:
                    waiter.set_result(True)
                else:
                    self._floor_waiters.append((wanted, waiter))
            if self._floor_waiters:
                await asyncio.sleep(0.002)

    async def _poll_applied_floor(self) -> tuple[int, int]:
        k = self.keys
        async with self.redis.pipeline(transaction=False) as pipe:
            for partition in range(k.partitions):  # GETs: a cluster pipeline takes no MGET
                pipe.get(k.lease(partition))
            pipe.hgetall(k.feed_acks)
            *holders, acks = await pipe.execute()
        owners = {h for h in holders if h is not None}
        if not owners:
            return (2**63, 0)  # no worker can commit: nothing is routed without the change
        return min(entry_order(acks.get(w, b"0-0")) for w in owners)

    async def set_room_count(self, gateway_id: str, room_id: str, count: int) -> None:
        await self.redis.hset(self.keys.gateway_rooms(gateway_id), room_id, count)

    async def leave_room(self, gateway_id: str, room_id: str) -> None:
        await self._leave(
            keys=[
                self.keys.rooms,
                self.keys.room_holders(room_id),
                self.keys.gateway_rooms(gateway_id),
                self.keys.room_feed,
                self.keys.lingering,
            ],
            args=[room_id, gateway_id, FEED_RETENTION_MS, self.linger_ms],
        )

    async def deregister_gateway(self, gateway_id: str, reason: str = "shutdown") -> None:
        await self._reap(gateway_id, "force", reason)

    async def _reap(self, gateway_id: str, ttl: str, reason: str) -> bool:
        k = self.keys
        reaped = await self._reap_gateway(
            keys=[
                k.gateways,
                k.gateway_info(gateway_id),
                k.gateway_rooms(gateway_id),
                k.gateway_connections(gateway_id),
                k.rooms,
                k.room_feed,
                k.lingering,
            ],
            args=[gateway_id, k.holders_prefix, ttl, FEED_RETENTION_MS, reason, self.linger_ms],
        )
        if reaped:
            for inbox in k.inboxes(gateway_id):  # one by one: each in its shard's slot
                await self.redis.delete(inbox)
            await self._release_gateway_slots(
                keys=[self.keys.gateway_slots(gateway_id)], args=[gateway_id]
            )
        return bool(reaped)

    async def reap_dead(self) -> list[str]:
        """Remove gateways and workers whose beats stopped; returns the reaped ids."""
        seconds, micros = await self.redis.time()
        cutoff = seconds * 1000 + micros // 1000
        reaped: list[str] = []
        expired_gateways: list[Any] = await self.redis.zrangebyscore(
            self.keys.gateways, "-inf", cutoff - self.gateway_ttl_ms
        )
        for raw in expired_gateways:
            gateway_id = raw.decode()
            if await self._reap(gateway_id, str(self.gateway_ttl_ms), "expired"):
                reaped.append(gateway_id)
        expired_workers: list[Any] = await self.redis.zrangebyscore(
            self.keys.workers, "-inf", cutoff - self.worker_ttl_ms
        )
        for raw in expired_workers:
            worker_id = raw.decode()
            if await self._reap_worker(
                keys=[self.keys.workers, self.keys.worker_info(worker_id), self.keys.feed_acks],
                args=[worker_id, self.worker_ttl_ms],
            ):
                reaped.append(worker_id)
        await self.expire_rooms()
        return reaped

    async def expire_rooms(self) -> list[str]:
        """Rooms that lingered their time with no holder leave the registry; their history
        goes too (so a later room of that id starts a new history that no old position can
        claim to continue), except for the offline-delivery rooms, which keep theirs.

        A registry script cannot reach a history's Cluster slot, so this takes three steps,
        ordered so that dying between any two refuses a resume, never grants a wrong one:
        1. the histories of the rooms due go first (`forget_due_histories`), each leaving its
           tombstone: a position in them, or an empty room's position older than the
           tombstone, is `recovered: false` from then on;
        2. the rooms leave the registry, if still due (a room joined meanwhile stays, with a
           new history);
        3. what workers recorded for them between 1 and 2 goes too (their index drops a room
           only once they read 2 from the feed).
        Had the rooms left first and the process died before their histories went (the order
        until 2026-12), the histories stayed whole without a tombstone while workers no longer
        recorded the room's events: a position in them resumed as `recovered: true` across
        what was never recorded. Now only a position handed out between steps 1 and 2 (one
        round trip, to a subscriber that joined and left within it) could."""
        await self.forget_due_histories()
        gone: list[Any] = await self._expire_rooms(
            keys=[self.keys.lingering, self.keys.rooms, self.keys.room_feed],
            args=[self.keys.holders_prefix, FEED_RETENTION_MS],
        )
        room_ids = [g.decode() for g in gone]
        await self._forget_histories([r for r in room_ids if not keeps_offline_history(r)])
        return room_ids

    async def forget_due_histories(self) -> list[str]:
        """Step 1 of `expire_rooms`: delete the histories (leaving tombstones) of the rooms
        due to expire, except the offline-delivery rooms'; returns the rooms whose history
        went."""
        due: list[Any] = await self._due_rooms(
            keys=[self.keys.lingering], args=[self.keys.holders_prefix]
        )

        room_ids = [d.decode() for d in due if not keeps_offline_history(d.decode())]
        await self._forget_histories(room_ids)
        return room_ids

    async def _forget_histories(self, room_ids: list[str]) -> None:
        """Delete the rooms' histories, each with a tombstone saying when (a position taken
        while its room was empty names no entry: the tombstone tells a resume from it that a
        history it may have missed is gone). One script per room and shard: a room's history
        of a shard and its tombstone share that shard's Cluster slot."""
        if not room_ids:
            return
        k = self.keys
        targets = [
            (k.history(s, r), k.history_gone(s, r)) for r in room_ids for s in range(k.shards)
        ]
        if is_cluster(self.redis):
            # A cluster pipeline cannot load a script a node lacks (a promoted replica has none
            # of its master's): one call each, which loads it where needed.
            for history, gone in targets:
                await self._forget_history(keys=[history, gone], args=[self.window_ms])
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for history, gone in targets:
                await self._forget_history(keys=[history, gone], args=[self.window_ms], client=pipe)
            await pipe.execute()

    # --- users ---------------------------------------------------------------------------

    async def acquire_user_slot(self, user: str, member: str, limit: int) -> bool:
        """Count a connection (`member`: "<gateway id>|<connection>") against the user's
        cluster-wide limit; False if it is full. A slot counts while its gateway is
        registered: nothing refreshes it, and the slots of a gateway that is gone are dropped
        at the user's next acquire, or when the gateway is reaped."""
        gateway_id = member.rpartition("|")[0]
        granted = await self._acquire_user_slot(
            keys=[
                self.keys.user_connections(user),
                self.keys.gateways,
                self.keys.gateway_slots(gateway_id),
            ],
            args=[member, limit],
        )
        return bool(granted)

    async def release_user_slot(self, user: str, member: str) -> None:
        gateway_id = member.rpartition("|")[0]
        await self._release_user_slot(
            keys=[self.keys.user_connections(user), self.keys.gateway_slots(gateway_id)],
            args=[member, gateway_id],
        )

    async def revoked_at(self, user: str) -> float | None:
        raw = await self.redis.get(self.keys.revoked(user))
        return float(raw) if raw is not None else None

    async def revoke_user(self, user: str, revoked_at: float, keep_seconds: int) -> int:
        """Refuse the user's current tokens and tell every gateway to close their
        connections; returns the number of gateways told."""
        await self.redis.set(self.keys.revoked(user), revoked_at, ex=keep_seconds)
        gateway_ids = await self._member_ids(self.keys.gateways)
        entry = encode_inbox_entry([Revocation(user)])
        async with self.redis.pipeline(transaction=False) as pipe:
            for gateway_id in gateway_ids:
                pipe.xadd(self.keys.inbox(CONTROL_SHARD, gateway_id), entry, nomkstream=True)  # type: ignore[arg-type]
            await pipe.execute()
        return len(gateway_ids)

    # --- workers -------------------------------------------------------------------------

    async def beat_worker(self, worker_id: str, info: Mapping[str, Any]) -> None:
        await self._beat(
            keys=[self.keys.workers, self.keys.worker_info(worker_id)],
            args=[worker_id, orjson.dumps(info), "1"],
        )

    async def deregister_worker(self, worker_id: str) -> None:
        await self._reap_worker(
            keys=[self.keys.workers, self.keys.worker_info(worker_id), self.keys.feed_acks],
            args=[worker_id, "force"],
        )

    # --- room index for workers ----------------------------------------------------------

    async def feed_tail(self) -> bytes:
        """The id of the room feed's last entry (b"0-0" when it has none)."""
        last: Any = await self.redis.xrevrange(self.keys.room_feed, count=1)
        return last[0][0] if last else b"0-0"

    async def snapshot(self) -> tuple[bytes, dict[str, RoomHolding]]:
        """The feed position and the room table consistent with it (or older: replay fixes)."""
        position = await self.feed_tail()
        specs: dict[bytes, bytes] = await self.redis.hgetall(self.keys.rooms)  # type: ignore[assignment]
        rooms = {
            rid.decode(): RoomHolding(RoomSpec.from_dict(orjson.loads(raw)))
            for rid, raw in specs.items()
        }
        for gateway_id in await self._member_ids(self.keys.gateways):
            room_ids: list[bytes] = await self.redis.hkeys(self.keys.gateway_rooms(gateway_id))  # type: ignore[assignment]
            for rid in room_ids:
                holding = rooms.get(rid.decode())
                if holding is not None:
                    holding.gateways.add(gateway_id)
        # Rooms with no holder are lingering: still matched (for their history), sent nowhere.
        return position, rooms

    async def read_feed(self, after: bytes, block_ms: int, count: int = 1000) -> list[FeedEntry]:
        reply: Any = await self.redis.xread(
            {self.keys.room_feed: after}, count=count, block=block_ms
        )
        entries: list[FeedEntry] = []
        for _stream, items in reply or []:
            for entry_id, fields in items:
                spec_raw = fields.get(b"spec")
                room = fields.get(b"room")
                entries.append(
                    FeedEntry(
                        id=entry_id,
                        op=fields[b"op"].decode(),
                        gateway=fields[b"gw"].decode(),
                        room=room.decode() if room else None,
                        spec=RoomSpec.from_dict(orjson.loads(spec_raw)) if spec_raw else None,
                    )
                )
        return entries

    # --- management views ----------------------------------------------------------------

    async def ask_counters(
        self, asker: str, wanted: Mapping[str, Sequence[str]], within: float
    ) -> dict[str, list[int]]:
        """Ask each gateway in `wanted` (through its inbox) for the live counters of those of
        its connections; returns what the answers that came `within` seconds hold:
        client id -> [messages sent, messages received]. A gateway that is gone or slow is
        left out (its records keep the counters of their last write)."""
        reply = f"{self.keys.gateway_info(asker)}:ask:{uuid.uuid4().hex}"
        async with self.redis.pipeline(transaction=False) as pipe:
            for gateway_id, clients in wanted.items():
                entry = encode_inbox_entry([CounterRequest(reply, tuple(clients))])
                pipe.xadd(self.keys.inbox(CONTROL_SHARD, gateway_id), entry, nomkstream=True)  # type: ignore[arg-type]
            added = await pipe.execute()
        waiting = sum(1 for entry_id in added if entry_id is not None)
        counters: dict[str, list[int]] = {}
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        try:
            while waiting:
                left = deadline - loop.time()
                if left < 0.01:  # BLPOP's 0 would wait for ever
                    break
                popped: Any = await self.redis.blpop([reply], timeout=left)
                if popped is None:
                    break
                counters.update(orjson.loads(popped[1]))
                waiting -= 1
        finally:
            await self.redis.delete(reply)
        return counters

    async def answer_counters(self, reply: str, counters: Mapping[str, list[int]]) -> None:
        """Push this gateway's answer to a `CounterRequest`."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.rpush(reply, orjson.dumps(counters))
            pipe.pexpire(reply, COUNTERS_REPLY_TTL_MS)
            await pipe.execute()

    async def _member_ids(self, zset: str) -> list[str]:
        members: list[bytes] = await self.redis.zrange(zset, 0, -1)  # type: ignore[assignment]
        return [m.decode() for m in members]

    async def alive(self, zset: str, info_key: Any) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        ids = await self._member_ids(zset)
        if not ids:
            return out
        async with self.redis.pipeline(transaction=False) as pipe:
            for member in ids:
                pipe.hgetall(info_key(member))
            infos = await pipe.execute()
        for member, info in zip(ids, infos, strict=True):
            if info:
                body = orjson.loads(info[b"info"])
                body["last_beat_ms"] = int(info[b"beat"])
                out[member] = body
        return out

    async def gateways_alive(self) -> dict[str, dict[str, Any]]:
        return await self.alive(self.keys.gateways, self.keys.gateway_info)

    async def workers_alive(self) -> dict[str, dict[str, Any]]:
        return await self.alive(self.keys.workers, self.keys.worker_info)

    async def held_room_count(self) -> int:
        """Rooms some gateway holds (lingering rooms are in `rooms` too, but held by none)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hlen(self.keys.rooms)
            pipe.zcard(self.keys.lingering)
            total, lingering = await pipe.execute()
        return int(total) - int(lingering)

    async def rooms_detail(self) -> list[dict[str, Any]]:
        """Every room with its spec and subscriber count per gateway; a room no gateway holds
        says until when it lingers (still recorded for clients coming back)."""
        specs: dict[bytes, bytes] = await self.redis.hgetall(self.keys.rooms)  # type: ignore[assignment]
        lingering: list[tuple[bytes, float]] = await self.redis.zrange(  # type: ignore[assignment]
            self.keys.lingering, 0, -1, withscores=True
        )
        until = {room.decode(): int(score) for room, score in lingering}
        gateway_ids = await self._member_ids(self.keys.gateways)
        async with self.redis.pipeline(transaction=False) as pipe:
            for gateway_id in gateway_ids:
                pipe.hgetall(self.keys.gateway_rooms(gateway_id))
            per_gateway = await pipe.execute()
        counts: dict[str, dict[str, int]] = {}
        for gateway_id, rooms in zip(gateway_ids, per_gateway, strict=True):
            for rid, count in rooms.items():
                counts.setdefault(rid.decode(), {})[gateway_id] = int(count)
        detail = []
        for rid_raw, raw in sorted(specs.items()):
            rid = rid_raw.decode()
            spec = orjson.loads(raw)
            per = counts.get(rid, {})
            detail.append(
                {
                    "room": rid,
                    "subscription_type": spec["subscription_type"],
                    "filters": spec["filters"],
                    "subscribers": sum(per.values()),
                    "gateways": per,
                    "lingering_until_ms": until.get(rid),
                }
            )
        return detail

    async def connections(self) -> list[dict[str, Any]]:
        gateway_ids = await self._member_ids(self.keys.gateways)
        async with self.redis.pipeline(transaction=False) as pipe:
            for gateway_id in gateway_ids:
                pipe.hvals(self.keys.gateway_connections(gateway_id))
            per_gateway = await pipe.execute()
        records = [orjson.loads(raw) for values in per_gateway for raw in values]
        records.sort(key=lambda r: (r.get("connected_at", ""), r.get("client_id", "")))
        return records
