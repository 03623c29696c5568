"""The gateway's protocol and endpoints, through real sockets, a real worker and real Redis."""

from __future__ import annotations

import itertools
import time
from collections.abc import AsyncIterator

import aiohttp
import jwt
import orjson
import pytest
from pydantic import SecretStr
from redis.asyncio import Redis

from oddstream.gateway.auth import issue_token
from oddstream.shared.ingest import Ingester, parse_event
from oddstream.shared.keys import Keys
from oddstream.shared.settings import Settings
from tests.harness import (
    ADMIN,
    Client,
    RunningGateway,
    held_rooms,
    lingers,
    running_gateway,
    running_worker,
    wait_until,
    workers_synced,
)

SECRET = "test-secret-0123456789abcdef0123456789"


@pytest.fixture
def auth_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"jwt_secret": SecretStr(SECRET)})


@pytest.fixture
async def gw(auth_settings: Settings) -> AsyncIterator[RunningGateway]:
    async with running_gateway(auth_settings) as gateway, running_worker(auth_settings):
        yield gateway


@pytest.fixture
async def client(gw: RunningGateway) -> AsyncIterator[Client]:
    c = await Client.connect(f"{gw.ws}/ws/v2/connect")
    try:
        yield c
    finally:
        await c.close()


async def publish(redis: Redis, keys: Keys, *events: str) -> list[bytes]:
    return await Ingester(redis, keys).publish_many([parse_event(e) for e in events])


# --- control messages --------------------------------------------------------------------------


async def test_welcome_carries_client_id_and_heartbeat(gw: RunningGateway) -> None:
    c = await Client.connect(f"{gw.ws}/ws/v2/connect")
    try:
        welcome = c.of("welcome")[0]
        assert welcome["status"] == "success"
        assert welcome["client_id"] == c.client_id and len(c.client_id or "") == 36
        assert welcome["data"]["gateway"] == gw.node.gateway_id
        assert welcome["data"]["heartbeat_interval"] == 30.0
        assert welcome["data"]["user"] is None
        assert welcome["timestamp"].endswith("Z")
    finally:
        await c.close()


async def test_ping_pong_echoes_request_id(client: Client) -> None:
    reply = await client.request({"type": "ping", "id": 7}, "pong")
    assert reply["type"] == "pong"
    assert reply["id"] == 7
    assert reply["client_id"] == client.client_id


async def test_subscribe_twice_is_idempotent_and_status_lists_it(client: Client) -> None:
    first = await client.subscribe("odds_updates", sport="MLB", sportsbook=["FanDuel"])
    again = await client.subscribe("odds_updates", sportsbook="FanDuel", sport="mlb")
    assert first["data"]["already_subscribed"] is False
    assert again["data"]["already_subscribed"] is True
    assert again["data"]["room"] == first["data"]["room"]
    status = await client.request({"type": "status", "id": "s1"}, "status")
    assert status["id"] == "s1"
    subs = status["data"]["subscriptions"]
    assert subs == [
        {
            "subscription_type": "odds_updates",
            "filters": {"sport": ["MLB"], "sportsbook": ["FanDuel"]},
            "room": first["data"]["room"],
        }
    ]


async def test_unsubscribe_by_filters_and_by_room(client: Client) -> None:
    a = await client.subscribe("nba", game_id="G7")
    b = await client.subscribe("arbitrage", min_profit=2)
    left = await client.request(
        {"type": "unsubscribe", "subscription_type": "nba", "filters": {"game_id": "G7"}},
        "unsubscribed",
    )
    assert left["type"] == "unsubscribed" and left["data"]["room"] == a["data"]["room"]
    left = await client.request({"type": "unsubscribe", "room": b["data"]["room"]}, "unsubscribed")
    assert left["data"]["room"] == b["data"]["room"]
    status = await client.request({"type": "status"}, "status")
    assert status["data"]["subscriptions"] == []
    again = await client.request({"type": "unsubscribe", "room": b["data"]["room"]}, "unsubscribed")
    assert again["type"] == "error" and again["code"] == "not_subscribed"


