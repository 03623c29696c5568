"""Arbitrage detection: hand-computed cases of the rule, the open -> update -> close life of an
opportunity, rebuilding after a takeover, the simulator's prices, and end to end through a real
gateway, worker and Redis.

Implied probabilities used below (1 / decimal odds): +100 and -100: 1/2; +110: 10/21;
-110: 11/21; +115: 20/43; -120: 6/11; +120: 5/11; +150: 2/5; -150: 3/5; +160: 5/13;
-105: 21/41; +102: 50/101; -10000: 100/101; +10000: 1/101; +10001: 100/10101.
"""

from __future__ import annotations

import asyncio
from fractions import Fraction
from itertools import permutations
from typing import Any

import orjson
import pytest
from redis.asyncio import Redis

from oddstream.embedded import EmbeddedRedis
from oddstream.shared.events import ArbitrageEvent, OddsEvent
from oddstream.shared.ingest import Ingester, parse_event
from oddstream.shared.keys import Keys
from oddstream.shared.redis import create_redis
from oddstream.shared.settings import Settings
from oddstream.simulator import Simulator
from oddstream.workers.arbitrage import (
    MIN_CHANGE_PCT,
    RECORD_PREFIX,
    Detector,
    Opportunity,
    Quote,
    Transition,
    find,
    implied_probability,
    quote_of,
)
from tests.harness import Client, running_gateway, running_worker, wait_until, workers_synced

HOME, AWAY = "New York Yankees", "Boston Red Sox"


def odds(book: str, market: str = "moneyline", game: str = "G1", **fields: Any) -> OddsEvent:
    body = {"kind": "odds", "sport": "MLB", "game_id": game, "sportsbook": book,
            "market": market, "home_team": HOME, "away_team": AWAY, **fields}  # fmt: skip
    event = parse_event(body)
    assert isinstance(event, OddsEvent)
    return event


def ml(book: str, home: Any, away: Any, **fields: Any) -> OddsEvent:
    return odds(book, home_price=home, away_price=away, **fields)


def spread(book: str, line: float, home: int, away: int) -> OddsEvent:
    return odds(book, "spread", line=line, home_price=home, away_price=away)


def total(book: str, line: float, over: int, under: int) -> OddsEvent:
    return odds(book, "total", line=line, over_price=over, under_price=under)


def feed(detector: Detector, *events: OddsEvent) -> list[Transition]:
    out: list[Transition] = []
    for event in events:
        out += detector.observe(event)
    return out


def data(transition: Transition) -> dict[str, Any]:
    body: dict[str, Any] = transition.event.model_dump(mode="json")
    return body


def only(transitions: list[Transition]) -> dict[str, Any]:
    assert len(transitions) == 1, [data(t) for t in transitions]
    return data(transitions[0])


# --- the rule, by hand -------------------------------------------------------------------


def test_implied_probabilities_are_exact() -> None:
    assert implied_probability(-110) == Fraction(11, 21)
    assert implied_probability(110) == Fraction(10, 21)
    assert implied_probability(150) == Fraction(2, 5)
    assert implied_probability(-100) == implied_probability(100) == Fraction(1, 2)


def test_two_books_moneyline() -> None:
    """A: home +110 (10/21); B: away +115 (20/43). 10/21 + 20/43 = 850/903, so the profit is
    903/850 - 1 = 53/850 = 6.2353%; stakes 100 * (10/21) / (850/903) = 50.59 and 49.41, each
    paying 100 * 903/850 = 106.24."""
    detector = Detector()
    assert feed(detector, ml("A", 110, -120)) == []  # one book alone is no arbitrage
    opened = only(feed(detector, ml("B", -120, 115)))
    assert opened["status"] == "open"
    assert opened["arbitrage_id"] == "G1|moneyline"
    assert opened["profit_pct"] == pytest.approx(100 * 53 / 850)
    assert opened["sportsbooks"] == ["A", "B"]
    assert opened["market"] == "moneyline" and opened["line"] is None
    assert opened["legs"] == [
        {"sportsbook": "A", "side": "home", "selection": HOME, "price": 110,
         "decimal_price": 2.1, "fractional_price": "11/10", "line": None, "stake_pct": 50.59},
        {"sportsbook": "B", "side": "away", "selection": AWAY, "price": 115,
         "decimal_price": 2.15, "fractional_price": "23/20", "line": None, "stake_pct": 49.41},
    ]  # fmt: skip
    assert opened["payout_per_100"] == 106.24
    (opportunity,) = detector.open_of("G1")
    assert opportunity.cost == Fraction(850, 903)
    assert opportunity.profit == Fraction(5300, 850)


