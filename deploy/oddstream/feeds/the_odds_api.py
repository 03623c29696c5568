"""The Odds API (v4) as an odds feed: poll `GET /v4/sports/{sport}/odds`, ingest what changed.

- **Response** (`ApiEvent`): a list of events (`id`, `sport_key`, `commence_time`,
  `home_team`, `away_team`, `bookmakers[].key/title/last_update/markets[].key/outcomes[]
  .name/price/point`), validated event by event: one malformed event is logged and skipped,
  the rest of the poll counts.
- **Mapping** to our names: sport keys (`basketball_nba` -> NBA, ...), markets (`h2h` ->
  moneyline, `spreads` -> spread, `totals` -> total; others are not ingested), bookmaker keys
  (`williamhill_us` -> Caesars, ...; an unknown one by its `title`), outcomes to sides (the
  home and away team by name, Over and Under); the provider's event id is our `game_id`.
- **Changes only**: `feeds.board.Board` compares each poll with what was ingested last.
- **Errors**: 401/403 (a refused key, or the quota used up) and other 4xx stop the feed with
  the provider's message; 429 and 5xx, network errors and malformed JSON back off with jitter
  (`Retry-After` honoured) and poll again. Nothing is ingested from a failed poll.
- **Quota**: `x-requests-remaining` is read on every answer; below 4x the reserve the feed
  polls at a quarter of the rate, below the reserve it stops, saying so.
- **The key** comes from the environment (`ODDS_API_KEY`) and is sent as the `apiKey` query
  parameter only: it is never a flag, and no log line carries it (nor the URL that holds it).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

import aiohttp
import orjson
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError
from redis.exceptions import RedisError

from oddstream.feeds.board import Board, IngestResult, Quote
from oddstream.shared.ingest import Ingester
from oddstream.shared.logs import get_logger
from oddstream.shared.protocol import describe_validation_error

__all__ = [
    "BOOKS",
    "DEFAULT_BASE_URL",
    "KEY_VARIABLE",
    "MARKETS",
    "SPORTS",
    "ApiEvent",
    "FeedOptions",
    "FeedStopped",
    "Poll",
    "guess_odds_format",
    "parse_poll",
    "run_feed",
]

log = get_logger(__name__)

DEFAULT_BASE_URL: Final = "https://api.the-odds-api.com"
KEY_VARIABLE: Final = "ODDS_API_KEY"
SOURCE: Final = "the-odds-api"

SPORTS: Final = MappingProxyType(
    {
        "baseball_mlb": "MLB",
        "basketball_nba": "NBA",
        "americanfootball_nfl": "NFL",
        "icehockey_nhl": "NHL",
        "basketball_wnba": "WNBA",
        "basketball_ncaab": "NCAAB",
        "americanfootball_ncaaf": "NCAAF",
    }
)
MARKETS: Final = MappingProxyType({"h2h": "moneyline", "spreads": "spread", "totals": "total"})
#: Bookmaker key -> our sportsbook name (the simulator's names where they are the same book).
BOOKS: Final = MappingProxyType(
    {
        "draftkings": "DraftKings",
        "fanduel": "FanDuel",
        "betmgm": "BetMGM",
        "williamhill_us": "Caesars",
        "pointsbetus": "PointsBet",
        "betrivers": "BetRivers",
        "espnbet": "ESPN BET",
        "fanatics": "Fanatics",
        "hardrockbet": "Hard Rock Bet",
        "ballybet": "Bally Bet",
        "betonlineag": "BetOnline.ag",
        "bovada": "Bovada",
        "mybookieag": "MyBookie.ag",
        "lowvig": "LowVig.ag",
        "betus": "BetUS",
        "unibet_us": "Unibet",
        "wynnbet": "WynnBET",
        "superbook": "SuperBook",
    }
)


# --- the response ----------------------------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class ApiOutcome(_Model):
    name: str
    price: int | float
    point: float | None = None


class ApiMarket(_Model):
    key: str
    last_update: str | None = None
    outcomes: list[ApiOutcome]


class ApiBookmaker(_Model):
    key: str
    title: str
    last_update: str | None = None
    markets: list[ApiMarket]


class ApiEvent(_Model):
    """One event of a `/v4/sports/{sport}/odds` answer, as documented."""

    id: str
    sport_key: str
    sport_title: str | None = None
    commence_time: str
    home_team: str
    away_team: str
    bookmakers: list[ApiBookmaker] = []


_event_adapter: TypeAdapter[ApiEvent] = TypeAdapter(ApiEvent)


@dataclass
class Poll:
    """One answer, mapped: the quotes of the events that parsed, the games they are (a
    market missing from one of them was pulled), and how many events were skipped as
    malformed (then the answer is incomplete: it says nothing of the games it lacks)."""

    quotes: list[Quote] = field(default_factory=list)
    listed: set[str] = field(default_factory=set)
    invalid: int = 0

    @property
    def complete(self) -> bool:
        return self.invalid == 0


def _sport(event: ApiEvent) -> str:
    known = SPORTS.get(event.sport_key)
    if known:
        return known
    title = (event.sport_title or event.sport_key).strip().upper()
    return title if 0 < len(title) <= 20 else event.sport_key[:20].upper()


def _sides(event: ApiEvent, market: str, outcomes: list[ApiOutcome]) -> dict[str, ApiOutcome]:
    """The two sides of a market by our names, or {} when they are not exactly two we know
    (a three-way market with a draw, a name that matches neither team)."""
    if market == "total":
        names = {"over": "Over", "under": "Under"}
    else:
        names = {"home": event.home_team, "away": event.away_team}
    by_name = {outcome.name: outcome for outcome in outcomes}
    sides = {side: by_name[name] for side, name in names.items() if name in by_name}
    return sides if len(sides) == 2 and len(outcomes) == 2 else {}


def _quotes(event: ApiEvent, price_format: str) -> list[Quote]:
    sport = _sport(event)
    common = {
        "home_team": event.home_team,
        "away_team": event.away_team,
        "commence_time": event.commence_time,
        "source": SOURCE,
    }
    quotes = []
    for book in event.bookmakers:
        sportsbook = BOOKS.get(book.key, book.title)
        for api_market in book.markets:
            market = MARKETS.get(api_market.key)
            if market is None:
                continue
            sides = _sides(event, market, api_market.outcomes)
            if not sides:
                log.warning(
                    "feed.market.skipped",
                    game=event.id,
                    book=book.key,
                    market=api_market.key,
                    reason="outcomes are not the two sides of the market",
                )
                continue
            line: float | None = None
            if market != "moneyline":
                line = sides["over" if market == "total" else "home"].point
                if line is None:
                    log.warning(
                        "feed.market.skipped",
                        game=event.id,
                        book=book.key,
                        market=api_market.key,
                        reason="no point",
                    )
                    continue
            fields = common | {
                "book_key": book.key,
                "last_update": api_market.last_update or book.last_update,
            }
            prices = {side: outcome.price for side, outcome in sides.items()}
            quotes.append(
                Quote(sport, event.id, sportsbook, market, prices, line, price_format, fields)
            )
    return quotes


def guess_odds_format(body: Any) -> str:
    """American when every price is a whole number of 100 or more either way, else decimal
    (a saved answer does not say which `oddsFormat` it was asked for)."""
    prices = [
        outcome.get("price")
        for event in (body if isinstance(body, list) else []) if isinstance(event, dict)
        for book in event.get("bookmakers") or [] if isinstance(book, dict)
        for market in book.get("markets") or [] if isinstance(market, dict)
        for outcome in market.get("outcomes") or [] if isinstance(outcome, dict)
    ]  # fmt: skip
    american = all(isinstance(p, int) and not isinstance(p, bool) and abs(p) >= 100 for p in prices)
    return "american" if prices and american else "decimal"


def parse_poll(body: Any, price_format: str = "american") -> Poll:
    """Map a decoded answer whose prices are in `price_format` (american, decimal, or auto:
    `guess_odds_format`); raises ValueError when it is not a list of events at all."""
    if not isinstance(body, list):
        raise ValueError(f"expected a list of events, got {type(body).__name__}")
    if price_format == "auto":
        price_format = guess_odds_format(body)
    poll = Poll()
    for index, raw in enumerate(body):
        try:
            event = _event_adapter.validate_python(raw)
        except ValidationError as exc:
            poll.invalid += 1
            game = raw.get("id") if isinstance(raw, dict) else None
            log.warning(
                "feed.event.malformed",
                index=index,
                game=game,
                error=describe_validation_error(exc),
            )
            continue
        poll.listed.add(event.id)
        poll.quotes += _quotes(event, price_format)
    return poll


# --- polling ---------------------------------------------------------------------------------


class FeedStopped(Exception):
    """The feed cannot go on (a refused key, a bad request, the quota reserve reached)."""


class _Retry(Exception):
    """This poll failed; try again after a backoff (or `retry_after` s, when the provider
    said)."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