# --- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("{not json", "invalid_json"),
        ("[1, 2]", "invalid_message"),
        ('{"type": "dance"}', "unknown_type"),
        ('{"no_type": 1}', "unknown_type"),
        ('{"type": "subscribe"}', "invalid_message"),
        ('{"type": "ping", "extra": true}', "invalid_message"),
        ('{"type": "subscribe", "subscription_type": "golf"}', "invalid_subscription_type"),
        ('{"type": "subscribe", "subscription_type": "odds_updates", "filters": {"x": 1}}',
         "invalid_filter"),
        ('{"type": "subscribe", "subscription_type": "odds_updates", "filters": {"min_profit": 2}}',
         "invalid_filter"),
        ('{"type": "subscribe", "subscription_type": "arbitrage", "filters": {"min_profit": "a"}}',
         "invalid_filter"),
        ('{"type": "subscribe", "subscription_type": "portfolio"}', "auth_required"),
        ('{"type": "unsubscribe"}', "invalid_message"),
    ],
)  # fmt: skip
async def test_bad_messages_get_coded_errors_and_connection_survives(
    client: Client, frame: str, code: str
) -> None:
    mark = len(client.frames)
    await client.send(frame)
    error = await client.next_of("error", after=mark)
    assert error["code"] == code
    assert error["status"] == "error"
    assert len(error["error"]) > 20  # says what went wrong and how to fix it
    pong = await client.request({"type": "ping"}, "pong")
    assert pong["type"] == "pong"


async def test_binary_frame_is_refused_with_error(client: Client) -> None:
    mark = len(client.frames)
    await client.send(b'{"type": "ping"}')
    error = await client.next_of("error", after=mark)
    assert error["code"] == "binary_not_supported"


async def test_oversized_frame_closes_1009(gw: RunningGateway, auth_settings: Settings) -> None:
    c = await Client.connect(f"{gw.ws}/ws/v2/connect")
    try:
        await c.send("x" * (auth_settings.max_message_bytes + 1))
        await wait_until(lambda: c.closed_code is not None, message="close")
        assert c.closed_code == 1009
        await wait_until(lambda: not gw.node.connections, message="connection released")
    finally:
        await c.close()


# --- authentication ----------------------------------------------------------------------------


async def _refused(url: str, **kwargs: object) -> tuple[int, dict[str, object]]:
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await session.ws_connect(url, **kwargs)
        async with session.get(url.replace("ws://", "http://"), **kwargs) as resp:
            return info.value.status, await resp.json()


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        (jwt.encode({"sub": "u1"}, "wrong-secret-0123456789abcdef01234", algorithm="HS256"),
         "invalid_signature"),
        (issue_token(SECRET, "u1", ttl=-60), "token_expired"),
        (jwt.encode({"sub": "u1", "nbf": int(time.time()) + 3600}, SECRET, algorithm="HS256"),
         "token_not_yet_valid"),
        (jwt.encode({"sub": "u1"}, None, algorithm="none"), "invalid_algorithm"),
        ("garbage", "malformed_token"),
    ],
)  # fmt: skip
async def test_bad_tokens_refused_before_upgrade(
    gw: RunningGateway, token: str, reason: str
) -> None:
    status, body = await _refused(f"{gw.ws}/ws/v2/connect?token={token}")
    assert status == 401
    assert body["reason"] == reason
    assert body["code"] in {"invalid_token", "token_expired"}


async def test_bearer_token_identifies_user(gw: RunningGateway) -> None:
    headers = {"Authorization": f"Bearer {issue_token(SECRET, 'alice')}"}
    c = await Client.connect(f"{gw.ws}/ws/v2/connect", headers=headers)
    try:
        assert c.of("welcome")[0]["data"]["user"] == "alice"
    finally:
        await c.close()


