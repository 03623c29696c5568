"""Odds formats and suspensions (issue #14, point 2).

Formats: `shared.odds` against known pairs, its rounding rules and invalid input; `OddsEvent`
converts once at ingest and a stored event re-validates unchanged. Suspensions: delivered to
every subscriber, never conflated away (a real stalled socket), kept as the market's latest
value (snapshots), and shown by the dashboard in a real Chromium.
"""

from __future__ import annotations

import subprocess
import sys
from fractions import Fraction
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from playwright.async_api import expect
from pydantic import ValidationError
from redis.asyncio import Redis

from oddstream.shared.events import (
    OddsEvent,
    Routing,
    conflation_key,
    is_conflatable,
    partition_of,
    routing_of,
    snapshot_key,
    stored_event,
)
from oddstream.shared.ingest import EventError, Ingester, encode_event, parse_event, parse_events
from oddstream.shared.keys import Keys
from oddstream.shared.odds import (
    OddsError,
    from_american,
    from_decimal,
    from_fractional,
    price_of,
)
from oddstream.shared.settings import Settings
from oddstream.shared.streams import EVENT_FIELD, entry_order
from oddstream.simulator import Simulator
from oddstream.workers.arbitrage import quote_of
from tests.browser import chromium, live_system, open_page
from tests.harness import (
    Client,
    StallableClient,
    process_env,
    running_gateway,
    running_worker,
    wait_until,
    workers_synced,
)

# --- formats ---------------------------------------------------------------------------------

#: (American, decimal, fractional): what books and odds tables print for the same price.
KNOWN = [
    (-110, 1.909, "10/11"),
    (150, 2.5, "3/2"),
    (-200, 1.5, "1/2"),
    (100, 2.0, "1/1"),
    (-120, 1.833, "5/6"),
    (-105, 1.952, "20/21"),
    (-115, 1.87, "20/23"),
    (250, 3.5, "5/2"),
    (-250, 1.4, "2/5"),
    (-10000, 1.01, "1/100"),
    (1000, 11.0, "10/1"),
    (100000, 1001.0, "1000/1"),
    (-100000, 1.001, "1/1000"),
]


@pytest.mark.parametrize(("american", "decimal", "fractional"), KNOWN)
def test_known_pairs_convert_every_way(american: int, decimal: float, fractional: str) -> None:
    for price in (from_american(american), from_decimal(decimal), from_fractional(fractional)):
        assert (price.american, price.decimal, price.fractional) == (american, decimal, fractional)


def test_even_money_is_plus_100_and_minus_100_means_the_same() -> None:
    assert from_american(-100) == from_american(100) == from_fractional("evens")
    assert from_american(-100).american == 100
    # A hair under evens rounds to 100 on the minus side: quoted +100, never -100.
    assert from_fractional("999/1000").american == 100


def test_american_rounds_half_away_from_zero() -> None:
    assert from_fractional("200/221").american == -111  # -110.5
    assert from_fractional("301/200").american == 151  # +150.5
    assert from_fractional("2000/2209").american == -110  # -110.45


def test_decimal_rounds_half_up_to_three_places() -> None:
    assert from_fractional("1819/2000").decimal == 1.91  # 1.9095
    assert from_fractional("18189/20000").decimal == 1.909  # 1.90945
    assert from_decimal(1.9091) == from_decimal(1.909)
    assert from_decimal("2.5") == from_decimal(2.5) == from_decimal(2.50001)


def test_fractional_is_exact_from_american_and_simplest_from_decimal() -> None:
    assert from_american(-111).fractional == "100/111"  # exact, not 9/10
    assert from_fractional("2/4").fractional == "1/2"  # reduced
    # From a decimal: the smallest denominator that writes as the same decimal and American.
    assert from_decimal(1.95).fractional == "19/20"
    assert from_decimal(1.95).american == -105
    assert from_decimal(3.333).fractional == "7/3"
    assert from_decimal(1.909).profit == Fraction(10, 11)


