"""A realistic live sports-betting feed for `oddstream dev`, demos and benchmarks.

Prices come from a small market model rather than noise, so what users see behaves like a
real feed: each game has a fair expected margin and total that drift; each sportsbook tracks
them with its own bias, vig and lag, so American prices move a few cents at a time, books
disagree a little, and arbitrage alerts come from real disagreements whenever there is one.
Events go through `Ingester.publish_many`, the same write path as `oddstream ingest`.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

from redis.exceptions import RedisError

from shared.events import (
    AlertEvent,
    AnalyticsEvent,
    ArbitrageEvent,
    IngestEvent,
    OddsEvent,
    PortfolioEvent,
    PredictionEvent,
)
from shared.ingest import Ingester

__all__ = ["BOOKS", "MARKETS", "SPORTS", "Simulator", "american", "implied_probability"]

log = logging.getLogger("oddstream.simulator")

MARKETS = ("moneyline", "spread", "total")
#: Sportsbook -> total vig (overround) on a two-way market.
BOOKS = {"DraftKings": 0.045, "FanDuel": 0.042, "BetMGM": 0.05, "Caesars": 0.048, "PointsBet": 0.04}
#: Cumulative thresholds of the event mix: 70% odds, 15% predictions, 8% analytics,
#: 2% arbitrage, 2% alerts, 3% portfolio.
_MIX = ((0.70, "odds"), (0.85, "predictions"), (0.93, "analytics"), (0.95, "arbitrage"))
_MAX_STEP = 0.012  # largest move of a book's probability per update: a few cents of price
_MODELS = ("gbm-props-v4", "bayes-hier-v2", "ensemble-v5")


class _Sport(NamedTuple):
    """How one sport's numbers behave: prob per point of margin/total, drift, base total."""

    ml_slope: float  # win prob per point of expected margin
    spread_slope: float  # cover prob per point of margin beyond the line
    total_slope: float  # over prob per point of expected total beyond the line
    base_total: float
    drift: float  # sd of the expected margin/total per update of that game
    fixed_spread: bool  # run line / puck line: always +-1.5, only the price moves
    pace: tuple[str, float]  # unit and typical value


SPORTS: dict[str, _Sport] = {
    "MLB": _Sport(0.11, 0.2, 0.12, 8.5, 0.02, True, ("pitches_per_inning", 16.5)),
    "NBA": _Sport(0.03, 0.03, 0.025, 226.5, 0.15, False, ("possessions_per_48", 99.5)),
    "NFL": _Sport(0.03, 0.03, 0.03, 45.5, 0.12, False, ("plays_per_60", 63.0)),
    "NHL": _Sport(0.14, 0.25, 0.2, 6.5, 0.015, True, ("shots_per_60", 61.0)),
}