def test_a_repeated_quote_changes_nothing_and_a_changed_one_still_does() -> None:
    """A book sending the same offer again (a repeated tick) is skipped without re-settling;
    the opportunity stays as published, and the next real change still updates or closes."""
    detector = Detector()
    only(feed(detector, ml("A", 110, -120), ml("B", -120, 115)))
    assert feed(detector, ml("A", 110, -120), ml("B", -120, 115), ml("A", 110, -120)) == []
    (opportunity,) = detector.open_of("G1")
    assert opportunity.profit == Fraction(5300, 850)
    assert only(feed(detector, ml("B", -120, 120)))["status"] == "updated"
    assert only(feed(detector, ml("B", -150, -110)))["status"] == "closed"
    assert feed(detector, ml("B", -150, -110)) == []


def test_three_books_take_the_best_price_of_each_side() -> None:
    """Best home: C +120 (5/11); best away: B +102 (50/101); A is beaten on both sides.
    5/11 + 50/101 = 1055/1111: profit 56/1055 = 5.308%."""
    detector = Detector()
    assert feed(detector, ml("A", -105, -125), ml("B", -115, 102)) == []  # 21/41 + 50/101 > 1
    opened = only(feed(detector, ml("C", 120, -140)))
    assert [(leg["sportsbook"], leg["side"]) for leg in opened["legs"]] == [
        ("C", "home"),
        ("B", "away"),
    ]
    assert opened["profit_pct"] == pytest.approx(100 * 56 / 1055)
    assert detector.open_of("G1")[0].profit == Fraction(5600, 1055)


def test_spread_compares_the_same_line_only() -> None:
    """A and B are on -1.5, C on -2.5. C's away +2.5 at +150 with A's home -1.5 at +160 would
    sum to 5/13 + 2/5 < 1, but it is a middle, not an arbitrage: nothing opens. B's away +1.5
    at +150 is on A's line: 5/13 + 2/5 = 51/65, profit 14/51 = 27.45%."""
    detector = Detector()
    assert feed(detector, spread("A", -1.5, 160, -190), spread("C", -2.5, 200, 150)) == []
    opened = only(feed(detector, spread("B", -1.5, -175, 150)))
    assert opened["arbitrage_id"] == "G1|spread|-1.5"
    assert opened["line"] == -1.5
    assert opened["profit_pct"] == pytest.approx(100 * 14 / 51)
    assert [(leg["sportsbook"], leg["line"], leg["selection"]) for leg in opened["legs"]] == [
        ("A", -1.5, f"{HOME} -1.5"),
        ("B", 1.5, f"{AWAY} +1.5"),  # the away side is at minus the home line
    ]


def test_total_over_and_under_on_the_same_line() -> None:
    """Over 8.5: A -105 (21/41); under 8.5: B +110 (10/21); C's under 9 at +200 is another line.
    21/41 + 10/21 = 851/861: profit 10/851 = 1.1751%."""
    detector = Detector()
    opened = only(feed(detector, total("A", 8.5, -105, -115), total("C", 9, -300, 200),
                       total("B", 8.5, -120, 110)))  # fmt: skip
    assert opened["arbitrage_id"] == "G1|total|8.5"
    assert opened["profit_pct"] == pytest.approx(100 * 10 / 851)
    assert [(leg["sportsbook"], leg["side"], leg["selection"]) for leg in opened["legs"]] == [
        ("A", "over", "Over 8.5"),
        ("B", "under", "Under 8.5"),
    ]