@pytest.mark.parametrize(
    ("convert", "value", "says"),
    [
        (from_american, 0, "is not a price"),
        (from_american, 50, "is not a price"),
        (from_american, -99, "is not a price"),
        (from_american, 99, "is not a price"),
        (from_american, -100001, "between 1/1000 and 1000"),
        (from_american, True, "whole number"),
        (from_american, 1.5, "whole number"),
        (from_american, "-110", "whole number"),
        (from_decimal, 1.0, "not above 1"),
        (from_decimal, 0.5, "not above 1"),
        (from_decimal, -2, "not above 1"),
        (from_decimal, 1.0004, "not above 1"),
        (from_decimal, 1002, "above 1001"),
        (from_decimal, float("nan"), "a number"),
        (from_decimal, float("inf"), "a number"),
        (from_decimal, "abc", "a number"),
        (from_decimal, [2.0], "a number"),
        (from_fractional, "1/0", "above 0"),
        (from_fractional, "0/5", "above 0"),
        (from_fractional, "10-11", "not like"),
        (from_fractional, "ten/eleven", "not like"),
        (from_fractional, "1.5/2", "not like"),
        (from_fractional, "1001/1", "between 1/1000 and 1000"),
        (from_fractional, 10, "a text"),
    ],
)
def test_invalid_prices_are_clear_errors(convert: Any, value: Any, says: str) -> None:
    with pytest.raises(OddsError, match=says):
        convert(value)


def test_several_formats_must_agree() -> None:
    stored = from_american(-110).as_dict()
    assert price_of(stored) == from_american(-110)
    assert price_of({"american": -110, "decimal": 1.909}) == from_american(-110)
    with pytest.raises(OddsError, match=r"american -110 is decimal 1\.909, not 2\.5"):
        price_of({"american": -110, "decimal": 2.5})
    with pytest.raises(OddsError, match="is american -110, not -111"):
        price_of({"fractional": "10/11", "american": -111})
    with pytest.raises(OddsError, match="unknown price format 'percent'"):
        price_of({"percent": 52.4})
    with pytest.raises(OddsError, match="needs one of"):
        price_of({})


@given(st.integers(100, 100000) | st.integers(-100000, -100))
def test_every_price_converts_back_to_itself(american: int) -> None:
    price = from_american(american)
    assert price_of(price.as_dict()) == price
    assert from_fractional(price.fractional) == price
    again = from_decimal(price.decimal)  # the decimal lost precision: its own price is stable
    assert again.decimal == price.decimal
    assert price_of(again.as_dict()) == again
    assert abs(again.profit - price.profit) < Fraction(1, 1000)  # both round to that decimal


# --- odds events -----------------------------------------------------------------------------

ODDS: dict[str, Any] = {
    "kind": "odds",
    "sport": "NBA",
    "game_id": "N1",
    "sportsbook": "FanDuel",
    "market": "moneyline",
}


def test_an_odds_event_carries_every_format_converted_once() -> None:
    event = parse_event({**ODDS, "home_price": -110, "away_price": 150})
    data = event.model_dump(mode="json")
    assert data["prices"] == {
        "home": {"american": -110, "decimal": 1.909, "fractional": "10/11"},
        "away": {"american": 150, "decimal": 2.5, "fractional": "3/2"},
    }
    assert (data["home_price"], data["away_price"]) == (-110, 150)  # today's fields stay
    assert "status" not in data  # a price update: no status
    assert parse_event(data) == event  # what a worker re-validates: unchanged


