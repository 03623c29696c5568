"""Rooms and filters: `parse_room` canonicalization and errors, and `RoomSpec.matches`.

Pure functions, no Redis. Events are built the way ingest builds them
(`parse_event` + `routing_of`) so the tests cover the real validation/normalization path.
"""

from __future__ import annotations

import math
from typing import Any

import orjson
import pytest

from oddstream.shared.events import EventKind, Routing, routing_of
from oddstream.shared.ingest import parse_event
from oddstream.shared.protocol import ErrorCode, ProtocolError, SubscriptionType
from oddstream.shared.rooms import (
    ALLOWED_FILTERS,
    MAX_FILTER_VALUE_LENGTH,
    MAX_FILTER_VALUES,
    RoomSpec,
    parse_room,
)

T = SubscriptionType
ALL_FILTER_KEYS = ("sport", "game_id", "player", "sportsbook", "min_profit")

#: A valid value for every filter key, used to probe which keys each type accepts.
VALID_VALUE: dict[str, Any] = {
    "sport": "NBA",
    "game_id": "g1",
    "player": "LeBron James",
    "sportsbook": "DraftKings",
    "min_profit": 1.5,
}


def room(
    type_: str | T, filters: dict[str, Any] | None = None, user: str | None = None
) -> RoomSpec:
    return parse_room(type_, {} if filters is None else filters, user=user)


def routed(**body: Any) -> Routing:
    return routing_of(parse_event(body))


# --- event factories (every event goes through parse_event + routing_of) ---------------------


def odds(sport: str = "NBA", game_id: str | int = "g1", sportsbook: str = "DraftKings") -> Routing:
    return routed(
        kind="odds", sport=sport, game_id=game_id, sportsbook=sportsbook, market="moneyline"
    )


def prediction(sport: str = "NBA", game_id: str | int = "g1", player: str | None = None) -> Routing:
    body: dict[str, Any] = {"kind": "predictions", "sport": sport, "game_id": game_id}
    if player is not None:
        body["player"] = player
    return routed(**body)


def analytics(
    sport: str = "NBA", game_id: str | int | None = None, player: str | None = None
) -> Routing:
    body: dict[str, Any] = {"kind": "analytics", "sport": sport}
    if game_id is not None:
        body["game_id"] = game_id
    if player is not None:
        body["player"] = player
    return routed(**body)


def arbitrage(
    sport: str = "NBA",
    game_id: str | int = "g1",
    profit_pct: float = 2.0,
    sportsbooks: tuple[str, ...] = ("DraftKings", "FanDuel"),
) -> Routing:
    return routed(
        kind="arbitrage",
        sport=sport,
        game_id=game_id,
        profit_pct=profit_pct,
        sportsbooks=list(sportsbooks),
    )


def alert(sport: str | None = None) -> Routing:
    body: dict[str, Any] = {"kind": "alerts", "message": "maintenance at 02:00"}
    if sport is not None:
        body["sport"] = sport
    return routed(**body)


def portfolio(user: str = "alice") -> Routing:
    return routed(kind="portfolio", user=user, balance=100)


def broadcast(subscription_type: str) -> Routing:
    return routed(kind="broadcast", subscription_type=subscription_type, message="hello")


# =============================================================================================
# parse_room: canonicalization and room sharing
# =============================================================================================

SAME_ROOM: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    (
        "odds_updates",
        {"sport": "NBA", "game_id": "1", "sportsbook": "DK"},
        {"sportsbook": "DK", "game_id": "1", "sport": "NBA"},
    ),
    ("odds_updates", {"sportsbook": ["FanDuel", "DK"]}, {"sportsbook": ["DK", "FanDuel"]}),
    ("odds_updates", {"sportsbook": ["DK", "DK", "DK"]}, {"sportsbook": "DK"}),
    ("odds_updates", {"sportsbook": "DK"}, {"sportsbook": ["DK"]}),
    ("odds_updates", {"sport": "nba"}, {"sport": "NBA"}),
    ("predictions", {"sport": ["Nba", "nBA", "NBA"]}, {"sport": "nba"}),
    ("predictions", {"sport": ["nfl", "NBA"]}, {"sport": ["nba", "NFL"]}),
    ("odds_updates", {"sport": " NBA "}, {"sport": "NBA"}),
    ("odds_updates", {"game_id": 401585}, {"game_id": "401585"}),
    ("arbitrage", {"game_id": [5, "6"]}, {"game_id": ["6", "5", 5]}),
    ("arbitrage", {"min_profit": 2}, {"min_profit": 2.0}),
    (
        "arbitrage",
        {"min_profit": 1, "sport": ["NFL", "nba"], "game_id": 7, "sportsbook": ["b", "a"]},
        {"sportsbook": ["a", "b", "a"], "game_id": "7", "sport": ["NBA", "nfl"], "min_profit": 1.0},
    ),
    ("analytics", {"player": ["B", "A"]}, {"player": ["A", "B", "B"]}),
    ("nba", {"game_id": 1, "player": "X"}, {"player": ["X"], "game_id": ["1"]}),
    ("system_alerts", {"sport": "mlb"}, {"sport": ["MLB"]}),
]


