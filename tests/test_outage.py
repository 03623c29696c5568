"""A Redis outage: clear errors while it lasts, recovery without restarting anything."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess

import aiohttp
import pytest
from redis.exceptions import RedisError

from oddstream.embedded import EmbeddedRedis
from oddstream.shared.ingest import Ingester, parse_event
from oddstream.shared.keys import Keys
from oddstream.shared.redis import create_redis
from oddstream.shared.settings import Settings
from oddstream.workers.consumer import Worker
from tests.harness import (
    Client,
    process_env,
    running_gateway,
    running_worker,
    spawn_cli,
    wait_until,
    workers_synced,
)


async def _status(url: str) -> int:
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        return resp.status


@pytest.mark.slow
async def test_redis_killed_and_restarted_errors_then_recovers(
    private_redis: EmbeddedRedis, settings: Settings, keys: Keys
) -> None:
    own = settings.model_copy(update={"redis_url": private_redis.url})
    async with running_gateway(own) as gw, running_worker(own):
        c = await Client.connect(f"{gw.ws}/ws/v2/connect")
        try:
            await c.subscribe("odds_updates", sport="NHL")
            private_redis.kill()

            reply = await c.request(
                {"type": "subscribe", "subscription_type": "nba", "id": 1}, "subscription_confirmed"
            )
            assert reply["type"] == "error"
            assert reply["code"] == "service_unavailable"
            assert "retry" in reply["error"].lower()
            assert await _status(f"{gw.http}/readyz") == 503
            assert await _status(f"{gw.http}/ws/v2/status") == 503
            pong = await c.request({"type": "ping"}, "pong")  # the socket itself is fine
            assert pong["type"] == "pong"
            degraded = await c.next_of("system_alert", timeout=5)
            assert degraded["data"]["code"] == "service_degraded"
            assert degraded["data"]["level"] == "warning"
            mark = len(c.frames)

            # Same port, empty data (no persistence): everything must be rebuilt.
            private_redis.start()
            await wait_until(
                lambda: _ready(gw.http), timeout=15, message="gateway ready after restart"
            )
            restored = await c.next_of("system_alert", after=mark, timeout=5)
            assert restored["data"]["code"] == "service_restored"
            async with (
                aiohttp.ClientSession() as session,
                session.get(f"{gw.http}/metrics") as resp,
            ):
                metrics = await resp.text()
            assert "oddstream_redis_outages_total 1.0" in metrics
            assert "oddstream_redis_up 1.0" in metrics
            redis = create_redis(private_redis.url)
            try:
                await wait_until(
                    lambda: workers_synced(redis, keys), timeout=15, message="worker index rebuilt"
                )
                assert await redis.hlen(keys.rooms) == 1  # the gateway re-registered its room
                await Ingester(redis, keys).publish(
                    parse_event(
                        {"kind": "odds", "sport": "NHL", "game_id": "1",
                         "sportsbook": "FanDuel", "market": "total"}
                    )
                )  # fmt: skip
                update = await c.next_of("odds_update", timeout=15)
                assert update["data"]["sport"] == "NHL"
                again = await c.subscribe("nba")
                assert again["data"]["subscription_type"] == "nba"
            finally:
                await redis.aclose()
        finally:
            await c.close()


async def _ready(http: str) -> bool:
    try:
        return await _status(f"{http}/readyz") == 200
    except aiohttp.ClientError:
        return False


@pytest.mark.slow
async def test_events_redis_kept_through_an_outage_are_delivered_after_it(
    settings: Settings, keys: Keys, processes: list[subprocess.Popen[bytes]]
) -> None:
    """Events written before Redis went down, and still held by it afterwards (append-only
    file), reach their subscribers once it is back; no process is restarted."""
    server = EmbeddedRedis(persistent=True).start()
    try:
        own = settings.model_copy(update={"redis_url": server.url})
        worker = spawn_cli(processes, process_env(own), "worker", "--id", "survivor")
        redis = create_redis(server.url)
        async with running_gateway(own) as gw:
            c = await Client.connect(f"{gw.ws}/ws/v2/connect")
            try:
                await c.subscribe("odds_updates", sport="MLB")
                await wait_until(lambda: workers_synced(redis, keys), message="worker index")
                worker.send_signal(signal.SIGSTOP)  # the worker falls behind...
                sent = await Ingester(redis, keys).publish_many(
                    [
                        parse_event({"kind": "odds", "sport": "MLB", "game_id": f"G{n}",
                                     "sportsbook": "FanDuel", "market": "total"})
                        for n in range(100)
                    ]
                )  # fmt: skip
                server.kill()  # ...and Redis dies holding the unread events
                worker.send_signal(signal.SIGCONT)
                await asyncio.sleep(1.5)  # longer than the gateway TTL: every beat is stale
                server.start()  # same port, same append-only file
                await wait_until(
                    lambda: len(c.of("odds_update")) >= len(sent),
                    timeout=20,
                    message="events kept by Redis delivered",
                )
                await asyncio.sleep(0.3)  # duplicates, if any, would arrive by now
                got = [f["event_id"] for f in c.of("odds_update")]
                assert sorted(got) == sorted(i.decode() for i in sent)
                assert worker.poll() is None, "the worker had to be restarted"
            finally:
                await c.close()
                await redis.aclose()
    finally:
        server.close()


async def test_a_worker_whose_redis_goes_away_while_it_starts_keeps_running(
    private_redis: EmbeddedRedis, settings: Settings, keys: Keys
) -> None:
    """Found by a flaky run of the test above: Redis died after a starting worker's first
    beat (so it already counted as live) and before it took its partitions; the failed
    lease step ended `start()`, and the process exited. It now leaves the partitions to the
    lease loop, which takes them once Redis is back, and the worker delivers."""
    own = settings.model_copy(update={"redis_url": private_redis.url})
    redis = create_redis(private_redis.url)
    worker = Worker(own, redis, worker_id="w-start")
    beat = worker._beat
    beats = 0

    async def beat_then_lose_redis() -> None:
        nonlocal beats
        await beat()
        beats += 1
        if beats == 1:
            private_redis.kill()  # between the first beat and the first lease step

    worker._beat = beat_then_lose_redis  # type: ignore[method-assign]
    try:
        await worker.start()  # raised ConnectionError before
        assert not worker.leases.owned
        private_redis.start()
        await wait_until(lambda: _owns_all(worker, keys), timeout=10, message="partitions")
        sent = await Ingester(redis, keys).publish(
            parse_event({"kind": "odds", "sport": "MLB", "game_id": "GS", "sportsbook": "B",
                         "market": "total"})
        )  # fmt: skip
        partition = int(sent.split(b":")[0])
        entry_id = sent.split(b":", 1)[1]

        async def committed() -> bool:
            return await redis.get(keys.cursor(partition)) == entry_id

        await wait_until(committed, timeout=10, message="the event committed")
    finally:
        await worker.stop()
        await redis.aclose()


async def _owns_all(worker: Worker, keys: Keys) -> bool:
    return len(worker.leases.owned) == keys.partitions


async def test_a_partition_taken_during_an_outage_is_read_once_redis_is_back(
    private_redis: EmbeddedRedis, settings: Settings, keys: Keys
) -> None:
    """Found by the soak: a worker that had just taken a partition when Redis went away
    forgot it when reading its cursor failed; its lease survived the restart (append-only
    file), so no worker ever read the partition again and the feed piled up unread."""
    own = settings.model_copy(update={"redis_url": private_redis.url})
    redis = create_redis(private_redis.url)
    worker = Worker(own, redis, worker_id="w-outage")
    try:
        await redis.set(keys.cursor(2), b"5-0")
        worker.leases.owned.add(2)
        worker.leases.acquired.add(2)  # just taken: its cursor is read before reading it
        private_redis.kill()
        consumer = worker.consumers[keys.shard_of(2)]
        with pytest.raises(RedisError):
            await consumer._apply_lease_changes()
        assert 2 in worker.leases.acquired, "the partition was forgotten"
        private_redis.start()
        await consumer._apply_lease_changes()
        assert consumer._cursors == {2: b"0-0"}  # Redis kept nothing: from the start again
        assert not worker.leases.acquired
    finally:
        await redis.aclose()


async def test_redis_failing_during_a_resume_confirms_without_a_position(
    private_redis: EmbeddedRedis, settings: Settings, keys: Keys
) -> None:
    """Redis dies after the subscribe joined its room but before the catch-up read the room's
    history: the confirmation says so plainly (`position: null`, `recovered: false`), the
    client is not handed an empty string it would echo back, and the gateway keeps serving."""
    own = settings.model_copy(update={"redis_url": private_redis.url})
    redis = create_redis(private_redis.url)
    async with running_gateway(own) as gw:
        c = await Client.connect(f"{gw.ws}/ws/v2/connect")
        try:
            first = await c.subscribe("odds_updates", sport="NFL")
            position = first["data"]["position"]
            assert isinstance(position, str) and position, first
            await c.request(
                {"type": "unsubscribe", "subscription_type": "odds_updates",
                 "filters": {"sport": "NFL"}},
                "unsubscribed",
            )  # fmt: skip
            # A worker holds a partition but has not applied the room's join (it stalled): the
            # catch-up waits for it, and Redis dies during that wait.
            await redis.set(keys.lease(0), "stalled-worker", px=30_000)
            pending = asyncio.create_task(
                c.request(
                    {"type": "subscribe", "subscription_type": "odds_updates",
                     "filters": {"sport": "NFL"}, "position": position},
                    "subscription_confirmed",
                    timeout=10,
                )
            )  # fmt: skip
            await asyncio.sleep(0.5)
            assert not pending.done(), "the catch-up should still be waiting for the worker"
            private_redis.kill()
            reply = await pending
            assert reply["type"] == "subscription_confirmed", reply
            assert reply["data"]["position"] is None
            assert reply["data"]["recovered"] is False
            pong = await c.request({"type": "ping"}, "pong")
            assert pong["type"] == "pong"
        finally:
            await c.close()
            with contextlib.suppress(RedisError):
                await redis.aclose()