# Home/away pairings per sport, and the stars whose props the models project.
_GAMES: dict[str, tuple[tuple[str, str], ...]] = {
    "MLB": (
        ("New York Yankees", "Boston Red Sox"),
        ("Los Angeles Dodgers", "San Francisco Giants"),
        ("Atlanta Braves", "Philadelphia Phillies"),
    ),
    "NBA": (
        ("Los Angeles Lakers", "Golden State Warriors"),
        ("Boston Celtics", "New York Knicks"),
        ("Denver Nuggets", "Oklahoma City Thunder"),
    ),
    "NFL": (
        ("Kansas City Chiefs", "Buffalo Bills"),
        ("Philadelphia Eagles", "Dallas Cowboys"),
        ("Baltimore Ravens", "San Francisco 49ers"),
    ),
    "NHL": (
        ("Edmonton Oilers", "Toronto Maple Leafs"),
        ("New York Rangers", "Boston Bruins"),
        ("Colorado Avalanche", "Dallas Stars"),
    ),
}
_Star = tuple[str, str, float]  # player, prop market, the books' prop line
_STARS: dict[str, tuple[_Star, ...]] = {
    "New York Yankees": (("Aaron Judge", "hits", 0.5), ("Giancarlo Stanton", "total_bases", 1.5)),
    "Boston Red Sox": (("Jarren Duran", "total_bases", 1.5),),
    "Los Angeles Dodgers": (("Shohei Ohtani", "home_runs", 0.5), ("Mookie Betts", "hits", 0.5)),
    "San Francisco Giants": (("Matt Chapman", "hits", 0.5),),
    "Atlanta Braves": (("Ronald Acuna Jr.", "total_bases", 1.5),),
    "Philadelphia Phillies": (("Bryce Harper", "hits", 0.5), ("Kyle Schwarber", "home_runs", 0.5)),
    "Los Angeles Lakers": (("LeBron James", "points", 24.5), ("Luka Doncic", "assists", 8.5)),
    "Golden State Warriors": (("Stephen Curry", "points", 26.5),),
    "Boston Celtics": (("Jayson Tatum", "rebounds", 8.5), ("Jaylen Brown", "points", 23.5)),
    "New York Knicks": (("Jalen Brunson", "assists", 7.5),),
    "Denver Nuggets": (("Nikola Jokic", "assists", 9.5), ("Jamal Murray", "points", 21.5)),
    "Oklahoma City Thunder": (("Shai Gilgeous-Alexander", "points", 31.5),),
    "Kansas City Chiefs": (("Patrick Mahomes", "passing_yards", 262.5),),
    "Buffalo Bills": (
        ("Josh Allen", "passing_yards", 248.5),
        ("James Cook", "rushing_yards", 74.5),
    ),
    "Philadelphia Eagles": (("Saquon Barkley", "rushing_yards", 94.5),),
    "Dallas Cowboys": (("CeeDee Lamb", "receiving_yards", 81.5),),
    "Baltimore Ravens": (("Lamar Jackson", "passing_yards", 224.5),),
    "San Francisco 49ers": (("Christian McCaffrey", "rushing_yards", 86.5),),
    "Edmonton Oilers": (("Connor McDavid", "points", 1.5), ("Leon Draisaitl", "goals", 0.5)),
    "Toronto Maple Leafs": (("Auston Matthews", "goals", 0.5),),
    "New York Rangers": (("Artemi Panarin", "points", 1.5),),
    "Boston Bruins": (("David Pastrnak", "shots_on_goal", 3.5),),
    "Colorado Avalanche": (("Nathan MacKinnon", "points", 1.5), ("Cale Makar", "points", 0.5)),
    "Dallas Stars": (("Jason Robertson", "goals", 0.5),),
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
    if prob >= 0.5:
        return -round(100 * prob / (1 - prob))
    return round(100 * (1 - prob) / prob)


def implied_probability(price: int) -> float:
    """Implied probability of an American price: the scale on which moves are comparable."""
    return -price / (100 - price) if price < 0 else 100 / (100 + price)


@dataclass
class _Game:
    sport: str
    game_id: str
    home: str
    away: str
    players: tuple[_Star, ...]
    margin: float  # expected home margin of victory
    total: float  # expected combined score
    start_offset: float  # seconds into the game at simulation start


@dataclass
class _Line:
    """One book's quote on one market of one game: the home/over probability and the line."""

    prob: float
    line: float
    offset: float  # the book's persistent opinion, relative to the fair value
    open_line: float


def _half(x: float) -> float:
    """Nearest hook (x.5): spreads and totals are quoted on half points to avoid pushes."""
    return round(x - 0.5) + 0.5


class Simulator:
    """Generates a live-looking mix of every event kind; all state lives on the instance."""

    def __init__(
        self,
        *,
        rate: float = 40.0,
        seed: int | None = None,
        portfolio_users: Sequence[str] = ("demo",),
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        if not portfolio_users:
            raise ValueError("portfolio_users must name at least one user")
        self.rate = rate
        self.portfolio_users = tuple(portfolio_users)
        self._rng = random.Random(seed)
        self._clock = 0.0  # simulated seconds since start
        self._seq = 0
        self._games: list[_Game] = []
        self._lines: dict[tuple[str, str, str], _Line] = {}
        self._projections: dict[str, float] = {}
        self._open_bets: dict[str, list[dict[str, Any]]] = {u: [] for u in self.portfolio_users}
        rng = self._rng
        for sport, games in _GAMES.items():
            spec = SPORTS[sport]
            for i, (home, away) in enumerate(games, start=1):
                players = _STARS[home] + _STARS[away]
                margin = rng.uniform(-0.25, 0.25) / spec.ml_slope
                total = spec.base_total + rng.choice((-1.0, 0.0, 1.0)) * spec.drift * 20
                game = _Game(
                    sport,
                    f"{sport}-2026-{i:03d}",
                    home,
                    away,
                    players,
                    margin,
                    total,
                    rng.uniform(0, 3600),
                )
                self._games.append(game)
                for name, _market, line in players:
                    self._projections[name] = line * rng.uniform(0.9, 1.2)
                for market in MARKETS:
                    for book in BOOKS:
                        line_value = self._fair_line(game, market)
                        quote = _Line(0.5, line_value, rng.gauss(0, 0.012), line_value)
                        quote.prob = self._target(game, market, quote)
                        self._lines[(game.game_id, book, market)] = quote

    # --- the market model ----------------------------------------------------------------
    def _fair_line(self, game: _Game, market: str) -> float:
        spec = SPORTS[game.sport]
        if market == "total":
            return _half(game.total)
        if spec.fixed_spread:
            return -1.5 if game.margin > 0 else 1.5
        return _half(-game.margin)

    def _target(self, game: _Game, market: str, quote: _Line) -> float:
        """Where a book wants its home/over probability, given the game and its own bias."""
        spec = SPORTS[game.sport]
        if market == "moneyline":
            fair = 0.5 + spec.ml_slope * game.margin
        elif market == "spread":
            fair = 0.5 + spec.spread_slope * (game.margin + quote.line)
        else:
            fair = 0.5 + spec.total_slope * (game.total - quote.line)
        return min(0.9, max(0.1, fair + quote.offset))

    def _step(self, game: _Game, book: str, market: str) -> tuple[_Line, float, float]:
        """Drift the game, then move one book's quote part of the way toward its target."""
        rng, spec = self._rng, SPORTS[game.sport]
        game.margin += rng.gauss(0, spec.drift)
        game.total += rng.gauss(0, spec.drift)
        quote = self._lines[(game.game_id, book, market)]
        before_prob, before_line = quote.prob, quote.line
        quote.offset = 0.97 * quote.offset + rng.gauss(0, 0.002)
        move = 0.3 * (self._target(game, market, quote) - quote.prob) + rng.gauss(0, 0.004)
        quote.prob += max(-_MAX_STEP, min(_MAX_STEP, move))
        quote.prob = min(0.9, max(0.1, quote.prob))
        if market != "moneyline" and not (market == "spread" and spec.fixed_spread):
            # A lopsided price means the book moves its number by a hook and re-centres the price.
            slope = spec.spread_slope if market == "spread" else spec.total_slope
            if quote.prob > 0.56:
                quote.line, quote.prob = (
                    quote.line + (0.5 if market == "total" else -0.5),
                    quote.prob - 0.5 * slope,
                )
            elif quote.prob < 0.44:
                quote.line, quote.prob = (
                    quote.line - (0.5 if market == "total" else -0.5),
                    quote.prob + 0.5 * slope,
                )
        return quote, before_prob, before_line

    @staticmethod
    def _prices(book: str, prob: float) -> tuple[int, int]:
        half_vig = BOOKS[book] / 2
        return american(prob + half_vig), american(1 - prob + half_vig)

    # --- events ---------------------------------------------------------------------------
    def _base(self, **fields: Any) -> dict[str, Any]:
        self._seq += 1
        now = time.time()
        stamp = datetime.fromtimestamp(now, UTC).isoformat(timespec="milliseconds")
        return {"event_id": f"sim-{self._seq}", "timestamp": stamp, "sent_at": now, **fields}

    def _odds(self) -> OddsEvent:
        rng = self._rng
        game, book, market = rng.choice(self._games), rng.choice(list(BOOKS)), rng.choice(MARKETS)
        quote, before_prob, before_line = self._step(game, book, market)
        sides = ("over_price", "under_price") if market == "total" else ("home_price", "away_price")
        now_prices, old_prices = self._prices(book, quote.prob), self._prices(book, before_prob)
        body = self._base(
            kind="odds",
            sport=game.sport,
            game_id=game.game_id,
            sportsbook=book,
            market=market,
            home_team=game.home,
            away_team=game.away,
        )
        body.update(zip(sides, now_prices, strict=True))
        previous: dict[str, float] = dict(zip(sides, old_prices, strict=True))
        if market != "moneyline":
            body["line"], previous["line"] = quote.line, before_line
        body["previous"] = previous
        # "up" = better payout for that side (lower implied probability), as bettors read it.
        body["movement"] = {
            side: "flat"
            if new == old
            else ("up" if implied_probability(new) < implied_probability(old) else "down")
            for side, new, old in zip(sides, now_prices, old_prices, strict=True)
        }
        return OddsEvent.model_validate(body)

    def _prediction(self) -> PredictionEvent:
        rng = self._rng
        game = rng.choice(self._games)
        player, market, line = rng.choice(game.players)
        projection = self._projections[player] * (1 + rng.gauss(0, 0.02))
        projection = min(line * 1.6 + 1, max(line * 0.5, projection))
        self._projections[player] = projection
        edge = projection - line
        confidence = min(0.97, max(0.5, 0.55 + abs(edge) / (line + 1) + rng.uniform(0, 0.1)))
        return PredictionEvent.model_validate(
            self._base(
                kind="predictions",
                sport=game.sport,
                game_id=game.game_id,
                player=player,
                market=market,
                line=line,
                projection=round(projection, 2),
                confidence=round(confidence, 3),
                edge=round(edge, 2),
                recommendation="over" if edge > 0 else "under",
                model=rng.choice(_MODELS),
            )
        )

    def _consensus(self, game: _Game, market: str) -> tuple[float, float]:
        """Average (open line, current line) or, for moneylines, home win probability."""
        quotes = [self._lines[(game.game_id, book, market)] for book in BOOKS]
        if market == "moneyline":
            return 0.0, sum(q.prob for q in quotes) / len(quotes)
        return (
            sum(q.open_line for q in quotes) / len(quotes),
            sum(q.line for q in quotes) / len(quotes),
        )

    def _analytics(self) -> AnalyticsEvent:
        rng = self._rng
        game = rng.choice(self._games)
        spec = SPORTS[game.sport]
        home_prob = min(0.97, max(0.03, 0.5 + spec.ml_slope * game.margin))
        unit, pace = spec.pace
        movement = {}
        for market in ("spread", "total"):
            opened, current = self._consensus(game, market)
            movement[market] = {
                "open": round(opened, 2),
                "current": round(current, 2),
                "change": round(current - opened, 2),
            }
        movement["moneyline"] = {"home_implied": round(self._consensus(game, "moneyline")[1], 3)}
        elapsed = (game.start_offset + self._clock) % 10800
        return AnalyticsEvent.model_validate(
            self._base(
                kind="analytics",
                sport=game.sport,
                game_id=game.game_id,
                home_team=game.home,
                away_team=game.away,
                home_win_prob=round(home_prob, 3),
                away_win_prob=round(1 - home_prob, 3),
                expected_margin=round(game.margin, 2),
                expected_total=round(game.total, 2),
                pace=round(pace * rng.uniform(0.93, 1.07), 1),
                pace_unit=unit,
                elapsed_minutes=round(elapsed / 60, 1),
                line_movement=movement,
            )
        )

    def _arbitrage(self) -> ArbitrageEvent:
        """The best real two-book disagreement if there is one, else a plausible synthetic one."""
        rng = self._rng
        found: list[tuple[float, _Game, str, float, tuple[str, int], tuple[str, int]]] = []
        for game in self._games:
            for market in MARKETS:
                by_line: dict[float, list[tuple[str, int, int]]] = {}
                for book in BOOKS:
                    quote = self._lines[(game.game_id, book, market)]
                    by_line.setdefault(quote.line, []).append(
                        (book, *self._prices(book, quote.prob))
                    )
                for line, quotes in by_line.items():
                    first = min(quotes, key=lambda q: implied_probability(q[1]))
                    second = min(
                        (q for q in quotes if q[0] != first[0]),
                        key=lambda q: implied_probability(q[2]),
                        default=None,
                    )
                    if second is None:
                        continue
                    cost = implied_probability(first[1]) + implied_probability(second[2])
                    profit = (1 / cost - 1) * 100
                    if 0.3 <= profit <= 6.0:
                        found.append(
                            (profit, game, market, line, first[:2], (second[0], second[2]))
                        )
        if found:
            profit, game, market, line, leg_a, leg_b = max(found, key=lambda f: f[0])
            source = "live_prices"
        else:
            game, market = rng.choice(self._games), rng.choice(MARKETS)
            book_a, book_b = rng.sample(list(BOOKS), 2)
            quote = self._lines[(game.game_id, book_a, market)]
            price_a = self._prices(book_a, quote.prob)[0]
            cost = 1 / (1 + rng.uniform(0.4, 2.5) / 100)
            price_b = american(min(0.95, max(0.05, cost - implied_probability(price_a))))
            profit = (1 / (implied_probability(price_a) + implied_probability(price_b)) - 1) * 100
            line, leg_a, leg_b, source = quote.line, (book_a, price_a), (book_b, price_b), "model"
        profit = min(6.0, max(0.3, profit))
        sides = ("over", "under") if market == "total" else ("home", "away")
        teams = {
            "home": game.home,
            "away": game.away,
            "over": f"Over {line}",
            "under": f"Under {line}",
        }
        total_prob = implied_probability(leg_a[1]) + implied_probability(leg_b[1])
        legs = [
            {
                "sportsbook": book,
                "side": side,
                "selection": teams[side],
                "price": price,
                "stake_pct": round(100 * implied_probability(price) / total_prob, 2),
            }
            for side, (book, price) in zip(sides, (leg_a, leg_b), strict=True)
        ]
        return ArbitrageEvent.model_validate(
            self._base(
                kind="arbitrage",
                sport=game.sport,
                game_id=game.game_id,
                market=market,
                line=None if market == "moneyline" else line,
                home_team=game.home,
                away_team=game.away,
                profit_pct=round(profit, 2),
                sportsbooks=[leg_a[0], leg_b[0]],
                legs=legs,
                source=source,
                expires_in_s=rng.randint(5, 90),
            )
        )

    def _alert(self) -> AlertEvent:
        rng = self._rng
        game = rng.choice(self._games)
        level, template = rng.choice(_ALERTS)
        message = template.format(
            home=game.home,
            away=game.away,
            market=rng.choice(MARKETS),
            book=rng.choice(list(BOOKS)),
            player=rng.choice(game.players)[0],
            ms=rng.randint(800, 4000),
        )
        return AlertEvent.model_validate(
            self._base(
                kind="alerts", message=message, level=level, sport=game.sport, game_id=game.game_id
            )
        )

    def _portfolio(self) -> PortfolioEvent:
        """Bets a user placed get settled later; in between their value follows the prices."""
        rng = self._rng
        user = rng.choice(self.portfolio_users)
        bets = self._open_bets[user]
        action = (
            rng.choice(("bet_placed", "bet_settled", "position_update")) if bets else "bet_placed"
        )
        if action == "bet_placed":
            game, book = rng.choice(self._games), rng.choice(list(BOOKS))
            home_price, away_price = self._prices(
                book, self._lines[(game.game_id, book, "moneyline")].prob
            )
            home = rng.random() < 0.5
            bet = {
                "bet_id": f"bet-{self._seq + 1}",
                "sport": game.sport,
                "game_id": game.game_id,
                "sportsbook": book,
                "selection": game.home if home else game.away,
                "price": home_price if home else away_price,
                "stake": float(rng.choice((10, 25, 50, 100, 250))),
            }
            bets.append(bet)
            fields = {
                **bet,
                "potential_payout": round(bet["stake"] / implied_probability(bet["price"]), 2),
            }
        elif action == "bet_settled":
            bet = bets.pop(0)
            won = rng.random() < implied_probability(bet["price"])
            pnl = (
                bet["stake"] / implied_probability(bet["price"]) - bet["stake"]
                if won
                else -bet["stake"]
            )
            fields = {**bet, "result": "won" if won else "lost", "pnl": round(pnl, 2)}
        else:
            staked = sum(b["stake"] for b in bets)
            value = staked * rng.uniform(0.85, 1.2)
            fields = {
                "open_bets": len(bets),
                "staked": staked,
                "position_value": round(value, 2),
                "unrealized_pnl": round(value - staked, 2),
            }
        return PortfolioEvent.model_validate(
            self._base(kind="portfolio", user=user, action=action, **fields)
        )

    def generate(self, n: int) -> list[IngestEvent]:
        """The next `n` events; deterministic given the seed, apart from `timestamp`/`sent_at`
        (wall-clock, so latency can be measured end to end)."""
        events: list[IngestEvent] = []
        for _ in range(n):
            self._clock += 1 / self.rate
            roll = self._rng.random()
            kind = next((k for cut, k in _MIX if roll < cut), "rare")
            if kind == "odds":
                events.append(self._odds())
            elif kind == "predictions":
                events.append(self._prediction())
            elif kind == "analytics":
                events.append(self._analytics())
            elif kind == "arbitrage":
                events.append(self._arbitrage())
            else:
                events.append(self._alert() if roll < 0.97 else self._portfolio())
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

        A Redis failure drops that batch (live prices go stale anyway), is logged, and is
        followed by a growing back-off, so a Redis restart does not end the feed."""
        loop = asyncio.get_running_loop()
        stop = stop if stop is not None else asyncio.Event()
        deadline = None if duration is None else loop.time() + duration
        published, carry, backoff = 0, 0.0, 0.0
        next_tick = loop.time()
        while not stop.is_set() and (deadline is None or loop.time() < deadline):
            carry += self.rate * tick
            count, carry = int(carry), carry - int(carry)
            try:
                published += len(await ingester.publish_many(self.generate(count)))
                backoff = 0.0
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                backoff = min(5.0, max(0.25, backoff * 2))
                log.warning("simulator publish failed (%s); retrying in %.2fs", exc, backoff)
                next_tick = loop.time() + backoff
            next_tick = max(next_tick + tick, loop.time()) if backoff == 0 else next_tick
            wait = next_tick - loop.time()
            if deadline is not None:
                wait = min(wait, deadline - loop.time())
            if wait > 0:
                try:
                    await asyncio.wait_for(stop.wait(), wait)
                except TimeoutError:
                    pass
        return published