@pytest.mark.parametrize(("type_", "a", "b"), SAME_ROOM)
def test_equal_canonical_filters_share_a_room(
    type_: str, a: dict[str, Any], b: dict[str, Any]
) -> None:
    first, second = room(type_, a), room(type_, b)
    assert first == second
    assert first.room_id == second.room_id
    assert first.canonical_json() == second.canonical_json()
    assert first.room_id.startswith(f"{first.type.value}.")


DIFFERENT_ROOM: list[tuple[str, dict[str, Any], str, dict[str, Any]]] = [
    ("predictions", {}, "analytics", {}),
    ("odds_updates", {"sport": "NBA"}, "arbitrage", {"sport": "NBA"}),
    ("odds_updates", {"sport": "NBA"}, "odds_updates", {"sport": "NFL"}),
    ("odds_updates", {"sport": "NBA"}, "odds_updates", {}),
    ("odds_updates", {"game_id": 1}, "odds_updates", {"game_id": [1, 2]}),
    ("arbitrage", {"min_profit": 2}, "arbitrage", {"min_profit": 2.5}),
    ("arbitrage", {"min_profit": 0}, "arbitrage", {}),
    ("predictions", {"player": "X"}, "predictions", {"player": "x"}),
    ("odds_updates", {"sportsbook": "DK"}, "odds_updates", {"sportsbook": "dk"}),
    ("nba", {}, "nfl", {}),
]


@pytest.mark.parametrize(("type_a", "a", "type_b", "b"), DIFFERENT_ROOM)
def test_different_subscriptions_get_different_rooms(
    type_a: str, a: dict[str, Any], type_b: str, b: dict[str, Any]
) -> None:
    first, second = room(type_a, a), room(type_b, b)
    assert first != second
    assert first.room_id != second.room_id


def test_canonical_filters_are_sorted_deduplicated_tuples() -> None:
    spec = room(
        "arbitrage",
        {"sportsbook": ["b", "a", "b"], "sport": "nfl", "game_id": 9, "min_profit": 3},
    )
    assert spec.filters == (
        ("game_id", ("9",)),
        ("min_profit", 3.0),
        ("sport", ("NFL",)),
        ("sportsbook", ("a", "b")),
    )
    assert spec.filter_dict == {
        "game_id": ["9"],
        "min_profit": 3.0,
        "sport": ["NFL"],
        "sportsbook": ["a", "b"],
    }


def test_subscription_type_is_case_insensitive() -> None:
    assert room("ODDS_UPDATES").room_id == room("odds_updates").room_id
    assert room("Nba").type is T.NBA
    assert room(T.SYSTEM_ALERTS).type is T.SYSTEM_ALERTS


@pytest.mark.parametrize("type_", [t for t in T if t is not T.PORTFOLIO])
def test_user_does_not_split_shared_rooms(type_: T) -> None:
    """Only portfolio rooms are per user; every other room is shared across users."""
    anonymous = room(type_)
    alice = room(type_, user="alice")
    assert alice.user is None
    assert alice.room_id == anonymous.room_id


def test_portfolio_rooms_are_per_user() -> None:
    alice, bob = room("portfolio", user="alice"), room("portfolio", user="bob")
    assert alice.user == "alice"
    assert alice.room_id == room("portfolio", user="alice").room_id
    assert alice.room_id != bob.room_id


