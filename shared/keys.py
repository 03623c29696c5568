"""Every Redis key Oddstream uses, in one place.

Two kinds of hash tag keep every multi-key operation in one Redis Cluster slot:

- the registry (gateways, workers, rooms, the room feed, users) shares `{<prefix>}`;
- the data path is cut into `shards` (`Settings.shards`), each with its own tag
  `{<prefix>.<shard>}`: the ingest partitions of the shard (partition p is in shard
  p % shards) with their leases and cursors, the games whose events those partitions carry
  (their latest values and index), a history per room, an epoch, a dead-letter stream and an
  inbox per gateway. One worker commit writes one shard; a room's events of one shard are in
  that shard's history of the room, so a room's position has one part per shard.

On a single Redis the tags change nothing; on a cluster the shards spread over its masters.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot

from oddstream.shared.settings import Settings
from oddstream.shared.streams import game_partition_key, partition_for

__all__ = ["CONTROL_SHARD", "DEFAULT_PARTITIONS", "Keys", "shard_tags"]

#: Ingest partitions unless configured (`Settings.partitions`).
DEFAULT_PARTITIONS = 16

#: The shard of the gateway inbox that carries control messages (revocations, counter
#: requests) besides that shard's deliveries.
CONTROL_SHARD = 0


@lru_cache(maxsize=64)
def shard_tags(prefix: str, shards: int) -> tuple[str, ...]:
    """The hash tags of a deployment's shards: `{<prefix>.<shard>}`, or with one shard more
    than one, `{<prefix>.<shard>.<n>}` with the first n that puts shard k's slot in the k-th
    of `shards` equal ranges of the 16384 slots. A cluster made as usual gives each master
    an equal range of slots, so with a multiple of the masters' number of shards, each master
    gets the same number of shards (a hash would leave that to chance)."""
    if shards == 1:
        return ("{" + f"{prefix}.0" + "}",)
    tags: list[str] = []
    for shard in range(shards):
        low = shard * REDIS_CLUSTER_HASH_SLOTS // shards
        high = (shard + 1) * REDIS_CLUSTER_HASH_SLOTS // shards
        n = 0
        while not low <= key_slot(f"{prefix}.{shard}.{n}".encode()) < high:
            n += 1
        tags.append("{" + f"{prefix}.{shard}.{n}" + "}")
    return tuple(tags)


@dataclass(frozen=True, slots=True)
class Keys:
    prefix: str
    partitions: int = DEFAULT_PARTITIONS
    shards: int = 1

    @classmethod
    def of(cls, settings: Settings) -> Keys:
        """The keys of a deployment: its prefix, ingest partitions and shards."""
        return cls(settings.redis_prefix, settings.partitions, settings.shards)

    # --- shards ----------------------------------------------------------------------------
    def shard_of(self, partition: int) -> int:
        """The shard of an ingest partition."""
        return partition % self.shards

    def partitions_of(self, shard: int) -> list[int]:
        return list(range(shard, self.partitions, self.shards))

    def game_shard(self, game_id: str) -> int:
        """The shard that keeps a game's latest values (that of the game's partition)."""
        return self.shard_of(partition_for(game_partition_key(game_id), self.partitions))

    def tag(self, shard: int) -> str:
        """The hash tag of a shard's keys (see `shard_tags`)."""
        return shard_tags(self.prefix, self.shards)[shard]

    # --- a shard's keys ----------------------------------------------------------------------
    def ingest(self, partition: int) -> str:
        """Ingest partition `partition` (0 <= partition < partitions)."""
        return f"{self.tag(self.shard_of(partition))}:ingest:{partition}"

    @property
    def ingest_streams(self) -> list[str]:
        return [self.ingest(p) for p in range(self.partitions)]

    def lease(self, partition: int) -> str:
        """The worker that owns an ingest partition (a string with a TTL)."""
        return f"{self.tag(self.shard_of(partition))}:lease:{partition}"

    def cursor(self, partition: int) -> str:
        """The last entry id of an ingest partition that is delivered (absent: none yet)."""
        return f"{self.tag(self.shard_of(partition))}:cursor:{partition}"

    def history_prefix(self, shard: int) -> str:
        return f"{self.tag(shard)}:history:"

    def history(self, shard: int, room_id: str) -> str:
        """Stream: a room's recent events of one shard, for resume (entry id = the room's
        position's part of that shard)."""
        return self.history_prefix(shard) + room_id

    def history_gone(self, shard: int, room_id: str) -> str:
        """When the room's history of a shard was last deleted with its room (ms, Redis
        clock), kept for the live window (see `gateway/resume.py`)."""
        return f"{self.tag(shard)}:gone:{room_id}"

    def epoch(self, shard: int) -> str:
        """A random value made once per data set of a shard: it changes when the shard's
        Redis loses its data."""
        return f"{self.tag(shard)}:epoch"

    def latest_prefix(self, shard: int) -> str:
        return f"{self.tag(shard)}:latest:"

    def latest(self, game_id: str) -> str:
        """Hash: conflation key -> the latest event of a game with that key (snapshots)."""
        return self.latest_prefix(self.game_shard(game_id)) + game_id

    def games_prefix(self, shard: int) -> str:
        return f"{self.tag(shard)}:games:"

    def games(self, shard: int, sport: str) -> str:
        """Set: games of a sport with latest values in a shard."""
        return self.games_prefix(shard) + sport

    def sports(self, shard: int) -> str:
        """Set: sports with latest values in a shard."""
        return f"{self.tag(shard)}:sports"

    def deadletter(self, shard: int) -> str:
        return f"{self.tag(shard)}:deadletter"

    @property
    def deadletters(self) -> list[str]:
        return [self.deadletter(s) for s in range(self.shards)]

    def inbox(self, shard: int, gateway_id: str) -> str:
        """Stream: what workers committing a shard deliver to one gateway."""
        return f"{self.tag(shard)}:inbox:{gateway_id}"

    def inboxes(self, gateway_id: str) -> list[str]:
        return [self.inbox(s, gateway_id) for s in range(self.shards)]

    # --- registry (hash-tagged) ----------------------------------------------------------
    @property
    def _tag(self) -> str:
        return "{" + self.prefix + "}"

    @property
    def gateways(self) -> str:
        """Sorted set: gateway id -> last beat (ms, Redis clock)."""
        return f"{self._tag}:gateways"

    def gateway_info(self, gateway_id: str) -> str:
        return f"{self._tag}:gw:{gateway_id}"

    def gateway_rooms(self, gateway_id: str) -> str:
        """Hash: room id -> local subscriber count on that gateway."""
        return f"{self._tag}:gw:{gateway_id}:rooms"

    def gateway_slots(self, gateway_id: str) -> str:
        """Set: the user keys holding slots of this gateway's connections (released when the
        gateway is reaped)."""
        return f"{self._tag}:gw:{gateway_id}:slots"

    def gateway_connections(self, gateway_id: str) -> str:
        """Hash: client id -> JSON connection record (for /ws/v2/connections)."""
        return f"{self._tag}:gw:{gateway_id}:conns"

    @property
    def rooms(self) -> str:
        """Hash: room id -> JSON room spec, for rooms held by at least one gateway."""
        return f"{self._tag}:rooms"

    @property
    def holders_prefix(self) -> str:
        return f"{self._tag}:holders:"

    @property
    def feed_acks(self) -> str:
        """Hash: worker id -> the last room feed entry it applied to its room index."""
        return f"{self._tag}:feedacks"

    @property
    def lingering(self) -> str:
        """Sorted set: rooms no gateway holds, kept (recorded) until their score (ms)."""
        return f"{self._tag}:lingering"

    def room_holders(self, room_id: str) -> str:
        """Set: gateway ids holding a room."""
        return self.holders_prefix + room_id

    @property
    def room_feed(self) -> str:
        """Stream of registry changes (join, leave, gateway_down) that workers follow."""
        return f"{self._tag}:roomfeed"

    def user_connections(self, user: str) -> str:
        """Sorted set: the user's connections cluster-wide (`<gateway>|<connection>`), scored by
        when each was taken (ms); a slot counts while its gateway is registered."""
        return f"{self._tag}:user:{user}:conns"

    def revoked(self, user: str) -> str:
        """When the user's tokens were revoked (Unix seconds); older tokens are refused."""
        return f"{self._tag}:revoked:{user}"

    @property
    def workers(self) -> str:
        """Sorted set: worker id -> last beat (ms, Redis clock)."""
        return f"{self._tag}:workers"

    def worker_info(self, worker_id: str) -> str:
        return f"{self._tag}:wk:{worker_id}"

    def analytics(self, minute: int) -> str:
        """Hash: one minute's usage rollup (minute = Unix seconds // 60), written by every
        gateway (counters by HINCRBY, each gateway's sampled gauges under its own field)."""
        return f"{self._tag}:analytics:{minute}"
