"""End to end through real Redis: ingest -> worker -> gateway inbox -> WebSocket client."""

from __future__ import annotations

from redis.asyncio import Redis

from oddstream.shared.ingest import Ingester, parse_event
from oddstream.shared.keys import Keys
from oddstream.shared.settings import Settings
from tests.harness import Client, running_gateway, running_worker, wait_until, workers_synced


def odds(
    game_id: str = "G1", sport: str = "MLB", book: str = "DraftKings", price: int = -110
) -> str:
    return (
        f'{{"kind":"odds","sport":"{sport}","game_id":"{game_id}","sportsbook":"{book}",'
        f'"market":"moneyline","home_price":{price},"away_price":100}}'
    )


async def test_odds_event_reaches_subscriber(
    settings: Settings, redis_client: Redis, keys: Keys
) -> None:
    async with running_gateway(settings) as gw, running_worker(settings):
        client = await Client.connect(f"{gw.ws}/ws/v2/connect")
        try:
            confirmed = await client.subscribe("odds_updates", sport="mlb")
            assert confirmed["data"]["filters"] == {"sport": ["MLB"]}
            await wait_until(lambda: workers_synced(redis_client, keys), message="worker index")
            ingester = Ingester(redis_client, keys)
            await ingester.publish(parse_event(odds("G1", "NBA")))  # other sport: not delivered
            event_id = await ingester.publish(parse_event(odds("G1", "MLB", price=-125)))
            update = await client.next_of("odds_update")
            assert update["event_id"] == event_id.decode()
            assert update["data"]["home_price"] == -125
            assert update["rooms"] == [confirmed["data"]["room"]]
            assert len(client.of("odds_update")) == 1
        finally:
            await client.close()


async def test_a_large_backlog_is_committed_and_delivered_once_in_order(
    settings: Settings, redis_client: Redis, keys: Keys
) -> None:
    """A worker that starts behind a backlog reads every partition's batch at once and commits
    them in one script: thousands of frames for one gateway, split over several inbox entries
    (a Lua call unpacks at most about 8,000 values), all delivered, once, in order per game."""
    big = settings.model_copy(update={"worker_batch": 1000})
    count, games = 4000, [f"BG{n}" for n in range(40)]
    async with running_gateway(big) as gw:
        client = await Client.connect(f"{gw.ws}/ws/v2/connect")
        try:
            await client.subscribe("odds_updates", sport="NBA")
            ingester = Ingester(redis_client, keys)
            sent: list[bytes] = []
            for start in range(0, count, 500):
                sent += await ingester.publish_many(
                    [
                        parse_event(odds(games[n % len(games)], "NBA", price=-100 - n))
                        for n in range(start, start + 500)
                    ]
                )
            async with running_worker(big):
                await wait_until(
                    lambda: len(client.of("odds_update")) >= count, timeout=30, message="backlog"
                )
            frames = client.of("odds_update")
            assert sorted(f["event_id"] for f in frames) == sorted(i.decode() for i in sent)
            for game in games:
                prices = [f["data"]["home_price"] for f in frames if f["data"]["game_id"] == game]
                assert prices == sorted(prices, reverse=True), f"{game} out of order"
        finally:
            await client.close()
