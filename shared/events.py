"""Ingest events: what data ingesters write, one Redis stream per kind.

Each kind has a pydantic model that validates the fields used for routing (sport, game,
player, sportsbooks, profit, user) and keeps every other field as payload (`extra="allow"`),
so feeds can carry richer data without a schema change here. Odds prices are the exception:
they are validated and converted to every format once, here (`OddsEvent`, `shared.odds`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType, UnionType
from typing import Annotated, Any, Final, Literal, Union, get_args, get_origin

import orjson
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from oddstream.shared.odds import OddsError, from_american, price_of
from oddstream.shared.protocol import ServerMessageType, SubscriptionType
from oddstream.shared.streams import game_partition_key, partition_for

__all__ = [
    "MARKET_SIDES",
    "SCHEMA_STAMP",
    "AlertEvent",
    "AnalyticsEvent",
    "ArbitrageEvent",
    "BroadcastEvent",
    "CanaryEvent",
    "EventKind",
    "IngestEvent",
    "OddsEvent",
    "OddsStatus",
    "PortfolioEvent",
    "PredictionEvent",
    "Routing",
    "SidePrice",
    "conflation_key",
    "ingest_event_adapter",
    "is_conflatable",
    "partition_key",
    "partition_of",
    "routing_of",
    "snapshot_key",
    "stored_event",
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


def _lower(value: Any) -> Any:
    return value.strip().lower() if isinstance(value, str) else value


# Stripped like filter values are, so " Aaron Judge" in a feed matches a "Aaron Judge" room.
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Sport = Annotated[str, BeforeValidator(_upper), Field(min_length=1, max_length=20)]
GameId = Annotated[str, BeforeValidator(_to_str_id), Field(min_length=1, max_length=100)]


class _Event(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


#: Each market's two sides. `<side>_price` (e.g. `home_price`) is that side's American price.
MARKET_SIDES: Final = MappingProxyType(
    {"moneyline": ("home", "away"), "spread": ("home", "away"), "total": ("over", "under")}
)
_ALL_SIDES: Final = ("home", "away", "over", "under")
OddsStatus = Literal["open", "suspended"]


class SidePrice(BaseModel):
    """One side's price in every format (`shared.odds`): all three always agree."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    american: int
    decimal: float
    fractional: str


def _is_none(value: Any) -> bool:
    return value is None


def _invalid_price(reason: str) -> PydanticCustomError:
    return PydanticCustomError("invalid_price", "{reason}", {"reason": reason})


def _american_field(name: str, value: Any) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # some feeds write -110.0
    try:
        from_american(value)
    except OddsError as exc:
        raise _invalid_price(f"{name}: {exc}") from None
    return int(value)


def _convert_prices(data: dict[str, Any]) -> dict[str, Any]:
    """Fill `prices` (every format) and `<side>_price` (American) from whichever was given.

    A side's price may come as `<side>_price` (American, today's field) or as `prices.<side>`
    with one format (`{"decimal": 1.909}`), or several that agree (a stored event has all
    three). Given both, they must be the same price. `<side>_price` is kept as given."""
    market = data.get("market")
    given = data.get("prices")
    # The common shape, American prices only (every feed and simulator today): converted once
    # per market and prices, then a dict lookup (conversion was most of an event's validation).
    fast_key = _american_only(market, given, data)
    if fast_key is not None and (converted := _CONVERTED.get(fast_key)) is not None:
        return {**data, **converted}
    legacy = [side for side in _ALL_SIDES if data.get(f"{side}_price") is not None]
    if (not legacy and not given) or not isinstance(market, str) or market not in MARKET_SIDES:
        return data  # no prices, or a bad market the field validation reports
    stored = _stored_form(market, given, data)
    if stored is not None and stored in _CHECKED:
        return data  # converted already (a worker re-validating a stored event): unchanged
    sides = MARKET_SIDES[market]
    of_market = f"its sides are {sides[0]} and {sides[1]}"
    if given is not None and not isinstance(given, dict):
        raise _invalid_price('prices: an object of sides, e.g. {"home": {"decimal": 1.909}}')
    out = dict(data)
    prices: dict[str, dict[str, Any]] = {}
    for side, value in (given or {}).items():
        if side not in sides:
            raise _invalid_price(f"prices: {side!r} is not a side of a {market} ({of_market})")
        if not isinstance(value, dict):
            raise _invalid_price(f'prices.{side}: an object like {{"american": -110}}')
        try:
            prices[side] = price_of(value).as_dict()
        except OddsError as exc:
            raise _invalid_price(f"prices.{side}: {exc}") from None
    for side in legacy:
        name = f"{side}_price"
        if side not in sides:
            raise _invalid_price(f"{name}: not a side of a {market} ({of_market})")
        american = _american_field(name, data[name])
        out[name] = american
        if side not in prices:
            prices[side] = from_american(american).as_dict()
        elif from_american(american).american != prices[side]["american"]:
            raise _invalid_price(
                f"{name} {american} and prices.{side} ({prices[side]['american']}) disagree"
            )
    for side, price in prices.items():
        out.setdefault(f"{side}_price", price["american"])
    out["prices"] = prices or None
    checked = _stored_form(market, out["prices"], out)
    if checked is not None and len(_CHECKED) < 100_000:  # bounded: prices repeat all day
        _CHECKED.add(checked)
    if fast_key is not None and len(_CONVERTED) < 100_000:
        _CONVERTED[fast_key] = {
            "prices": {side: SidePrice(**price) for side, price in prices.items()},
            **{f"{side}_price": out[f"{side}_price"] for side in prices},
        }
    return out