@pytest.mark.parametrize(("home", "away"), [(100, 100), (-100, 100), (-110, 110), (-150, 150),
                                            (-10000, 10000)])  # fmt: skip
def test_exactly_zero_profit_is_not_an_arbitrage(home: int, away: int) -> None:
    """Each pair implies exactly 1 (1/2 + 1/2, 11/21 + 10/21, 3/5 + 2/5, 100/101 + 1/101)."""
    assert implied_probability(home) + implied_probability(away) == 1
    detector = Detector()
    assert feed(detector, ml("A", home, -10000), ml("B", -10000, away)) == []
    assert detector.open_of("G1") == []


def test_a_tiny_positive_profit_is_an_arbitrage() -> None:
    """-10000 (100/101) and +10001 (100/10101) sum to 1020200/1020201: a profit of
    100/1020200 % = 0.000098%, which floats near 1 must not round away."""
    detector = Detector()
    opened = only(feed(detector, ml("A", -10000, -10000), ml("B", -10000, 10001)))
    assert detector.open_of("G1")[0].profit == Fraction(100, 1020200)
    assert 0 < opened["profit_pct"] == pytest.approx(100 / 1020200, rel=1e-12)


def test_stakes_per_100_return_the_same_on_every_outcome() -> None:
    detector = Detector()
    feed(detector, ml("A", 110, -120), ml("B", -120, 115), total("A", 8.5, -105, -115),
         total("B", 8.5, -120, 110), spread("A", -1.5, 160, -190),
         spread("B", -1.5, -175, 150))  # fmt: skip
    opportunities = detector.open_of("G1")
    assert len(opportunities) == 3
    for opportunity in opportunities:
        stakes = opportunity.stakes()
        assert sum(stakes) == 100
        for stake, leg in zip(stakes, opportunity.legs, strict=True):
            assert stake / leg.implied == opportunity.payout() > 100  # exactly equal payouts
        assert opportunity.payout() == 100 + opportunity.profit


def test_a_suspended_book_offers_no_price() -> None:
    """B's away +115 makes the arbitrage; B suspending the market closes it (whatever prices
    the suspension carries), B reopening brings it back."""
    detector = Detector()
    assert only(feed(detector, ml("A", 110, -120), ml("B", -120, 115)))["status"] == "open"
    closed = only(feed(detector, ml("B", -120, 115, status="suspended")))
    assert closed["status"] == "closed" and closed["arbitrage_id"] == "G1|moneyline"
    assert detector.open_of("G1") == []
    assert feed(detector, ml("C", -120, 115, status="suspended")) == []  # suspended: ignored
    assert only(feed(detector, ml("B", -120, 115, status="open")))["status"] == "open"


def test_one_book_never_makes_an_arbitrage_alone() -> None:
    """A's own prices imply 10/21 + 20/43 < 1 (a broken price); with no other book there is
    nothing to bet against. Once B quotes, the best pair across two books is taken: A home
    with B away (10/21 + 1/2 = 41/42, profit 1/41 = 2.439%) beats B home with A away."""
    detector = Detector()
    assert feed(detector, ml("A", 110, 115)) == []
    opened = only(feed(detector, ml("B", -110, 100)))
    assert opened["sportsbooks"] == ["A", "B"]
    assert [leg["side"] for leg in opened["legs"]] == ["home", "away"]
    assert opened["profit_pct"] == pytest.approx(100 / 41)


def unchecked(market: str = "moneyline", **fields: Any) -> OddsEvent:
    """An odds event as a feed might send it, not validated by ingest."""
    return OddsEvent.model_construct(
        kind="odds", sport="MLB", game_id="G1", sportsbook="A", market=market, **fields
    )