@dataclass(frozen=True)
class FeedOptions:
    """What `oddstream feed the-odds-api` was asked for."""

    sport: str
    markets: tuple[str, ...] = ("h2h", "spreads", "totals")
    regions: tuple[str, ...] = ("us",)
    interval: float | None = 60.0  # None: one poll (a file read once)
    odds_format: str = "american"  # a file's may be "auto" (`guess_odds_format`)
    base_url: str = DEFAULT_BASE_URL
    from_file: Path | None = None
    polls: int | None = None  # stop after this many polls (attempts), None: until stopped
    quota_reserve: int = 20
    timeout: float = 15.0
    max_backoff: float = 60.0


class _Backoff:
    """Exponential backoff with "equal jitter": each wait is half to all of the step, so
    feeds restarted together do not poll in step. `reset()` after a success."""

    def __init__(self, initial: float, cap: float, rng: random.Random) -> None:
        self.initial, self.cap, self._rng = initial, cap, rng
        self.step = initial

    def reset(self) -> None:
        self.step = self.initial

    def next(self) -> float:
        delay = self.step * (0.5 + self._rng.random() / 2)
        self.step = min(self.step * 2, self.cap)
        return delay


def _redactor(secret: str | None) -> Callable[[str], str]:
    def redact(text: str) -> str:
        return text.replace(secret, "***") if secret else text

    return redact


