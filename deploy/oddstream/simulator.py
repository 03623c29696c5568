"""A realistic live sports-betting feed for `oddstream dev`, demos and benchmarks.

Prices come from a small market model rather than noise, so what users see behaves like a
real feed: each game has a fair expected margin and total that drift; each sportsbook tracks
them with its own bias, vig and lag, so American prices move a few cents at a time, books
disagree a little, and now and then two books disagree enough for an arbitrage. The simulator
publishes no arbitrage events itself: the workers' detector (`workers.arbitrage`) finds them in
these prices, as it would in a real feed. Events go through `Ingester.publish_many`, the same
write path as `oddstream ingest`.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, NamedTuple, TypeVar

from pydantic import BaseModel
from redis.exceptions import RedisError

from oddstream.shared.events import (
    AlertEvent,
    AnalyticsEvent,
    IngestEvent,
    OddsEvent,
    PortfolioEvent,
    PredictionEvent,
)
from oddstream.shared.ingest import Ingester
from oddstream.shared.logs import get_logger

__all__ = ["BOOKS", "MARKETS", "SPORTS", "Simulator", "american", "implied_probability"]

log = get_logger(__name__)
_E = TypeVar("_E", bound=BaseModel)

MARKETS = ("moneyline", "spread", "total")
#: Sportsbook -> total vig (overround) it builds into a two-way market. Read-only, like
#: every table here: all mutable state lives on a Simulator.
BOOKS: Mapping[str, float] = MappingProxyType(
    {"DraftKings": 0.045, "FanDuel": 0.042, "BetMGM": 0.05, "Caesars": 0.048, "PointsBet": 0.04}
)
#: Cumulative cut-offs of the mix: 70% odds, 15% predictions, 10% analytics; the remaining 5%
#: are alerts (2%) and portfolio updates (3%). No arbitrage: the workers detect it in the odds.
_MIX = ((0.70, "odds"), (0.85, "predictions"), (0.95, "analytics"))
_ALERT_CUT = 0.97
_MAX_STEP = 0.012  # most a book's probability moves per update: a few cents of American price
_MODELS = ("gbm-props-v4", "bayes-hier-v2", "ensemble-v5")


class _Sport(NamedTuple):
    """How one sport's numbers behave, so each market moves on a realistic scale."""

    ml_slope: float  # win probability per point of expected margin
    spread_slope: float  # cover probability per point of margin beyond the line
    total_slope: float  # over probability per point of expected total beyond the line
    base_total: float
    drift: float  # sd of the expected margin/total per update (it also reverts to the mean)
    fixed_spread: bool  # run line / puck line: always +-1.5, only the price moves
    pace: tuple[str, float]  # unit and typical value


SPORTS: Mapping[str, _Sport] = MappingProxyType(
    {
        "MLB": _Sport(0.11, 0.1, 0.12, 8.5, 0.03, True, ("pitches_per_inning", 16.5)),
        "NBA": _Sport(0.03, 0.03, 0.025, 226.5, 0.15, False, ("possessions_per_48", 99.5)),
        "NFL": _Sport(0.03, 0.03, 0.03, 45.5, 0.12, False, ("plays_per_60", 63.0)),
        "NHL": _Sport(0.2, 0.15, 0.2, 6.5, 0.02, True, ("shots_per_60", 61.0)),
    }
)

