"""The worker's RoomIndex: bookkeeping (join/leave/drop/apply/load) and exact matching.

`RoomIndex.match` must agree exactly with checking `RoomSpec.matches` on every room; the
property test below compares the two on random rooms, holders and events.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from oddstream.shared.events import Routing, routing_of
from oddstream.shared.ingest import parse_event
from oddstream.shared.protocol import SubscriptionType
from oddstream.shared.registry import FeedEntry, RoomHolding
from oddstream.shared.rooms import ALLOWED_FILTERS, RoomSpec, parse_room
from oddstream.shared.settings import Settings
from oddstream.workers.consumer import Worker
from oddstream.workers.matcher import RoomIndex

T = SubscriptionType


def room(
    type_: str | T, filters: dict[str, Any] | None = None, user: str | None = None
) -> RoomSpec:
    return parse_room(type_, {} if filters is None else filters, user=user)


def event(**body: Any) -> Routing:
    return routing_of(parse_event(body))


def odds(sport: str = "NBA", game_id: str = "g1", sportsbook: str = "DK") -> Routing:
    return event(kind="odds", sport=sport, game_id=game_id, sportsbook=sportsbook, market="spread")


def alert(sport: str | None = None) -> Routing:
    body: dict[str, Any] = {"kind": "alerts", "message": "m"}
    if sport is not None:
        body["sport"] = sport
    return event(**body)


def normalized(result: dict[str, list[str]]) -> dict[str, set[str]]:
    """Gateway -> set of rooms, after checking the lists hold no duplicates."""
    for gateway, rooms in result.items():
        assert len(rooms) == len(set(rooms)), f"duplicate rooms for {gateway}: {rooms}"
        assert rooms, f"gateway {gateway} listed with no rooms"
    return {gateway: set(rooms) for gateway, rooms in result.items()}


def brute_force(holdings: dict[str, RoomHolding], routing: Routing) -> dict[str, set[str]]:
    expected: dict[str, set[str]] = {}
    for room_id, holding in holdings.items():
        if holding.spec.matches(routing):
            for gateway in holding.gateways:
                expected.setdefault(gateway, set()).add(room_id)
    return expected


def join(index: RoomIndex, spec: RoomSpec, *gateways: str) -> str:
    for gateway in gateways:
        index.join(spec.room_id, spec, gateway)
    return spec.room_id


# =============================================================================================
# Bookkeeping
# =============================================================================================


def test_join_records_spec_and_holders_once() -> None:
    index = RoomIndex()
    spec = room("odds_updates", {"sport": "NBA"})
    join(index, spec, "g1", "g1", "g2")
    assert len(index) == 1
    holding = index.rooms[spec.room_id]
    assert holding.spec == spec
    assert holding.gateways == {"g1", "g2"}
    assert normalized(index.match(odds())) == {"g1": {spec.room_id}, "g2": {spec.room_id}}


def test_leave_keeps_room_until_last_gateway_leaves() -> None:
    index = RoomIndex()
    spec = room("odds_updates", {"game_id": "g1"})
    rid = join(index, spec, "g1", "g2")
    index.leave(rid, "g1")
    assert index.rooms[rid].gateways == {"g2"}
    assert normalized(index.match(odds())) == {"g2": {rid}}
    index.leave(rid, "g2")
    assert len(index) == 0
    assert rid not in index.rooms
    assert index.match(odds()) == {}


def test_rejoin_after_last_leave_matches_again() -> None:
    index = RoomIndex()
    spec = room("predictions", {"player": "X"})
    rid = join(index, spec, "g1")
    index.leave(rid, "g1")
    hit = event(kind="predictions", sport="NBA", game_id="1", player="X")
    assert index.match(hit) == {}
    join(index, spec, "g3")
    assert index.match(hit) == {"g3": [rid]}


def test_leave_of_unknown_room_or_gateway_is_harmless() -> None:
    index = RoomIndex()
    rid = join(index, room("system_alerts"), "g1")
    index.leave("no-such-room", "g1")
    index.leave(rid, "g-unknown")
    assert index.rooms[rid].gateways == {"g1"}
    assert index.match(alert()) == {"g1": [rid]}


def test_drop_gateway_leaves_all_its_rooms() -> None:
    index = RoomIndex()
    shared = join(index, room("odds_updates"), "g1", "g2")
    only_g1 = join(index, room("odds_updates", {"sport": "NBA"}), "g1")
    only_g2 = join(index, room("odds_updates", {"sportsbook": "DK"}), "g2")
    index.drop_gateway("g1")
    assert set(index.rooms) == {shared, only_g2}
    assert index.rooms[shared].gateways == {"g2"}
    assert normalized(index.match(odds())) == {"g2": {shared, only_g2}}
    assert only_g1 not in index.rooms
    index.drop_gateway("g1")  # idempotent
    index.drop_gateway("g2")
    assert len(index) == 0
    assert index.match(odds()) == {}


def test_apply_feed_entries() -> None:
    index = RoomIndex()
    spec = room("arbitrage", {"min_profit": 1})
    rid = spec.room_id
    arb = event(kind="arbitrage", sport="NFL", game_id="1", profit_pct=2, sportsbooks=["A", "B"])
    index.apply(FeedEntry(b"1-0", "join", "g1", rid, spec))
    index.apply(FeedEntry(b"2-0", "join", "g2", rid, spec))
    assert normalized(index.match(arb)) == {"g1": {rid}, "g2": {rid}}
    index.apply(FeedEntry(b"3-0", "leave", "g1", rid, None))
    assert index.match(arb) == {"g2": [rid]}
    # A join without a spec or room is malformed and ignored; unknown ops are ignored.
    other = room("arbitrage")
    index.apply(FeedEntry(b"4-0", "join", "g1", other.room_id, None))
    index.apply(FeedEntry(b"5-0", "join", "g1", None, other))
    index.apply(FeedEntry(b"6-0", "resize", "g1", other.room_id, other))
    assert set(index.rooms) == {rid}
    index.apply(FeedEntry(b"7-0", "gateway_down", "g2", None, None))
    assert len(index) == 0
    assert index.match(arb) == {}


def test_load_replaces_the_index() -> None:
    index = RoomIndex()
    stale = join(index, room("odds_updates"), "g-old")
    fresh = room("odds_updates", {"sport": "NBA"})
    empty = room("odds_updates", {"sport": "NFL"})
    index.load(
        {
            fresh.room_id: RoomHolding(fresh, {"g1", "g2"}),
            empty.room_id: RoomHolding(empty, set()),  # no holder: not a live room
        }
    )
    assert stale not in index.rooms
    assert set(index.rooms) == {fresh.room_id}
    assert normalized(index.match(odds("NBA"))) == {"g1": {fresh.room_id}, "g2": {fresh.room_id}}
    assert index.match(odds("NFL")) == {}


# =============================================================================================
# Matching
# =============================================================================================


def test_match_groups_rooms_by_gateway() -> None:
    index = RoomIndex()
    everything = join(index, room("odds_updates"), "g1", "g2")
    nba = join(index, room("odds_updates", {"sport": "nba"}), "g1")
    game = join(index, room("odds_updates", {"game_id": "g1", "sport": "NBA"}), "g3")
    book = join(index, room("odds_updates", {"sportsbook": ["DK", "FD"]}), "g2")
    nba_type = join(index, room("nba", {"sportsbook": "DK"}), "g3")
    join(index, room("odds_updates", {"sport": "NFL"}), "g1")  # no match
    join(index, room("odds_updates", {"game_id": "g2"}), "g2")  # no match
    join(index, room("predictions"), "g1")  # other kind
    join(index, room("nfl"), "g2")  # other sport
    join(index, room("system_alerts"), "g3")  # other kind
    result = normalized(index.match(odds("NBA", "g1", "DK")))
    assert result == {
        "g1": {everything, nba},
        "g2": {everything, book},
        "g3": {game, nba_type},
    }


def test_global_alert_reaches_sport_filtered_alert_rooms() -> None:
    index = RoomIndex()
    plain = join(index, room("system_alerts"), "g1")
    nba = join(index, room("system_alerts", {"sport": "NBA"}), "g1")
    nfl_mlb = join(index, room("system_alerts", {"sport": ["NFL", "MLB"]}), "g2")
    nba_type = join(index, room("nba"), "g2")
    assert normalized(index.match(alert())) == {"g1": {plain, nba}, "g2": {nfl_mlb}}
    assert normalized(index.match(alert("nba"))) == {"g1": {plain, nba}, "g2": {nba_type}}
    assert normalized(index.match(alert("MLB"))) == {"g1": {plain}, "g2": {nfl_mlb}}


def test_broadcast_reaches_every_room_of_its_type_only() -> None:
    index = RoomIndex()
    nba_rooms = {
        join(index, room("nba"), "g1"),
        join(index, room("nba", {"game_id": "g1"}), "g1"),
        join(index, room("nba", {"player": "X", "sportsbook": "DK"}), "g1"),
    }
    join(index, room("nfl"), "g1")
    join(index, room("system_alerts"), "g1")
    join(index, room("odds_updates", {"sport": "NBA"}), "g1")
    for spelled in ("nba", "NBA"):
        hit = event(kind="broadcast", subscription_type=spelled, message="x")
        assert normalized(index.match(hit)) == {"g1": nba_rooms}
    none = index.match(event(kind="broadcast", subscription_type="mlb", message="x"))
    assert none == {}


def test_portfolio_events_reach_only_the_owners_room() -> None:
    index = RoomIndex()
    alice = join(index, room("portfolio", user="alice"), "g1")
    join(index, room("portfolio", user="bob"), "g1")
    join(index, room("system_alerts"), "g1")
    join(index, room("odds_updates"), "g1")
    assert index.match(event(kind="portfolio", user="alice")) == {"g1": [alice]}
    assert index.match(event(kind="portfolio", user="carol")) == {}


def test_room_held_by_two_gateways_appears_under_both() -> None:
    index = RoomIndex()
    rid = join(index, room("analytics", {"player": "P"}), "g1", "g2")
    hit = event(kind="analytics", sport="NHL", player="P")
    assert normalized(index.match(hit)) == {"g1": {rid}, "g2": {rid}}
    index.leave(rid, "g2")
    assert index.match(hit) == {"g1": [rid]}
    index.leave(rid, "g1")
    assert index.match(hit) == {}


def _count_matches_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record the room id of every RoomSpec.matches call (the candidates the index checked)."""
    calls: list[str] = []
    original = RoomSpec.matches

    def counting(self: RoomSpec, routing: Routing) -> bool:
        calls.append(self.room_id)
        return original(self, routing)

    monkeypatch.setattr(RoomSpec, "matches", counting)
    return calls