def test_prices_that_are_not_prices_are_ignored() -> None:
    assert quote_of(unchecked(home_price=50, away_price="x")) is None
    assert quote_of(unchecked(home_price=True, away_price=110.0)) is None
    assert quote_of(unchecked(home_price=[110], away_price={})) is None
    assert quote_of(unchecked(home_price=110)) == Quote(None, (110, None))
    assert quote_of(unchecked("spread", home_price=110, away_price=-120)) is None  # no line
    assert quote_of(unchecked("total", line="8.5", over_price=110)) is None
    assert quote_of(unchecked("total", line=8.5, over_price=110)) == Quote(8.5, (110, None))


def test_an_absurd_profit_is_a_broken_price_not_an_arbitrage() -> None:
    """+100000 on both sides implies 2/1001: a profit of 49,950%, past the event's 1000."""
    quotes = {"A": Quote(None, (100000, -200)), "B": Quote(None, (-200, 100000))}
    assert find("G1", "moneyline", None, quotes) is None
    quotes["B"] = Quote(None, (-200, 900))  # 1/1001 + 1/10: profit 809%
    found = find("G1", "moneyline", None, quotes)
    assert found is not None and found.profit == 100 * (
        1 / (Fraction(1, 1001) + Fraction(1, 10)) - 1
    )


# --- open, update, close -------------------------------------------------------------------


def test_open_update_close_sequence() -> None:
    detector = Detector()
    events = feed(detector, ml("A", 110, -120), ml("B", -120, 115))
    assert [data(t)["status"] for t in events] == ["open"]
    # B's away to +120 (5/11): 10/21 + 5/11 = 215/231, profit 16/215 = 7.442%.
    updated = only(feed(detector, ml("B", -120, 120)))
    assert updated["status"] == "updated"
    assert updated["profit_pct"] == pytest.approx(1600 / 215)
    # A price that changes nothing of the best pair publishes nothing.
    assert feed(detector, ml("B", -125, 120)) == []
    # B's away to -130: no pair of books implies under 1 any more.
    closed = only(feed(detector, ml("B", -120, -130)))
    assert closed["status"] == "closed"
    assert closed["arbitrage_id"] == updated["arbitrage_id"] == "G1|moneyline"
    assert closed["legs"] == updated["legs"]  # the last published version
    assert closed["last_profit_pct"] == pytest.approx(1600 / 215)
    assert detector.open_of("G1") == []
    assert feed(detector, ml("A", 105, -130)) == []  # closed stays closed


def test_an_update_needs_new_legs_or_a_profit_move_of_the_threshold() -> None:
    """With a 1-point threshold: B's away +115 -> +116 moves the profit 0.23 points (nothing
    published), +120 moves it 1.21 points from the published 6.235% (an update); a new book
    on a leg is an update even at the same profit."""
    detector = Detector(min_change_pct=1.0)
    feed(detector, ml("A", 110, -120), ml("B", -120, 115))
    assert feed(detector, ml("B", -120, 116)) == []
    assert detector.open_of("G1")[0].legs[1].price == 115  # still the published version
    assert only(feed(detector, ml("B", -120, 120)))["profit_pct"] == pytest.approx(1600 / 215)
    # C matches B's away price: ties keep the published leg, nothing changes.
    assert feed(detector, ml("C", -150, 120)) == []
    # B leaves: C has the same price, so the same profit, but the legs changed.
    moved = only(feed(detector, ml("B", -150, -150)))
    assert moved["status"] == "updated"
    assert moved["sportsbooks"] == ["A", "C"]
    assert moved["profit_pct"] == pytest.approx(1600 / 215)
    assert MIN_CHANGE_PCT == 0.01  # the default: a 1-cent move of a leg is an update
    default = Detector()
    feed(default, ml("A", 110, -120), ml("B", -120, 115))
    assert only(feed(default, ml("B", -120, 116)))["status"] == "updated"


