"""Connection and process lifecycle: readiness proven by canary, draining, idle release."""

from __future__ import annotations

import aiohttp
from redis.asyncio import Redis

from shared.keys import Keys
from shared.settings import Settings
from tests.harness import Client, running_gateway, running_worker, wait_until


async def _readyz(http: str) -> tuple[int, dict[str, object]]:
    async with aiohttp.ClientSession() as session, session.get(f"{http}/readyz") as resp:
        body: dict[str, object] = await resp.json()
        return resp.status, body


async def test_readyz_follows_the_pipeline_canary(settings: Settings) -> None:
    """A gateway that is up but deaf (no worker path) is taken out of rotation."""
    quick = settings.model_copy(update={"canary_interval": 0.2})
    async with running_gateway(quick) as gw:
        status, body = await _readyz(gw.http)
        assert status == 503
        assert body["pipeline"] is False and body["redis"] is True

        async def ready() -> bool:
            return (await _readyz(gw.http))[0] == 200

        async def not_ready() -> bool:
            return not await ready()

        async with running_worker(quick):
            await wait_until(ready, timeout=5, message="ready once a worker answers canaries")
            status, body = await _readyz(gw.http)
            assert body["last_canary_age_s"] is not None
            assert float(body["last_canary_age_s"]) < 1.0
        # Worker gone: canaries stop coming back; readiness fails within a few periods.
        await wait_until(not_ready, timeout=10 * quick.canary_interval, message="not ready")
        status, body = await _readyz(gw.http)
        assert body["pipeline"] is False and body["registered"] is True


async def test_canaries_never_reach_clients(
    settings: Settings, redis_client: Redis, keys: Keys
) -> None:
    quick = settings.model_copy(update={"canary_interval": 0.1})
    async with running_gateway(quick) as gw, running_worker(quick) as worker:
        c = await Client.connect(f"{gw.ws}/ws/v2/connect")
        try:
            await c.subscribe("system_alerts")  # canaries ride the alerts stream
            await wait_until(lambda: worker.stats.canaries >= 5, message="canaries processed")
            assert worker.stats.processed == 0
            assert [f for f in c.frames if "event_id" in f] == []
        finally:
            await c.close()