async def test_portfolio_delivers_only_own_events(
    gw: RunningGateway, redis_client: Redis, keys: Keys
) -> None:
    status, body = await _refused(f"{gw.ws}/ws/v2/portfolio")
    assert (status, body["code"]) == (401, "auth_required")
    alice = await Client.connect(f"{gw.ws}/ws/v2/portfolio?token={issue_token(SECRET, 'alice')}")
    bob = await Client.connect(f"{gw.ws}/ws/v2/portfolio?token={issue_token(SECRET, 'bob')}")
    try:
        for c in (alice, bob):
            confirmed = await c.next_of("subscription_confirmed")
            assert confirmed["data"]["subscription_type"] == "portfolio"
        await wait_until(lambda: workers_synced(redis_client, keys), message="worker index")
        await publish(
            redis_client, keys,
            '{"kind":"portfolio","user":"alice","event":"bet_settled","amount":12.5}',
            '{"kind":"portfolio","user":"bob","event":"bet_settled","amount":3}',
            '{"kind":"portfolio","user":"carol","event":"bet_settled","amount":9}',
        )  # fmt: skip
        a = await alice.next_of("portfolio_update")
        b = await bob.next_of("portfolio_update")
        assert a["data"]["user"] == "alice" and b["data"]["user"] == "bob"
        await wait_until(lambda: gw.node.metrics.inbox_deliveries._value.get() >= 2)
        assert [f["data"]["user"] for f in alice.of("portfolio_update")] == ["alice"]
        assert [f["data"]["user"] for f in bob.of("portfolio_update")] == ["bob"]
    finally:
        await alice.close()
        await bob.close()


# --- specialized endpoints ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "subscription_type", "filters"),
    [
        ("/ws/v2/odds?sport=MLB&sportsbook=DraftKings", "odds_updates",
         {"sport": ["MLB"], "sportsbook": ["DraftKings"]}),
        ("/ws/v2/odds?sportsbook=FanDuel,DraftKings", "odds_updates",
         {"sportsbook": ["DraftKings", "FanDuel"]}),
        ("/ws/v2/arbitrage?min_profit=2.0&sport=NBA", "arbitrage",
         {"min_profit": 2.0, "sport": ["NBA"]}),
        ("/ws/v2/sport/MLB?game_id=12345&player=Aaron+Judge", "mlb",
         {"game_id": ["12345"], "player": ["Aaron Judge"]}),
        ("/ws/v2/sport/nhl", "nhl", {}),
    ],
)  # fmt: skip
async def test_specialized_endpoint_subscribes_from_path_and_query(
    gw: RunningGateway, path: str, subscription_type: str, filters: dict[str, object]
) -> None:
    c = await Client.connect(gw.ws + path)
    try:
        confirmed = await c.next_of("subscription_confirmed")
        assert confirmed["data"]["subscription_type"] == subscription_type
        assert confirmed["data"]["filters"] == filters
    finally:
        await c.close()


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/ws/v2/sport/CRICKET", 400, "invalid_subscription_type"),
        ("/ws/v2/odds?min_profit=2", 400, "invalid_filter"),
        ("/ws/v2/arbitrage?min_profit=lots", 400, "invalid_filter"),
        ("/ws/v2/odds?colour=red", 400, "invalid_filter"),
        ("/ws/v2/odds?sport=", 400, "invalid_filter"),
        ("/ws/v2/portfolio", 401, "auth_required"),
    ],
)
async def test_specialized_endpoint_refuses_bad_query(
    gw: RunningGateway, path: str, status: int, code: str
) -> None:
    got_status, body = await _refused(gw.ws + path)
    assert (got_status, body["code"]) == (status, code)


async def test_specialized_odds_endpoint_streams_matching_odds(
    gw: RunningGateway, redis_client: Redis, keys: Keys
) -> None:
    c = await Client.connect(f"{gw.ws}/ws/v2/odds?sport=MLB&sportsbook=DraftKings")
    try:
        await c.next_of("subscription_confirmed")
        await wait_until(lambda: workers_synced(redis_client, keys), message="worker index")
        base = '"kind":"odds","game_id":"G1","market":"total","line":8.5'
        ids = await publish(
            redis_client, keys,
            f'{{{base},"sport":"MLB","sportsbook":"FanDuel"}}',
            f'{{{base},"sport":"NBA","sportsbook":"DraftKings"}}',
            f'{{{base},"sport":"mlb","sportsbook":"DraftKings"}}',
        )  # fmt: skip
        update = await c.next_of("odds_update")
        assert update["event_id"] == ids[2].decode()
        assert update["data"]["sport"] == "MLB"
    finally:
        await c.close()


# --- limits and HTTP ---------------------------------------------------------------------------


async def test_max_connections_refused_with_503_retry_after(auth_settings: Settings) -> None:
    limited = auth_settings.model_copy(update={"max_connections": 2})
    async with running_gateway(limited) as gw:
        a = await Client.connect(f"{gw.ws}/ws/v2/connect")
        b = await Client.connect(f"{gw.ws}/ws/v2/connect")
        try:
            async with aiohttp.ClientSession() as session:
                with pytest.raises(aiohttp.WSServerHandshakeError) as info:
                    await session.ws_connect(f"{gw.ws}/ws/v2/connect")
                assert info.value.status == 503
                assert info.value.headers is not None
                assert info.value.headers.get("Retry-After") == "5"
        finally:
            await a.close()
            await b.close()