_Star = tuple[str, str, float]  # player, prop market, the books' prop line
#: Teams and their stars per sport; consecutive teams play each other, the first at home.
_TEAMS: Mapping[str, Mapping[str, tuple[_Star, ...]]] = {
    "MLB": {
        "New York Yankees": (("Aaron Judge", "hits", 0.5), ("Cody Bellinger", "hits", 0.5)),
        "Boston Red Sox": (("Jarren Duran", "total_bases", 1.5),),
        "Los Angeles Dodgers": (("Shohei Ohtani", "home_runs", 0.5), ("Mookie Betts", "hits", 0.5)),
        "San Francisco Giants": (("Matt Chapman", "hits", 0.5),),
        "Atlanta Braves": (("Ronald Acuna Jr.", "total_bases", 1.5),),
        "Philadelphia Phillies": (("Bryce Harper", "hits", 0.5), ("Trea Turner", "hits", 0.5)),
    },
    "NBA": {
        "Los Angeles Lakers": (("LeBron James", "points", 24.5), ("Luka Doncic", "assists", 8.5)),
        "Golden State Warriors": (("Stephen Curry", "points", 26.5),),
        "Boston Celtics": (("Jayson Tatum", "rebounds", 8.5), ("Jaylen Brown", "points", 23.5)),
        "New York Knicks": (("Jalen Brunson", "assists", 7.5),),
        "Denver Nuggets": (("Nikola Jokic", "assists", 9.5), ("Jamal Murray", "points", 21.5)),
        "Oklahoma City Thunder": (("Shai Gilgeous-Alexander", "points", 31.5),),
    },
    "NFL": {
        "Kansas City Chiefs": (("Patrick Mahomes", "passing_yards", 262.5),),
        "Buffalo Bills": (("Josh Allen", "passing_yards", 248.5),),
        "Philadelphia Eagles": (("Saquon Barkley", "rushing_yards", 94.5),),
        "Dallas Cowboys": (("CeeDee Lamb", "receiving_yards", 81.5),),
        "Baltimore Ravens": (("Lamar Jackson", "passing_yards", 224.5),),
        "San Francisco 49ers": (("Christian McCaffrey", "rushing_yards", 86.5),),
    },
    "NHL": {
        "Edmonton Oilers": (("Connor McDavid", "points", 1.5), ("Leon Draisaitl", "goals", 0.5)),
        "Toronto Maple Leafs": (("Auston Matthews", "goals", 0.5),),
        "New York Rangers": (("Artemi Panarin", "points", 1.5),),
        "Boston Bruins": (("David Pastrnak", "shots_on_goal", 3.5),),
        "Colorado Avalanche": (("Nathan MacKinnon", "points", 1.5), ("Cale Makar", "points", 0.5)),
        "Dallas Stars": (("Jason Robertson", "goals", 0.5),),
    },
}

_ALERTS = (
    ("warning", "Line suspended: {away} @ {home} {market} at {book} pending review"),
    ("info", "Line reinstated: {away} @ {home} {market} at {book}"),
    ("warning", "Injury news: {player} questionable, {book} pulled player props"),
    ("info", "Feed latency elevated at {book} ({ms} ms), prices may lag"),
    ("critical", "Market halted: {away} @ {home} all markets suspended at {book}"),
)


def american(prob: float) -> int:
    """American price of an implied probability (vig included), as books quote it."""
    if prob > 0.5:
        price = -round(100 * prob / (1 - prob))
        return price if price < -100 else 100  # even money is quoted +100, never -100
    return round(100 * (1 - prob) / prob)


def implied_probability(price: int) -> float:
    """Implied probability of an American price: the scale on which moves are comparable."""
    return -price / (100 - price) if price < 0 else 100 / (100 + price)


def _clamp(x: float, low: float, high: float) -> float:
    return min(high, max(low, x))


@dataclass
class _Game:
    sport: str
    game_id: str
    home: str
    away: str
    players: tuple[_Star, ...]
    mean_margin: float  # expected home margin of victory before the game
    mean_total: float  # expected combined score before the game
    start_offset: float  # seconds into the game when the simulation starts
    margin: float = 0.0  # in-game expectations; they wander but revert to the means
    total: float = 0.0

    def __post_init__(self) -> None:
        self.margin, self.total = self.mean_margin, self.mean_total


@dataclass
class _Quote:
    """One book's number on one market of one game: home/over probability and the line."""

    prob: float
    line: float
    offset: float  # the book's own opinion relative to the fair value; drifts slowly
    open_line: float


@dataclass
class _Bet:
    bet_id: str
    sport: str
    game_id: str
    sportsbook: str
    selection: str
    price: int
    stake: float


