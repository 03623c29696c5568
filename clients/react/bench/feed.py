"""Benchmark feeder: odds for 200 cells (40 games x 5 sportsbooks, moneyline) at an even rate.

Run by bench/renders.mjs with the Python that runs `oddstream`, against the Redis of the
`oddstream dev` it started (REDIS_URL). Events go through the real ingest path (Ingester), so
the page receives them from a worker and the gateway like any other odds. Each tick publishes
rate x tick events, spread evenly over the cells, with each price taking a random step.

    python bench/feed.py --rate 1000 --duration 30
"""

from __future__ import annotations

import argparse
import asyncio
import random
import signal
import time

from oddstream.shared.ingest import Ingester, parse_event
from oddstream.shared.keys import Keys
from oddstream.shared.redis import create_redis
from oddstream.shared.settings import Settings

BOOKS = ("DraftKings", "FanDuel", "BetMGM", "Caesars", "PointsBet")
GAMES = 40


def american(price: float) -> int:
    value = round(price)
    return value if abs(value) >= 100 else (100 if value >= 0 else -100)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--tick", type=float, default=0.005)
    args = parser.parse_args()
    settings = Settings()
    keys = Keys.of(settings) if hasattr(Keys, "of") else Keys(settings.redis_prefix)
    redis = create_redis(settings.effective_redis_url)
    ingester = Ingester(redis, keys)
    rng = random.Random(7)
    cells = [(f"bench-{g}", book) for g in range(GAMES) for book in BOOKS]
    prices = {cell: rng.uniform(-160, 160) for cell in cells}
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    started = time.monotonic()
    next_tick, carry, sent, turn = started, 0.0, 0, 0
    try:
        while not stop.is_set() and time.monotonic() - started < args.duration:
            carry += args.rate * args.tick
            count, carry = int(carry), carry - int(carry)
            events = []
            for _ in range(count):
                cell = cells[turn % len(cells)]
                turn += 1
                prices[cell] += rng.choice((-5, 5))
                home = american(prices[cell])
                events.append(
                    parse_event(
                        {
                            "kind": "odds",
                            "sport": "NHL",
                            "game_id": cell[0],
                            "sportsbook": cell[1],
                            "market": "moneyline",
                            "home_team": f"Home {cell[0]}",
                            "away_team": f"Away {cell[0]}",
                            "home_price": home,
                            "away_price": -home,
                            "sent_at": time.time(),
                        }
                    )
                )
            if events:
                sent += len(await ingester.publish_many(events))
            next_tick += args.tick
            await asyncio.sleep(max(0.0, next_tick - time.monotonic()))
    finally:
        await redis.aclose()
    elapsed = time.monotonic() - started
    print(f"feed: {sent} odds events in {elapsed:.1f} s ({sent / elapsed:.0f}/s)", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