async def test_unknown_path_answers_json_404(gw: RunningGateway) -> None:
    async with aiohttp.ClientSession() as session, session.get(f"{gw.http}/nope") as resp:
        assert resp.status == 404
        assert (await resp.json())["code"] == "not_found"


async def test_schema_describes_every_frame(gw: RunningGateway) -> None:
    async with aiohttp.ClientSession() as session, session.get(f"{gw.http}/ws/v2/schema") as resp:
        assert resp.status == 200
        schema = await resp.json()
    client_types = {
        ref["properties"]["type"]["const"]
        for ref in schema["client_message"]["$defs"].values()
        if "type" in ref.get("properties", {})
    }
    assert client_types == {"subscribe", "unsubscribe", "ping", "pong", "status", "auth"}
    server_types = set(schema["server_message"]["$defs"]["ServerMessageType"]["enum"])
    expected = {"welcome", "subscription_confirmed", "odds_update", "prediction_update",
                "arbitrage_alert", "pong", "error", "unsubscribed", "status"}  # fmt: skip
    assert expected <= server_types
    assert "invalid_filter" in schema["error_codes"]
    assert set(schema["subscription_types"]) >= {"odds_updates", "portfolio", "nhl"}


async def test_health_ready_and_metrics(gw: RunningGateway, client: Client) -> None:
    await client.subscribe("odds_updates")
    await client.send("{bad")
    await client.next_of("error")
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{gw.http}/healthz") as resp:
            assert resp.status == 200
        async with session.get(f"{gw.http}/readyz") as resp:
            assert resp.status == 200
            assert (await resp.json())["status"] == "ready"
        async with session.get(f"{gw.http}/metrics") as resp:
            text = await resp.text()
    assert "oddstream_connections 1.0" in text
    assert 'oddstream_messages_in_total{type="subscribe"} 1.0' in text
    assert 'oddstream_errors_total{code="invalid_json"} 1.0' in text
    assert 'oddstream_messages_out_total{type="welcome"} 1.0' in text
    assert "oddstream_worker_events" in text
    assert 'oddstream_stream_lag{stream="0"}' in text  # per ingest partition


async def test_broadcast_goes_through_worker_to_that_type_only(
    gw: RunningGateway, redis_client: Redis, keys: Keys
) -> None:
    alerts = await Client.connect(f"{gw.ws}/ws/v2/connect")
    odds = await Client.connect(f"{gw.ws}/ws/v2/connect")
    try:
        await alerts.subscribe("system_alerts")
        await odds.subscribe("odds_updates")
        await wait_until(lambda: workers_synced(redis_client, keys), message="worker index")
        async with aiohttp.ClientSession(headers=ADMIN) as session:
            body = {"subscription_type": "system_alerts", "message": "Test message"}
            async with session.post(f"{gw.http}/ws/v2/broadcast/test", json=body) as resp:
                assert resp.status == 202
                accepted = await resp.json()
            for bad, code in (
                ({"subscription_type": "golf", "message": "x"}, "invalid_subscription_type"),
                ({"subscription_type": "system_alerts"}, "invalid_request"),
            ):
                async with session.post(f"{gw.http}/ws/v2/broadcast/test", json=bad) as resp:
                    assert resp.status == 400
                    assert (await resp.json())["code"] == code
            async with session.post(f"{gw.http}/ws/v2/broadcast/test", data="{") as resp:
                assert (await resp.json())["code"] == "invalid_json"
        frame = await alerts.next_of("broadcast")
        assert frame["event_id"] == accepted["event_id"]
        assert frame["data"]["message"] == "Test message"
        partition = int(accepted["event_id"].split(":")[0])  # the id names its partition
        assert await redis_client.xlen(keys.ingest(partition)) >= 1
        assert odds.of("broadcast") == []
    finally:
        await alerts.close()
        await odds.close()