#: Stored forms (market, every side's three formats and American field) known to be valid,
#: so re-validating a stored event costs a set lookup instead of three conversions per side.
_CHECKED: set[bytes] = set()

_AmericanOnly = tuple[str, int | None, int | None, int | None, int | None]

#: (market, American field per side) -> the fields conversion set: `prices` and the sides'
#: American fields. Only for events with American integer fields and no `prices`: their
#: conversion depends on nothing else. The sides' prices are kept as `SidePrice` models,
#: frozen, which every event of those prices shares (pydantic takes a model instance as it
#: is: an odds event took 7.8 µs to build with dicts here, 5.5 with models).
_CONVERTED: dict[_AmericanOnly, dict[str, Any]] = {}


def _american_only(market: Any, given: Any, data: dict[str, Any]) -> _AmericanOnly | None:
    """The conversion cache's key of an event with American integer prices only, else None
    (a float, a bool or a `prices` object takes the full path)."""
    if given is not None or type(market) is not str:
        return None
    get = data.get
    key = (market, get("home_price"), get("away_price"), get("over_price"), get("under_price"))
    for value in key[1:]:
        if value is not None and type(value) is not int:
            return None
    return key


def _stored_form(market: str, prices: Any, data: dict[str, Any]) -> bytes | None:
    """A key for the prices of an event (JSON keeps 2 and 2.0, or 1 and true, apart)."""
    try:
        return orjson.dumps([market, prices, [data.get(f"{s}_price") for s in _ALL_SIDES]])
    except TypeError:
        return None


class OddsEvent(_Event):
    """One book's market of one game. `status` is set on a change of status only:
    `suspended` (the book took the market down; prices, if any, are the last ones) or `open`
    (it is back; the resume). Absent, the event is a price update of an open market. Status
    changes are must-deliver (`is_conflatable`); the latest value of the market, what
    snapshots show, is whichever came last. Prices come in any one format and are converted
    to all three once, here (`_convert_prices`)."""

    kind: Literal["odds"]
    sport: Sport
    game_id: GameId
    sportsbook: Name
    market: Literal["moneyline", "spread", "total"]
    status: Annotated[OddsStatus | None, BeforeValidator(_lower)] = Field(
        default=None, exclude_if=_is_none
    )
    prices: dict[Literal["home", "away", "over", "under"], SidePrice] | None = Field(
        default=None, exclude_if=_is_none
    )

    @model_validator(mode="before")
    @classmethod
    def _prices(cls, data: Any) -> Any:
        return _convert_prices(data) if isinstance(data, dict) else data


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

#: Bump when what `Ingester` stores for an event changes in a way the schema does not show
#: (a validator's conversion): workers then validate entries of the old form again.
_STORED_FORM_VERSION = 1

#: The stamp `Ingester` writes beside each event it validated (`streams.STAMP_FIELD`): the
#: stored form's version and a digest of the event schema. A worker with the same stamp trusts
#: such an entry (`stored_event`); any other entry is validated in full (`parse_stored`).
SCHEMA_STAMP: Final[bytes] = (
    f"{_STORED_FORM_VERSION}."
    + hashlib.sha1(
        orjson.dumps(ingest_event_adapter.json_schema(), option=orjson.OPT_SORT_KEYS)
    ).hexdigest()[:12]
).encode()


