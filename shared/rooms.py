"""Rooms: a subscription type plus canonical filters, and the rule deciding what matches.

Two subscriptions with equal type and canonical filters are the same room (same `room_id`)
on every gateway, so each event is matched and delivered once per room, not per client.

Filter semantics (README, "Filters"):
- `sport` matches case-insensitively; `game_id`, `player`, `sportsbook` by equality;
  a list means any of its members; `min_profit` is a lower bound on arbitrage profit (%).
- An absent filter matches everything; an event lacking a filtered attribute never matches.
- Unknown keys, wrong types and filters that make no sense for the type are errors.
- `mlb`/`nba`/`nfl`/`nhl` receive every event of their sport (except private portfolio
  events); `system_alerts` with a `sport` filter also receives alerts meant for everyone.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from oddstream.shared.events import EventKind, Routing
from oddstream.shared.protocol import SPORT_TYPES, ErrorCode, ProtocolError, SubscriptionType

__all__ = [
    "ALLOWED_FILTERS",
    "OFFLINE_TYPES",
    "FilterValue",
    "RoomSpec",
    "keeps_offline_history",
    "offline_rooms",
    "parse_room",
]

FilterValue = tuple[str, ...] | float

LIST_FILTERS = ("sport", "game_id", "player", "sportsbook")
MAX_FILTER_VALUES = 50
MAX_FILTER_VALUE_LENGTH = 100

_SPORT_TYPE_FILTERS = frozenset({"game_id", "player", "sportsbook"})
ALLOWED_FILTERS: dict[SubscriptionType, frozenset[str]] = {
    SubscriptionType.ODDS_UPDATES: frozenset({"sport", "game_id", "sportsbook"}),
    SubscriptionType.PREDICTIONS: frozenset({"sport", "game_id", "player"}),
    SubscriptionType.ANALYTICS: frozenset({"sport", "game_id", "player"}),
    SubscriptionType.ARBITRAGE: frozenset({"sport", "game_id", "sportsbook", "min_profit"}),
    SubscriptionType.MLB: _SPORT_TYPE_FILTERS,
    SubscriptionType.NBA: _SPORT_TYPE_FILTERS,
    SubscriptionType.NFL: _SPORT_TYPE_FILTERS,
    SubscriptionType.NHL: _SPORT_TYPE_FILTERS,
    SubscriptionType.SYSTEM_ALERTS: frozenset({"sport"}),
    # `user` is set by the gateway from the token, never trusted from the client.
    SubscriptionType.PORTFOLIO: frozenset(),
}

#: Event kinds each subscription type receives.
KINDS_OF_TYPE: dict[SubscriptionType, frozenset[EventKind]] = {
    SubscriptionType.ODDS_UPDATES: frozenset({EventKind.ODDS}),
    SubscriptionType.PREDICTIONS: frozenset({EventKind.PREDICTIONS}),
    SubscriptionType.ANALYTICS: frozenset({EventKind.ANALYTICS}),
    SubscriptionType.ARBITRAGE: frozenset({EventKind.ARBITRAGE}),
    SubscriptionType.SYSTEM_ALERTS: frozenset({EventKind.ALERTS}),
    SubscriptionType.PORTFOLIO: frozenset({EventKind.PORTFOLIO}),
    **{
        t: frozenset(
            {
                EventKind.ODDS,
                EventKind.PREDICTIONS,
                EventKind.ANALYTICS,
                EventKind.ARBITRAGE,
                EventKind.ALERTS,
            }
        )
        for t in SPORT_TYPES
    },
}


@dataclass(frozen=True, slots=True)
class RoomSpec:
    """A room: subscription type, canonical filters and (for portfolio) the owning user."""

    type: SubscriptionType
    filters: tuple[tuple[str, FilterValue], ...] = ()
    user: str | None = None
    room_id: str = field(init=False, compare=False)

    def __post_init__(self) -> None:
        digest = hashlib.blake2b(self.canonical_json(), digest_size=8).hexdigest()
        object.__setattr__(self, "room_id", f"{self.type.value}.{digest}")

    @property
    def filter_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.filters}

    def canonical_json(self) -> bytes:
        body: dict[str, Any] = {"type": self.type.value, "filters": self.filter_dict}
        if self.user is not None:
            body["user"] = self.user
        return orjson.dumps(body, option=orjson.OPT_SORT_KEYS)

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"subscription_type": self.type.value, "filters": self.filter_dict}
        if self.user is not None:
            body["user"] = self.user
        return body

    @classmethod
    def from_dict(cls, body: Mapping[str, Any]) -> RoomSpec:
        """Rebuild a spec stored in Redis; it was canonical when stored."""
        filters = tuple(
            (k, tuple(v) if isinstance(v, list) else float(v))
            for k, v in sorted(body.get("filters", {}).items())
        )
        return cls(SubscriptionType(body["subscription_type"]), filters, body.get("user"))

    def get(self, key: str) -> FilterValue | None:
        for k, v in self.filters:
            if k == key:
                return v
        return None

    def matches(self, event: Routing) -> bool:
        """Whether an event belongs in this room (see module docstring)."""
        if event.canary_for is not None:
            return False  # a gateway's pipeline probe, never for clients
        if event.broadcast_to is not None:
            return event.broadcast_to is self.type
        if event.kind not in KINDS_OF_TYPE[self.type]:
            return False
        implied_sport = self.type.sport
        if implied_sport is not None and event.sport != implied_sport:
            return False
        if self.type is SubscriptionType.PORTFOLIO:
            return event.user is not None and event.user == self.user
        for key, wanted in self.filters:  # noqa: SIM110 - no generator per event: hot path
            if not _filter_matches(key, wanted, event, self.type):
                return False
        return True


def _filter_matches(key: str, wanted: FilterValue, event: Routing, type_: SubscriptionType) -> bool:
    if key == "min_profit":
        assert isinstance(wanted, float)
        return event.profit_pct is not None and event.profit_pct >= wanted
    assert isinstance(wanted, tuple)
    if key == "sport":
        if event.sport is None:
            # An alert without a sport is meant for everyone subscribed to alerts.
            return type_ is SubscriptionType.SYSTEM_ALERTS
        return event.sport in wanted
    if key == "game_id":
        return event.game_id is not None and event.game_id in wanted
    if key == "player":
        return event.player is not None and event.player in wanted
    if key == "sportsbook":
        return any(book in wanted for book in event.sportsbooks)
    return False  # pragma: no cover - parse_room admits no other key


def _bad(message: str) -> ProtocolError:
    return ProtocolError(ErrorCode.INVALID_FILTER, message)


def _canonical_list(key: str, value: Any, max_length: int) -> tuple[str, ...]:
    items = value if isinstance(value, list) else [value]
    if not items:
        raise _bad(f"Filter '{key}' is an empty list; omit it to match everything.")
    if len(items) > MAX_FILTER_VALUES:
        raise _bad(f"Filter '{key}' has {len(items)} values; at most {MAX_FILTER_VALUES}.")
    out: set[str] = set()
    for item in items:
        if key == "game_id" and isinstance(item, int) and not isinstance(item, bool):
            item = str(item)
        if not isinstance(item, str):
            raise _bad(
                f"Filter '{key}' must be a string or a list of strings, got {type(item).__name__}."
            )
        item = item.strip()
        if not item:
            raise _bad(f"Filter '{key}' has an empty value.")
        if len(item) > max_length:
            raise _bad(f"Filter '{key}' value is longer than {max_length} characters.")
        out.add(item.upper() if key == "sport" else item)
    return tuple(sorted(out))


def _canonical_min_profit(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _bad(f"Filter 'min_profit' must be a number (percent), got {type(value).__name__}.")
    number = float(value)
    if not math.isfinite(number) or number < 0 or number > 1000:
        raise _bad("Filter 'min_profit' must be a percentage between 0 and 1000.")
    return number


def parse_room(
    subscription_type: Any,
    filters: Any,
    *,
    user: str | None = None,
    max_value_length: int = MAX_FILTER_VALUE_LENGTH,
) -> RoomSpec:
    """Validate a client's subscription and return its canonical room.

    Raises ProtocolError with `invalid_subscription_type`, `invalid_filter` or
    `auth_required`; never returns a room broader than the client asked for.
    """
    try:
        type_ = SubscriptionType(str(subscription_type).lower())
    except ValueError:
        raise ProtocolError(
            ErrorCode.INVALID_SUBSCRIPTION_TYPE,
            f"Unknown subscription type {subscription_type!r}.",
        ) from None
    if not isinstance(filters, dict):
        raise _bad("'filters' must be a JSON object.")
    allowed = ALLOWED_FILTERS[type_]
    canonical: list[tuple[str, FilterValue]] = []
    for key, value in filters.items():
        if key not in allowed:
            known = ", ".join(sorted(allowed)) or "none"
            if key in {"sport", "game_id", "player", "sportsbook", "min_profit"}:
                reason = f"Filter '{key}' makes no sense for '{type_.value}'"
            else:
                reason = f"Unknown filter '{key}'"
            raise _bad(f"{reason}; '{type_.value}' accepts: {known}.")
        if value is None:
            raise _bad(f"Filter '{key}' is null; omit it to match everything.")
        if key == "min_profit":
            canonical.append((key, _canonical_min_profit(value)))
        else:
            canonical.append((key, _canonical_list(key, value, max_value_length)))
    if type_ is SubscriptionType.PORTFOLIO and user is None:
        raise ProtocolError(
            ErrorCode.AUTH_REQUIRED, "Subscription type 'portfolio' needs an authenticated user."
        )
    return RoomSpec(
        type_,
        tuple(sorted(canonical)),
        user if type_ is SubscriptionType.PORTFOLIO else None,
    )


#: Types whose rooms keep a long history (offline delivery), recorded whether held or not.
OFFLINE_TYPES = frozenset({SubscriptionType.PORTFOLIO, SubscriptionType.SYSTEM_ALERTS})


def keeps_offline_history(room_id: str) -> bool:
    """Whether a room id is of an offline-delivery type (its type is the id's prefix)."""
    return room_id.partition(".")[0] in OFFLINE_TYPES


def offline_rooms(event: Routing) -> list[RoomSpec]:
    """The offline-delivery rooms an event is recorded in even when no one holds them: the
    user's portfolio room, and for alerts the unfiltered alerts room and (when the alert
    names a sport) that sport's alerts room. Any other matching room is recorded while held
    or lingering, like every room."""
    if event.canary_for is not None or event.broadcast_to is not None:
        return []
    if event.kind is EventKind.PORTFOLIO and event.user is not None:
        return [RoomSpec(SubscriptionType.PORTFOLIO, (), event.user)]
    if event.kind is EventKind.ALERTS:
        rooms = [RoomSpec(SubscriptionType.SYSTEM_ALERTS)]
        if event.sport is not None:
            rooms.append(RoomSpec(SubscriptionType.SYSTEM_ALERTS, (("sport", (event.sport,)),)))
        return rooms
    return []
