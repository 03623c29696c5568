"""Ingest events: what data ingesters write, one Redis stream per kind.

Each kind has a pydantic model that validates the fields used for routing (sport, game,
player, sportsbooks, profit, user) and keeps every other field as payload (`extra="allow"`),
so feeds can carry richer data without a schema change here.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    field_validator,
)

from oddstream.shared.protocol import ServerMessageType, SubscriptionType

__all__ = [
    "AlertEvent",
    "AnalyticsEvent",
    "ArbitrageEvent",
    "BroadcastEvent",
    "CanaryEvent",
    "EventKind",
    "IngestEvent",
    "OddsEvent",
    "PortfolioEvent",
    "PredictionEvent",
    "Routing",
    "conflation_key",
    "ingest_event_adapter",
    "partition_key",
    "partition_of",
    "routing_of",
]


class EventKind(StrEnum):
    """Kinds of event; each has its own ingest stream and its own server message type."""

    ODDS = "odds"
    PREDICTIONS = "predictions"
    ARBITRAGE = "arbitrage"
    ANALYTICS = "analytics"
    ALERTS = "alerts"
    PORTFOLIO = "portfolio"

    @property
    def message_type(self) -> ServerMessageType:
        return _MESSAGE_TYPE[self]


_MESSAGE_TYPE = {
    EventKind.ODDS: ServerMessageType.ODDS_UPDATE,
    EventKind.PREDICTIONS: ServerMessageType.PREDICTION_UPDATE,
    EventKind.ARBITRAGE: ServerMessageType.ARBITRAGE_ALERT,
    EventKind.ANALYTICS: ServerMessageType.ANALYTICS_UPDATE,
    EventKind.ALERTS: ServerMessageType.SYSTEM_ALERT,
    EventKind.PORTFOLIO: ServerMessageType.PORTFOLIO_UPDATE,
}


def _to_str_id(value: Any) -> Any:
    # Feeds send game ids as numbers or strings; rooms compare them as strings.
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


def _upper(value: Any) -> Any:
    return value.strip().upper() if isinstance(value, str) else value


# Stripped like filter values are, so " Aaron Judge" in a feed matches a "Aaron Judge" room.
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Sport = Annotated[str, BeforeValidator(_upper), Field(min_length=1, max_length=20)]
GameId = Annotated[str, BeforeValidator(_to_str_id), Field(min_length=1, max_length=100)]


class _Event(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


class OddsEvent(_Event):
    kind: Literal["odds"]
    sport: Sport
    game_id: GameId
    sportsbook: Name
    market: Literal["moneyline", "spread", "total"]


class PredictionEvent(_Event):
    kind: Literal["predictions"]
    sport: Sport
    game_id: GameId
    player: Name | None = None


class AnalyticsEvent(_Event):
    kind: Literal["analytics"]
    sport: Sport
    game_id: GameId | None = None
    player: Name | None = None


class ArbitrageEvent(_Event):
    kind: Literal["arbitrage"]
    sport: Sport
    game_id: GameId
    profit_pct: float = Field(ge=0, le=1000, allow_inf_nan=False)
    sportsbooks: list[Name] = Field(min_length=2)


class AlertEvent(_Event):
    kind: Literal["alerts"]
    message: Annotated[str, Field(min_length=1, max_length=2000)]
    level: Literal["info", "warning", "critical"] = "info"
    sport: Sport | None = None


class PortfolioEvent(_Event):
    kind: Literal["portfolio"]
    user: Name


class BroadcastEvent(_Event):
    """`POST /ws/v2/broadcast/test`: reaches every room of one type, whatever its filters."""

    kind: Literal["broadcast"]
    subscription_type: SubscriptionType
    message: Annotated[str, Field(min_length=1, max_length=2000)]

    @field_validator("subscription_type", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value


class CanaryEvent(_Event):
    """A gateway's probe of its own pipeline: ingest -> worker -> its inbox, no client sees it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["canary"]
    gateway: Name
    sent_at: float


IngestEvent = Annotated[
    OddsEvent
    | PredictionEvent
    | AnalyticsEvent
    | ArbitrageEvent
    | AlertEvent
    | PortfolioEvent
    | BroadcastEvent
    | CanaryEvent,
    Field(discriminator="kind"),
]
ingest_event_adapter: TypeAdapter[IngestEvent] = TypeAdapter(IngestEvent)


def partition_key(event: IngestEvent) -> str:
    """What orders an event: its game, else its user, else its sport, else its kind.

    Events with one key share an ingest partition, so they are processed in ingest order."""
    match event:
        case OddsEvent() | PredictionEvent() | ArbitrageEvent():
            return f"game|{event.game_id}"
        case AnalyticsEvent() if event.game_id is not None:
            return f"game|{event.game_id}"
        case PortfolioEvent():
            return f"user|{event.user}"
        case AnalyticsEvent() | AlertEvent() if event.sport is not None:
            return f"sport|{event.sport}"
        case BroadcastEvent():
            return f"type|{event.subscription_type.value}"
        case CanaryEvent():
            return f"gateway|{event.gateway}"
    return f"kind|{event.kind}"


def partition_of(event: IngestEvent, partitions: int) -> int:
    """The ingest partition of an event (stable across processes and restarts)."""
    return zlib.crc32(partition_key(event).encode()) % partitions


@dataclass(frozen=True, slots=True)
class Routing:
    """The attributes of an event that room filters look at."""

    kind: EventKind
    sport: str | None = None
    game_id: str | None = None
    player: str | None = None
    sportsbooks: tuple[str, ...] = ()
    profit_pct: float | None = None
    user: str | None = None
    broadcast_to: SubscriptionType | None = None
    canary_for: str | None = None

    @property
    def message_type(self) -> ServerMessageType:
        return ServerMessageType.BROADCAST if self.broadcast_to else self.kind.message_type


def conflation_key(event: IngestEvent) -> bytes:
    """Events that only matter as the latest value share a key: odds per game, book and
    market; predictions per game, player and market. Others must all be delivered (b"")."""
    if isinstance(event, OddsEvent):
        return f"odds|{event.game_id}|{event.sportsbook}|{event.market}".encode()
    if isinstance(event, PredictionEvent):
        market = (event.model_extra or {}).get("market", "")
        return f"pred|{event.game_id}|{event.player or ''}|{market}".encode()
    return b""


def routing_of(event: IngestEvent) -> Routing:
    match event:
        case OddsEvent():
            return Routing(
                EventKind.ODDS, event.sport, event.game_id, sportsbooks=(event.sportsbook,)
            )
        case PredictionEvent():
            return Routing(EventKind.PREDICTIONS, event.sport, event.game_id, event.player)
        case AnalyticsEvent():
            return Routing(EventKind.ANALYTICS, event.sport, event.game_id, event.player)
        case ArbitrageEvent():
            return Routing(
                EventKind.ARBITRAGE,
                event.sport,
                event.game_id,
                sportsbooks=tuple(event.sportsbooks),
                profit_pct=event.profit_pct,
            )
        case AlertEvent():
            return Routing(EventKind.ALERTS, event.sport)
        case PortfolioEvent():
            return Routing(EventKind.PORTFOLIO, user=event.user)
        case BroadcastEvent():
            return Routing(EventKind.ALERTS, broadcast_to=event.subscription_type)
        case CanaryEvent():
            return Routing(EventKind.ALERTS, canary_for=event.gateway)
    raise TypeError(f"unroutable event {event!r}")  # pragma: no cover - exhaustive above