def _json_native(annotation: Any) -> bool:
    """Whether values of a field type are the JSON-decoded values themselves (a nested model
    counts: it stays the dict it was stored as, which the worker never reads as a model)."""
    if annotation in (str, int, float, bool, type(None), Any):
        return True
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return True
    args = get_args(annotation)
    origin = get_origin(annotation)
    if origin is Literal:
        return all(isinstance(a, str | int | bool) or a is None for a in args)
    if origin is Annotated:
        return _json_native(args[0])
    if origin in (Union, UnionType, list, dict):
        return all(_json_native(a) for a in args)
    return False


class _Stored:
    """How to build one model from its stored form without validation: what
    `BaseModel.model_construct` does (fields to `__dict__`, the rest to the extras, defaults
    for fields not given), with the field names and defaults looked up once per model, not
    per event (it cost half of what validating did). Stored forms use field names, never
    aliases (`model_dump` without `by_alias`)."""

    __slots__ = ("defaults", "model", "names", "plain")

    def __init__(self, model: type[_Event]) -> None:
        self.model = model
        self.names = frozenset(model.model_fields)
        #: Whether every field's validated value is what its JSON decodes to (str, numbers,
        #: bools, None, lists and dicts of them). A model with, e.g., an enum field is not:
        #: its events are validated (a broadcast's `subscription_type` must be the enum,
        #: rooms compare it by identity); they are rare.
        self.plain = all(_json_native(f.annotation) for f in model.model_fields.values())
        self.defaults = {
            name: field.get_default(call_default_factory=True)
            for name, field in model.model_fields.items()
            if not field.is_required()
        }
        if any(f.alias or f.validation_alias for f in model.model_fields.values()):
            raise TypeError(f"{model.__name__}: stored forms do not carry aliases")

    def build(self, data: dict[str, Any]) -> _Event:
        """The model of `data` (taken: its fields are moved out, the rest become extras)."""
        values = dict(self.defaults)
        given = self.names & data.keys()
        for key in given:
            values[key] = data.pop(key)  # what is left in `data` are the extras
        event = self.model.__new__(self.model)
        object.__setattr__(event, "__dict__", values)
        object.__setattr__(event, "__pydantic_fields_set__", given)
        extras = data if self.model.model_config.get("extra") == "allow" else None
        object.__setattr__(event, "__pydantic_extra__", extras)
        object.__setattr__(event, "__pydantic_private__", None)
        return event


_STORED_OF_KIND: Final[dict[str, _Stored]] = {
    get_args(model.model_fields["kind"].annotation)[0]: _Stored(model)
    for model in get_args(get_args(IngestEvent)[0])
}


def stored_event(raw: bytes) -> IngestEvent:
    """The event of JSON that `Ingester` validated and stored (`encode_event`), built without
    validating it again: its values are already in their validated form (a fifth of a
    worker's time went to validating what the ingester had just validated). The nested
    `prices` stay plain dicts. Raises ValueError, KeyError or TypeError for JSON that is not
    such an event; callers then validate it in full."""
    data = orjson.loads(raw)
    stored = _STORED_OF_KIND[data["kind"]]
    if not stored.plain:
        return ingest_event_adapter.validate_python(data)
    event: IngestEvent = stored.build(data)  # type: ignore[assignment]
    return event


def partition_key(event: IngestEvent) -> str:
    """What orders an event: its game, else its user, else its sport, else its kind.

    Events with one key share an ingest partition, so they are processed in ingest order."""
    match event:
        case OddsEvent() | PredictionEvent() | ArbitrageEvent():
            return game_partition_key(event.game_id)
        case AnalyticsEvent() if event.game_id is not None:
            return game_partition_key(event.game_id)
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
    return partition_for(partition_key(event), partitions)


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


def snapshot_key(event: IngestEvent) -> bytes:
    """The latest value an event updates, one per key in snapshots: odds per game, book and
    market; predictions per game, player and market; b"" for kinds that are not values."""
    if isinstance(event, OddsEvent):
        return f"odds|{event.game_id}|{event.sportsbook}|{event.market}".encode()
    if isinstance(event, PredictionEvent):
        market = (event.model_extra or {}).get("market", "")
        return f"pred|{event.game_id}|{event.player or ''}|{market}".encode()
    return b""


def is_conflatable(event: IngestEvent) -> bool:
    """Whether a slow client may get only the newest event of its snapshot key instead of
    this one: price updates and predictions. A status change (a suspension, the resume after
    it) must reach every subscriber, like alerts do."""
    if isinstance(event, OddsEvent):
        return event.status is None
    return isinstance(event, PredictionEvent)


def conflation_key(event: IngestEvent) -> bytes:
    """The key under which a slow client's held frames replace each other: the snapshot key
    of a conflatable event, else b"" (must be delivered)."""
    return snapshot_key(event) if is_conflatable(event) else b""


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