def test_a_close_reaches_every_room_any_version_reached() -> None:
    """The close carries the highest profit published and every book any version had, so a
    `min_profit` or `sportsbook` room that received some version also receives the close."""
    detector = Detector()
    feed(detector, ml("A", 110, -120), ml("B", -120, 120))  # 7.442%, A + B
    # C's away +105 becomes the best once B pulls its price: 10/21 + 20/41 = 830/861, 3.735%.
    feed(detector, ml("C", -150, 105))
    moved = only(feed(detector, ml("B", -150, -150)))
    assert moved["sportsbooks"] == ["A", "C"]
    assert moved["profit_pct"] == pytest.approx(100 * 31 / 830)
    closed = only(feed(detector, ml("C", -150, -150)))
    assert closed["status"] == "closed"
    assert closed["profit_pct"] == pytest.approx(1600 / 215)  # the peak, for routing
    assert closed["last_profit_pct"] == pytest.approx(100 * 31 / 830)
    assert closed["sportsbooks"] == ["A", "B", "C"]
    ArbitrageEvent.model_validate(closed)


def test_a_book_moving_its_line_leaves_the_old_group_and_joins_the_new() -> None:
    detector = Detector()
    feed(detector, total("A", 8.5, -105, -115), total("B", 8.5, -120, 110))
    # B moves to 9: the 8.5 arbitrage closes; 9 has B alone.
    moved = feed(detector, total("B", 9, -120, 110))
    assert [(data(t)["status"], data(t)["arbitrage_id"]) for t in moved] == [
        ("closed", "G1|total|8.5")
    ]
    # A follows to 9: the arbitrage opens there, a new id.
    assert only(feed(detector, total("A", 9, -105, -115)))["arbitrage_id"] == "G1|total|9"


def test_idle_games_expire_with_a_close() -> None:
    now = [0.0]
    detector = Detector(clock=lambda: now[0])
    feed(detector, ml("A", 110, -120), ml("B", -120, 115), ml("A", 110, -120, game="G2"))
    now[0] = 50.0
    feed(detector, ml("B", -120, -130, game="G2"))
    now[0] = 120.0
    expired = detector.expire(100.0)
    assert [(data(t)["status"], data(t)["game_id"]) for t in expired] == [("closed", "G1")]
    assert detector.games == ["G2"]


# --- rebuilding after a takeover --------------------------------------------------------------


def published_state(detector: Detector) -> tuple[list[OddsEvent], list[bytes]]:
    """Latest odds and records as a worker leaves them in Redis."""
    events = [ml("A", 110, -120), ml("B", -120, 115), total("A", 8.5, -105, -115)]
    records = [t.record for t in feed(detector, *events) if t.record is not None]
    return events, records


def test_restore_with_everything_published_publishes_nothing() -> None:
    events, records = published_state(Detector())
    detector = Detector()
    assert detector.restore("G1", events, records) == []
    (restored,) = detector.open_of("G1")
    assert restored.profit == Fraction(5300, 850)
    # ... and it is open, not forgotten: the next move closes it, nothing reopens it.
    assert feed(detector, ml("B", -120, 116))[0].status == "updated"
    assert only(feed(detector, ml("B", -130, -130)))["status"] == "closed"


def test_restore_publishes_what_a_dead_worker_did_not() -> None:
    events, records = published_state(Detector())
    # It died after committing the odds, before publishing the open: no record.
    assert [t.status for t in Detector().restore("G1", events, [])] == ["open"]
    # It died after committing closing odds, before publishing the close.
    closing = [ml("A", 110, -120), ml("B", -120, -130)]
    (closed,) = Detector().restore("G1", closing, records)
    assert closed.status == "closed" and closed.record is None
    # It died before publishing an update.
    moved = [ml("A", 110, -120), ml("B", -120, 120)]
    (updated,) = Detector().restore("G1", moved, records)
    assert updated.status == "updated"
    assert updated.event.profit_pct == pytest.approx(1600 / 215)
    # Unreadable records are skipped, not fatal.
    assert [t.status for t in Detector().restore("G1", events, [b"{", b"[]"])] == ["open"]