def test_events_of_the_same_american_prices_share_frozen_prices() -> None:
    """The conversion cache hands every event of the same market and American prices the
    same `SidePrice` models: they must be frozen, or one event could change another's."""
    parse_event({**ODDS, "home_price": -135, "away_price": 115})  # converts, caches
    first = parse_event({**ODDS, "home_price": -135, "away_price": 115})
    second = parse_event({**ODDS, "sportsbook": "FanDuel", "home_price": -135, "away_price": 115})
    assert first.prices is not None and second.prices is not None
    assert first.prices["home"] is second.prices["home"]
    with pytest.raises(ValidationError, match="frozen"):
        first.prices["home"].american = 100  # type: ignore[misc]
    assert second.model_dump(mode="json")["prices"]["home"] == {
        "american": -135, "decimal": 1.741, "fractional": "20/27"
    }  # fmt: skip


def test_a_tampered_stored_price_is_still_rejected() -> None:
    """Re-validating a stored event is a cache lookup; only forms that converted get in."""
    data = parse_event({**ODDS, "home_price": -110, "away_price": 150}).model_dump(mode="json")
    assert parse_event(data).model_dump(mode="json") == data  # the cached path
    for side, fmt, value in [
        ("home", "decimal", 1.95), ("home", "american", True), ("away", "fractional", "2/1"),
    ]:  # fmt: skip
        tampered = orjson.loads(orjson.dumps(data))
        tampered["prices"][side][fmt] = value
        with pytest.raises(EventError, match=f"prices.{side}"):
            parse_event(tampered)
    wrong_side = orjson.loads(orjson.dumps(data))
    wrong_side["market"] = "total"
    with pytest.raises(EventError, match="not a side of a total"):
        parse_event(wrong_side)


def test_any_one_format_fills_the_american_fields() -> None:
    event = parse_event(
        {**ODDS, "market": "total", "line": 221.5,
         "prices": {"over": {"decimal": 1.95}, "under": {"fractional": "10/11"}}}
    )  # fmt: skip
    data = event.model_dump(mode="json")
    assert (data["over_price"], data["under_price"]) == (-105, -110)
    assert data["prices"]["over"] == {"american": -105, "decimal": 1.95, "fractional": "19/20"}
    assert parse_event(data) == event


def test_legacy_minus_100_is_kept_as_given_and_means_evens() -> None:
    data = parse_event({**ODDS, "home_price": -100}).model_dump(mode="json")
    assert data["home_price"] == -100
    assert data["prices"]["home"]["american"] == 100
    assert parse_event(data).model_dump(mode="json") == data


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"home_price": 0}, "home_price: American price 0 is not a price"),
        ({"away_price": -50}, "away_price: American price -50"),
        ({"home_price": "abc"}, "home_price: an American price is a whole number"),
        ({"over_price": -110}, "over_price: not a side of a moneyline"),
        ({"prices": {"over": {"american": -110}}}, "'over' is not a side of a moneyline"),
        ({"prices": {"home": {"decimal": 1}}}, "prices.home: decimal price 1 is not above 1"),
        ({"prices": {"home": {"fractional": "3:2"}}}, "prices.home: fractional price '3:2'"),
        ({"prices": {"home": -110}}, "prices.home: an object like"),
        ({"prices": [-110]}, "prices: an object of sides"),
        ({"home_price": -110, "prices": {"home": {"american": -120}}}, "disagree"),
        ({"status": "closed"}, "status"),
    ],
)
def test_invalid_odds_are_rejected_with_the_field_named(fields: dict[str, Any], says: str) -> None:
    with pytest.raises(EventError, match=says):
        parse_event({**ODDS, **fields})


def test_status_changes_are_must_deliver_latest_values() -> None:
    update = parse_event({**ODDS, "home_price": -110})
    suspended = parse_event({**ODDS, "status": "Suspended"})
    resumed = parse_event({**ODDS, "status": "open", "home_price": -115})
    key = b"odds|N1|FanDuel|moneyline"
    assert isinstance(suspended, OddsEvent) and suspended.status == "suspended"
    for event in (update, suspended, resumed):
        assert snapshot_key(event) == key  # one latest value per market, whatever it is
    assert is_conflatable(update) and conflation_key(update) == key
    assert not is_conflatable(suspended) and conflation_key(suspended) == b""
    assert not is_conflatable(resumed) and conflation_key(resumed) == b""