@pytest.mark.parametrize(
    ("type_", "filters"),
    [
        ("odds_updates", {"sport": "x" * MAX_FILTER_VALUE_LENGTH}),
        ("odds_updates", {"sportsbook": [f"book{i}" for i in range(MAX_FILTER_VALUES)]}),
        # duplicates count before de-duplication, but at the limit they are fine
        ("predictions", {"player": ["p"] * MAX_FILTER_VALUES}),
        ("arbitrage", {"min_profit": 0}),
        ("arbitrage", {"min_profit": 1000}),
        ("arbitrage", {"min_profit": 0.25}),
    ],
)
def test_boundary_values_are_accepted(type_: str, filters: dict[str, Any]) -> None:
    spec = room(type_, filters)
    (key,) = filters
    assert spec.get(key) is not None


@pytest.mark.parametrize("type_", list(T))
def test_every_allowed_filter_parses_for_its_type(type_: T) -> None:
    allowed = ALLOWED_FILTERS[type_]
    spec = room(type_, {k: VALID_VALUE[k] for k in allowed}, user="alice")
    assert {k for k, _ in spec.filters} == set(allowed)


# =============================================================================================
# parse_room: errors
# =============================================================================================

FILTER_ERRORS: list[tuple[str, Any, str]] = [
    # unknown keys
    ("odds_updates", {"colour": "red"}, "colour"),
    ("odds_updates", {"sports": "NBA"}, "sports"),
    ("arbitrage", {"minProfit": 2}, "minProfit"),
    ("portfolio", {"user": "mallory"}, "user"),
    # wrong types
    ("odds_updates", {"sport": 5}, "sport"),
    ("odds_updates", {"sport": True}, "sport"),
    ("odds_updates", {"sport": 1.5}, "sport"),
    ("odds_updates", {"sport": {"name": "NBA"}}, "sport"),
    ("odds_updates", {"sport": ["NBA", 5]}, "sport"),
    ("odds_updates", {"sport": [["NBA"]]}, "sport"),
    ("odds_updates", {"game_id": 1.5}, "game_id"),
    ("odds_updates", {"game_id": True}, "game_id"),
    ("predictions", {"player": ["X", None]}, "player"),
    ("odds_updates", {"sport": None}, "sport"),
    ("arbitrage", {"min_profit": None}, "min_profit"),
    ("odds_updates", {"sportsbook": 7}, "sportsbook"),
    ("arbitrage", {"min_profit": "x"}, "min_profit"),
    ("arbitrage", {"min_profit": "2"}, "min_profit"),
    ("arbitrage", {"min_profit": True}, "min_profit"),
    ("arbitrage", {"min_profit": False}, "min_profit"),
    ("arbitrage", {"min_profit": [1]}, "min_profit"),
    ("arbitrage", {"min_profit": -1}, "min_profit"),
    ("arbitrage", {"min_profit": -0.01}, "min_profit"),
    ("arbitrage", {"min_profit": math.nan}, "min_profit"),
    ("arbitrage", {"min_profit": math.inf}, "min_profit"),
    ("arbitrage", {"min_profit": 1000.5}, "min_profit"),
    # empty lists and empty values
    ("odds_updates", {"sport": []}, "sport"),
    ("odds_updates", {"game_id": []}, "game_id"),
    ("odds_updates", {"sport": ""}, "sport"),
    ("odds_updates", {"sportsbook": "   "}, "sportsbook"),
    ("predictions", {"player": ["X", ""]}, "player"),
    # too long, too many
    ("odds_updates", {"sport": "x" * (MAX_FILTER_VALUE_LENGTH + 1)}, "sport"),
    ("predictions", {"player": ["ok", "y" * 500]}, "player"),
    ("odds_updates", {"sportsbook": [f"b{i}" for i in range(MAX_FILTER_VALUES + 1)]}, "sportsbook"),
    ("odds_updates", {"game_id": ["1"] * (MAX_FILTER_VALUES + 1)}, "game_id"),
    # filters that make no sense for the type
    ("odds_updates", {"min_profit": 2}, "min_profit"),
    ("predictions", {"min_profit": 2}, "min_profit"),
    ("analytics", {"min_profit": 2}, "min_profit"),
    ("nba", {"min_profit": 2}, "min_profit"),
    ("system_alerts", {"min_profit": 2}, "min_profit"),
    ("mlb", {"sport": "MLB"}, "sport"),
    ("nba", {"sport": "NBA"}, "sport"),
    ("nfl", {"sport": "NBA"}, "sport"),
    ("nhl", {"sport": ["NHL"]}, "sport"),
    ("odds_updates", {"player": "X"}, "player"),
    ("arbitrage", {"player": "X"}, "player"),
    ("system_alerts", {"player": "X"}, "player"),
    ("predictions", {"sportsbook": "DK"}, "sportsbook"),
    ("analytics", {"sportsbook": "DK"}, "sportsbook"),
    ("system_alerts", {"sportsbook": "DK"}, "sportsbook"),
    ("system_alerts", {"game_id": "g1"}, "game_id"),
    ("portfolio", {"sport": "NBA"}, "sport"),
    ("portfolio", {"game_id": "g1"}, "game_id"),
]