def test_restore_of_a_suspended_book() -> None:
    events, records = published_state(Detector())
    events[1] = ml("B", -120, 115, status="suspended")
    (closed,) = Detector().restore("G1", events, records)
    assert closed.status == "closed"


# --- the simulator's prices ---------------------------------------------------------------------


def brute_force(quotes: dict[str, Quote], line: float | None) -> Fraction | None:
    """The best profit over every pair of two different books on `line`, by exhaustion,
    with implied probabilities computed here independently."""

    def implied(price: int) -> Fraction:
        return Fraction(-price, 100 - price) if price < 0 else Fraction(100, 100 + price)

    best: Fraction | None = None
    on_line = [(book, q) for book, q in quotes.items() if q.line == line]
    for (_, first), (_, second) in permutations(on_line, 2):
        home, away = first.prices[0], second.prices[1]
        if home is None or away is None:
            continue
        cost = implied(home) + implied(away)
        if cost < 1:
            profit = 100 * (1 / cost - 1)
            best = profit if best is None or profit > best else best
    return best


def test_the_detector_finds_exactly_the_arbitrage_in_simulated_prices() -> None:
    """The simulator invents no arbitrage events; its books disagree now and then, and after
    every odds event the detector's open opportunities are exactly the (market, line) groups
    where two books' prices sum below 1, each within the update threshold of the best."""
    events = Simulator(seed=2026).generate(10000)
    assert [e for e in events if e.kind == "arbitrage"] == []
    detector = Detector()
    quotes: dict[tuple[str, str], dict[str, Quote]] = {}
    opened: set[str] = set()
    for event in events:
        if not isinstance(event, OddsEvent):
            continue
        for transition in detector.observe(event):
            if transition.status == "open":
                opened.add(str(transition.arbitrage_id.split("|")[1]))
        group = quotes.setdefault((event.game_id, event.market), {})
        quote = quote_of(event)
        if quote is None:
            group.pop(event.sportsbook, None)
        else:
            group[event.sportsbook] = quote
        lines = {q.line for q in group.values()}
        expected = {line: p for line in lines if (p := brute_force(group, line)) is not None}
        found: dict[float | None, Opportunity] = {
            o.line: o for o in detector.open_of(event.game_id) if o.market == event.market
        }
        assert set(found) == set(expected), (event, found, expected)
        for line, profit in expected.items():
            assert abs(found[line].profit - profit) < MIN_CHANGE_PCT
    assert opened == {"moneyline", "spread", "total"}


# --- end to end ---------------------------------------------------------------------------------


def statuses(client: Client) -> list[tuple[str, str]]:
    return [(f["data"]["status"], f["data"]["arbitrage_id"]) for f in client.of("arbitrage_alert")]