def _retry_after(headers: Mapping[str, str]) -> float | None:
    try:
        value = float(headers.get("Retry-After", ""))
    except ValueError:
        return None
    return min(max(value, 0.0), 3600.0)


def _provider_message(body: bytes) -> str:
    with contextlib.suppress(orjson.JSONDecodeError, AttributeError, TypeError):
        message = orjson.loads(body).get("message")
        if isinstance(message, str):
            return message[:300]
    return body[:200].decode("utf-8", "replace")


class _ApiSource:
    """`GET /v4/sports/{sport}/odds`: the decoded answer, or `_Retry` / `FeedStopped`."""

    def __init__(self, options: FeedOptions, key: str, session: aiohttp.ClientSession) -> None:
        self.options, self._key, self._session = options, key, session
        self.remaining: float | None = None
        self.redact = _redactor(key)

    def describe(self) -> str:
        return f"{self.options.base_url}/v4/sports/{self.options.sport}/odds"  # no key in it

    async def fetch(self) -> Any:
        o = self.options
        params = {
            "apiKey": self._key,
            "regions": ",".join(o.regions),
            "markets": ",".join(o.markets),
            "oddsFormat": o.odds_format,
            "dateFormat": "iso",
        }
        url = f"{o.base_url.rstrip('/')}/v4/sports/{o.sport}/odds"
        try:
            async with self._session.get(
                url, params=params, timeout=aiohttp.ClientTimeout(total=o.timeout)
            ) as response:
                body = await response.read()
                status, headers = response.status, response.headers
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise _Retry(f"no answer ({type(exc).__name__}: {self.redact(str(exc))})") from None
        remaining = headers.get("x-requests-remaining")
        if remaining is not None:
            with contextlib.suppress(ValueError):
                self.remaining = float(remaining)
        message = self.redact(_provider_message(body)) if status != 200 else ""
        if status in (401, 403):
            raise FeedStopped(
                f"the provider refused the API key (HTTP {status}: {message}); check "
                f"{KEY_VARIABLE} and the account's quota"
            )
        if status == 429:
            raise _Retry(f"rate limited (HTTP 429: {message})", _retry_after(headers))
        if status >= 500:
            raise _Retry(f"provider error (HTTP {status}: {message})", _retry_after(headers))
        if status != 200:
            raise FeedStopped(f"the provider rejected the request (HTTP {status}: {message})")
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise _Retry(f"malformed JSON in the answer ({exc})") from None


