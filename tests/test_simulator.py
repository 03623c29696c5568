"""The simulator: a believable, deterministic feed that lands in the real ingest streams."""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import time
from collections import Counter
from datetime import datetime
from typing import Any

import pytest
from redis.asyncio import Redis

from oddstream.shared.events import EventKind, IngestEvent, OddsEvent
from oddstream.shared.ingest import Ingester, parse_event
from oddstream.shared.keys import Keys
from oddstream.shared.redis import create_redis
from oddstream.shared.streams import EVENT_FIELD
from oddstream.simulator import BOOKS, MARKETS, SPORTS, Simulator, implied_probability

WALL_CLOCK = {"timestamp", "sent_at"}


def dumps(events: list[IngestEvent]) -> list[dict[str, Any]]:
    return [event.model_dump(mode="json") for event in events]


def content(events: list[IngestEvent]) -> list[dict[str, Any]]:
    """Everything but the wall-clock stamps, which are meant to differ between runs."""
    return [{k: v for k, v in body.items() if k not in WALL_CLOCK} for body in dumps(events)]


@pytest.fixture(scope="module")
def feed() -> list[dict[str, Any]]:
    return dumps(Simulator(seed=2026, portfolio_users=("alice", "bob")).generate(6000))


def of_kind(feed: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [body for body in feed if body["kind"] == kind]


def test_same_seed_same_feed_different_seed_different_feed() -> None:
    first, second = Simulator(seed=7), Simulator(seed=7)
    assert content(first.generate(400)) == content(second.generate(400))
    assert content(first.generate(50)) == content(second.generate(50))  # state advances alike
    assert content(Simulator(seed=8).generate(400)) != content(Simulator(seed=7).generate(400))


def test_feed_covers_every_sport_book_market_and_kind(feed: list[dict[str, Any]]) -> None:
    odds = of_kind(feed, "odds")
    assert {body["sport"] for body in feed if "sport" in body} == set(SPORTS)
    assert {body["sportsbook"] for body in odds} == set(BOOKS)
    assert {body["market"] for body in odds} == set(MARKETS)
    # Every kind but arbitrage, which the workers detect in the odds (tests/test_arbitrage.py).
    assert {body["kind"] for body in feed} == {kind.value for kind in EventKind} - {"arbitrage"}
    game_ids = {body["game_id"] for body in odds}
    assert all(re.fullmatch(r"(MLB|NBA|NFL|NHL)-2026-\d{3}", game_id) for game_id in game_ids)
    for sport in SPORTS:
        assert len({g for g in game_ids if g.startswith(sport)}) >= 3
    teams = {body["home_team"] for body in odds} | {body["away_team"] for body in odds}
    assert {"New York Yankees", "Boston Red Sox", "Los Angeles Lakers"} <= teams
    assert "Aaron Judge" in {body["player"] for body in of_kind(feed, "predictions")}


def test_mix_matches_the_advertised_shares(feed: list[dict[str, Any]]) -> None:
    share = {kind: n / len(feed) for kind, n in Counter(b["kind"] for b in feed).items()}
    assert 0.66 < share["odds"] < 0.74
    assert 0.12 < share["predictions"] < 0.18
    assert 0.08 < share["analytics"] < 0.12
    assert "arbitrage" not in share
    assert 0.03 < share["alerts"] + share["portfolio"] < 0.07


def test_every_event_validates_and_carries_timestamps() -> None:
    before = time.time()
    events = Simulator(seed=3).generate(500)
    after = time.time()
    for event in events:
        body = event.model_dump(mode="json")
        assert parse_event(body) == event
        assert before <= body["sent_at"] <= after
        assert abs(datetime.fromisoformat(body["timestamp"]).timestamp() - body["sent_at"]) < 0.01


def test_odds_prices_walk_in_small_steps(feed: list[dict[str, Any]]) -> None:
    last: dict[tuple[str, str, str], dict[str, Any]] = {}
    moved = 0
    for body in of_kind(feed, "odds"):
        market = body["market"]
        sides = ("over_price", "under_price") if market == "total" else ("home_price", "away_price")
        prices = [body[side] for side in sides]
        assert all(price <= -100 or price >= 100 for price in prices)
        assert all(-1000 < price < 1000 for price in prices)
        # Both sides carry the book's vig: together they imply a little over 100%.
        assert 1.0 < sum(implied_probability(p) for p in prices) < 1.07
        assert ("line" in body) == (market != "moneyline")
        key = (body["game_id"], body["sportsbook"], market)
        if key in last:
            prev = last[key]
            assert body["previous"] == {k: prev[k] for k in body["previous"]}
            step = abs(implied_probability(prices[0]) - implied_probability(prev[sides[0]]))
            if body.get("line") == prev.get("line"):
                assert step <= 0.02, (prev, body)
            else:
                assert abs(body["line"] - prev["line"]) == 0.5
            moved += prices[0] != prev[sides[0]]
            for side in sides:  # "up": a better payout, i.e. a lower implied probability
                new, old = implied_probability(body[side]), implied_probability(prev[side])
                expected = "flat" if new == old else "up" if new < old else "down"
                assert body["movement"][side] == expected
        last[key] = body
    assert moved > 1000  # the prices do move, they do not sit still


def test_the_simulator_invents_no_arbitrage(feed: list[dict[str, Any]]) -> None:
    """Arbitrage comes from the workers' detector finding it in these prices (which
    tests/test_arbitrage.py checks on this same seed); the feed itself carries none."""
    assert of_kind(feed, "arbitrage") == []
    assert not any("profit_pct" in body or "legs" in body for body in feed)


def test_predictions_analytics_alerts_and_portfolio_look_sane(feed: list[dict[str, Any]]) -> None:
    for prediction in of_kind(feed, "predictions"):
        assert 0 < prediction["confidence"] <= 1
        assert prediction["projection"] > 0
        assert prediction["model"]
    for analytics in of_kind(feed, "analytics"):
        assert analytics["home_win_prob"] + analytics["away_win_prob"] == pytest.approx(1)
        assert analytics["pace"] > 0
        assert set(analytics["line_movement"]) == set(MARKETS)
    assert {alert["level"] for alert in of_kind(feed, "alerts")} <= {"info", "warning", "critical"}
    placed: set[str] = set()
    for event in of_kind(feed, "portfolio"):
        assert event["user"] in {"alice", "bob"}
        if event["action"] == "bet_placed":
            placed.add(event["bet_id"])
        elif event["action"] == "bet_settled":
            assert event["bet_id"] in placed  # only bets that were placed get settled
            placed.remove(event["bet_id"])


async def ingested(redis: Redis, keys: Keys) -> list[Any]:
    """Every event in the ingest partitions, parsed."""
    return [
        parse_event(fields[EVENT_FIELD])
        for stream in keys.ingest_streams
        for _entry_id, fields in await redis.xrange(stream)
    ]


async def stream_lengths(redis: Redis, keys: Keys) -> dict[EventKind, int]:
    counts = dict.fromkeys(EventKind, 0)
    for event in await ingested(redis, keys):
        counts[EventKind(event.kind)] += 1
    return counts


async def test_run_publishes_into_the_ingest_streams(redis_client: Redis, keys: Keys) -> None:
    started = time.monotonic()
    published = await Simulator(rate=200, seed=1).run(
        Ingester(redis_client, keys), duration=1.0, tick=0.1
    )
    assert time.monotonic() - started < 2.0
    assert 150 <= published <= 250
    lengths = await stream_lengths(redis_client, keys)
    assert sum(lengths.values()) == published
    assert lengths[EventKind.ODDS] > lengths[EventKind.PREDICTIONS] > 0
    odds = [e for e in await ingested(redis_client, keys) if e.kind == "odds"]
    assert odds and all(isinstance(e, OddsEvent) for e in odds)


async def test_run_stops_when_asked(redis_client: Redis, keys: Keys) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(Simulator(rate=100).run(Ingester(redis_client, keys), stop=stop))
    await asyncio.sleep(0.3)
    stop.set()
    published = await asyncio.wait_for(task, 1.0)
    assert published > 0
    assert sum((await stream_lengths(redis_client, keys)).values()) == published


async def test_run_survives_redis_errors_and_resumes(
    redis_client: Redis, keys: Keys, caplog: pytest.LogCaptureFixture
) -> None:
    # A string where a partition stream should be makes every XADD to it fail (WRONGTYPE).
    await redis_client.set(keys.ingest(0), b"not a stream")
    task = asyncio.create_task(
        Simulator(rate=200, seed=5).run(Ingester(redis_client, keys), duration=1.5, tick=0.1)
    )
    with caplog.at_level(logging.WARNING, logger="oddstream.simulator"):
        await asyncio.sleep(0.3)
        assert not task.done()
        await redis_client.delete(keys.ingest(0))
        published = await asyncio.wait_for(task, 3.0)
    assert any("simulator.publish.failed" in r.getMessage() for r in caplog.records)
    assert published > 0
    assert await redis_client.xlen(keys.ingest(0)) > 0


async def test_run_survives_an_unreachable_redis(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # free now, and nothing listens on it once closed
    redis = create_redis(f"redis://127.0.0.1:{port}")
    try:
        with caplog.at_level(logging.WARNING, logger="oddstream.simulator"):
            published = await Simulator(rate=100).run(
                Ingester(redis, Keys("unreachable")), duration=0.5
            )
    finally:
        await redis.aclose()
    assert published == 0
    assert any("simulator.publish.failed" in r.getMessage() for r in caplog.records)


async def test_run_propagates_cancellation(redis_client: Redis, keys: Keys) -> None:
    task = asyncio.create_task(Simulator(rate=100).run(Ingester(redis_client, keys)))
    await asyncio.sleep(0.2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