def test_a_whole_book_status_is_one_event_per_market() -> None:
    events = parse_events({**ODDS, "market": "all", "status": "suspended", "reason": "review"})
    assert all(isinstance(e, OddsEvent) and e.status == "suspended" for e in events)
    markets = [e.market for e in events if isinstance(e, OddsEvent)]
    assert markets == ["moneyline", "spread", "total"]
    assert all((e.model_extra or {}).get("reason") == "review" for e in events)
    with pytest.raises(EventError, match="for a status change only"):
        parse_events({**ODDS, "market": "all"})
    with pytest.raises(EventError, match="carries no prices"):
        parse_events({**ODDS, "market": "all", "status": "open", "home_price": -110})
    with pytest.raises(EventError, match="use parse_events"):
        parse_event({**ODDS, "market": "all", "status": "suspended"})


def test_oddstream_ingest_rejects_bad_prices_and_expands_a_whole_book(
    settings: Settings, tmp_path: Path
) -> None:
    lines = [
        {**ODDS, "home_price": -110, "away_price": 100},
        {**ODDS, "home_price": 50},  # line 2: not a price
        {**ODDS, "market": "all", "status": "suspended"},  # three events
        {**ODDS, "prices": {"home": {"decimal": 0.9}}},  # line 4
    ]
    source = tmp_path / "odds.jsonl"
    source.write_bytes(b"\n".join(orjson.dumps(line) for line in lines) + b"\n")
    done = subprocess.run(
        [sys.executable, "-m", "oddstream.cli", "ingest", str(source)],
        env=process_env(settings),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    assert "line 2: skipped: odds: home_price: American price 50 is not a price" in done.stderr
    assert "line 4: skipped: odds: prices.home: decimal price 0.9 is not above 1" in done.stderr
    assert "ingested 4 events, skipped 2 lines" in done.stderr


async def test_a_worker_dead_letters_an_invalid_price_written_past_ingest(
    settings: Settings, redis_client: Redis, keys: Keys
) -> None:
    bad = orjson.dumps({**ODDS, "game_id": "BAD", "home_price": 42})
    await redis_client.xadd(keys.ingest(0), {EVENT_FIELD: bad})
    async with running_worker(settings):

        async def dead_lettered() -> bool:
            return bool(await redis_client.xlen(keys.deadletter(0)))

        await wait_until(dead_lettered, message="the dead letter")
    entries: Any = await redis_client.xrange(keys.deadletter(0))
    ((_, fields),) = entries
    assert b"home_price: American price 42 is not a price" in fields[b"reason"]


# --- suspensions, end to end -----------------------------------------------------------------


def _odds(game: str, **fields: Any) -> dict[str, Any]:
    return {**ODDS, "game_id": game, **fields}


async def test_suspension_and_resume_reach_subscribers_and_the_snapshot_shows_them(
    settings: Settings, redis_client: Redis, keys: Keys
) -> None:
    async with running_gateway(settings) as gw, running_worker(settings):
        client = await Client.connect(f"{gw.ws}/ws/v2/connect")
        try:
            await client.subscribe("odds_updates", sport="NBA")
            await wait_until(lambda: workers_synced(redis_client, keys), message="index")
            ingester = Ingester(redis_client, keys)
            sent = await ingester.publish_many(
                [
                    parse_event(_odds("S1", home_price=-110, away_price=100)),
                    parse_event(_odds("S1", status="suspended", reason="goal review")),
                ]
            )
            await wait_until(lambda: len(client.of("odds_update")) == 2, message="both")
            update, suspension = client.of("odds_update")
            assert [update["event_id"], suspension["event_id"]] == [s.decode() for s in sent]
            assert suspension["data"]["status"] == "suspended"
            assert suspension["data"]["reason"] == "goal review"

            # A newcomer's snapshot holds the market's latest value: suspended.
            late = await Client.connect(f"{gw.ws}/ws/v2/connect")
            try:
                await late.subscribe("odds_updates", game_id="S1")
                snapshot = await late.next_of("snapshot")
                (event,) = snapshot["data"]["events"]
                assert event["data"]["status"] == "suspended"
                assert event["event_id"] == suspension["event_id"]
            finally:
                await late.close()

            await ingester.publish(parse_event(_odds("S1", status="open", home_price=-125)))
            await wait_until(lambda: len(client.of("odds_update")) == 3, message="resume")
            resume = client.of("odds_update")[2]["data"]
            assert resume["status"] == "open"
            assert resume["prices"]["home"] == {
                "american": -125, "decimal": 1.8, "fractional": "4/5"
            }  # fmt: skip
            latest = await redis_client.hget(keys.latest("S1"), "odds|S1|FanDuel|moneyline")
            assert orjson.loads(latest)["data"]["status"] == "open"
        finally:
            await client.close()


async def test_a_stalled_client_gets_every_suspension_while_prices_are_conflated(
    settings: Settings, redis_client: Redis, keys: Keys
) -> None:
    """A slow client's odds are held one per market, the newest replacing older ones; a
    suspension and the resume after it travel as must-deliver frames beside them."""
    tight = settings.model_copy(
        update={"conflate_buffer_bytes": 16 * 1024, "send_buffer_bytes": 1024 * 1024,
                "worker_batch": 100}
    )  # fmt: skip
    pad = "x" * 1000
    async with running_gateway(tight) as gw, running_worker(tight):
        slow = await StallableClient.connect("127.0.0.1", gw.port)
        try:
            await slow.send({"type": "subscribe", "subscription_type": "odds_updates"})
            await slow.until("subscription_confirmed")
            await wait_until(lambda: workers_synced(redis_client, keys), message="index")
            # From here it reads nothing: ~8 MB of price updates on one market, with a
            # suspension and a resume in the middle of them.
            bodies = [_odds("SLOW", home_price=-101 - n % 400, seq=n, pad=pad) for n in range(8000)]
            bodies[4000] = _odds("SLOW", status="suspended", seq=4000)
            bodies[6000] = _odds("SLOW", status="open", home_price=-150, seq=6000)
            ingester = Ingester(redis_client, keys)
            sent: list[bytes] = []
            for start in range(0, len(bodies), 200):
                events = [parse_event(b) for b in bodies[start : start + 200]]
                sent += await ingester.publish_many(events)
            partition, last = sent[-1].split(b":")

            async def all_committed() -> bool:
                # At or past it: the gateway's canaries visit the partitions too.
                cursor = await redis_client.get(keys.cursor(int(partition)))
                return cursor is not None and entry_order(cursor) >= entry_order(last)

            await wait_until(all_committed, timeout=30, message="the flood committed")
            frames, code = await slow.read_all(quiet=1.5)
        finally:
            slow.close()
    assert code is None, "a slow odds client is conflated, not cut off"
    odds = [f["data"] for f in frames if f["type"] == "odds_update"]
    assert len(odds) < len(bodies), "nothing was conflated"
    statuses = [(d["seq"], d["status"]) for d in odds if "status" in d]
    assert statuses == [(4000, "suspended"), (6000, "open")]
    assert odds[-1]["seq"] == 7999  # and the held prices end on the newest


async def test_the_dashboard_shows_a_suspended_market_and_its_resumption(
    settings: Settings, redis_client: Redis, keys: Keys
) -> None:
    async with live_system(settings, rate=5) as system, chromium() as browser:
        page, log = await open_page(browser)
        await page.goto(f"{system.http}/#token={system.token('alice')}")
        await expect(page.locator("#status")).to_have_attribute("data-state", "connected")
        ingester = Ingester(redis_client, keys)
        book = {"sport": "NBA", "game_id": "SUSP-1", "sportsbook": "DraftKings"}
        await ingester.publish_many(
            [
                parse_event({**ODDS, **book, "market": m, "home_price": -110, "away_price": 100})
                for m in ("moneyline", "spread")
            ]
        )
        card = page.locator('.game[data-game="SUSP-1"]')
        cell = card.locator('td.cell[data-market="moneyline"][data-book="DraftKings"]')
        await expect(cell.locator(".value").first).to_have_text("-110", timeout=10_000)
        await expect(cell.locator(".value").first).to_have_attribute("title", "1.909 · 10/11")

        await ingester.publish(parse_event({**ODDS, **book, "status": "suspended"}))
        await expect(cell).to_have_attribute("data-status", "suspended", timeout=10_000)
        await expect(cell.locator(".susp-badge")).to_have_text("SUSP")
        await expect(cell.locator(".value").first).to_have_text("-110")  # the last price, greyed
        spread = card.locator('td.cell[data-market="spread"][data-book="DraftKings"]')
        await expect(spread).to_have_attribute("data-status", "open")

        await ingester.publish(parse_event({**ODDS, **book, "status": "open", "home_price": -130}))
        await expect(cell).to_have_attribute("data-status", "open", timeout=10_000)
        await expect(cell.locator(".susp-badge")).to_have_count(0)
        await expect(cell.locator(".value").first).to_have_text("-130")

        for event in parse_events({**ODDS, **book, "market": "all", "status": "suspended"}):
            await ingester.publish(event)
        await expect(card.locator('td.cell[data-book="DraftKings"].suspended')).to_have_count(3)
        assert log.errors == [], log.errors


def test_a_stamped_entry_is_trusted_as_stored_and_means_what_validating_it_means() -> None:
    """Workers build the events our Ingester stamped without validating them again
    (`stored_event`): for every kind the simulator makes, plus a suspension and a
    whole-book status line, the event they build routes, conflates, partitions and quotes
    exactly as the validated one, and its extra fields read the same."""
    events = Simulator(seed=3).generate(400)
    for line in (
        {"kind": "odds", "sport": "nba", "game_id": 12, "sportsbook": " FanDuel",
         "market": "spread", "line": -2.5, "prices": {"home": {"decimal": 1.91},
                                                       "away": {"fractional": "10/11"}}},
        {"kind": "odds", "sport": "NBA", "game_id": "12", "sportsbook": "BetMGM",
         "market": "all", "status": "Suspended"},
        {"kind": "broadcast", "subscription_type": "ODDS_UPDATES", "message": "hello"},
        {"kind": "canary", "gateway": "gw-1", "sent_at": 1.5},
        {"kind": "alerts", "message": "maintenance", "level": "warning"},
    ):  # fmt: skip
        events += parse_events(line)
    assert {type(e).__name__ for e in events} >= {
        "OddsEvent", "PredictionEvent", "AnalyticsEvent", "AlertEvent", "PortfolioEvent"
    }  # fmt: skip
    for validated in events:
        raw = encode_event(validated)
        assert orjson.loads(raw) == validated.model_dump(mode="json")  # its JSON form
        trusted = stored_event(raw)
        assert type(trusted) is type(validated)
        routing, expected = routing_of(trusted), routing_of(validated)
        assert routing == expected
        # Same types too: rooms compare a broadcast's subscription type by identity.
        assert [type(v) for v in vars_of(routing)] == [type(v) for v in vars_of(expected)]
        assert snapshot_key(trusted) == snapshot_key(validated)
        assert is_conflatable(trusted) == is_conflatable(validated)
        assert partition_of(trusted, 16) == partition_of(validated, 16)
        assert trusted.model_extra == validated.model_extra
        if isinstance(validated, OddsEvent):
            assert quote_of(trusted) == quote_of(validated)
    with pytest.raises((ValueError, KeyError, TypeError)):
        stored_event(b'{"kind":"nonsense"}')


def vars_of(routing: Routing) -> list[object]:
    return [getattr(routing, name) for name in Routing.__dataclass_fields__]