class _FileSource:
    """A saved answer, read again on every poll (so an edited file is a new poll)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.remaining: float | None = None

    def describe(self) -> str:
        return str(self.path)

    def redact(self, text: str) -> str:
        return text

    async def fetch(self) -> Any:
        try:
            raw = await asyncio.to_thread(self.path.read_bytes)
        except OSError as exc:
            raise _Retry(f"cannot read {self.path}: {exc.strerror}") from None
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise _Retry(f"malformed JSON in {self.path} ({exc})") from None


async def run_feed(
    options: FeedOptions,
    ingester: Ingester,
    stop: asyncio.Event,
    *,
    key: str | None = None,
    board: Board | None = None,
    rng: random.Random | None = None,
) -> int:
    """Poll every `interval` s until `stop` (or `options.polls` polls) and ingest each poll's
    changes; with `interval` None, poll once. Returns an exit status: 0 the last poll was
    ingested whole; 1 it failed or skipped malformed events; 3 the feed was stopped (a
    refused key, a rejected request, the quota reserve reached)."""
    board = Board() if board is None else board
    backoff = _Backoff(
        min(options.interval or 1.0, 1.0), options.max_backoff, rng or random.Random()
    )
    async with contextlib.AsyncExitStack() as stack:
        source: _ApiSource | _FileSource
        if options.from_file is not None:
            source = _FileSource(options.from_file)
        elif not key:
            log.error("feed.stopped", reason=f"no API key: set {KEY_VARIABLE}")
            return 3
        else:
            session = await stack.enter_async_context(aiohttp.ClientSession())
            source = _ApiSource(options, key, session)
        log.info(
            "feed.started",
            source=source.describe(),
            sport=options.sport,
            markets=",".join(options.markets),
            interval=options.interval,
        )
        polls = 0
        while not stop.is_set():
            polls += 1
            try:
                poll = await _poll(source, options.odds_format)
                result = await board.ingest(
                    poll.quotes, poll.listed, ingester, complete=poll.complete
                )
            except FeedStopped as exc:
                log.error("feed.stopped", reason=source.redact(str(exc)))
                return 3
            except _Retry as exc:
                status = 1
                wait = exc.retry_after if exc.retry_after is not None else backoff.next()
                log.warning(
                    "feed.poll.failed", reason=source.redact(str(exc)), retry_in=round(wait, 2)
                )
            except (RedisError, OSError) as exc:
                status, wait = 1, backoff.next()
                log.warning("feed.ingest.failed", error=repr(exc), retry_in=round(wait, 2))
            else:
                backoff.reset()
                status = 1 if poll.invalid or result.invalid else 0
                _log_poll(poll, result, source.remaining)
                remaining, reserve = source.remaining, options.quota_reserve
                if remaining is not None and remaining < reserve:
                    log.error(
                        "feed.stopped",
                        reason="quota: the provider's quota is nearly used up; wait for it to "
                        "renew or lower --quota-reserve",
                        remaining=remaining,
                        reserve=reserve,
                    )
                    return 3
                wait = options.interval or 0.0
                if remaining is not None and remaining < 4 * reserve:
                    wait *= 4
                    log.warning("feed.quota.low", remaining=remaining, next_in=round(wait, 2))
            if options.interval is None or (options.polls is not None and polls >= options.polls):
                return status
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), wait)
    return 0


async def _poll(source: _ApiSource | _FileSource, price_format: str) -> Poll:
    body = await source.fetch()
    try:
        return parse_poll(body, price_format)
    except ValueError as exc:
        raise _Retry(f"unexpected answer: {exc}") from None


def _log_poll(poll: Poll, result: IngestResult, remaining: float | None) -> None:
    log.info(
        "feed.poll",
        games=len(poll.listed),
        quotes=len(poll.quotes),
        ingested=result.ingested,
        updates=result.updates,
        suspensions=result.suspensions,
        resumes=result.resumes,
        skipped=poll.invalid + result.invalid,
        quota_remaining=remaining,
    )
