"""Usage analytics (`GET /ws/v2/analytics`) against real gateways, a worker and Redis.

Clients connect, subscribe with filters, receive events, resume, misbehave and close; the
endpoint must then show exactly those counts, in the minutes the test ran in, merged across
gateways, with plausible latency percentiles, and kept for the retention setting.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections import Counter
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr
from redis.asyncio import Redis

from oddstream.embedded import EmbeddedRedis
from oddstream.gateway.analytics import (
    LATENCY_BOUNDS_MS,
    ingest_millis,
    latency_summary,
    read_rollups,
)
from oddstream.gateway.auth import issue_token
from oddstream.shared.ingest import Ingester, parse_event
from oddstream.shared.keys import Keys
from oddstream.shared.settings import Settings
from tests.harness import (
    ADMIN,
    Client,
    RunningGateway,
    StallableClient,
    running_gateway,
    running_worker,
    wait_until,
    workers_synced,
)


@pytest.fixture
def counted(settings: Settings) -> Settings:
    """Flushes five times a second; frames over 256 bytes close 1009."""
    return settings.model_copy(
        update={
            "analytics_flush_interval": 0.2,
            "analytics_retention_seconds": 3600,
            "max_message_bytes": 256,
        }
    )


async def analytics(gw: RunningGateway, **params: Any) -> dict[str, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{gw.http}/ws/v2/analytics", params=params, headers=ADMIN) as resp,
    ):
        body: dict[str, Any] = await resp.json()
        assert resp.status == 200, body
        return body


async def answer(gw: RunningGateway, query: str, headers: dict[str, str]) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{gw.http}/ws/v2/analytics{query}", headers=headers) as resp,
    ):
        return resp.status, await resp.json()


def odds(game: str, seq: int) -> Any:
    return parse_event({"kind": "odds", "sport": "MLB", "game_id": game, "sportsbook": "FanDuel",
                        "market": "moneyline", "seq": seq})  # fmt: skip


def sent_by_type(clients: list[Client]) -> Counter[str]:
    """What the clients received, by the type analytics counts it under (pings are not
    counted: the ping wheel may reach a new connection at any point of its first interval)."""
    seen: Counter[str] = Counter()
    for client in clients:
        for frame in client.frames:
            if frame["type"] != "ping":
                seen["replay" if frame.get("replay") else frame["type"]] += 1
    return seen


def active_minutes(body: dict[str, Any]) -> list[int]:
    """Starts of the minutes that counted anything."""
    return [
        m["start"]
        for m in body["series"]
        if m["connections"]["opened"] or m["closes"] or m["messages"]["out"]
    ]


async def test_rollups_count_what_clients_did_in_the_minutes_they_did_it(
    counted: Settings, redis_client: Redis, keys: Keys
) -> None:
    started = time.time()
    async with running_gateway(counted) as gw, running_worker(counted):
        url = f"{gw.ws}/ws/v2/connect"
        a, b, c = [await Client.connect(url) for _ in range(3)]
        room_a = (await a.subscribe("odds_updates", sport="MLB", game_id="G1"))["data"]["room"]
        await b.subscribe("odds_updates", game_id=["G1", "G2"])
        await c.subscribe("arbitrage", sport="NBA")
        await wait_until(lambda: workers_synced(redis_client, keys), message="index")
        ingester = Ingester(redis_client, keys)
        for seq in range(3):
            await ingester.publish(odds("G1", seq))
        await wait_until(lambda: len(a.of("odds_update")) == 3 == len(b.of("odds_update")))

        # D comes back (?reconnect=1) with the position after the first event: 2 replayed.
        position = a.of("odds_update")[0]["positions"][room_a]
        d = await Client.connect(f"{url}?reconnect=1")
        resumed = await d.request(
            {"type": "subscribe", "subscription_type": "odds_updates",
             "filters": {"sport": "MLB", "game_id": "G1"}, "position": position},
            "subscription_confirmed",
        )  # fmt: skip
        assert resumed["data"]["recovered"] is True and resumed["data"]["replayed"] == 2

        # The gauges: subscriptions by type and filter, watchers per game (G1 by A, B, D).
        async def gauges_show_everyone() -> bool:
            now = (await analytics(gw, minutes=1))["series"][-1]
            return bool(now["subscriptions"]["active"] == {"odds_updates": 3, "arbitrage": 1})

        await wait_until(gauges_show_everyone, message="gauges")
        now = (await analytics(gw, minutes=1))["series"][-1]
        assert now["connections"]["open"] == 4
        assert now["subscriptions"]["by_filter"] == {"sport": 3, "game_id": 3}
        assert now["games"] == [{"game_id": "G1", "watchers": 3}, {"game_id": "G2", "watchers": 1}]
        assert now["gateways"] == 1

        for seq in range(3, 5):
            await ingester.publish(odds("G1", seq))
        await wait_until(lambda: len(d.of("odds_update")) == 4)  # 2 replayed, 2 live
        await wait_until(lambda: len(a.of("odds_update")) == 5 == len(b.of("odds_update")))
        # Clients' own view of the latency (publish time in the id to receipt), for comparison.
        worst_ms = max(
            at * 1000 - int(frame["event_id"].split(":")[1].split("-")[0])
            for client in (a, b, d)
            for frame, at in zip(client.frames, client.received_at, strict=True)
            if frame["type"] == "odds_update" and not frame.get("replay")
        )

        await a.ws.close(code=4000)  # a client's own close code
        oversized = await Client.connect(url)
        await oversized.send("x" * 1000)  # over max_message_bytes: the gateway closes 1009
        await wait_until(lambda: oversized.closed_code == 1009, message="1009")
        for client in (b, c, d):
            await client.close()
        await a.close()
        await oversized.close()
        await wait_until(lambda: not gw.node.connections, message="all closed")
        clients = [a, b, c, d, oversized]

        async def closes_counted() -> bool:
            return bool(sum((await analytics(gw, minutes=5))["window"]["closes"].values()) == 5)

        await wait_until(closes_counted, message="closes flushed")
        await asyncio.sleep(0.5)  # a count that should not be there would be flushed by now
        body = await analytics(gw, minutes=5)
        finished = time.time()

    window = body["window"]
    assert window["connections"] == {"peak": 4, "opened": 5, "closed": 5, "reconnects": 1}
    assert window["closes"] == {"4000": 1, "1009": 1, "1000": 3}
    assert window["subscriptions"]["new"] == {"odds_updates": 3, "arbitrage": 1}
    assert window["subscriptions"]["new_by_filter"] == {"sport": 3, "game_id": 3}
    assert window["resumes"] == {"recovered": 1, "resynced": 0}
    assert window["messages"]["in"] == {"subscribe": 4}
    # Every frame the clients received is counted once, by type (replays apart).
    assert window["messages"]["out"] == dict(sent_by_type(clients))
    assert window["messages"]["out"]["odds_update"] == 3 * 2 + 2 * 3
    assert window["messages"]["out"]["replay"] == 2
    assert window["slow_consumers"] == {"conflated": 0, "held": 0, "closed": 0}
    assert window["games"][0] == {"game_id": "G1", "peak_watchers": 3}

    # Latency: one observation per event written (5), not per member; plausible values.
    latency = window["latency_ms"]
    assert latency["count"] == 5
    assert 0 <= latency["p50"] <= latency["p90"] <= latency["p99"]
    assert latency["p50"] <= worst_ms + 1, (latency, worst_ms)
    for bound in latency["buckets"]:  # no write later than a client's receipt
        below = [b for b in LATENCY_BOUNDS_MS if b < float(bound)]
        assert (below[-1] if below else 0) <= worst_ms + 1, (bound, worst_ms)

    # Counted in the minutes the test ran in, nothing anywhere else in the window.
    first, last = int(started // 60) * 60, int(finished // 60) * 60
    assert active_minutes(body) and all(first <= m <= last for m in active_minutes(body))
    assert body["series"][-1]["connections"]["open"] == 0  # the last sample: all gone
    assert len(body["series"]) == 5
    assert [m["start"] for m in body["series"]] == sorted(m["start"] for m in body["series"])

    # Kept for the retention setting, counted from the start of its minute.
    for start in active_minutes(body):
        ttl = await redis_client.ttl(keys.analytics(start // 60))
        expected = start + counted.analytics_retention_seconds - time.time()
        assert expected - 3 <= ttl <= expected + 1, (ttl, expected)


async def test_slow_consumer_actions_are_counted(
    counted: Settings, redis_client: Redis, keys: Keys
) -> None:
    """Conflation, held frames and the 4008 close, as the Prometheus counters see them."""
    tight = counted.model_copy(
        update={"conflate_buffer_bytes": 8 * 1024, "send_buffer_bytes": 64 * 1024}
    )
    async with running_gateway(tight) as gw, running_worker(tight):
        slow = await StallableClient.connect("127.0.0.1", gw.port)
        try:
            for type_ in ("odds_updates", "system_alerts"):
                await slow.send({"type": "subscribe", "subscription_type": type_})
                await slow.until("subscription_confirmed")
            (conn,) = gw.node.connections.values()
            # A small kernel send buffer, so the gateway's own buffer backs up within 1 MB.
            conn.transport.get_extra_info("socket").setsockopt(
                socket.SOL_SOCKET, socket.SO_SNDBUF, 4096
            )
            await wait_until(lambda: workers_synced(redis_client, keys), message="index")
            ingester = Ingester(redis_client, keys)
            pad = "x" * 1000
            await ingester.publish_many([
                parse_event({"kind": "odds", "sport": "MLB", "game_id": f"S{n % 4}",
                             "sportsbook": "FanDuel", "market": "total", "pad": pad})
                for n in range(400)
            ])  # fmt: skip
            metrics = gw.node.metrics
            await wait_until(lambda: metrics.conflated._value.get() > 0, message="conflation")
            for batch in range(40):  # must-deliver alerts, read by read, until it is cut off
                await ingester.publish_many([
                    parse_event({"kind": "alerts", "message": f"alert {batch}.{n} {pad}"})
                    for n in range(20)
                ])  # fmt: skip
                await asyncio.sleep(0.05)
                if conn.closing:
                    break
            await wait_until(lambda: not gw.node.connections, timeout=15, message="4008")

            async def counted_close() -> bool:
                window = (await analytics(gw, minutes=2))["window"]
                return bool(window["closes"] == {"4008": 1})

            await wait_until(counted_close, message="close flushed")
            window = (await analytics(gw, minutes=2))["window"]
        finally:
            slow.close()
    slow_figures = window["slow_consumers"]
    assert slow_figures["closed"] == 1 == metrics.closes.labels("4008")._value.get()
    assert slow_figures["conflated"] == metrics.conflated._value.get() > 0
    assert slow_figures["held"] >= slow_figures["conflated"]


async def test_two_gateways_merge_into_one_rollup(counted: Settings) -> None:
    async with running_gateway(counted) as one, running_gateway(counted) as two:
        clients = [await Client.connect(f"{gw.ws}/ws/v2/connect") for gw in (one, two, two)]
        for client in clients:
            await client.subscribe("predictions", game_id="M1")

        async def merged() -> bool:
            now = (await analytics(one, minutes=1))["series"][-1]
            return bool(now["gateways"] == 2 and now["connections"]["open"] == 3)

        await wait_until(merged, message="both gateways in the rollup")
        for gw in (one, two):  # every gateway answers for the cluster
            body = await analytics(gw, minutes=2)
            assert body["window"]["subscriptions"]["new"] == {"predictions": 3}
            assert body["series"][-1]["games"] == [{"game_id": "M1", "watchers": 3}]
        for client in clients:
            await client.close()


async def test_counts_made_while_redis_is_down_are_flushed_when_it_is_back(
    private_redis: EmbeddedRedis, counted: Settings
) -> None:
    own = counted.model_copy(update={"redis_url": private_redis.url})
    async with running_gateway(own) as gw:
        first = await Client.connect(f"{gw.ws}/ws/v2/connect")
        private_redis.kill()
        second = await Client.connect(f"{gw.ws}/ws/v2/connect")
        await second.ws.close(code=4000)
        await second.close()
        await asyncio.sleep(1.0)  # several flushes fail meanwhile
        private_redis.start()  # same port, empty

        async def flushed() -> bool:
            status, body = await answer(gw, "?minutes=2", ADMIN)
            return status == 200 and body["window"]["connections"]["opened"] == 2

        await wait_until(flushed, timeout=15, message="counts flushed after the outage")
        window = (await analytics(gw, minutes=2))["window"]
        assert window["closes"] == {"4000": 1}
        await first.close()


async def test_a_drained_gateway_counts_its_1001_closes_before_it_exits(
    counted: Settings, redis_client: Redis, keys: Keys
) -> None:
    async with running_gateway(counted) as gw:
        clients = [await Client.connect(f"{gw.ws}/ws/v2/connect") for _ in range(3)]
    assert [c.closed_code for c in clients] == [1001, 1001, 1001]
    body = await read_rollups(redis_client, keys, minutes=2, top=10)
    assert body["window"]["closes"] == {"1001": 3}
    assert body["window"]["connections"]["opened"] == 3
    for client in clients:
        await client.close()


async def test_a_connection_dropped_without_a_close_counts_as_1006(counted: Settings) -> None:
    async with running_gateway(counted) as gw:
        dropped = await StallableClient.connect("127.0.0.1", gw.port)
        await dropped.until("welcome")
        dropped.close()  # TCP closed, no close frame

        async def counted_1006() -> bool:
            return bool((await analytics(gw, minutes=2))["window"]["closes"] == {"1006": 1})

        await wait_until(counted_1006, message="1006 counted")


async def test_endpoint_needs_admin_and_refuses_bad_parameters(counted: Settings) -> None:
    secret = "analytics-test-secret-0123456789abcdef"
    signed = counted.model_copy(update={"jwt_secret": SecretStr(secret)})
    async with running_gateway(signed) as gw:
        status, body = await answer(gw, "", {})
        assert (status, body["code"]) == (401, "unauthorized")
        wrong = {"Authorization": "Bearer not-the-admin-token"}
        assert (await answer(gw, "", wrong))[0] == 401
        user = {"Authorization": f"Bearer {issue_token(secret, 'alice')}"}
        assert (await answer(gw, "", user))[0] == 401
        admin = {"Authorization": f"Bearer {issue_token(secret, 'ops', admin=True)}"}
        assert (await answer(gw, "?minutes=2", admin))[0] == 200
        for query, says in [
            ("?minutes=0", "'minutes' must be a whole number from 1 to 60"),
            ("?minutes=61", "from 1 to 60"),  # retention 3600 s keeps 60 minutes
            ("?minutes=abc", "not 'abc'"),
            ("?minutes=1.5", "whole number"),
            ("?top=0", "'top' must be a whole number from 1 to 100"),
            ("?hours=1", "Unknown parameter 'hours'"),
        ]:
            status, body = await answer(gw, query, ADMIN)
            assert status == 400, query
            assert body["code"] == "invalid_request" and says in body["error"], (query, body)
        body = await analytics(gw)
        assert body["minutes"] == 60 and len(body["series"]) == 60
        assert body["retention_seconds"] == 3600 and body["flush_interval"] == 0.2
        assert body["latency_bounds_ms"] == list(LATENCY_BOUNDS_MS)
        quiet = body["series"][0]
        assert quiet["gateways"] == 0 and quiet["latency_ms"]["p50"] is None


async def test_analytics_off_counts_and_writes_nothing(
    counted: Settings, redis_client: Redis, keys: Keys
) -> None:
    off = counted.model_copy(update={"analytics_enabled": False})
    async with running_gateway(off) as gw:
        client = await Client.connect(f"{gw.ws}/ws/v2/connect")
        await client.subscribe("odds_updates")
        await client.close()
        await asyncio.sleep(0.5)
        assert gw.node.analytics._counts == {}, "nothing is counted, even in memory"
        status, body = await answer(gw, "", ADMIN)
        assert (status, body["code"]) == (404, "not_found")
        assert "ODDSTREAM_ANALYTICS_ENABLED" in body["error"]
        async with aiohttp.ClientSession() as session, session.get(f"{gw.http}/metrics") as resp:
            assert "oddstream_delivery_latency_seconds" not in await resp.text()
    assert await redis_client.keys(f"{{{keys.prefix}}}:analytics:*") == []


def test_latency_percentiles_interpolate_within_buckets() -> None:
    # 100 deliveries: 50 at <= 5 ms (3..5), 40 at <= 10 (7..10), 10 beyond 60 s.
    summary = latency_summary({"5": 50, "10": 40, "inf": 10})
    assert summary["count"] == 100
    assert summary["p50"] == 5.0  # the 50th is the last of the (3, 5] bucket
    assert summary["p90"] == 10.0
    assert summary["p99"] == 60_000.0  # in the open bucket: its lower edge
    assert 7 < latency_summary({"10": 4})["p50"] < 10
    assert latency_summary({})["p50"] is None


def test_ingest_time_is_read_from_the_frame_head() -> None:
    frame = b'{"type":"odds_update","status":"success","event_id":"3:1795659242366-0","t":1}'
    assert ingest_millis(frame) == 1795659242366
    assert ingest_millis(b'{"type":"welcome","status":"success"}') is None
    assert ingest_millis(b'{"type":"x","event_id":"3:abc-0"}') is None
