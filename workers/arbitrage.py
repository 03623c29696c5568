"""Arbitrage detection: the best prices across sportsbooks that together guarantee a profit.

The rule (`find`): per game, market and line (for spreads and totals only quotes on the same
line cover complementary outcomes), take the best price of each side across the books that
offer one (a suspended market offers none). Each price implies a probability, 1 / its decimal
odds; when the two best imply less than 1 together, staking each side in proportion to its
implied probability returns the same on every outcome, more than was staked:
`profit_pct = (1 / sum - 1) * 100`. Arithmetic is exact (`fractions.Fraction`, from
`shared.odds`), so a sum of exactly 1 is no arbitrage and the smallest positive profit is one,
with no float rounding either way. The two legs are always at two different books: when one
book has the best price on both sides, the better of the two pairings with the runner-up of
one side is taken (one book's own prices never imply a sure profit once it has its margin).

`Detector` (pure, no I/O) keeps, per game, every book's latest quote per market, and per
opportunity what was last published, and turns each odds event into transitions:

- **open** when an opportunity appears (profit > 0);
- **updated** when its legs change book, or its profit moves by `MIN_CHANGE_PCT` (0.01)
  percentage points or more from the last published version (smaller moves are not worth a
  frame: the published stakes are then off by less than that);
- **closed** when it disappears (prices moved, a leg's book suspended the market or moved its
  line), or after its game had no odds for the idle time given to `Detector.expire`.

Each opportunity has a stable `arbitrage_id`, `<game>|<market>[|<line>]`, so clients replace an
open one by its updates and drop it on its close. Costs per odds event are O(books) for its
game and market only. `ArbitrageStage` is the worker stage around it: it feeds committed odds
to the detector, publishes the transitions into the game's ingest partition together with the
record of what is published, and rebuilds a partition's state from Redis when it takes the
partition over (see its docstring for what is at-least-once).
"""

from __future__ import annotations

import heapq
import math
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from functools import lru_cache
from typing import Any, Final, Literal

import orjson
from pydantic import ValidationError
from redis.asyncio import Redis

from oddstream.shared.events import ArbitrageEvent, OddsEvent, partition_of
from oddstream.shared.ingest import Ingester, entry_fields
from oddstream.shared.keys import Keys
from oddstream.shared.logs import get_logger
from oddstream.shared.odds import OddsError, from_american
from oddstream.shared.streams import event_id

__all__ = [
    "MAX_PROFIT_PCT",
    "MIN_CHANGE_PCT",
    "RECORD_PREFIX",
    "SIDES",
    "ArbitrageStage",
    "Detector",
    "Leg",
    "Opportunity",
    "Quote",
    "Transition",
    "arbitrage_id",
    "find",
    "implied_probability",
    "quote_of",
]

log = get_logger(__name__)

#: Per market, its two sides: (side name, the odds event field with its American price).
SIDES: Final[Mapping[str, tuple[tuple[str, str], tuple[str, str]]]] = {
    "moneyline": (("home", "home_price"), ("away", "away_price")),
    "spread": (("home", "home_price"), ("away", "away_price")),
    "total": (("over", "over_price"), ("under", "under_price")),
}
#: Percentage points the profit must move, legs unchanged, for an update to be published.
MIN_CHANGE_PCT: Final = 0.01
#: `ArbitrageEvent.profit_pct`'s bound: a larger "profit" is a broken price, not a bet.
MAX_PROFIT_PCT: Final = 1000
#: Field prefix, in a game's latest-values hash, of the record of a published opportunity.
RECORD_PREFIX: Final = b"arb|"

Status = Literal["open", "updated", "closed"]


@lru_cache(maxsize=8192, typed=True)  # typed: 110.0 is not a price, even once 110 is cached
def implied_probability(american: int) -> Fraction:
    """1 / decimal odds of an American price, exactly: -110 -> 11/21, +150 -> 2/5.
    Raises `shared.odds.OddsError` for a value that is not a price."""
    return 1 / (1 + from_american(american).profit)


@lru_cache(maxsize=8192)
def _implied_float(american: int) -> float:
    return float(implied_probability(american))


def _rank(american: int) -> int:
    """Orders prices by payout with integers: American prices already are in that order,
    except that -100 and +100 are both evens."""
    return 100 if american == -100 else american


#: How far below 1 a float sum of implied probabilities may fall while the exact sum is not
#: (each float is within 1e-16 of its exact value): only such sums are checked exactly.
_FLOAT_SLACK = 1e-9