@pytest.mark.parametrize(("type_", "filters", "offender"), FILTER_ERRORS)
def test_invalid_filters_are_errors_naming_the_filter(
    type_: str, filters: Any, offender: str
) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_room(type_, filters, user="alice")
    assert info.value.code is ErrorCode.INVALID_FILTER
    assert f"'{offender}'" in info.value.message
    assert str(info.value) == info.value.message


def test_an_invalid_filter_is_an_error_even_beside_valid_ones() -> None:
    with pytest.raises(ProtocolError) as info:
        parse_room("odds_updates", {"sport": "NBA", "game_id": "g1", "colour": "red"})
    assert info.value.code is ErrorCode.INVALID_FILTER
    assert "'colour'" in info.value.message


@pytest.mark.parametrize(
    ("type_", "key"),
    [(t, k) for t in T for k in ALL_FILTER_KEYS if k not in ALLOWED_FILTERS[t]],
)
def test_every_disallowed_known_filter_is_an_error(type_: T, key: str) -> None:
    """A well-formed value for a filter the type does not take is never silently ignored."""
    with pytest.raises(ProtocolError) as info:
        parse_room(type_, {key: VALID_VALUE[key]}, user="alice")
    assert info.value.code is ErrorCode.INVALID_FILTER
    assert f"'{key}'" in info.value.message
    assert "makes no sense" in info.value.message


@pytest.mark.parametrize("filters", [[], "sport=NBA", 5, [["sport", "NBA"]], None, True])
def test_filters_must_be_an_object(filters: Any) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_room("odds_updates", filters)
    assert info.value.code is ErrorCode.INVALID_FILTER
    assert "'filters'" in info.value.message


@pytest.mark.parametrize("type_", ["soccer", "odds", "", "odds-updates", None, 5, ["nba"]])
def test_unknown_subscription_type(type_: Any) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_room(type_, {})
    assert info.value.code is ErrorCode.INVALID_SUBSCRIPTION_TYPE
    assert repr(type_) in info.value.message


def test_portfolio_requires_a_user() -> None:
    with pytest.raises(ProtocolError) as info:
        parse_room("portfolio", {})
    assert info.value.code is ErrorCode.AUTH_REQUIRED
    assert "portfolio" in info.value.message


# =============================================================================================
# RoomSpec.matches
# =============================================================================================