def test_ten_thousand_rooms_match_by_looking_at_few_candidates(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    index = RoomIndex()
    holdings: dict[str, RoomHolding] = {}
    specs: list[RoomSpec] = []
    sports = ["NBA", "NFL", "MLB", "NHL"]
    for i in range(10_000):
        sport = sports[i % 4]
        shape = i % 5
        if shape == 0:
            spec = room("odds_updates", {"game_id": str(i)})
        elif shape == 1:
            spec = room("odds_updates", {"game_id": [str(i), str(i + 1)], "sport": sport})
        elif shape == 2:
            spec = room("arbitrage", {"game_id": str(i), "min_profit": i % 7})
        elif shape == 3:
            spec = room(sport.lower(), {"game_id": str(i)})
        else:
            spec = room("predictions", {"game_id": str(i), "player": f"p{i % 13}"})
        specs.append(spec)
        gateway = f"gw{i % 17}"
        index.join(spec.room_id, spec, gateway)
        holdings.setdefault(spec.room_id, RoomHolding(spec)).gateways.add(gateway)
    assert len(index) == 10_000

    def only(i: int) -> dict[str, set[str]]:
        return {f"gw{i % 17}": {specs[i].room_id}}

    arb = event(kind="arbitrage", sport="MLB", game_id="5002", profit_pct=6, sportsbooks=["A", "B"])
    low_arb = event(
        kind="arbitrage", sport="MLB", game_id="5002", profit_pct=3, sportsbooks=["A", "B"]
    )
    player = f"p{5004 % 13}"
    probes: list[tuple[Routing, dict[str, set[str]]]] = [
        (odds("NFL", "5001"), only(5001)),  # odds room 5001 holds games 5001 and 5002 (NFL)
        (odds("NFL", "5002"), only(5001)),
        (odds("MLB", "5002"), {}),  # room 5001 wants NFL only
        (odds("NBA", "5000"), only(5000)),
        (arb, only(5002)),  # min_profit 5002 % 7 == 4
        (low_arb, {}),
        (event(kind="predictions", sport="NBA", game_id="5004", player=player), only(5004)),
        (event(kind="predictions", sport="NBA", game_id="5004", player="nobody"), {}),
        (odds("NHL", "5003"), only(5003)),  # the `nhl` sport-type room for game 5003
        (odds("NBA", "5003"), {}),
        (odds("NBA", "no-such-game"), {}),
    ]
    calls = _count_matches_calls(monkeypatch)
    results = [normalized(index.match(probe)) for probe, _ in probes]
    candidates_checked = len(calls)
    monkeypatch.undo()

    for (probe, expected), result in zip(probes, results, strict=True):
        assert result == expected, probe
        assert result == brute_force(holdings, probe), probe
    # Scanning every room of the event's types would check thousands of candidates per probe.
    assert candidates_checked <= 2 * len(probes), calls


def test_unfiltered_and_sport_rooms_are_still_found_among_many_game_rooms() -> None:
    index = RoomIndex()
    for i in range(2_000):
        join(index, room("odds_updates", {"game_id": str(i)}), f"gw{i % 3}")
    everything = join(index, room("odds_updates"), "gw-all")
    nba = join(index, room("odds_updates", {"sport": "NBA"}), "gw-nba")
    nba_type = join(index, room("nba"), "gw-nba")
    result = normalized(index.match(odds("NBA", "1999")))
    assert result == {
        "gw1": {room("odds_updates", {"game_id": "1999"}).room_id},
        "gw-all": {everything},
        "gw-nba": {nba, nba_type},
    }


# =============================================================================================
# Property: RoomIndex.match == brute force over RoomSpec.matches
# =============================================================================================

SPORTS = ["NBA", "nfl", "Mlb", "NHL", "soccer"]
GAMES = ["1", "2", "3"]
PLAYERS = ["A", "B", "C"]
BOOKS = ["DK", "FD", "MGM"]
USERS = ["alice", "bob"]
GATEWAYS = ["g1", "g2", "g3"]

_VALUE_POOLS: dict[str, list[Any]] = {
    "sport": SPORTS,
    "game_id": [*GAMES, 1, 2],
    "player": PLAYERS,
    "sportsbook": BOOKS,
}


@st.composite
def room_specs(draw: st.DrawFn) -> RoomSpec:
    type_ = draw(st.sampled_from(list(T)))
    filters: dict[str, Any] = {}
    for key in sorted(ALLOWED_FILTERS[type_]):
        if not draw(st.booleans()):
            continue
        if key == "min_profit":
            filters[key] = draw(st.sampled_from([0, 1, 1.5, 3, 5]))
        elif draw(st.booleans()):
            filters[key] = draw(st.sampled_from(_VALUE_POOLS[key]))
        else:
            pool = _VALUE_POOLS[key]
            filters[key] = draw(st.lists(st.sampled_from(pool), min_size=1, max_size=3))
    user = draw(st.sampled_from(USERS)) if type_ is T.PORTFOLIO else None
    return parse_room(type_, filters, user=user)


_sport = st.sampled_from(SPORTS)
_game = st.sampled_from([*GAMES, "4", 3])
_player = st.none() | st.sampled_from([*PLAYERS, "D"])


def _without_none(**body: Any) -> dict[str, Any]:
    return {k: v for k, v in body.items() if v is not None}


events = st.one_of(
    st.builds(
        lambda s, g, b: _without_none(
            kind="odds", sport=s, game_id=g, sportsbook=b, market="total"
        ),
        _sport,
        _game,
        st.sampled_from([*BOOKS, "Caesars"]),
    ),
    st.builds(
        lambda s, g, p: _without_none(kind="predictions", sport=s, game_id=g, player=p),
        _sport,
        _game,
        _player,
    ),
    st.builds(
        lambda s, g, p: _without_none(kind="analytics", sport=s, game_id=g, player=p),
        _sport,
        st.none() | _game,
        _player,
    ),
    st.builds(
        lambda s, g, profit, books: _without_none(
            kind="arbitrage", sport=s, game_id=g, profit_pct=profit, sportsbooks=books
        ),
        _sport,
        _game,
        st.sampled_from([0, 0.5, 1, 1.5, 2.9, 3, 5, 10]),
        st.lists(st.sampled_from([*BOOKS, "Caesars"]), min_size=2, max_size=4),
    ),
    st.builds(
        lambda s: _without_none(kind="alerts", message="m", sport=s),
        st.none() | _sport,
    ),
    st.builds(
        lambda u: {"kind": "portfolio", "user": u},
        st.sampled_from([*USERS, "carol"]),
    ),
    st.builds(
        lambda t: {"kind": "broadcast", "subscription_type": t, "message": "m"},
        st.sampled_from([t.value for t in T]),
    ),
).map(lambda body: routing_of(parse_event(body)))


Op = tuple[str, RoomSpec, str]

ops = st.lists(
    st.tuples(
        st.sampled_from(["join", "join", "join", "leave"]), room_specs(), st.sampled_from(GATEWAYS)
    ),
    max_size=40,
)


def _apply_ops(index: RoomIndex, operations: list[Op]) -> dict[str, RoomHolding]:
    """Apply joins/leaves to the index and to a plain model; return the model's live rooms."""
    model: dict[str, RoomHolding] = {}
    for op, spec, gateway in operations:
        if op == "join":
            index.join(spec.room_id, spec, gateway)
            model.setdefault(spec.room_id, RoomHolding(spec)).gateways.add(gateway)
        else:
            index.leave(spec.room_id, gateway)
            holding = model.get(spec.room_id)
            if holding is not None:
                holding.gateways.discard(gateway)
                if not holding.gateways:
                    del model[spec.room_id]
    return model


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(operations=ops, routings=st.lists(events, min_size=1, max_size=8))
def test_match_agrees_with_brute_force(operations: list[Op], routings: list[Routing]) -> None:
    index = RoomIndex()
    model = _apply_ops(index, operations)
    assert set(index.rooms) == set(model)
    assert {r: h.gateways for r, h in index.rooms.items()} == {
        r: h.gateways for r, h in model.items()
    }
    for routing in routings:
        assert normalized(index.match(routing)) == brute_force(model, routing)


@settings(max_examples=200, deadline=None)
@given(
    operations=ops,
    dropped=st.sampled_from(GATEWAYS),
    routings=st.lists(events, min_size=1, max_size=5),
)
def test_match_agrees_with_brute_force_after_gateway_down(
    operations: list[Op], dropped: str, routings: list[Routing]
) -> None:
    index = RoomIndex()
    model = _apply_ops(index, operations)
    index.apply(FeedEntry(b"0-1", "gateway_down", dropped, None, None))
    for room_id in list(model):
        model[room_id].gateways.discard(dropped)
        if not model[room_id].gateways:
            del model[room_id]
    assert set(index.rooms) == set(model)
    for routing in routings:
        result = normalized(index.match(routing))
        assert dropped not in result
        assert result == brute_force(model, routing)


@settings(max_examples=200, deadline=None)
@given(
    specs=st.lists(room_specs(), min_size=1, max_size=30),
    routings=st.lists(events, min_size=1, max_size=5),
)
def test_load_then_match_agrees_with_brute_force(
    specs: list[RoomSpec], routings: list[Routing]
) -> None:
    holdings = {
        spec.room_id: RoomHolding(spec, {GATEWAYS[i % len(GATEWAYS)]})
        for i, spec in enumerate(specs)
    }
    index = RoomIndex()
    index.load({rid: RoomHolding(h.spec, set(h.gateways)) for rid, h in holdings.items()})
    assert len(index) == len(holdings)
    for routing in routings:
        assert normalized(index.match(routing)) == brute_force(holdings, routing)


async def test_a_workers_rooms_per_routing_follow_every_change_to_the_index(
    settings: Settings, redis_client: Redis
) -> None:
    """The worker keeps what an event's routing matched until its room index changes
    (`Worker._rooms_for`): after every join, leave, expiry and reload the next event of the
    same routing goes to exactly the rooms the index matches then."""
    worker = Worker(settings, redis_client, worker_id="w-routes")
    index, routing = worker.index, odds(game_id="g1")
    game, sport = room("odds_updates", {"game_id": "g1"}), room("nba")

    def check(by_gateway: dict[str, set[str]], history: set[str]) -> None:
        for _ in range(2):  # the first answer is computed, the second kept
            rooms, recorded = worker._rooms_for(routing)
            assert normalized(rooms) == by_gateway
            assert set(recorded) == history
            assert normalized(index.match_all(routing)[0]) == by_gateway

    check({}, set())
    index.join(game.room_id, game, "gw1")
    check({"gw1": {game.room_id}}, {game.room_id})
    index.join(sport.room_id, sport, "gw2")
    check({"gw1": {game.room_id}, "gw2": {sport.room_id}}, {game.room_id, sport.room_id})
    index.join(game.room_id, game, "gw2")
    check({"gw1": {game.room_id}, "gw2": {game.room_id, sport.room_id}},
          {game.room_id, sport.room_id})  # fmt: skip
    index.leave(game.room_id, "gw1")
    index.leave(game.room_id, "gw2")  # no holder left: it lingers, its history still records
    check({"gw2": {sport.room_id}}, {game.room_id, sport.room_id})
    index.expire(game.room_id)
    check({"gw2": {sport.room_id}}, {sport.room_id})
    index.load({})
    check({}, set())
