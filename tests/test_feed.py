"""The Odds API feed adapter (issue #14, point 1), against a local stand-in for the provider.

The provider cannot be reached from here, so a local aiohttp server answers
`GET /v4/sports/{sport}/odds` with bodies of the documented shape (tests/data holds a
recorded-style answer), and with bad answers: 401, 429, 500, malformed JSON, an event missing
a field. What reaches the ingest streams is read back from Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from redis.asyncio import Redis

from oddstream.embedded import free_port
from oddstream.feeds.board import Board
from oddstream.feeds.recorded import RecordedFeed
from oddstream.feeds.the_odds_api import FeedOptions, parse_poll, run_feed
from oddstream.shared.ingest import Ingester
from oddstream.shared.keys import Keys
from oddstream.shared.settings import Settings
from oddstream.shared.streams import EVENT_FIELD
from tests.harness import Client, process_env, spawn_cli, wait_until

SAMPLE = Path(__file__).parent / "data" / "the_odds_api_nba.json"
KEY = "k3y-0f-the-test-7c1d9e2b44a0"  # what a real key looks like: never in a log line
CELTICS = "e912304de2b2ce35b473ce2ecd3d1502"
NUGGETS = "0a502b2a5c1a4c1b8c6a1f1ed1d9f0c3"
LAKERS = "5f8c0b1e7d9e4f6aa1b2c3d4e5f60718"
QUOTES = 3 * 4 * 3  # games x books x markets in the sample


def sample() -> list[dict[str, Any]]:
    body: list[dict[str, Any]] = orjson.loads(SAMPLE.read_bytes())
    return body


def book(body: list[dict[str, Any]], game: str, key: str) -> dict[str, Any]:
    (event,) = [e for e in body if e["id"] == game]
    (found,) = [b for b in event["bookmakers"] if b["key"] == key]
    result: dict[str, Any] = found
    return result


def market(body: list[dict[str, Any]], game: str, key: str, name: str) -> dict[str, Any]:
    (found,) = [m for m in book(body, game, key)["markets"] if m["key"] == name]
    result: dict[str, Any] = found
    return result


@dataclass
class Answer:
    status: int = 200
    body: bytes | list[Any] = b"[]"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Provider:
    """A stand-in for api.the-odds-api.com: answers in order (the last one repeats)."""

    answers: list[Answer]
    url: str = ""
    requests: list[dict[str, str]] = field(default_factory=list)
    times: list[float] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append({"path": request.path, **request.query})
        self.times.append(time.monotonic())
        answer = self.answers[min(len(self.requests), len(self.answers)) - 1]
        body = answer.body if isinstance(answer.body, bytes) else orjson.dumps(answer.body)
        headers = {"x-requests-used": str(len(self.requests)), **answer.headers}
        return web.Response(
            status=answer.status, body=body, headers=headers, content_type="application/json"
        )


@contextlib.asynccontextmanager
async def provider(*answers: Answer) -> AsyncIterator[Provider]:
    stand_in = Provider(list(answers))
    app = web.Application()
    app.router.add_get("/v4/sports/{sport}/odds", stand_in.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    stand_in.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield stand_in
    finally:
        await runner.cleanup()


async def ingested(redis: Redis, keys: Keys) -> list[dict[str, Any]]:
    """Every event in the ingest streams (no worker runs, so nothing is trimmed), in ingest
    order per partition."""
    events = []
    for partition in range(keys.partitions):
        for _, fields in await redis.xrange(keys.ingest(partition)):
            events.append(orjson.loads(fields[EVENT_FIELD]))
    return events


def of(events: list[dict[str, Any]], game: str, book: str, market: str) -> list[dict[str, Any]]:
    return [
        e for e in events
        if (e["game_id"], e["sportsbook"], e["market"]) == (game, book, market)
    ]  # fmt: skip


def logged(caplog: pytest.LogCaptureFixture, event: str) -> list[dict[str, Any]]:
    """The fields of each `event` logged in this process (before `configure_logging`,
    shared.logs hands an event to stdlib logging as a record whose message is the event name
    and whose attributes are its fields)."""
    return [vars(r) for r in caplog.records if r.msg == event]


def printed(stderr: str, event: str) -> list[dict[str, Any]]:
    """The fields of each `event` an `oddstream` process wrote (JSON lines on stderr)."""
    lines = [orjson.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    return [line for line in lines if line["event"] == event]


def options(stand_in: Provider, **overrides: Any) -> FeedOptions:
    values: dict[str, Any] = {
        "sport": "basketball_nba", "base_url": stand_in.url, "interval": 0.02, "polls": None,
    }  # fmt: skip
    return FeedOptions(**(values | overrides))


# --- mapping ---------------------------------------------------------------------------------


def test_the_answer_maps_to_our_sports_books_markets_and_sides() -> None:
    poll = parse_poll(sample())
    assert poll.complete and poll.listed == {CELTICS, NUGGETS, LAKERS}
    assert len(poll.quotes) == QUOTES
    assert {q.sport for q in poll.quotes} == {"NBA"}
    assert {q.sportsbook for q in poll.quotes} == {"DraftKings", "FanDuel", "BetMGM", "Caesars"}
    assert {q.market for q in poll.quotes} == {"moneyline", "spread", "total"}
    (spread,) = [q for q in poll.quotes if q.key == (CELTICS, "Caesars", "spread")]
    assert spread.prices == {"home": -106, "away": -114} and spread.line == -4.0
    (total,) = [q for q in poll.quotes if q.key == (CELTICS, "FanDuel", "total")]
    assert total.prices == {"over": -110, "under": -110} and total.line == 221.5
    assert spread.fields["book_key"] == "williamhill_us"
    assert spread.fields["home_team"] == "Boston Celtics"


def test_unknown_names_fall_back_and_unusable_markets_are_skipped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    body = sample()[:1]
    body[0] = {**body[0], "sport_key": "basketball_euroleague", "sport_title": "Euroleague"}
    first = body[0]["bookmakers"][0]
    first["key"], first["title"] = "newbook", "New Book"
    markets = first["markets"]
    markets[0]["outcomes"].append({"name": "Draw", "price": 1800})  # three-way: skipped
    markets[1]["outcomes"][0].pop("point")  # a spread without its point: skipped
    markets.append({"key": "h2h_lay", "outcomes": [{"name": "X", "price": 101}]})  # not ours
    with caplog.at_level(logging.WARNING):
        poll = parse_poll(body)
    assert {q.sport for q in poll.quotes} == {"EUROLEAGUE"}
    assert [q.market for q in poll.quotes if q.sportsbook == "New Book"] == ["total"]
    skipped = logged(caplog, "feed.market.skipped")
    assert [(s["book"], s["reason"]) for s in skipped] == [
        ("newbook", "outcomes are not the two sides of the market"),
        ("newbook", "no point"),
    ]


# --- polling: only changes -------------------------------------------------------------------


async def test_polls_ingest_only_what_changed(
    settings: Settings, redis_client: Redis, keys: Keys
) -> None:
    first = sample()
    moved = copy.deepcopy(first)
    market(moved, CELTICS, "draftkings", "h2h")["outcomes"][0]["price"] = -190  # moved
    market(moved, NUGGETS, "fanduel", "totals")["outcomes"][0]["point"] = 230.5  # point moved
    pulled = book(moved, LAKERS, "betmgm")
    pulled["markets"] = [m for m in pulled["markets"] if m["key"] != "spreads"]  # pulled
    back = copy.deepcopy(moved)
    book(back, LAKERS, "betmgm")["markets"].append(
        {"key": "spreads", "outcomes": [
            {"name": "Los Angeles Lakers", "price": -120, "point": -2.5},
            {"name": "Golden State Warriors", "price": 100, "point": 2.5},
        ]}
    )  # fmt: skip
    answers = [Answer(body=b) for b in (first, moved, moved, back)]
    async with provider(*answers) as stand_in:
        status = await run_feed(
            options(stand_in, polls=4), Ingester(redis_client, keys), asyncio.Event(), key=KEY
        )
    assert status == 0
    assert [r["apiKey"] for r in stand_in.requests] == [KEY] * 4
    request = stand_in.requests[0]
    assert request["path"] == "/v4/sports/basketball_nba/odds"
    assert (request["regions"], request["markets"]) == ("us", "h2h,spreads,totals")
    assert (request["oddsFormat"], request["dateFormat"]) == ("american", "iso")

    events = await ingested(redis_client, keys)
    assert len(events) == QUOTES + 3 + 1  # the board, 3 changes, nothing again, 1 resume
    assert all(e["source"] == "the-odds-api" and e["sport"] == "NBA" for e in events)
    ml = of(events, CELTICS, "DraftKings", "moneyline")
    assert [e["home_price"] for e in ml] == [-180, -190]
    assert ml[1]["prices"]["home"] == {"american": -190, "decimal": 1.526, "fractional": "10/19"}
    assert ml[1]["previous"]["home_price"] == -180
    assert ml[1]["movement"] == {"home_price": "down", "away_price": "flat"}
    assert [e["line"] for e in of(events, NUGGETS, "FanDuel", "total")] == [229.5, 230.5]
    spread = of(events, LAKERS, "BetMGM", "spread")
    assert [e.get("status") for e in spread] == [None, "suspended", "open"]
    assert spread[1]["reason"] == "pulled" and spread[1]["home_price"] == spread[0]["home_price"]
    assert (spread[2]["home_price"], spread[2]["away_price"], spread[2]["line"]) == (
        -120,
        100,
        -2.5,
    )


async def test_a_game_gone_from_a_whole_answer_is_suspended_but_not_from_a_partial_one(
    redis_client: Redis, keys: Keys
) -> None:
    board, ingester = Board(), Ingester(redis_client, keys)
    poll = parse_poll(sample())
    await board.ingest(poll.quotes, poll.listed, ingester, complete=True)
    partial = parse_poll([*sample()[1:], {"id": "broken"}])  # the Celtics game is not listed
    assert not partial.complete
    result = await board.ingest(partial.quotes, partial.listed, ingester, complete=False)
    assert result.ingested == 0  # an incomplete answer says nothing about absent games
    whole = parse_poll(sample()[1:])
    result = await board.ingest(whole.quotes, whole.listed, ingester, complete=True)
    assert result.suspensions == 4 * 3
    gone = [e for e in await ingested(redis_client, keys) if e.get("status") == "suspended"]
    assert {e["game_id"] for e in gone} == {CELTICS}
    assert {e["reason"] for e in gone} == {"game_removed"}


async def test_an_invalid_price_is_logged_and_left_for_a_later_poll(
    redis_client: Redis, keys: Keys, caplog: pytest.LogCaptureFixture
) -> None:
    bad = sample()
    market(bad, CELTICS, "draftkings", "h2h")["outcomes"][0]["price"] = 50  # not a price
    board, ingester = Board(), Ingester(redis_client, keys)
    poll = parse_poll(bad)
    with caplog.at_level(logging.WARNING):
        result = await board.ingest(poll.quotes, poll.listed, ingester, complete=True)
    assert (result.ingested, result.invalid) == (QUOTES - 1, 1)
    (line,) = logged(caplog, "feed.event.invalid")
    assert (line["game"], line["book"], line["market"]) == (CELTICS, "DraftKings", "moneyline")
    assert "American price 50 is not a price" in line["error"]
    good = parse_poll(sample())
    result = await board.ingest(good.quotes, good.listed, ingester, complete=True)
    assert (result.ingested, result.updates) == (1, 1)  # the one left out, now valid
    assert len(await ingested(redis_client, keys)) == QUOTES


# --- polling: bad answers --------------------------------------------------------------------


async def test_bad_answers_are_logged_and_lose_or_repeat_nothing(
    settings: Settings, redis_client: Redis, keys: Keys, caplog: pytest.LogCaptureFixture
) -> None:
    first = sample()
    later = copy.deepcopy(first)
    market(later, CELTICS, "fanduel", "h2h")["outcomes"][1]["price"] = 170
    market(later, LAKERS, "draftkings", "totals")["outcomes"][1]["price"] = -125
    missing = copy.deepcopy(later)
    del missing[1]["home_team"]  # the Nuggets game lacks a field
    market(missing, NUGGETS, "betmgm", "h2h")["outcomes"][0]["price"] = 135  # unseen yet
    answers = [
        Answer(body=first),
        Answer(500, b'{"message": "Internal error"}'),
        Answer(429, b'{"message": "Too many requests"}', {"Retry-After": "0"}),
        Answer(200, b'[{"id": "abc", "bookmakers": ['),  # cut off: malformed JSON
        Answer(body=missing),
        Answer(body=later),
        Answer(body=later),
    ]
    async with provider(*answers) as stand_in:
        with caplog.at_level(logging.INFO, logger="oddstream"):
            status = await run_feed(
                options(stand_in, polls=len(answers)), Ingester(redis_client, keys),
                asyncio.Event(), key=KEY,
            )  # fmt: skip
    assert status == 0 and len(stand_in.requests) == len(answers)
    failed = logged(caplog, "feed.poll.failed")
    assert failed[0]["reason"] == "provider error (HTTP 500: Internal error)"
    assert failed[1]["reason"] == "rate limited (HTTP 429: Too many requests)"
    assert failed[1]["retry_in"] == 0.0
    assert failed[2]["reason"].startswith("malformed JSON in the answer")
    (malformed,) = logged(caplog, "feed.event.malformed")
    assert (malformed["index"], malformed["game"]) == (1, NUGGETS)
    assert malformed["error"].startswith("home_team: Field required")
    assert not any(KEY in str(vars(r)) for r in caplog.records)

    events = await ingested(redis_client, keys)
    # Once each: the board, then the two changes (in the answer that lacked a field, whose
    # other games counted), and nothing of the Nuggets game until its answer parsed.
    assert len(events) == QUOTES + 2
    assert [e["away_price"] for e in of(events, CELTICS, "FanDuel", "moneyline")] == [147, 170]
    assert [e["under_price"] for e in of(events, LAKERS, "DraftKings", "total")] == [-112, -125]
    nuggets = of(events, NUGGETS, "BetMGM", "moneyline")
    assert [e["home_price"] for e in nuggets] == [115]  # its 135 came in the malformed event
    assert not [e for e in events if e.get("status")]  # no false suspension of the Nuggets


async def test_the_quota_header_slows_the_feed_then_stops_it(
    settings: Settings, redis_client: Redis, keys: Keys, caplog: pytest.LogCaptureFixture
) -> None:
    answers = [
        Answer(body=sample(), headers={"x-requests-remaining": "70"}),  # under 4 x 20: slower
        Answer(body=sample(), headers={"x-requests-remaining": "19"}),  # under the reserve
        Answer(body=sample(), headers={"x-requests-remaining": "18"}),
    ]
    async with provider(*answers) as stand_in:
        with caplog.at_level(logging.INFO, logger="oddstream"):
            status = await run_feed(
                options(stand_in, interval=0.2, quota_reserve=20), Ingester(redis_client, keys),
                asyncio.Event(), key=KEY,
            )  # fmt: skip
    assert status == 3 and len(stand_in.requests) == 2  # stopped, not polled again
    gap = stand_in.times[1] - stand_in.times[0]
    assert gap >= 0.75, f"polled again after {gap:.2f}s, not 4 x 0.2s"
    assert [(e["remaining"], e["next_in"]) for e in logged(caplog, "feed.quota.low")] == [
        (70.0, 0.8)
    ]
    (stopped,) = logged(caplog, "feed.stopped")
    assert stopped["reason"].startswith("quota")
    assert (stopped["remaining"], stopped["reserve"]) == (19.0, 20)


async def test_a_refused_key_stops_the_feed_and_the_key_is_never_logged(
    settings: Settings, redis_client: Redis, keys: Keys
) -> None:
    answers = [
        Answer(body=sample()),
        Answer(500, orjson.dumps({"message": f"upstream failed for {KEY}"})),
        Answer(401, orjson.dumps({"message": f"API key {KEY} is not valid"})),
    ]
    async with provider(*answers) as stand_in:
        env = process_env(
            settings, ODDS_API_KEY=KEY, ODDSTREAM_LOG_LEVEL="DEBUG", ODDSTREAM_LOG_FORMAT="json"
        )
        args = ["feed", "the-odds-api", "--sport", "basketball_nba", "--interval", "0.05",
                "--base-url", stand_in.url]  # fmt: skip
        done = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "oddstream.cli", *args], env=env,
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
    assert done.returncode == 3, done.stderr
    (stopped,) = printed(done.stderr, "feed.stopped")
    assert stopped["reason"].startswith(
        "the provider refused the API key (HTTP 401: API key *** is not valid); check ODDS_API_KEY"
    )
    (failed,) = printed(done.stderr, "feed.poll.failed")
    assert failed["reason"] == "provider error (HTTP 500: upstream failed for ***)"
    assert KEY not in done.stderr + done.stdout
    assert len(await ingested(redis_client, keys)) == QUOTES  # the first poll, kept, once


def test_the_key_is_never_a_flag_and_its_absence_is_a_clear_error(settings: Settings) -> None:
    def feed(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "oddstream.cli", "feed", "the-odds-api", *args],
            env=process_env(settings, **env), capture_output=True, text=True, timeout=30,
            check=False,
        )  # fmt: skip

    flag = feed("--sport", "basketball_nba", "--api-key", KEY)
    assert flag.returncode == 2 and "unrecognized arguments: --api-key" in flag.stderr
    env = process_env(settings)
    env.pop("ODDS_API_KEY", None)
    missing = subprocess.run(
        [sys.executable, "-m", "oddstream.cli", "feed", "the-odds-api", "--sport", "x"],
        env=env, capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert missing.returncode == 2
    assert "set ODDS_API_KEY to your The Odds API key" in missing.stderr
    markets = feed("--sport", "basketball_nba", "--markets", "h2h,player_points", ODDS_API_KEY=KEY)
    assert markets.returncode == 2 and "'player_points' is not ingested" in markets.stderr


# --- from a file ----------------------------------------------------------------------------


async def test_from_file_reads_a_saved_answer(
    settings: Settings, redis_client: Redis, keys: Keys, tmp_path: Path
) -> None:
    saved = tmp_path / "answer.json"
    saved.write_bytes(SAMPLE.read_bytes())
    env = process_env(settings, ODDSTREAM_LOG_FORMAT="json")
    env.pop("ODDS_API_KEY", None)  # a file needs no key
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "oddstream.cli", "feed", "the-odds-api", "--from-file", str(saved)],
        env=env, capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert len(await ingested(redis_client, keys)) == QUOTES

    # The same board over two reads of the file: the second ingests its one change.
    board, ingester = Board(), Ingester(redis_client, keys)
    once = FeedOptions(sport="", from_file=saved, interval=None, odds_format="auto")
    assert await run_feed(once, ingester, asyncio.Event(), board=board) == 0
    edited = sample()
    market(edited, NUGGETS, "draftkings", "totals")["outcomes"][0]["price"] = -118
    saved.write_bytes(orjson.dumps(edited))
    assert await run_feed(once, ingester, asyncio.Event(), board=board) == 0
    events = await ingested(redis_client, keys)
    assert len(events) == 2 * QUOTES + 1
    assert of(events, NUGGETS, "DraftKings", "total")[-1]["over_price"] == -118

    saved.write_bytes(b"[{")
    broken = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "oddstream.cli", "feed", "the-odds-api", "--from-file", str(saved)],
        env=env, capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert broken.returncode == 1
    (failed,) = printed(broken.stderr, "feed.poll.failed")
    assert failed["reason"].startswith(f"malformed JSON in {saved}")


def test_a_recorded_answer_moves_and_suspends_like_a_live_one() -> None:
    feed = RecordedFeed(SAMPLE, seed=7)
    assert (feed.games, feed.odds_format) == (3, "american")
    before = parse_poll(sample())
    for _ in range(300):
        feed.move()
    after = parse_poll(feed.answer)
    assert after.complete
    moved = {q.key for q in after.quotes} & {q.key for q in before.quotes}
    changed = [
        key for key in moved
        if next(q for q in after.quotes if q.key == key).prices
        != next(q for q in before.quotes if q.key == key).prices
    ]  # fmt: skip
    assert changed, "no price moved"
    assert len(after.quotes) <= len(before.quotes)
    for quote in after.quotes:  # every moved price is still a valid American price
        assert all(isinstance(p, int) and abs(p) >= 100 for p in quote.prices.values())
    with pytest.raises(ValueError, match="is not JSON"):
        RecordedFeed(Path(__file__))


# --- oddstream dev --feed-file ---------------------------------------------------------------


async def test_dev_feed_file_shows_the_recorded_answer_to_a_subscriber(
    settings: Settings, processes: list[subprocess.Popen[bytes]]
) -> None:
    port = free_port()
    env = process_env(settings)
    spawn_cli(processes, env, "dev", "--port", str(port), "--feed-file", str(SAMPLE),
              "--feed-moves", "10")  # fmt: skip
    client: Client | None = None

    async def connected() -> bool:
        nonlocal client
        with contextlib.suppress(OSError, aiohttp.ClientError, AssertionError, TimeoutError):
            client = await Client.connect(f"ws://127.0.0.1:{port}/ws/v2/connect")
        return client is not None

    await wait_until(connected, timeout=30, message="oddstream dev to serve")
    assert client is not None
    live = client
    try:
        await live.subscribe("odds_updates", sport="NBA")
        snapshot = await live.next_of("snapshot", timeout=10)
        events = [e["data"] for e in snapshot["data"]["events"]]
        if not events:  # subscribed before the feed's first poll landed: live frames follow
            await live.next_of("odds_update", timeout=10)
            events = [f["data"] for f in live.of("odds_update")]
        assert {e["game_id"] for e in events} <= {CELTICS, NUGGETS, LAKERS}
        assert all(e["source"] == "the-odds-api" for e in events)
        assert all(set(p) == {"american", "decimal", "fractional"}
                   for e in events for p in e.get("prices", {}).values())  # fmt: skip
        await wait_until(
            lambda: any(f["data"]["game_id"] in {CELTICS, NUGGETS, LAKERS}
                        for f in live.of("odds_update")),
            timeout=10, message="a live move of the recorded answer",
        )  # fmt: skip
    finally:
        await live.close()