class Simulator:
    """Generates a live-looking mix of every event kind; all state lives on the instance."""

    def __init__(
        self,
        *,
        rate: float = 40.0,
        seed: int | None = None,
        portfolio_users: Sequence[str] = ("demo",),
    ) -> None:
        if rate <= 0 or not portfolio_users:
            raise ValueError("rate must be positive and portfolio_users not empty")
        self.rate = rate
        self.portfolio_users = tuple(portfolio_users)
        self._rng = rng = random.Random(seed)
        self._clock = 0.0  # simulated seconds since start
        self._seq = 0
        self._games: list[_Game] = []
        self._quotes: dict[tuple[str, str, str], _Quote] = {}
        self._projections: dict[str, float] = {}
        self._open_bets: dict[str, list[_Bet]] = {user: [] for user in self.portfolio_users}
        for sport, teams in _TEAMS.items():
            spec, names = SPORTS[sport], list(teams)
            for i, (home, away) in enumerate(zip(names[::2], names[1::2], strict=True), start=1):
                margin = rng.uniform(-0.2, 0.2) / spec.ml_slope  # home win 30%..70%
                total = spec.base_total + rng.choice((-1.0, 0.0, 1.0)) * spec.drift * 10
                players, start = teams[home] + teams[away], rng.uniform(0, 3600)
                game_id = f"{sport}-2026-{i:03d}"
                game = _Game(sport, game_id, home, away, players, margin, total, start)
                self._games.append(game)
                for player, _market, line in players:
                    self._projections[player] = line * rng.uniform(0.9, 1.2)
                for market in MARKETS:
                    for book in BOOKS:
                        line = self._opening_line(game, market)
                        quote = _Quote(0.5, line, rng.gauss(0, 0.012), line)
                        quote.prob = self._target(game, market, quote)
                        self._quotes[(game.game_id, book, market)] = quote

    # --- the market model ----------------------------------------------------------------
    @staticmethod
    def _opening_line(game: _Game, market: str) -> float:
        """Spreads and totals sit on a hook (x.5) so they cannot push."""
        if market == "total":
            return round(game.total - 0.5) + 0.5
        if SPORTS[game.sport].fixed_spread:
            return -1.5 if game.margin > 0 else 1.5
        return round(-game.margin - 0.5) + 0.5

    @staticmethod
    def _target(game: _Game, market: str, quote: _Quote) -> float:
        """Where a book wants its home/over probability, given the game and its own bias."""
        spec = SPORTS[game.sport]
        if market == "moneyline":
            fair = 0.5 + spec.ml_slope * game.margin
        elif market == "spread":
            fair = 0.5 + spec.spread_slope * (game.margin + quote.line)
        else:
            fair = 0.5 + spec.total_slope * (game.total - quote.line)
        return _clamp(fair + quote.offset, 0.1, 0.9)

    def _step(self, game: _Game, book: str, market: str) -> tuple[_Quote, float, float]:
        """Drift the game, then move one book part of the way to its target (books lag)."""
        rng, spec = self._rng, SPORTS[game.sport]
        game.margin += 0.005 * (game.mean_margin - game.margin) + rng.gauss(0, spec.drift)
        game.total += 0.005 * (game.mean_total - game.total) + rng.gauss(0, spec.drift)
        quote = self._quotes[(game.game_id, book, market)]
        before = quote.prob, quote.line
        quote.offset = 0.97 * quote.offset + rng.gauss(0, 0.002)
        move = 0.3 * (self._target(game, market, quote) - quote.prob) + rng.gauss(0, 0.004)
        quote.prob = _clamp(quote.prob + _clamp(move, -_MAX_STEP, _MAX_STEP), 0.1, 0.9)
        if market == "total" or (market == "spread" and not spec.fixed_spread):
            # A lopsided price makes the book move its number a half point and re-centre.
            slope = spec.total_slope if market == "total" else spec.spread_slope
            sign = 1.0 if market == "total" else -1.0
            if abs(quote.prob - 0.5) > 0.06:
                up = 1.0 if quote.prob > 0.5 else -1.0
                quote.line += 0.5 * sign * up
                quote.prob -= 0.5 * slope * up
        return quote, *before

    @staticmethod
    def _prices(book: str, prob: float) -> tuple[int, int]:
        """(home/over, away/under) American prices with the book's vig split over both sides."""
        half_vig = BOOKS[book] / 2
        return american(prob + half_vig), american(1 - prob + half_vig)

    # --- events ---------------------------------------------------------------------------
    def _event(self, model: type[_E], game: _Game | None, /, **fields: Any) -> _E:
        """Validate through the event model, with the fields every payload carries."""
        self._seq += 1
        now = time.time()
        stamp = datetime.fromtimestamp(now, UTC).isoformat(timespec="milliseconds")
        body = {"event_id": f"sim-{self._seq}", "timestamp": stamp, "sent_at": now}
        if game is not None:
            body |= {"sport": game.sport, "game_id": game.game_id}
            body |= {"home_team": game.home, "away_team": game.away}
        return model.model_validate(body | fields)

    def _odds(self) -> OddsEvent:
        rng = self._rng
        game, book, market = rng.choice(self._games), rng.choice(list(BOOKS)), rng.choice(MARKETS)
        quote, old_prob, old_line = self._step(game, book, market)
        sides = ("over_price", "under_price") if market == "total" else ("home_price", "away_price")
        new_prices, old_prices = self._prices(book, quote.prob), self._prices(book, old_prob)
        fields: dict[str, Any] = dict(zip(sides, new_prices, strict=True))
        previous: dict[str, float] = dict(zip(sides, old_prices, strict=True))
        if market != "moneyline":
            fields["line"], previous["line"] = quote.line, old_line
        # "up" means a better payout on that side (lower implied probability), as bettors say.
        movement = {
            side: "flat" if new == old else "up" if new > old else "down"
            for side, new, old in zip(sides, new_prices, old_prices, strict=True)
        }
        return self._event(
            OddsEvent, game, kind="odds", sportsbook=book, market=market, **fields,
            previous=previous, movement=movement,
        )  # fmt: skip

    def _prediction(self) -> PredictionEvent:
        rng = self._rng
        game = rng.choice(self._games)
        player, market, line = rng.choice(game.players)
        projection = self._projections[player] * (1 + rng.gauss(0, 0.02))
        self._projections[player] = projection = _clamp(projection, line * 0.5, line * 1.6 + 1)
        edge = projection - line
        confidence = _clamp(0.55 + abs(edge) / (line + 1) + rng.uniform(0, 0.1), 0.5, 0.97)
        return self._event(
            PredictionEvent, game, kind="predictions", player=player, market=market, line=line,
            projection=round(projection, 2), confidence=round(confidence, 3), edge=round(edge, 2),
            recommendation="over" if edge > 0 else "under", model=rng.choice(_MODELS),
        )  # fmt: skip

    def _analytics(self) -> AnalyticsEvent:
        rng = self._rng
        game = rng.choice(self._games)
        spec = SPORTS[game.sport]
        home_prob = _clamp(0.5 + spec.ml_slope * game.margin, 0.03, 0.97)
        movement: dict[str, dict[str, float]] = {}
        for market in MARKETS:
            quotes = [self._quotes[(game.game_id, book, market)] for book in BOOKS]
            if market == "moneyline":
                implied = sum(q.prob for q in quotes) / len(quotes)
                movement[market] = {"home_implied": round(implied, 3)}
                continue
            opened = round(sum(q.open_line for q in quotes) / len(quotes), 2)
            now = round(sum(q.line for q in quotes) / len(quotes), 2)
            movement[market] = {"open": opened, "current": now, "change": round(now - opened, 2)}
        unit, pace = spec.pace
        elapsed = (game.start_offset + self._clock) % 10800
        return self._event(
            AnalyticsEvent, game, kind="analytics", home_win_prob=round(home_prob, 3),
            away_win_prob=round(1 - home_prob, 3), expected_margin=round(game.margin, 2),
            expected_total=round(game.total, 2), pace=round(pace * rng.uniform(0.93, 1.07), 1),
            pace_unit=unit, elapsed_minutes=round(elapsed / 60, 1), line_movement=movement,
        )  # fmt: skip

    def _alert(self) -> AlertEvent:
        rng = self._rng
        game = rng.choice(self._games)
        level, template = rng.choice(_ALERTS)
        message = template.format(
            home=game.home, away=game.away, market=rng.choice(MARKETS), ms=rng.randint(800, 4000),
            book=rng.choice(list(BOOKS)), player=rng.choice(game.players)[0],
        )  # fmt: skip
        return self._event(AlertEvent, game, kind="alerts", message=message, level=level)

    def _portfolio(self) -> PortfolioEvent:
        """Bets get placed at current prices, settled later, and revalued in between."""
        rng = self._rng
        user = rng.choice(self.portfolio_users)
        bets = self._open_bets[user]
        action = (
            rng.choice(("bet_placed", "bet_settled", "position_update")) if bets else "bet_placed"
        )
        fields: dict[str, Any]
        if action == "bet_placed":
            game, book = rng.choice(self._games), rng.choice(list(BOOKS))
            prices = self._prices(book, self._quotes[(game.game_id, book, "moneyline")].prob)
            side = rng.randrange(2)
            stake = float(rng.choice((10, 25, 50, 100, 250)))
            bet = _Bet(f"bet-{self._seq + 1}", game.sport, game.game_id, book,
                       (game.home, game.away)[side], prices[side], stake)  # fmt: skip
            bets.append(bet)
            payout = round(stake / implied_probability(bet.price), 2)
            fields = {**asdict(bet), "potential_payout": payout}
        elif action == "bet_settled":
            bet = bets.pop(0)
            won = rng.random() < implied_probability(bet.price)
            pnl = bet.stake / implied_probability(bet.price) - bet.stake if won else -bet.stake
            fields = {**asdict(bet), "result": "won" if won else "lost", "pnl": round(pnl, 2)}
        else:
            staked = sum(bet.stake for bet in bets)
            value = round(staked * rng.uniform(0.85, 1.2), 2)
            fields = {"open_bets": len(bets), "staked": staked, "position_value": value,
                      "unrealized_pnl": round(value - staked, 2)}  # fmt: skip
        return self._event(
            PortfolioEvent, None, kind="portfolio", user=user, action=action, **fields
        )

    def generate(self, n: int) -> list[IngestEvent]:
        """The next `n` events, advancing simulated time and prices. Deterministic given the
        seed except `timestamp`/`sent_at`, which are wall-clock so latency can be measured."""
        events: list[IngestEvent] = []
        for _ in range(n):
            self._clock += 1 / self.rate
            roll = self._rng.random()
            kind = next((kind for cut, kind in _MIX if roll < cut), None)
            if kind == "odds":
                events.append(self._odds())
            elif kind == "predictions":
                events.append(self._prediction())
            elif kind == "analytics":
                events.append(self._analytics())
            else:
                events.append(self._alert() if roll < _ALERT_CUT else self._portfolio())
        return events

    async def run(
        self,
        ingester: Ingester,
        *,
        stop: asyncio.Event | None = None,
        duration: float | None = None,
        tick: float = 0.25,
    ) -> int:
        """Publish about `rate * tick` events every `tick` seconds; returns how many landed.

        A Redis failure drops that batch (live prices go stale anyway), is logged and backed
        off from, so a Redis restart does not end the feed. Cancellation propagates."""
        loop = asyncio.get_running_loop()
        stop = asyncio.Event() if stop is None else stop
        end = math.inf if duration is None else loop.time() + duration
        published, carry, backoff = 0, 0.0, 0.0
        while not stop.is_set() and loop.time() < end:
            started = loop.time()
            carry += self.rate * tick
            count = int(carry)
            carry -= count
            try:
                published += len(await ingester.publish_many(self.generate(count)))
                backoff = 0.0
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                backoff = _clamp(backoff * 2, 0.25, 5.0)
                log.warning("simulator.publish.failed", retry_in=round(backoff, 2), error=repr(exc))
            pause = max(tick - (loop.time() - started), backoff)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(0.0, min(pause, end - loop.time())))
        return published
