"""Slow consumers: odds are conflated and stay bounded; must-deliver data cuts a client off.

A real stalled client (raw socket, tiny buffers, stops reading) shares a gateway with a normal
aiohttp client; the normal one must keep receiving everything meant for it.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis

from oddstream.gateway.connection import Connection
from oddstream.shared.ingest import Ingester, parse_event
from oddstream.shared.keys import Keys
from oddstream.shared.settings import Settings
from tests.harness import (
    Client,
    RunningGateway,
    StallableClient,
    running_gateway,
    running_worker,
    wait_until,
    workers_synced,
)

PAD = "x" * 1000  # ~1 KB events fill buffers quickly
GAMES = [f"G{i}" for i in range(5)]


@pytest.fixture
def tight(settings: Settings) -> Settings:
    # A client that keeps up gets a whole inbox read in one write, so what one read can carry
    # (a worker batch of ~1.3 KB frames) must fit between the two limits.
    return settings.model_copy(
        update={
            "conflate_buffer_bytes": 16 * 1024,
            "send_buffer_bytes": 256 * 1024,
            "worker_batch": 100,
        }
    )


@pytest.fixture
async def gw(tight: Settings) -> AsyncIterator[RunningGateway]:
    async with running_gateway(tight) as gateway, running_worker(tight):
        yield gateway


def _other(gw: RunningGateway, client_id: str | None) -> Connection:
    (conn,) = [c for c in gw.node.connections.values() if c.client_id != client_id]
    return conn


async def _probe_latency(client: Client, redis: Redis, keys: Keys, tag: str) -> float:
    """Worst latency of 50 small odds events, publish to receipt, as `client` sees them."""
    mark = len(client.frames)
    probes = [
        {"kind": "odds", "sport": "MLB", "game_id": "PROBE", "sportsbook": "FanDuel",
         "market": "total", "probe": tag, "sent_at": time.time()}
        for _ in range(50)
    ]  # fmt: skip
    for probe in probes:
        probe["sent_at"] = time.time()
        await Ingester(redis, keys).publish(parse_event(probe))
    await wait_until(
        lambda: sum(f["data"].get("probe") == tag for f in client.frames[mark:]) == 50,
        message=f"probe {tag}",
    )
    return max(
        at - float(frame["data"]["sent_at"])
        for frame, at in zip(client.frames[mark:], client.received_at[mark:], strict=True)
        if frame["data"].get("probe") == tag
    )


async def _publish(redis: Redis, keys: Keys, bodies: list[dict[str, Any]]) -> None:
    ingester = Ingester(redis, keys)
    for start in range(0, len(bodies), 200):
        await ingester.publish_many([parse_event(b) for b in bodies[start : start + 200]])


async def test_stalled_odds_client_is_conflated_bounded_and_current(
    gw: RunningGateway, tight: Settings, redis_client: Redis, keys: Keys
) -> None:
    normal = await Client.connect(f"{gw.ws}/ws/v2/connect")
    slow = await StallableClient.connect("127.0.0.1", gw.port)
    try:
        await normal.subscribe("odds_updates")
        await slow.send({"type": "subscribe", "subscription_type": "odds_updates"})
        await slow.until("subscription_confirmed")
        await wait_until(lambda: workers_synced(redis_client, keys), message="index")
        baseline = await _probe_latency(normal, redis_client, keys, "before")
        # From here the slow client reads nothing. ~8 MB: more than loopback kernel buffers.
        events = [
            {"kind": "odds", "sport": "MLB", "game_id": GAMES[n % len(GAMES)],
             "sportsbook": "FanDuel", "market": "moneyline", "seq": n, "pad": PAD}
            for n in range(8000)
        ]  # fmt: skip
        await _publish(redis_client, keys, events)

        def flood_seen() -> list[int]:
            return [f["data"]["seq"] for f in normal.of("odds_update") if "seq" in f["data"]]

        await wait_until(lambda: len(flood_seen()) == len(events), timeout=30, message="normal")
        seen = flood_seen()
        assert sorted(seen) == list(range(8000))
        for game in GAMES:  # ingest order holds per game (partition key), not across games
            of_game = [n for n in seen if GAMES[n % len(GAMES)] == game]
            assert of_game == sorted(of_game), game

        conn = _other(gw, normal.client_id)
        assert not conn.closing, "a slow odds client must be conflated, not cut off"
        assert gw.node.metrics.conflated._value.get() > 0
        assert conn.pending is not None and len(conn.pending) <= len(GAMES) + 1  # + PROBE
        buffered = conn.transport.get_write_buffer_size()
        assert buffered < tight.send_buffer_bytes, f"send buffer grew to {buffered} bytes"
        # The normal client's latency does not suffer from the stalled one next to it.
        during = await _probe_latency(normal, redis_client, keys, "during")
        assert conn.pending is not None, "the slow client should still be backed up"
        assert during < max(5 * baseline, 0.1), f"latency {during:.3f}s vs {baseline:.3f}s"

        frames, code = await slow.read_all(quiet=1.5)  # the client catches up
        assert code is None
        odds = [f["data"] for f in frames if f["type"] == "odds_update" and "seq" in f["data"]]
        assert len(odds) < len(events), "nothing was conflated"
        last_seen = {d["game_id"]: d["seq"] for d in odds}
        last_sent = {e["game_id"]: e["seq"] for e in events}
        assert last_seen == last_sent, "the slow client did not end on the newest values"
        assert normal.closed_code is None
    finally:
        slow.close()
        await normal.close()


async def test_stalled_alerts_client_is_cut_off_with_4008(
    gw: RunningGateway, redis_client: Redis, keys: Keys
) -> None:
    normal = await Client.connect(f"{gw.ws}/ws/v2/connect")
    slow = await StallableClient.connect("127.0.0.1", gw.port)
    try:
        await normal.subscribe("system_alerts")
        await slow.send({"type": "subscribe", "subscription_type": "system_alerts"})
        await slow.until("subscription_confirmed")
        await wait_until(lambda: workers_synced(redis_client, keys), message="index")
        # ~9.5 MB: more than the kernel buffers on loopback (send buffers autotune to 4 MB),
        # so the gateway's own transport buffer must grow past its limit.
        alerts = [{"kind": "alerts", "message": f"alert {n} {PAD * 19}"[:1900], "n": n}
                  for n in range(5000)]  # fmt: skip
        await _publish(redis_client, keys, alerts)
        await wait_until(
            lambda: len(normal.of("system_alert")) == len(alerts), timeout=30, message="normal"
        )
        assert [f["data"]["n"] for f in normal.of("system_alert")] == list(range(5000))
        await wait_until(
            lambda: len(gw.node.connections) == 1, timeout=10, message="slow client released"
        )
        closes = gw.node.metrics.closes.labels("4008")._value.get()
        assert closes == 1
        assert normal.closed_code is None
        assert normal.client_id in gw.node.connections
    finally:
        slow.close()
        await normal.close()