MATCHES: list[tuple[str, str, dict[str, Any], Routing, bool]] = [
    # --- absent filters match everything of the type's kinds
    ("odds: no filter", "odds_updates", {}, odds("NFL", "x", "Book"), True),
    ("predictions: no filter", "predictions", {}, prediction("MLB"), True),
    ("analytics: no filter", "analytics", {}, analytics("NHL"), True),
    ("arbitrage: no filter", "arbitrage", {}, arbitrage(profit_pct=0), True),
    ("alerts: no filter, global", "system_alerts", {}, alert(), True),
    ("alerts: no filter, sport", "system_alerts", {}, alert("NBA"), True),
    # --- kinds: a type never receives another kind's events
    ("odds room, prediction", "odds_updates", {}, prediction(), False),
    ("odds room, arbitrage", "odds_updates", {}, arbitrage(), False),
    ("odds room, alert", "odds_updates", {}, alert("NBA"), False),
    ("odds room, portfolio", "odds_updates", {}, portfolio(), False),
    ("predictions room, analytics", "predictions", {}, analytics(), False),
    ("analytics room, prediction", "analytics", {}, prediction(), False),
    ("arbitrage room, odds", "arbitrage", {}, odds(), False),
    ("alerts room, odds", "system_alerts", {}, odds(), False),
    ("alerts room, portfolio", "system_alerts", {}, portfolio(), False),
    # --- sport: case-insensitive, list = any
    ("sport equal", "odds_updates", {"sport": "NBA"}, odds("NBA"), True),
    ("sport filter lower", "odds_updates", {"sport": "nba"}, odds("NBA"), True),
    ("sport event lower", "odds_updates", {"sport": "NBA"}, odds("nba"), True),
    ("sport mixed case", "predictions", {"sport": "nBa"}, prediction("NbA"), True),
    ("sport other", "odds_updates", {"sport": "NBA"}, odds("NFL"), False),
    ("sport list hit", "odds_updates", {"sport": ["nfl", "nba"]}, odds("NFL"), True),
    ("sport list miss", "odds_updates", {"sport": ["nfl", "nba"]}, odds("MLB"), False),
    ("sport non-league", "analytics", {"sport": "soccer"}, analytics("Soccer"), True),
    ("sport prefix is not a match", "odds_updates", {"sport": "NB"}, odds("NBA"), False),
    # --- game_id: equality, int or string on either side
    ("game_id equal", "odds_updates", {"game_id": "401"}, odds(game_id="401"), True),
    ("game_id int filter", "odds_updates", {"game_id": 401}, odds(game_id="401"), True),
    ("game_id int event", "odds_updates", {"game_id": "401"}, odds(game_id=401), True),
    ("game_id other", "odds_updates", {"game_id": "401"}, odds(game_id="402"), False),
    ("game_id list hit", "arbitrage", {"game_id": [1, 2]}, arbitrage(game_id=2), True),
    ("game_id list miss", "arbitrage", {"game_id": [1, 2]}, arbitrage(game_id=3), False),
    ("game_id absent on event", "analytics", {"game_id": "g1"}, analytics(), False),
    ("game_id analytics hit", "analytics", {"game_id": "g1"}, analytics(game_id="g1"), True),
    # --- player: exact equality
    ("player equal", "predictions", {"player": "LeBron"}, prediction(player="LeBron"), True),
    (
        "player case differs",
        "predictions",
        {"player": "LeBron"},
        prediction(player="lebron"),
        False,
    ),
    ("player other", "predictions", {"player": "LeBron"}, prediction(player="Curry"), False),
    ("player absent on event", "predictions", {"player": "LeBron"}, prediction(), False),
    ("player list hit", "analytics", {"player": ["A", "B"]}, analytics(player="B"), True),
    ("player list miss", "analytics", {"player": ["A", "B"]}, analytics(player="C"), False),
    # --- sportsbook: equality; arbitrage matches if any of its books is wanted
    ("book equal", "odds_updates", {"sportsbook": "DK"}, odds(sportsbook="DK"), True),
    ("book other", "odds_updates", {"sportsbook": "DK"}, odds(sportsbook="FD"), False),
    ("book case differs", "odds_updates", {"sportsbook": "DK"}, odds(sportsbook="dk"), False),
    ("book list hit", "odds_updates", {"sportsbook": ["DK", "FD"]}, odds(sportsbook="FD"), True),
    ("book list miss", "odds_updates", {"sportsbook": ["DK", "FD"]}, odds(sportsbook="MGM"), False),
    ("arb book hit", "arbitrage", {"sportsbook": "FD"}, arbitrage(sportsbooks=("DK", "FD")), True),
    (
        "arb book miss",
        "arbitrage",
        {"sportsbook": "MGM"},
        arbitrage(sportsbooks=("DK", "FD")),
        False,
    ),
    # --- min_profit: inclusive lower bound in percent
    ("profit above", "arbitrage", {"min_profit": 2.5}, arbitrage(profit_pct=3.0), True),
    ("profit equal", "arbitrage", {"min_profit": 2.5}, arbitrage(profit_pct=2.5), True),
    ("profit below", "arbitrage", {"min_profit": 2.5}, arbitrage(profit_pct=2.49), False),
    ("profit zero bound", "arbitrage", {"min_profit": 0}, arbitrage(profit_pct=0), True),
    ("profit int bound", "arbitrage", {"min_profit": 3}, arbitrage(profit_pct=2.999), False),
    # --- combined filters: all must hold
    (
        "combined all hold",
        "arbitrage",
        {"sport": "nba", "game_id": 7, "sportsbook": "DK", "min_profit": 1},
        arbitrage("NBA", 7, 1.5, ("DK", "FD")),
        True,
    ),
    (
        "combined sport fails",
        "arbitrage",
        {"sport": "nba", "min_profit": 1},
        arbitrage("NFL", profit_pct=5),
        False,
    ),
    (
        "combined profit fails",
        "arbitrage",
        {"sport": "nba", "min_profit": 1},
        arbitrage("NBA", profit_pct=0.5),
        False,
    ),
    (
        "combined game fails",
        "odds_updates",
        {"sport": "NBA", "game_id": "g1"},
        odds("NBA", "g2"),
        False,
    ),
    # --- system_alerts with a sport filter also receives global alerts
    ("alerts sport hit", "system_alerts", {"sport": "nba"}, alert("NBA"), True),
    ("alerts sport miss", "system_alerts", {"sport": "nba"}, alert("NFL"), False),
    ("alerts sport, global alert", "system_alerts", {"sport": "nba"}, alert(), True),
    ("alerts sport list, global", "system_alerts", {"sport": ["MLB", "NHL"]}, alert(), True),
    # --- portfolio: only the owner's events
    ("portfolio own", "portfolio", {}, portfolio("alice"), True),
    ("portfolio other user", "portfolio", {}, portfolio("bob"), False),
    ("portfolio room, odds", "portfolio", {}, odds(), False),
    ("portfolio room, global alert", "portfolio", {}, alert(), False),
    # --- sport types: every event of their sport, nothing else
    ("nba odds", "nba", {}, odds("NBA"), True),
    ("nba predictions", "nba", {}, prediction("nba"), True),
    ("nba analytics", "nba", {}, analytics("NBA"), True),
    ("nba arbitrage", "nba", {}, arbitrage("NBA"), True),
    ("nba alert", "nba", {}, alert("NBA"), True),
    ("nba other sport", "nba", {}, odds("NFL"), False),
    ("nba other sport alert", "nba", {}, alert("NFL"), False),
    ("nba global alert", "nba", {}, alert(), False),
    ("nba portfolio", "nba", {}, portfolio(), False),
    ("nba game hit", "nba", {"game_id": 1}, odds("NBA", "1"), True),
    ("nba game miss", "nba", {"game_id": 1}, odds("NBA", "2"), False),
    ("nba game, other sport", "nba", {"game_id": 1}, odds("NFL", "1"), False),
    ("nba book hit", "nba", {"sportsbook": "DK"}, odds("NBA", sportsbook="DK"), True),
    ("nba book miss", "nba", {"sportsbook": "DK"}, odds("NBA", sportsbook="FD"), False),
    ("nba player hit", "nba", {"player": "X"}, prediction("NBA", player="X"), True),
    ("nba player miss", "nba", {"player": "X"}, prediction("NBA", player="Y"), False),
    # --- broadcasts: every room of their type, whatever its filters, and no other type
    ("broadcast own type", "nba", {}, broadcast("nba"), True),
    ("broadcast filtered room", "nba", {"game_id": "g9", "player": "Z"}, broadcast("NBA"), True),
    ("broadcast other sport type", "nfl", {}, broadcast("nba"), False),
    ("broadcast not to odds", "odds_updates", {}, broadcast("nba"), False),
    ("broadcast not to alerts", "system_alerts", {}, broadcast("nba"), False),
    ("broadcast to alerts", "system_alerts", {"sport": "NHL"}, broadcast("system_alerts"), True),
    ("broadcast to odds", "odds_updates", {"sport": "NBA"}, broadcast("odds_updates"), True),
    ("broadcast to arb", "arbitrage", {"min_profit": 999}, broadcast("arbitrage"), True),
    ("broadcast to portfolio", "portfolio", {}, broadcast("portfolio"), True),
    ("broadcast odds, arb room", "arbitrage", {}, broadcast("odds_updates"), False),
]