async def test_subscribers_get_the_alert_and_its_expiry_through_their_filters(
    settings: Settings, redis_client: Redis, keys: Keys
) -> None:
    """Two books disagree by 6.235%: `min_profit` 5 gets the open, 7 does not; a `sportsbook`
    room gets it when one of its books is a leg; the price move that ends it reaches the rooms
    that got it as a close."""
    async with running_gateway(settings) as gw, running_worker(settings) as worker:
        rooms = {name: await Client.connect(f"{gw.ws}/ws/v2/connect")
                 for name in ("low", "high", "book_b", "book_c", "mlb")}  # fmt: skip
        try:
            await rooms["low"].subscribe("arbitrage", min_profit=5)
            await rooms["high"].subscribe("arbitrage", min_profit=7)
            await rooms["book_b"].subscribe("arbitrage", sportsbook="B")
            await rooms["book_c"].subscribe("arbitrage", sportsbook="C")
            await rooms["mlb"].subscribe("mlb")
            await wait_until(lambda: workers_synced(redis_client, keys), message="worker index")
            ingester = Ingester(redis_client, keys)
            await ingester.publish(ml("A", 110, -120))
            cause = (await ingester.publish(ml("B", -120, 115))).decode()
            alert = await rooms["low"].next_of("arbitrage_alert")
            assert alert["data"]["status"] == "open"
            assert alert["data"]["profit_pct"] == pytest.approx(100 * 53 / 850)
            assert alert["data"]["triggered_by"] == cause
            assert [leg["stake_pct"] for leg in alert["data"]["legs"]] == [50.59, 49.41]
            await rooms["book_b"].next_of("arbitrage_alert")
            await rooms["mlb"].next_of("arbitrage_alert")

            await ingester.publish(ml("B", -120, -130))
            closed = await rooms["low"].next_of(
                "arbitrage_alert", after=rooms["low"].frames.index(alert) + 1
            )
            assert closed["data"]["status"] == "closed"
            await wait_until(lambda: len(rooms["book_b"].of("arbitrage_alert")) == 2)
            await wait_until(lambda: len(rooms["mlb"].of("arbitrage_alert")) == 2)
            await asyncio.sleep(0.3)  # anything for "high" or "book_c" would have come with these
            expected = [("open", "G1|moneyline"), ("closed", "G1|moneyline")]
            assert statuses(rooms["low"]) == statuses(rooms["book_b"]) == expected
            assert statuses(rooms["mlb"]) == expected
            assert statuses(rooms["high"]) == statuses(rooms["book_c"]) == []
            assert worker.stats.arbitrage == 2
            latest = await redis_client.hgetall(keys.latest("G1"))
            assert not [k for k in latest if k.startswith(RECORD_PREFIX)]  # closed: no record
        finally:
            for client in rooms.values():
                await client.close()


async def _open_under_a_first_worker(
    settings: Settings, redis_client: Redis, keys: Keys, client: Client
) -> dict[str, Any]:
    """Subscribe `client` to arbitrage and have a worker named "first" open one on G1
    (moneyline, books A and B), then stop that worker; returns the open alert."""
    await client.subscribe("arbitrage")
    async with running_worker(settings, "first"):
        await wait_until(lambda: workers_synced(redis_client, keys), message="index")
        await Ingester(redis_client, keys).publish_many([ml("A", 110, -120), ml("B", -120, 115)])
        return await client.next_of("arbitrage_alert")


async def test_a_new_owner_neither_reopens_nor_forgets_an_open_arbitrage(
    settings: Settings, redis_client: Redis, keys: Keys
) -> None:
    async with running_gateway(settings) as gw:
        client = await Client.connect(f"{gw.ws}/ws/v2/connect")
        try:
            ingester = Ingester(redis_client, keys)
            await _open_under_a_first_worker(settings, redis_client, keys, client)
            record = await redis_client.hget(keys.latest("G1"), RECORD_PREFIX + b"G1|moneyline")
            assert orjson.loads(record)["data"]["status"] == "open"
            async with running_worker(settings, "second") as second:
                await wait_until(lambda: workers_synced(redis_client, keys), message="index")
                await wait_until(lambda: len(second.leases.owned) == settings.partitions)
                await ingester.publish(ml("B", -120, -130))
                await wait_until(lambda: len(client.of("arbitrage_alert")) == 2)
                await asyncio.sleep(0.3)
                assert statuses(client) == [("open", "G1|moneyline"), ("closed", "G1|moneyline")]
                assert second.stats.arbitrage == 1  # the close; the takeover published nothing
        finally:
            await client.close()


