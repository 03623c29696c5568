"""Odds feeds from outside providers: poll, map to our events, ingest only what changed.

`the_odds_api` (The Odds API v4, live or from a saved answer), `board` (what was ingested
last, and the changes of a poll against it), `recorded` (a saved answer replayed with small
random moves, for `oddstream dev --feed-file`).
"""

from oddstream.feeds.board import Board, BoardChange, IngestResult, Quote
from oddstream.feeds.the_odds_api import FeedOptions, FeedStopped, parse_poll, run_feed

__all__ = [
    "Board",
    "BoardChange",
    "FeedOptions",
    "FeedStopped",
    "IngestResult",
    "Quote",
    "parse_poll",
    "run_feed",
]