async def test_query_token_never_reaches_the_access_log(
    gw: RunningGateway, caplog: pytest.LogCaptureFixture
) -> None:
    token = issue_token(SECRET, "alice")
    with caplog.at_level("INFO", logger="aiohttp.access"):
        c = await Client.connect(f"{gw.ws}/ws/v2/connect?token={token}")
        await c.close()
        async with aiohttp.ClientSession() as session:
            await session.get(f"{gw.http}/ws/v2/status?token={token}")
        await wait_until(lambda: len(caplog.records) >= 2, message="access log lines")
    access = [vars(r) for r in caplog.records if r.msg == "http.access"]
    assert {"/ws/v2/connect", "/ws/v2/status"} <= {a["path"] for a in access}
    text = "\n".join(str(vars(r)) for r in caplog.records)  # every field of every record
    assert token not in text
    assert "token=" not in text


async def test_heartbeat_ping_client_pong_and_idle_timeout(
    auth_settings: Settings, redis_client: Redis, keys: Keys
) -> None:
    """The gateway pings on its interval; a client that answers stays, a silent one is closed
    with 4101 and its rooms are released from the cluster registry."""
    quick = auth_settings.model_copy(update={"heartbeat_interval": 0.2, "connection_timeout": 1.0})
    async with running_gateway(quick) as gw:
        lively = await Client.connect(f"{gw.ws}/ws/v2/connect")
        silent = await Client.connect(f"{gw.ws}/ws/v2/connect")
        try:
            lonely_room = (await silent.subscribe("nhl", game_id="only-silent"))["data"]["room"]
            assert await redis_client.hexists(keys.rooms, lonely_room)
            ping_times = []
            for _ in range(8):  # answer every ping for ~1.6 s, longer than the timeout
                mark = len(lively.frames)
                ping = await lively.next_of("ping", after=mark, timeout=2)
                ping_times.append(time.monotonic())
                assert ping["status"] == "success"
                await lively.send({"type": "pong"})
            gaps = [b - a for a, b in itertools.pairwise(ping_times)]
            assert all(0.1 < gap < 0.6 for gap in gaps), f"ping cadence off: {gaps}"
            await wait_until(lambda: silent.closed_code is not None, message="silent closed")
            assert silent.closed_code == 4101
            assert lively.closed_code is None
            assert lively.of("error") == []  # a pong is never answered with an error
            assert len(gw.node.connections) == 1
            assert lonely_room not in await held_rooms(redis_client, keys)
            assert await lingers(redis_client, keys, lonely_room)
            assert await redis_client.scard(keys.room_holders(lonely_room)) == 0
        finally:
            await lively.close()
            await silent.close()


async def test_every_event_kind_arrives_as_its_message_type(
    gw: RunningGateway, redis_client: Redis, keys: Keys
) -> None:
    c = await Client.connect(f"{gw.ws}/ws/v2/connect?token={issue_token(SECRET, 'alice')}")
    try:
        await c.subscribe("nba")  # odds, predictions, analytics, arbitrage and alerts of NBA
        await c.subscribe("system_alerts")
        await c.subscribe("portfolio")
        await wait_until(lambda: workers_synced(redis_client, keys), message="worker index")
        await publish(
            redis_client, keys,
            '{"kind":"odds","sport":"NBA","game_id":"1","sportsbook":"FanDuel","market":"spread"}',
            '{"kind":"predictions","sport":"NBA","game_id":"1","player":"LeBron James"}',
            '{"kind":"analytics","sport":"NBA","game_id":"1","pace":101.5}',
            '{"kind":"arbitrage","sport":"NBA","game_id":"1","profit_pct":1.2,'
            '"sportsbooks":["FanDuel","BetMGM"]}',
            '{"kind":"alerts","sport":"NBA","message":"Line suspended","level":"warning"}',
            '{"kind":"portfolio","user":"alice","event":"position_value","value":104.2}',
        )  # fmt: skip
        expected = ["odds_update", "prediction_update", "analytics_update", "arbitrage_alert",
                    "system_alert", "portfolio_update"]  # fmt: skip
        for type_ in expected:
            frame = await c.next_of(type_)
            assert frame["status"] == "success"
            assert frame["rooms"]
        data_types = [f["type"] for f in c.frames if "event_id" in f]
        assert sorted(data_types) == sorted(expected)
        alert = c.of("system_alert")[0]
        assert len(alert["rooms"]) == 2  # matched `nba` and `system_alerts`, delivered once
    finally:
        await c.close()