async def test_a_transition_lost_between_commit_and_publish_is_published_by_the_next_owner(
    settings: Settings, redis_client: Redis, keys: Keys
) -> None:
    """A worker that dies after its commit landed and before its publish leaves the prices in
    the latest values and no record of the open (here: the record removed while no worker
    runs). The next owner publishes the open: at-least-once, the same id again."""
    async with running_gateway(settings) as gw:
        client = await Client.connect(f"{gw.ws}/ws/v2/connect")
        try:
            first = await _open_under_a_first_worker(settings, redis_client, keys, client)
            assert await redis_client.hdel(keys.latest("G1"), RECORD_PREFIX + b"G1|moneyline")
            async with running_worker(settings, "second") as second:
                again = await client.next_of(
                    "arbitrage_alert", after=client.frames.index(first) + 1
                )
                assert again["data"]["status"] == "open"
                assert again["data"]["arbitrage_id"] == first["data"]["arbitrage_id"]
                assert again["data"]["legs"] == first["data"]["legs"]
                assert again["data"]["triggered_by"] is None  # from the rebuild, not an event
                assert second.stats.arbitrage == 1
                assert await redis_client.hexists(
                    keys.latest("G1"), RECORD_PREFIX + b"G1|moneyline"
                )
        finally:
            await client.close()


async def acl_user(redis: Redis, *rules: str) -> None:
    """Change the rules of the Redis user `arb` (created by the first call)."""
    await redis.execute_command("ACL", "SETUSER", "arb", *rules)  # type: ignore[no-untyped-call]


async def test_a_publish_redis_refuses_is_made_once_redis_takes_it(
    settings: Settings, keys: Keys, private_redis: EmbeddedRedis
) -> None:
    """The commit of the closing odds lands, then Redis refuses the publish (the worker's
    Redis user may not HDEL, so the MULTI of the close aborts whole). The odds are delivered;
    the worker re-takes its partitions and rebuilds, still refused; once Redis accepts again
    the close is published, once."""
    system = settings.model_copy(update={"redis_url": private_redis.url})
    restricted = system.model_copy(
        update={"redis_url": private_redis.url.replace("redis://", "redis://arb:pw@")}
    )
    redis = create_redis(private_redis.url)
    await acl_user(redis, "on", ">pw", "~*", "&*", "+@all")
    try:
        async with running_gateway(system) as gw, running_worker(restricted) as worker:
            arbs = await Client.connect(f"{gw.ws}/ws/v2/connect")
            odds_room = await Client.connect(f"{gw.ws}/ws/v2/connect")
            try:
                await arbs.subscribe("arbitrage")
                await odds_room.subscribe("odds_updates")
                await wait_until(lambda: workers_synced(redis, keys), message="worker index")
                ingester = Ingester(redis, keys)
                await ingester.publish_many([ml("A", 110, -120), ml("B", -120, 115)])
                await arbs.next_of("arbitrage_alert")
                await acl_user(redis, "-hdel")
                closing = (await ingester.publish(ml("B", -120, -130))).decode()
                await wait_until(
                    lambda: closing in [f.get("event_id") for f in odds_room.of("odds_update")],
                    message="the closing odds delivered",
                )
                await wait_until(lambda: worker.stats.errors >= 2, message="publish refused")
                assert statuses(arbs) == [("open", "G1|moneyline")]
                assert await redis.hexists(keys.latest("G1"), RECORD_PREFIX + b"G1|moneyline")
                await acl_user(redis, "+hdel")
                await wait_until(lambda: len(arbs.of("arbitrage_alert")) == 2, timeout=10)
                await asyncio.sleep(0.5)
                assert statuses(arbs) == [("open", "G1|moneyline"), ("closed", "G1|moneyline")]
                assert arbs.of("arbitrage_alert")[1]["data"]["triggered_by"] is None  # rebuilt
                assert not await redis.hexists(keys.latest("G1"), RECORD_PREFIX + b"G1|moneyline")
            finally:
                await arbs.close()
                await odds_room.close()
    finally:
        await redis.aclose()