def _price(value: Any) -> int | None:
    """An American price from an odds payload, or None when absent or not a price."""
    try:
        _implied_float(value)  # validates, memoized: prices repeat all day
    except (OddsError, TypeError):  # TypeError: unhashable junk in a feed's payload
        return None
    return int(value)


def _line(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def arbitrage_id(game_id: str, market: str, line: float | None) -> str:
    """The stable id of one opportunity: `<game>|<market>`, plus `|<line>` (the home or over
    line, e.g. `-1.5`, `8.5`) for spreads and totals."""
    return f"{game_id}|{market}" if line is None else f"{game_id}|{market}|{line:g}"


@dataclass(frozen=True, slots=True)
class Quote:
    """One book's offer on one market: its line (None for moneyline) and each side's American
    price in `SIDES` order (None: no price on that side)."""

    line: float | None
    prices: tuple[int | None, int | None]


def quote_of(event: OddsEvent) -> Quote | None:
    """What an odds event offers, or None when it offers nothing: its status is "suspended",
    it has no valid price on either side, or (spread, total) no numeric line."""
    if event.status == "suspended":
        return None
    first, second = SIDES[event.market]
    payload = event.model_extra or {}  # a dict lookup: getattr on a model's extras is slow
    prices = (_price(payload.get(first[1])), _price(payload.get(second[1])))
    if prices == (None, None):
        return None
    line = None
    if event.market != "moneyline":
        line = _line(payload.get("line"))
        if line is None:
            return None
    return Quote(line, prices)


@dataclass(frozen=True, slots=True)
class Leg:
    """One bet of an opportunity: a side at a book, its American price and its own line
    (a spread's away side is at minus the home line; None for moneyline)."""

    sportsbook: str
    side: str
    price: int
    line: float | None

    @property
    def implied(self) -> Fraction:
        return implied_probability(self.price)


@dataclass(frozen=True, slots=True)
class Opportunity:
    """Legs whose implied probabilities sum below 1: every outcome pays more than the stakes."""

    arbitrage_id: str
    market: str
    line: float | None
    legs: tuple[Leg, ...]

    @property
    def cost(self) -> Fraction:
        """The implied probabilities' sum: what 1 unit of payout costs (< 1)."""
        return sum((leg.implied for leg in self.legs), Fraction(0))

    @property
    def profit(self) -> Fraction:
        """The sure profit in percent of the total stake, exactly."""
        return 100 * (1 / self.cost - 1)

    @property
    def profit_pct(self) -> float:
        return float(self.profit)

    def stakes(self, total: int | Fraction = 100) -> tuple[Fraction, ...]:
        """Each leg's stake out of `total`, proportional to its implied probability, so each
        leg pays `payout(total)` if it wins."""
        cost = self.cost
        return tuple(total * leg.implied / cost for leg in self.legs)

    def payout(self, total: int | Fraction = 100) -> Fraction:
        """What `total` staked by `stakes(total)` returns, whichever side wins."""
        return total / self.cost

    @property
    def books(self) -> tuple[str, ...]:
        return tuple(leg.sportsbook for leg in self.legs)


def _leg_line(market: str, side_index: int, line: float | None) -> float | None:
    if market == "spread" and line is not None and side_index == 1:
        return -line
    return line


def find(
    game_id: str,
    market: str,
    line: float | None,
    quotes: Mapping[str, Quote],
    prefer: Mapping[str, str] | None = None,
) -> Opportunity | None:
    """The arbitrage among the books' quotes on `line`, or None if there is none.

    Quotes on other lines are ignored. Ties between books on the best price go to the book in
    `prefer` (side -> book: the legs published last, so equal prices do not flap the legs),
    then to the book name. O(books)."""
    prefer = prefer or {}
    sides = SIDES[market]
    ranked: list[list[tuple[int, bool, str, int]]] = []  # per side, its best two offers
    for index, (side, _) in enumerate(sides):
        offers = [
            (-_rank(price), book != prefer.get(side), book, price)
            for book, quote in quotes.items()
            if quote.line == line and (price := quote.prices[index]) is not None
        ]
        if not offers:
            return None
        ranked.append(heapq.nsmallest(2, offers))
    (a, *a_rest), (b, *b_rest) = ranked
    pair = (a, b)
    if a[2] == b[2]:  # one book best on both sides: pair each best with the other's runner-up
        pairs = [(a, b_rest[0])] if b_rest else []
        pairs += [(a_rest[0], b)] if a_rest else []
        if not pairs:
            return None
        pair = min(pairs, key=lambda p: implied_probability(p[0][3]) + implied_probability(p[1][3]))
    first, second = pair[0][3], pair[1][3]
    # Almost every group is far from an arbitrage: floats say so without exact arithmetic.
    if _implied_float(first) + _implied_float(second) >= 1 + _FLOAT_SLACK:
        return None
    if implied_probability(first) + implied_probability(second) >= 1:
        return None
    legs = tuple(
        Leg(book, side, price, _leg_line(market, index, line))
        for index, ((side, _), (_, _, book, price)) in enumerate(zip(sides, pair, strict=True))
    )
    opportunity = Opportunity(arbitrage_id(game_id, market, line), market, line, legs)
    return opportunity if opportunity.profit <= MAX_PROFIT_PCT else None


@dataclass(frozen=True, slots=True)
class Transition:
    """One published change of an opportunity: the event to publish and the record to keep
    of it in the game's latest values (None: closed, delete the record)."""

    event: ArbitrageEvent
    record: bytes | None

    @property
    def arbitrage_id(self) -> str:
        return str(_extra(self.event, "arbitrage_id"))

    @property
    def status(self) -> Status:
        status: Status = _extra(self.event, "status")
        return status

    @property
    def field(self) -> bytes:
        return RECORD_PREFIX + self.arbitrage_id.encode()


def _extra(event: ArbitrageEvent, name: str) -> Any:
    """A payload field of an event (the model keeps them as extras)."""
    return (event.model_extra or {}).get(name)


@dataclass
class _Published:
    """The last published version of an open opportunity, the highest profit any version was
    published with, and every book any version had (a close is routed by those two, so it
    reaches every room that received some version)."""

    opportunity: Opportunity
    peak_pct: float
    books: tuple[str, ...]


@dataclass
class _Game:
    sport: str
    home: str | None = None
    away: str | None = None
    markets: dict[str, dict[str, Quote]] = field(default_factory=dict)  # market -> book -> quote
    #: (market, line) -> the opportunity's last published version, while it is open
    published: dict[tuple[str, float | None], _Published] = field(default_factory=dict)
    seen: float = 0.0  # clock of its last odds event


def _team(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


class Detector:
    """Odds in, arbitrage transitions out; one instance per worker, fed each game's odds events
    in ingest order (a game belongs to one partition, owned by one worker at a time)."""

    def __init__(
        self,
        *,
        min_change_pct: float = MIN_CHANGE_PCT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.min_change_pct = min_change_pct
        self._clock = clock
        self._games: dict[str, _Game] = {}

    @property
    def games(self) -> list[str]:
        return list(self._games)

    def open_of(self, game_id: str) -> list[Opportunity]:
        """The game's opportunities as last published (open or updated, not closed)."""
        game = self._games.get(game_id)
        return [p.opportunity for p in game.published.values()] if game else []

    def observe(self, event: OddsEvent, cause: str | None = None) -> list[Transition]:
        """Apply one odds event; returns the transitions it causes (`cause`: its event id,
        carried as `triggered_by`). A book's quote replaces its previous one on that market,
        so a book that moves its line leaves the old line's group and joins the new one."""
        game = self._game(event.game_id, event.sport)
        if game.home is None or game.away is None:
            payload = event.model_extra or {}
            game.home = _team(payload.get("home_team")) or game.home
            game.away = _team(payload.get("away_team")) or game.away
        game.seen = self._clock()
        quotes = game.markets.setdefault(event.market, {})
        before = quotes.get(event.sportsbook)
        after = quote_of(event)
        if after == before:
            # The same offer again (a repeated tick): the groups it is in were settled when
            # it was last set, and settling is a function of the quotes: nothing can change.
            return []
        if after is None:
            quotes.pop(event.sportsbook, None)
        else:
            quotes[event.sportsbook] = after
        lines = [q.line for q in (before, after) if q is not None]
        transitions = []
        for line in dict.fromkeys(lines):  # the old line first, then the new one
            transition = self._settle(event.game_id, game, event.market, line, cause)
            if transition is not None:
                transitions.append(transition)
        return transitions

    def restore(
        self, game_id: str, odds: Iterable[OddsEvent], records: Iterable[bytes]
    ) -> list[Transition]:
        """Rebuild one game from its latest odds (one per book and market) and the records of
        what was published; returns the transitions that make the published state match the
        prices: none if the previous owner published everything before it stopped."""
        self._games.pop(game_id, None)
        game: _Game | None = None
        for event in odds:
            game = self._game(game_id, event.sport)
            game.home = _team(getattr(event, "home_team", None)) or game.home
            game.away = _team(getattr(event, "away_team", None)) or game.away
            quote = quote_of(event)
            if quote is not None:
                game.markets.setdefault(event.market, {})[event.sportsbook] = quote
        for record in records:
            parsed = _parse_record(record)
            if parsed is None:
                continue
            sport, home, away, published = parsed
            game = self._game(game_id, sport)
            game.home, game.away = game.home or home, game.away or away
            opportunity = published.opportunity
            game.published[(opportunity.market, opportunity.line)] = published
        if game is None:
            return []
        game.seen = self._clock()
        groups = {(m, q.line) for m, quotes in game.markets.items() for q in quotes.values()}
        groups |= {(p.opportunity.market, p.opportunity.line) for p in game.published.values()}
        transitions = []
        for market, line in sorted(groups, key=lambda g: (g[0], g[1] is None, g[1] or 0.0)):
            transition = self._settle(game_id, game, market, line, None)
            if transition is not None:
                transitions.append(transition)
        return transitions

    def forget(self, game_ids: Iterable[str]) -> None:
        """Drop games (their partition moved to another worker, which rebuilds them)."""
        for game_id in list(game_ids):
            self._games.pop(game_id, None)

    def expire(self, idle: float) -> list[Transition]:
        """Close the opportunities of games with no odds for `idle` seconds and forget those
        games: their prices are stale (the latest values expire after the same time)."""
        cutoff = self._clock() - idle
        transitions = []
        for game_id, game in list(self._games.items()):
            if game.seen > cutoff:
                continue
            for published in game.published.values():
                transitions.append(self._transition(game_id, game, published, "closed", None))
            del self._games[game_id]
        return transitions

    # --- internals ---------------------------------------------------------------------------

    def _game(self, game_id: str, sport: str) -> _Game:
        game = self._games.get(game_id)
        if game is None:
            game = self._games[game_id] = _Game(sport)
        return game

    def _settle(
        self, game_id: str, game: _Game, market: str, line: float | None, cause: str | None
    ) -> Transition | None:
        """Re-evaluate one (market, line) group against what was published for it."""
        key = (market, line)
        before = game.published.get(key)
        prefer = {leg.side: leg.sportsbook for leg in before.opportunity.legs} if before else {}
        now = find(game_id, market, line, game.markets.get(market, {}), prefer)
        if now is None:
            if before is None:
                return None
            del game.published[key]
            return self._transition(game_id, game, before, "closed", cause)
        if before is None:
            published = game.published[key] = _Published(now, now.profit_pct, now.books)
            return self._transition(game_id, game, published, "open", cause)
        old = before.opportunity
        same_legs = [(g.sportsbook, g.side) for g in old.legs] == [
            (g.sportsbook, g.side) for g in now.legs
        ]
        if same_legs and abs(now.profit_pct - old.profit_pct) < self.min_change_pct:
            return None
        books = before.books + tuple(b for b in now.books if b not in before.books)
        published = _Published(now, max(before.peak_pct, now.profit_pct), books)
        game.published[key] = published
        return self._transition(game_id, game, published, "updated", cause)

    @staticmethod
    def _transition(
        game_id: str, game: _Game, published: _Published, status: Status, cause: str | None
    ) -> Transition:
        event = _event(game_id, game, published, status, cause)
        if status == "closed":
            return Transition(event, None)
        record = orjson.dumps(
            {
                "data": event.model_dump(mode="json"),
                "peak_profit_pct": published.peak_pct,
                "sportsbooks_seen": list(published.books),
            }
        )
        return Transition(event, record)


def _selection(market: str, game: _Game, leg: Leg) -> str:
    if market == "total":
        return f"{leg.side.capitalize()} {leg.line:g}"
    team = (game.home if leg.side == "home" else game.away) or leg.side
    return team if leg.line is None else f"{team} {leg.line:+g}"


def _event(
    game_id: str, game: _Game, published: _Published, status: Status, cause: str | None
) -> ArbitrageEvent:
    """The arbitrage event of one transition. A close carries the last published legs, and
    for routing the highest profit and every book any version had (`last_profit_pct` is the
    last version's profit)."""
    opportunity = published.opportunity
    profit = opportunity.profit_pct
    legs = [
        {
            "sportsbook": leg.sportsbook,
            "side": leg.side,
            "selection": _selection(opportunity.market, game, leg),
            "price": leg.price,
            "decimal_price": from_american(leg.price).decimal,
            "fractional_price": from_american(leg.price).fractional,
            "line": leg.line,
            "stake_pct": round(float(stake), 2),
        }
        for leg, stake in zip(opportunity.legs, opportunity.stakes(), strict=True)
    ]
    body: dict[str, Any] = {
        "kind": "arbitrage",
        "sport": game.sport,
        "game_id": game_id,
        "arbitrage_id": opportunity.arbitrage_id,
        "status": status,
        "market": opportunity.market,
        "line": opportunity.line,
        "profit_pct": profit,
        "sportsbooks": list(opportunity.books),
        "legs": legs,
        "payout_per_100": round(float(opportunity.payout()), 2),
        "home_team": game.home,
        "away_team": game.away,
        "triggered_by": cause,
    }
    if status == "closed":
        body |= {
            "profit_pct": published.peak_pct,
            "last_profit_pct": profit,
            "sportsbooks": list(published.books),
        }
    return ArbitrageEvent.model_validate(body)


def _parse_record(record: bytes) -> tuple[str, str | None, str | None, _Published] | None:
    """(sport, home, away, published version) of a record, or None if it is unreadable."""
    try:
        body = orjson.loads(record)
        event = ArbitrageEvent.model_validate(body["data"])
        data = body["data"]
        market = data["market"]
        line = None if data["line"] is None else float(data["line"])
        legs = []
        for index, ((side, _), leg) in enumerate(zip(SIDES[market], data["legs"], strict=True)):
            price = _price(leg["price"])
            if price is None or leg["side"] != side:
                raise ValueError(f"bad leg {leg!r}")
            legs.append(Leg(str(leg["sportsbook"]), side, price, _leg_line(market, index, line)))
        opportunity = Opportunity(arbitrage_id(event.game_id, market, line), market, line,
                                  tuple(legs))  # fmt: skip
        books = tuple(str(b) for b in body["sportsbooks_seen"])
        published = _Published(opportunity, float(body["peak_profit_pct"]), books)
    except (orjson.JSONDecodeError, ValidationError, KeyError, TypeError, ValueError) as exc:
        log.warning("arbitrage.record.unreadable", error=repr(exc))
        return None
    return event.sport, data.get("home_team"), data.get("away_team"), published


def _latest_odds(value: bytes) -> OddsEvent | None:
    """The odds event of a latest value (`... ,"data": <event>}`), or None if it is another
    kind or unreadable."""
    try:
        data = orjson.loads(value)["data"]
        if data.get("kind") != "odds":
            return None
        return OddsEvent.model_validate(data)
    except (orjson.JSONDecodeError, ValidationError, KeyError, TypeError, AttributeError):
        return None


class ArbitrageStage:
    """The worker's arbitrage stage: committed odds in, arbitrage events out through ingest.

    Guarantees:
    - the detector sees the odds events of its partitions once their commit has landed, in
      ingest order per game (a partition's reads commit in order), and nothing of a read
      whose commit another worker fenced off;
    - each read's transitions go out in one `MULTI`: every arbitrage event appended to its
      game's ingest partition (so workers deliver it like any event, histories and resume
      included) together with the record of the published version in the game's latest
      values (`RECORD_PREFIX` + id; deleted on close). A crash, a lost connection or a
      refused command (the `MULTI` then aborts whole) leaves both written or neither;
    - on taking a partition over, each of its games is rebuilt from the latest values, which
      hold exactly what the committed cursor covers: its prices, and the records of what was
      published. The difference is published at once, so an open opportunity is neither
      reopened nor forgotten, and a transition whose publish a dead worker never made (it
      died between its commit and its publish, or Redis failed in between) is published by
      the next owner: **transitions are at-least-once**. A duplicate (the same status and
      legs again) is possible only when a worker loses its lease between its commit landing
      and its publish, and the new owner rebuilds in that gap; clients replace by
      `arbitrage_id`, so it is harmless.
    """

    #: Seconds between checks for idle games.
    EXPIRY_INTERVAL: Final = 60.0

    def __init__(
        self, redis: Redis, keys: Keys, *, idle: float, detector: Detector | None = None
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.ingester = Ingester(redis, keys)
        self.detector = detector or Detector()
        self.published = 0
        self._idle = idle
        self._ttl_ms = max(1, int(idle * 1000))
        self._next_expiry = time.monotonic() + self.EXPIRY_INTERVAL

    def partition_of_game(self, game_id: str) -> int:
        """The ingest partition of a game's events (`shared.events.partition_of`'s rule)."""
        probe = OddsEvent.model_construct(
            kind="odds", sport="", game_id=game_id, sportsbook="", market="moneyline"
        )
        return partition_of(probe, self.keys.partitions)

    async def committed(self, odds: Iterable[tuple[int, bytes, OddsEvent]]) -> int:
        """Feed (partition, entry id, event) of committed odds, in order; publish what they
        changed. Returns the number of arbitrage events published. Raises a Redis error (then
        nothing of it was published; the worker re-takes its partitions, which rebuilds)."""
        transitions: list[Transition] = []
        for partition, entry_id, event in odds:
            cause = event_id(partition, entry_id).decode()
            try:
                transitions += self.detector.observe(event, cause)
            except Exception:
                # A bug on one event must not stall the worker (its delivery is done already).
                log.exception("arbitrage.event.failed", event_id=cause)
        if time.monotonic() >= self._next_expiry:
            self._next_expiry = time.monotonic() + self.EXPIRY_INTERVAL
            transitions += self.detector.expire(self._idle)
        return await self._publish(transitions)

    async def take_over(self, partitions: Collection[int]) -> int:
        """Rebuild the games of `partitions` from Redis and publish the difference between
        their prices and what was published. Call before reading a partition just taken."""
        wanted = set(partitions)
        if not wanted:
            return 0
        self.detector.forget(g for g in self.detector.games if self.partition_of_game(g) in wanted)
        k = self.keys
        names: set[bytes] = set()
        for shard in sorted({k.shard_of(p) for p in wanted}):  # a shard's index is in its slot
            sports: Any = await self.redis.smembers(k.sports(shard))
            if sports:
                union: Any = await self.redis.sunion([k.games(shard, s.decode()) for s in sports])
                names |= union
        games = sorted(
            g for g in (n.decode() for n in names) if self.partition_of_game(g) in wanted
        )
        if not games:
            return 0
        async with self.redis.pipeline(transaction=False) as pipe:
            for game in games:
                pipe.hgetall(self.keys.latest(game))
            values: list[dict[bytes, bytes]] = await pipe.execute()
        transitions: list[Transition] = []
        for game, fields in zip(games, values, strict=True):
            records = [v for k, v in fields.items() if k.startswith(RECORD_PREFIX)]
            odds = [
                event
                for k, v in fields.items()
                if not k.startswith(RECORD_PREFIX) and (event := _latest_odds(v)) is not None
            ]
            try:
                transitions += self.detector.restore(game, odds, records)
            except Exception:
                log.exception("arbitrage.restore.failed", game=game)
        return await self._publish(transitions)

    def keep_only(self, partitions: Collection[int]) -> None:
        """Forget the games of partitions this worker no longer owns."""
        owned = set(partitions)
        self.detector.forget(
            g for g in self.detector.games if self.partition_of_game(g) not in owned
        )

    async def _publish(self, transitions: Sequence[Transition]) -> int:
        if not transitions:
            return 0
        # One MULTI per shard (a game's ingest partition and latest values share its slot),
        # each game's transitions in order.
        by_shard: dict[int, list[Transition]] = {}
        for transition in transitions:
            partition = self.ingester.partition_of(transition.event)
            by_shard.setdefault(self.keys.shard_of(partition), []).append(transition)
        for shard_transitions in by_shard.values():
            async with self.redis.pipeline(transaction=True) as pipe:
                for transition in shard_transitions:
                    event = transition.event
                    stream = self.keys.ingest(self.ingester.partition_of(event))
                    pipe.xadd(stream, entry_fields(event))
                    latest = self.keys.latest(event.game_id)
                    if transition.record is None:
                        pipe.hdel(latest, transition.field)
                    else:
                        pipe.hset(latest, transition.field, transition.record)
                        pipe.pexpire(latest, self._ttl_ms)
                await pipe.execute()
        self.published += len(transitions)
        for transition in transitions:
            log.debug(
                "arbitrage.published",
                status=transition.status,
                arbitrage_id=transition.arbitrage_id,
                profit_pct=transition.event.profit_pct,
            )
        return len(transitions)
