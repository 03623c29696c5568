"""A saved The Odds API answer played back for `oddstream dev --feed-file`.

The answer is ingested once through the same mapping and board as a live poll, then, so the
dashboard stays alive, moved a little at random `moves` times a second: a price nudged a few
cents, now and then a point moved half a unit, a book pulling a market (a suspension) and
putting it back later (the resume). Each move is one more "poll" of the edited answer, so
only the change is ingested, exactly as from the provider.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import random
from pathlib import Path
from typing import Any

import orjson

from oddstream.feeds.board import Board, IngestResult
from oddstream.feeds.the_odds_api import guess_odds_format, parse_poll
from oddstream.shared.ingest import Ingester
from oddstream.shared.logs import get_logger
from oddstream.shared.odds import OddsError, from_american, from_decimal

__all__ = ["RecordedFeed"]

log = get_logger(__name__)

_PULL, _RESTORE, _POINT = 0.04, 0.35, 0.1  # chances per move (restore: when one is pulled)


class RecordedFeed:
    """One recorded answer, its board, and the random moves made to it."""

    def __init__(
        self, path: Path, *, moves: float = 2.0, seed: int | None = None, odds_format: str = ""
    ) -> None:
        """Reads and checks the file; raises ValueError saying what is wrong with it."""
        try:
            body = orjson.loads(path.read_bytes())
        except OSError as exc:
            raise ValueError(f"cannot read {path}: {exc.strerror}") from None
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"{path} is not JSON ({exc})") from None
        self.odds_format = odds_format or guess_odds_format(body)
        poll = parse_poll(body, self.odds_format)  # ValueError when not a list of events
        if not poll.quotes:
            raise ValueError(f"{path} has no h2h, spreads or totals prices to show")
        self.path, self.moves = path, moves
        self.games = len(poll.listed)
        self._body: list[Any] = copy.deepcopy(body)
        self._rng = random.Random(seed)
        self._pulled: list[tuple[dict[str, Any], dict[str, Any]]] = []  # (bookmaker, market)
        self.board = Board()

    @property
    def answer(self) -> list[Any]:
        """The answer as moved so far (the provider's shape)."""
        return self._body

    async def run(self, ingester: Ingester, stop: asyncio.Event) -> int:
        """Ingest the answer, then keep moving it until `stop`; returns events ingested."""
        ingested = (await self._ingest(ingester)).ingested
        log.info("feed.recorded.ingested", file=str(self.path), games=self.games, events=ingested)
        while not stop.is_set() and self.moves > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1 / self.moves)
            if stop.is_set():
                break
            self.move()
            try:
                ingested += (await self._ingest(ingester)).ingested
            except asyncio.CancelledError:
                raise
            except Exception:  # a Redis hiccup must not end the demo feed
                log.exception("feed.recorded.ingest_failed")
        return ingested

    async def _ingest(self, ingester: Ingester) -> IngestResult:
        poll = parse_poll(self._body, self.odds_format)
        return await self.board.ingest(poll.quotes, poll.listed, ingester, complete=poll.complete)

    # --- moves ---------------------------------------------------------------------------

    def move(self) -> None:
        """One random edit of the answer: restore a pulled market, pull one, or move a number."""
        rng = self._rng
        if self._pulled and rng.random() < _RESTORE:
            book, market = self._pulled.pop(rng.randrange(len(self._pulled)))
            book["markets"].append(market)
            return
        books = [
            book
            for event in self._body
            if isinstance(event, dict) and isinstance(event.get("bookmakers"), list)
            for book in event["bookmakers"]
            if isinstance(book, dict) and isinstance(book.get("markets"), list) and book["markets"]
        ]
        if not books:
            return
        book = rng.choice(books)
        index = rng.randrange(len(book["markets"]))
        market = book["markets"][index]
        if rng.random() < _PULL:
            self._pulled.append((book, book["markets"].pop(index)))
            return
        outcomes = [o for o in market.get("outcomes", []) if isinstance(o, dict)]
        if not outcomes:
            return
        if rng.random() < _POINT and all("point" in o for o in outcomes):
            step = rng.choice((-0.5, 0.5))
            for outcome in outcomes:  # totals move together; spreads are mirror images
                sign = -1 if market.get("key") == "spreads" and outcome["point"] < 0 else 1
                outcome["point"] = outcome["point"] + sign * step
            return
        outcome = rng.choice(outcomes)
        outcome["price"] = self._nudged(outcome["price"])

    def _nudged(self, price: Any) -> Any:
        """The price with its payout moved by up to 3% either way, in the answer's format."""
        try:
            if self.odds_format == "american":
                profit = float(from_american(int(price)).profit)
            else:
                profit = float(from_decimal(price).profit)
        except (OddsError, TypeError, ValueError):
            return price
        profit = min(max(profit * (1 + self._rng.uniform(-0.03, 0.03)), 0.01), 100.0)
        decimal = round(1 + profit, 2)
        return from_decimal(decimal).american if self.odds_format == "american" else decimal