async def test_malformed_inbox_entry_is_skipped_and_delivery_continues(
    gw: RunningGateway, redis_client: Redis, keys: Keys, caplog: pytest.LogCaptureFixture
) -> None:
    c = await Client.connect(f"{gw.ws}/ws/v2/connect")
    try:
        await c.subscribe("odds_updates")
        await wait_until(lambda: workers_synced(redis_client, keys), message="worker index")
        inbox = keys.inbox(0, gw.node.gateway_id)
        await redis_client.xadd(inbox, {b"n": b"3", b"r0": b"x"})  # count lies
        await redis_client.xadd(inbox, {b"garbage": b"1"})
        await redis_client.xadd(inbox, {b"N": b"1", b"0": b"odds_update"})  # no rooms, frame
        ids = await publish(
            redis_client, keys,
            '{"kind":"odds","sport":"NFL","game_id":"9","sportsbook":"Caesars","market":"total"}',
        )  # fmt: skip
        update = await c.next_of("odds_update")
        assert update["event_id"] == ids[0].decode()
        malformed = [vars(r) for r in caplog.records if r.msg == "gateway.inbox.malformed"]
        assert len(malformed) == 3
        assert {m["stream"] for m in malformed} == {inbox}
    finally:
        await c.close()


async def test_a_gateway_delivers_entries_of_both_inbox_formats(
    gw: RunningGateway, redis_client: Redis, keys: Keys
) -> None:
    """During an upgrade (gateways first, then workers) inboxes hold entries of workers of
    both versions: the fields format and the compact one are delivered alike, in order."""
    from oddstream.shared.streams import Delivery, encode_compact_entry, encode_inbox_entry

    c = await Client.connect(f"{gw.ws}/ws/v2/connect")
    try:
        room = (await c.subscribe("odds_updates", game_id="UPG"))["data"]["room"]
        inbox = keys.inbox(0, gw.node.gateway_id)

        def frame(n: int) -> bytes:
            return orjson.dumps({"type": "odds_update", "event_id": f"0:{n}-0", "rooms": [room],
                                 "data": {"game_id": "UPG", "n": n}})  # fmt: skip

        old = [Delivery(room.encode(), frame(n), b"odds_update") for n in (1, 2)]
        new = [Delivery(room.encode(), frame(n), b"odds_update") for n in (3, 4)]
        await redis_client.xadd(inbox, encode_inbox_entry(old))
        await redis_client.xadd(inbox, encode_compact_entry(new))
        await wait_until(lambda: len(c.of("odds_update")) >= 4, message="both formats")
        assert [f["data"]["n"] for f in c.of("odds_update")] == [1, 2, 3, 4]
    finally:
        await c.close()


def test_inbox_entry_round_trip() -> None:
    from oddstream.shared.streams import (
        Canary,
        Delivery,
        InboxItem,
        Revocation,
        decode_inbox_entry,
        encode_inbox_entry,
    )

    batch: list[InboxItem] = [
        Delivery(b"r1,r2", b'{"a":1}', b"odds_update", b"odds|1|DK|total"),
        Canary(1764234000.123456),
        Delivery(b"r3", b"{}", b"pong"),
        Revocation("alice"),
    ]
    assert list(decode_inbox_entry(encode_inbox_entry(batch))) == batch
    assert list(decode_inbox_entry(encode_inbox_entry([]))) == []


def test_compact_inbox_entry_round_trip() -> None:
    """Workers' format: one field per item; a conflation key may hold the separator (it comes
    last), and a gateway reads the fields format too (`test_inbox_entry_round_trip`)."""
    from oddstream.shared.streams import (
        Canary,
        Delivery,
        decode_inbox_entry,
        encode_compact_entry,
    )

    batch: list[Delivery | Canary] = [
        Delivery(b"r1,r2", b'{"a":"x\\u001fy"}', b"odds_update", b"odds|G\x1f1|DK|total"),
        Canary(1764234000.123456),
        Delivery(b"r3", b"{}", b"system_alert"),
    ]
    fields = encode_compact_entry(batch)
    assert set(fields) == {b"N", b"0", b"1", b"2"}
    assert list(decode_inbox_entry(fields)) == batch
    assert list(decode_inbox_entry(encode_compact_entry(batch * 100))) == batch * 100