@pytest.mark.parametrize(
    ("type_", "filters", "event", "expected"),
    [pytest.param(*row[1:], id=row[0]) for row in MATCHES],
)
def test_matches(type_: str, filters: dict[str, Any], event: Routing, expected: bool) -> None:
    spec = room(type_, filters, user="alice")
    assert spec.matches(event) is expected


@pytest.mark.parametrize("type_", [T.MLB, T.NBA, T.NFL, T.NHL])
def test_sport_types_receive_every_event_of_their_sport(type_: T) -> None:
    spec = room(type_)
    own = type_.value.upper()
    events = [
        odds(own),
        prediction(type_.value),
        analytics(own),
        arbitrage(own),
        alert(own.lower()),
    ]
    assert all(spec.matches(e) for e in events)
    assert {e.kind for e in events} == set(EventKind) - {EventKind.PORTFOLIO}
    for other in {"MLB", "NBA", "NFL", "NHL", "SOCCER"} - {own}:
        assert not spec.matches(odds(other))
        assert not spec.matches(alert(other))
    assert not spec.matches(alert())
    assert not spec.matches(portfolio())


def test_a_filtered_attribute_missing_from_the_event_never_matches() -> None:
    # No ingest event of these kinds lacks a sport, so build the routing by hand.
    sportless = Routing(EventKind.ODDS, None, "g1", sportsbooks=("DK",))
    assert room("odds_updates").matches(sportless)
    assert not room("odds_updates", {"sport": "NBA"}).matches(sportless)
    no_profit = Routing(EventKind.ARBITRAGE, "NBA", "g1", sportsbooks=("DK", "FD"))
    assert not room("arbitrage", {"min_profit": 0}).matches(no_profit)
    assert room("arbitrage").matches(no_profit)
    userless = Routing(EventKind.PORTFOLIO)
    assert not room("portfolio", user="alice").matches(userless)


