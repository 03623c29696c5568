"""Every Redis key Oddstream uses, in one place.

Registry keys share the hash tag `{prefix}` so its multi-key scripts stay in one Redis Cluster
slot; the high-traffic streams (ingest, inboxes, histories) carry no tag and spread across the
cluster. A key read together with a history is tagged with the history key's name.
"""

from __future__ import annotations

from dataclasses import dataclass

from oddstream.shared.settings import Settings

__all__ = ["DEFAULT_PARTITIONS", "Keys"]

#: Ingest partitions unless configured (`Settings.partitions`).
DEFAULT_PARTITIONS = 16


@dataclass(frozen=True, slots=True)
class Keys:
    prefix: str
    partitions: int = DEFAULT_PARTITIONS

    @classmethod
    def of(cls, settings: Settings) -> Keys:
        """The keys of a deployment: its prefix and its number of ingest partitions."""
        return cls(settings.redis_prefix, settings.partitions)

    # --- streams (no hash tag) -----------------------------------------------------------
    def ingest(self, partition: int) -> str:
        """Ingest partition `partition` (0 <= partition < partitions)."""
        return f"{self.prefix}:ingest:{partition}"

    @property
    def ingest_streams(self) -> list[str]:
        return [self.ingest(p) for p in range(self.partitions)]

    def lease(self, partition: int) -> str:
        """The worker that owns an ingest partition (a string with a TTL)."""
        return f"{self.prefix}:lease:{partition}"

    @property
    def history_prefix(self) -> str:
        return f"{self.prefix}:history:"

    def history(self, room_id: str) -> str:
        """Stream: a room's recent events, for resume (entry id = the room's position)."""
        return self.history_prefix + room_id

    def history_gone(self, room_id: str) -> str:
        """When the room's history was last deleted with its room (ms, Redis clock), kept for
        the live window (see `gateway/resume.py`). Its hash tag is the history key's whole
        name, which has no braces (prefixes and room ids cannot hold any): both hash alike,
        so they share a Redis Cluster slot, and one MULTI or script may use both."""
        return "{" + self.history(room_id) + "}:gone"

    @property
    def epoch(self) -> str:
        """A random value made once per data set: it changes when Redis loses its data."""
        return f"{self.prefix}:epoch"

    @property
    def latest_prefix(self) -> str:
        return f"{self.prefix}:latest:"

    def latest(self, game_id: str) -> str:
        """Hash: conflation key -> the latest event of a game with that key (snapshots)."""
        return self.latest_prefix + game_id

    @property
    def games_prefix(self) -> str:
        return f"{self.prefix}:games:"

    def games(self, sport: str) -> str:
        """Set: games of a sport with latest values."""
        return self.games_prefix + sport

    @property
    def sports(self) -> str:
        """Set: sports with latest values."""
        return f"{self.prefix}:sports"

    def cursor(self, partition: int) -> str:
        """The last entry id of an ingest partition that is delivered (absent: none yet)."""
        return f"{self.prefix}:cursor:{partition}"

    @property
    def deadletter(self) -> str:
        return f"{self.prefix}:deadletter"

    def inbox(self, gateway_id: str) -> str:
        return f"{self.prefix}:inbox:{gateway_id}"

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
