"""What a feed ingested last, per game, book and market, and what a new poll changes of it.

A provider answers every poll with its whole board; we ingest only what changed since the
last poll we ingested: a price or point that moved, a book or market that appeared, a market
a book pulled (a suspension) and one that came back (the resume, with its prices). The board
advances only for the events that were ingested, so a poll that fails, or an event that does
not validate, loses nothing and repeats nothing: the next poll is compared with what
subscribers actually have.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from oddstream.shared.events import IngestEvent
from oddstream.shared.ingest import EventError, Ingester, parse_events
from oddstream.shared.logs import get_logger
from oddstream.shared.odds import OddsError, from_american, from_decimal

__all__ = ["Board", "BoardChange", "IngestResult", "Quote", "QuoteKey"]

log = get_logger(__name__)

#: (game_id, sportsbook, market): one latest value, as on the ingest side.
QuoteKey = tuple[str, str, str]


@dataclass(frozen=True, slots=True)
class Quote:
    """One book's market of one game as the provider showed it, in our names.

    `prices` maps a side (home, away, over, under) to the provider's price in `price_format`
    (`american` or `decimal`); `fields` are carried along (teams, start time, the provider's
    ids and update time) but are not compared: only prices and the line make a change."""

    sport: str
    game_id: str
    sportsbook: str
    market: str
    prices: Mapping[str, int | float]
    line: float | None
    price_format: str = "american"
    fields: Mapping[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> QuoteKey:
        return (self.game_id, self.sportsbook, self.market)

    def same_numbers(self, other: Quote) -> bool:
        return dict(self.prices) == dict(other.prices) and self.line == other.line

    def event(self, **extra: Any) -> dict[str, Any]:
        """The odds event (ingest JSON) of this quote."""
        body: dict[str, Any] = {
            **self.fields,
            "kind": "odds",
            "sport": self.sport,
            "game_id": self.game_id,
            "sportsbook": self.sportsbook,
            "market": self.market,
            "prices": {side: {self.price_format: p} for side, p in self.prices.items()},
        }
        if self.line is not None:
            body["line"] = self.line
        return body | extra


def _profit(value: int | float, price_format: str) -> float:
    try:
        price = from_american(int(value)) if price_format == "american" else from_decimal(value)
    except (OddsError, ValueError, TypeError):
        return float("nan")
    return float(price.profit)


def _moved(old: Quote, new: Quote) -> dict[str, Any]:
    """`previous` (American fields and line) and `movement` ("up": a better payout), as the
    simulator writes them, so the dashboard flashes feed prices the same way."""
    previous: dict[str, Any] = {}
    movement: dict[str, str] = {}
    for side, price in new.prices.items():
        before = old.prices.get(side)
        if before is None:
            continue
        if old.price_format == "american":
            previous[f"{side}_price"] = before
        then, now = _profit(before, old.price_format), _profit(price, new.price_format)
        movement[f"{side}_price"] = "up" if now > then else "down" if now < then else "flat"
    if old.line is not None:
        previous["line"] = old.line
    return {"previous": previous, "movement": movement}


@dataclass(frozen=True, slots=True)
class BoardChange:
    """One event to ingest and what the board holds for its key once it is ingested."""

    key: QuoteKey
    body: dict[str, Any]
    quote: Quote
    suspended: bool


@dataclass
class IngestResult:
    """What one poll did: events ingested (by kind of change) and events that did not validate."""

    updates: int = 0
    suspensions: int = 0
    resumes: int = 0
    invalid: int = 0

    @property
    def ingested(self) -> int:
        return self.updates + self.suspensions + self.resumes


class Board:
    """The last ingested state of every quote a feed has seen. Not thread-safe; one per feed.

    Guarantee: `ingest` advances the board only for events that were validated and appended
    to the ingest streams, so a failed or partial poll is simply compared again next time."""

    def __init__(self) -> None:
        self._quotes: dict[QuoteKey, Quote] = {}
        self._suspended: set[QuoteKey] = set()

    def __len__(self) -> int:
        return len(self._quotes)

    def suspended(self, key: QuoteKey) -> bool:
        return key in self._suspended

    def changes(
        self, quotes: Iterable[Quote], listed: set[str], *, complete: bool
    ) -> list[BoardChange]:
        """What a poll changes. `listed`: the games the poll showed in full (parsed); a
        market the board has for a listed game that the poll lacks was pulled by its book.
        `complete`: every game of the poll parsed, so a game it does not list is gone
        (started, finished or taken off) and its open markets are suspended too; an
        incomplete poll says nothing about the games it lacks (one may be the malformed)."""
        changes: list[BoardChange] = []
        seen: set[QuoteKey] = set()
        for quote in quotes:
            key = quote.key
            seen.add(key)
            old = self._quotes.get(key)
            if key in self._suspended:
                body = quote.event(status="open")
            elif old is None:
                body = quote.event()
            elif not old.same_numbers(quote):
                body = quote.event(**_moved(old, quote))
            else:
                continue
            changes.append(BoardChange(key, body, quote, suspended=False))
        for key, old in self._quotes.items():
            if key in seen or key in self._suspended:
                continue
            if key[0] in listed:
                reason = "pulled"
            elif complete:
                reason = "game_removed"
            else:
                continue
            body = old.event(status="suspended", reason=reason)
            changes.append(BoardChange(key, body, old, suspended=True))
        return changes

    def apply(self, change: BoardChange) -> None:
        self._quotes[change.key] = change.quote
        if change.suspended:
            self._suspended.add(change.key)
        else:
            self._suspended.discard(change.key)

    async def ingest(
        self, quotes: Iterable[Quote], listed: set[str], ingester: Ingester, *, complete: bool
    ) -> IngestResult:
        """Validate and ingest what changed, then advance the board by exactly that. An event
        that does not validate is logged and left out (its key stays as it was); a failure to
        write (Redis) raises and advances nothing."""
        result = IngestResult()
        good: list[tuple[BoardChange, list[IngestEvent]]] = []
        for change in self.changes(quotes, listed, complete=complete):
            try:
                events = parse_events(change.body)
            except EventError as exc:
                result.invalid += 1
                game, book, market = change.key
                log.warning(
                    "feed.event.invalid", game=game, book=book, market=market, error=str(exc)
                )
                continue
            good.append((change, events))
        if good:
            await ingester.publish_many([e for _, events in good for e in events])
        for change, _ in good:
            was_suspended = self.suspended(change.key)
            self.apply(change)
            if change.suspended:
                result.suspensions += 1
            elif was_suspended:
                result.resumes += 1
            else:
                result.updates += 1
        return result