def test_portfolio_room_of_one_user_never_sees_anothers_event() -> None:
    users = ["alice", "bob", "carol"]
    for owner in users:
        spec = room("portfolio", user=owner)
        assert [u for u in users if spec.matches(portfolio(u))] == [owner]


# =============================================================================================
# to_dict / from_dict
# =============================================================================================

ROUND_TRIP: list[tuple[str, dict[str, Any], str | None]] = [
    ("odds_updates", {}, None),
    ("odds_updates", {"sport": ["nba", "NFL"], "game_id": [3, "1"], "sportsbook": "DK"}, None),
    ("arbitrage", {"min_profit": 2}, None),
    ("arbitrage", {"min_profit": 0.5, "sportsbook": ["b", "a"], "sport": "mlb"}, None),
    ("predictions", {"player": "LeBron James"}, None),
    ("nhl", {"game_id": 12, "player": "P"}, None),
    ("system_alerts", {"sport": "nba"}, None),
    ("portfolio", {}, "alice"),
]


@pytest.mark.parametrize(("type_", "filters", "user"), ROUND_TRIP)
def test_to_dict_from_dict_round_trip_keeps_room_id(
    type_: str, filters: dict[str, Any], user: str | None
) -> None:
    spec = room(type_, filters, user=user)
    body = spec.to_dict()
    assert body["subscription_type"] == spec.type.value
    assert body.get("user") == user
    # The registry stores the dict as JSON; rebuild from the decoded JSON as it does.
    rebuilt = RoomSpec.from_dict(orjson.loads(orjson.dumps(body)))
    assert rebuilt == spec
    assert rebuilt.room_id == spec.room_id
    assert rebuilt.filters == spec.filters
    assert rebuilt.user == spec.user
    # ...and parsing the stored filters again (as a client would send them) is the same room.
    assert parse_room(body["subscription_type"], body["filters"], user=user).room_id == (
        spec.room_id
    )


def test_from_dict_normalizes_numbers_and_list_order_like_parse_room() -> None:
    """A spec written as plain JSON (integer percent, lists) rebuilds to the canonical room."""
    stored = {"subscription_type": "arbitrage", "filters": {"min_profit": 2, "sport": ["NBA"]}}
    rebuilt = RoomSpec.from_dict(stored)
    expected = room("arbitrage", {"min_profit": 2, "sport": "nba"})
    assert rebuilt.get("min_profit") == 2.0
    assert isinstance(rebuilt.get("min_profit"), float)
    assert rebuilt.room_id == expected.room_id


def test_event_names_are_trimmed_like_filter_values() -> None:
    """Regression: a feed's " Aaron Judge " must match a room for "Aaron Judge"."""
    event = parse_event(
        {"kind": "predictions", "sport": "MLB", "game_id": "1", "player": " Aaron Judge "}
    )
    room = parse_room("predictions", {"player": "Aaron Judge "})
    assert room.matches(routing_of(event))
