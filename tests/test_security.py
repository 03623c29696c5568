"""Authentication, authorization and abuse limits, through real sockets and real Redis."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import jwt
import pytest
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from pydantic import SecretStr
from redis.asyncio import Redis

from oddstream.gateway.auth import issue_token
from oddstream.shared.keys import Keys
from oddstream.shared.settings import Settings
from tests.harness import (
    ADMIN,
    Client,
    RunningGateway,
    odds_feed,
    running_gateway,
    running_worker,
    wait_until,
    workers_synced,
)

SECRET = "hs-secret-for-tests-0123456789abcdef"
ISSUER, AUDIENCE = "https://id.oddstream.test", "oddstream"
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
RSA_PUBLIC_PEM = (
    RSA_KEY.public_key()
    .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    .decode()
)
OTHER_RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def claims(**extra: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"sub": "alice", "iat": now, "exp": now + 600, "iss": ISSUER, "aud": AUDIENCE, **extra}


def hs(**extra: Any) -> str:
    return jwt.encode(claims(**extra), SECRET, algorithm="HS256")


def forged_hs256(key: bytes) -> str:
    """An HS256 token MACed with `key` by hand (PyJWT rightly refuses to sign with a PEM)."""

    def b64(raw: bytes) -> bytes:
        return base64.urlsafe_b64encode(raw).rstrip(b"=")

    signing_input = b64(b'{"alg":"HS256","typ":"JWT"}') + b"." + b64(json.dumps(claims()).encode())
    signature = hmac.new(key, signing_input, hashlib.sha256).digest()
    return (signing_input + b"." + b64(signature)).decode()


def rs(key: rsa.RSAPrivateKey = RSA_KEY, **extra: Any) -> str:
    return jwt.encode(claims(**extra), key, algorithm="RS256")


@pytest.fixture
def secure(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "jwt_secret": SecretStr(SECRET),
            "jwt_algorithms": ["HS256", "RS256"],
            "jwt_public_key": RSA_PUBLIC_PEM,
            "jwt_issuer": ISSUER,
            "jwt_audience": AUDIENCE,
        }
    )


@pytest.fixture
async def gw(secure: Settings) -> AsyncIterator[RunningGateway]:
    async with running_gateway(secure) as gateway, running_worker(secure):
        yield gateway


async def refused(
    url: str, origin: str | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, Any], dict[str, str]]:
    """Status, JSON body and headers of a refused upgrade."""
    sent = dict(headers or {})
    if origin is not None:
        sent["Origin"] = origin
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await session.ws_connect(url, headers=sent)
        got = dict(info.value.headers or {})
        async with session.get(url.replace("ws://", "http://"), headers=sent) as resp:
            return info.value.status, await resp.json(), got


# --- tokens ----------------------------------------------------------------------------------

BAD_TOKENS = [
    ("alg_none", lambda: jwt.encode(claims(), None, algorithm="none"), 401, "invalid_algorithm"),
    ("wrong_hs_key", lambda: jwt.encode(claims(), "another-secret-0123456789abcdefgh",
                                        algorithm="HS256"), 401, "invalid_signature"),
    ("wrong_rs_key", lambda: rs(OTHER_RSA_KEY), 401, "invalid_signature"),
    # HS/RS confusion: HS256 signed with the public RSA key as the HMAC secret.
    ("hs_rs_confusion", lambda: forged_hs256(RSA_PUBLIC_PEM.encode()),
     401, "invalid_signature"),
    ("hs384_not_allowed", lambda: jwt.encode(claims(), SECRET * 2, algorithm="HS384"), 401,
     "invalid_algorithm"),
    ("expired", lambda: hs(exp=int(time.time()) - 60), 401, "token_expired"),
    ("not_yet_valid", lambda: hs(nbf=int(time.time()) + 3600), 401, "token_not_yet_valid"),
    ("wrong_audience", lambda: hs(aud="someone-else"), 401, "invalid_audience"),
    ("wrong_issuer", lambda: hs(iss="https://evil.test"), 401, "invalid_issuer"),
    ("garbage", lambda: "not.a.token", 401, "malformed_token"),
    ("empty_segments", lambda: "..", 401, "malformed_token"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "make", "status", "reason"), BAD_TOKENS, ids=[t[0] for t in BAD_TOKENS]
)
async def test_bad_token_is_refused_before_upgrade(
    gw: RunningGateway, name: str, make: Any, status: int, reason: str
) -> None:
    got_status, body, _ = await refused(f"{gw.ws}/ws/v2/connect?token={make()}")
    assert (got_status, body["reason"]) == (status, reason), body
    assert body["code"] in {"invalid_token", "token_expired"}
    assert body["error"]


@pytest.mark.parametrize("token", [hs, rs], ids=["HS256", "RS256"])
async def test_good_tokens_of_each_family_are_accepted(gw: RunningGateway, token: Any) -> None:
    c = await Client.connect(
        f"{gw.ws}/ws/v2/connect", headers={"Authorization": f"Bearer {token()}"}
    )
    try:
        assert c.of("welcome")[0]["data"]["user"] == "alice"
    finally:
        await c.close()


async def test_token_in_subprotocol_and_protocol_echoed(gw: RunningGateway) -> None:
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(
            f"{gw.ws}/ws/v2/connect", protocols=("oddstream.v2", f"bearer.{hs()}")
        )
        try:
            assert ws.protocol == "oddstream.v2"
            welcome = json.loads((await ws.receive()).data)
            assert welcome["data"]["user"] == "alice"
        finally:
            await ws.close()


async def test_portfolio_needs_a_user_and_only_ones_own(gw: RunningGateway) -> None:
    no_sub = jwt.encode(
        {k: v for k, v in claims().items() if k != "sub"}, SECRET, algorithm="HS256"
    )
    status, body, _ = await refused(f"{gw.ws}/ws/v2/portfolio?token={no_sub}")
    assert (status, body["code"]) == (401, "auth_required")
    status, body, _ = await refused(f"{gw.ws}/ws/v2/portfolio?token={hs()}&user=bob")
    assert (status, body["code"]) == (403, "forbidden")
    c = await Client.connect(f"{gw.ws}/ws/v2/connect?token={hs()}")
    try:
        reply = await c.request(
            {"type": "subscribe", "subscription_type": "portfolio", "filters": {"user": "bob"}},
            "subscription_confirmed",
        )
        assert reply["code"] == "forbidden"
        own = await c.subscribe("portfolio", user="alice")
        assert own["data"]["user"] == "alice"
    finally:
        await c.close()


async def test_scopes_limit_subscription_types(gw: RunningGateway) -> None:
    c = await Client.connect(f"{gw.ws}/ws/v2/connect?token={hs(scopes=['odds_updates'])}")
    try:
        assert (await c.subscribe("odds_updates"))["type"] == "subscription_confirmed"
        reply = await c.request(
            {"type": "subscribe", "subscription_type": "predictions"}, "subscription_confirmed"
        )
        assert reply["code"] == "forbidden"
        assert "scopes" in reply["error"]
    finally:
        await c.close()


async def test_anonymous_can_be_turned_off(secure: Settings) -> None:
    async with running_gateway(secure.model_copy(update={"allow_anonymous": False})) as gw:
        status, body, _ = await refused(f"{gw.ws}/ws/v2/connect")
        assert (status, body["code"], body["reason"]) == (401, "auth_required", "token_required")


async def test_jwks_keys_by_kid(settings: Settings) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    jwk.update(kid="key-1", use="sig", alg="ES256")

    async def jwks(_: web.Request) -> web.Response:
        return web.json_response({"keys": [jwk]})

    app = web.Application()
    app.router.add_get("/jwks.json", jwks)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    es_settings = settings.model_copy(
        update={"jwt_algorithms": ["ES256"], "jwt_jwks_url": f"http://127.0.0.1:{port}/jwks.json"}
    )
    try:
        async with running_gateway(es_settings) as gw:
            now = int(time.time())
            body = {"sub": "carol", "iat": now, "exp": now + 60}
            good = jwt.encode(body, key, algorithm="ES256", headers={"kid": "key-1"})
            c = await Client.connect(f"{gw.ws}/ws/v2/connect?token={good}")
            assert c.of("welcome")[0]["data"]["user"] == "carol"
            await c.close()
            unknown = jwt.encode(body, key, algorithm="ES256", headers={"kid": "key-2"})
            status, reply, _ = await refused(f"{gw.ws}/ws/v2/connect?token={unknown}")
            assert (status, reply["reason"]) == (401, "unknown_key")
    finally:
        await runner.cleanup()


async def test_expiry_notice_refresh_and_close(secure: Settings) -> None:
    quick = secure.model_copy(update={"token_expiry_notice": 1.5, "jwt_leeway": 0.0})
    async with running_gateway(quick) as gw:
        soon = int(time.time()) + 3
        keeper = await Client.connect(f"{gw.ws}/ws/v2/connect?token={hs(exp=soon)}")
        lapsed = await Client.connect(f"{gw.ws}/ws/v2/connect?token={hs(exp=soon)}")
        try:
            room = (await keeper.subscribe("nba"))["data"]["room"]
            notice = await keeper.next_of("token_expiring", timeout=4)
            assert notice["data"]["token_expires_at"] == soon
            wrong = jwt.encode(claims(sub="mallory"), SECRET, algorithm="HS256")
            reply = await keeper.request({"type": "auth", "token": wrong}, "auth_refreshed")
            assert reply["code"] == "forbidden"
            reply = await keeper.request({"type": "auth", "token": hs(), "id": 9}, "auth_refreshed")
            assert reply["type"] == "auth_refreshed" and reply["id"] == 9
            await wait_until(lambda: lapsed.closed_code is not None, timeout=6, message="lapse")
            assert lapsed.closed_code == 4401
            await asyncio.sleep(1.0)
            assert keeper.closed_code is None
            status = await keeper.request({"type": "status"}, "status")
            assert [s["room"] for s in status["data"]["subscriptions"]] == [room]
        finally:
            await keeper.close()
            await lapsed.close()


# --- management ------------------------------------------------------------------------------


async def test_management_endpoints_need_admin(gw: RunningGateway) -> None:
    admin_jwt = {"Authorization": f"Bearer {hs(admin=True)}"}
    user_jwt = {"Authorization": f"Bearer {hs()}"}
    async with aiohttp.ClientSession() as s:
        for path in ("/ws/v2/rooms", "/ws/v2/connections"):
            async with s.get(gw.http + path) as r:
                assert r.status == 401
                assert (await r.json())["code"] == "unauthorized"
            async with s.get(gw.http + path, headers=user_jwt) as r:
                assert r.status == 401
            for headers in (ADMIN, admin_jwt):
                async with s.get(gw.http + path, headers=headers) as r:
                    assert r.status == 200
        body = {"subscription_type": "system_alerts", "message": "x"}
        async with s.post(f"{gw.http}/ws/v2/broadcast/test", json=body) as r:
            assert r.status == 401
        async with s.get(f"{gw.http}/ws/v2/status") as r:
            public = await r.json()
        async with s.get(f"{gw.http}/ws/v2/status", headers=ADMIN) as r:
            full = await r.json()
    assert set(public) == {"service", "version", "status", "uptime_seconds", "timestamp"}
    assert {"gateways", "workers", "redis", "streams"} <= set(full)


async def test_revocation_disconnects_a_user_cluster_wide(
    secure: Settings, redis_client: Redis, keys: Keys
) -> None:
    async with running_gateway(secure) as a, running_gateway(secure) as b:
        token = hs()
        on_a = await Client.connect(f"{a.ws}/ws/v2/connect?token={token}")
        on_b = await Client.connect(f"{b.ws}/ws/v2/connect?token={token}")
        bystander = await Client.connect(f"{b.ws}/ws/v2/connect?token={hs(sub='bob')}")
        try:
            async with aiohttp.ClientSession(headers=ADMIN) as s:
                started = time.monotonic()
                async with s.post(f"{a.http}/ws/v2/admin/revoke", json={"user": "alice"}) as r:
                    assert r.status == 200
                    assert (await r.json())["gateways_notified"] == 2
            await wait_until(
                lambda: on_a.closed_code is not None and on_b.closed_code is not None,
                timeout=2,
                message="both closed",
            )
            assert time.monotonic() - started < 1.0
            assert (on_a.closed_code, on_b.closed_code) == (4503, 4503)
            assert bystander.closed_code is None
            status, body, _ = await refused(f"{b.ws}/ws/v2/connect?token={token}")
            assert (status, body["reason"]) == (401, "revoked")
            await asyncio.sleep(1.1)  # a token issued after the revocation is fine
            again = await Client.connect(f"{a.ws}/ws/v2/connect?token={hs()}")
            await again.close()
        finally:
            for c in (on_a, on_b, bystander):
                await c.close()


# --- origins and CORS ------------------------------------------------------------------------


async def test_origin_allow_list_and_cors(secure: Settings) -> None:
    good, bad = "https://app.oddstream.test", "https://evil.test"
    async with running_gateway(secure.model_copy(update={"allowed_origins": [good]})) as gw:
        status, body, _ = await refused(f"{gw.ws}/ws/v2/connect", origin=bad)
        assert (status, body["code"]) == (403, "origin_not_allowed")
        ok = await Client.connect(f"{gw.ws}/ws/v2/connect", origin=good)
        await ok.close()
        no_origin = await Client.connect(f"{gw.ws}/ws/v2/connect")
        await no_origin.close()
        async with aiohttp.ClientSession() as s:
            async with s.get(f"{gw.http}/ws/v2/status", headers={"Origin": good}) as r:
                assert r.headers["Access-Control-Allow-Origin"] == good
            async with s.get(f"{gw.http}/ws/v2/status", headers={"Origin": bad}) as r:
                assert "Access-Control-Allow-Origin" not in r.headers
            preflight = {"Origin": good, "Access-Control-Request-Method": "POST"}
            async with s.options(f"{gw.http}/ws/v2/broadcast/test", headers=preflight) as r:
                assert r.status == 204
                assert "Authorization" in r.headers["Access-Control-Allow-Headers"]
            preflight["Origin"] = bad
            async with s.options(f"{gw.http}/ws/v2/broadcast/test", headers=preflight) as r:
                assert r.status == 403


# --- limits, while a well-behaved client keeps receiving ------------------------------------


async def test_abuse_is_refused_while_a_good_client_gets_everything(
    secure: Settings, redis_client: Redis, keys: Keys
) -> None:
    limited = secure.model_copy(
        update={
            "connect_rate_per_ip": 0.5,
            "connect_burst_per_ip": 12,
            "messages_per_second": 5.0,
            "message_burst": 5,
            "rate_limit_strikes": 10,
            "max_subscriptions": 3,
            "max_filter_value_length": 20,
            "allowed_origins": ["https://app.oddstream.test"],
        }
    )
    async with running_gateway(limited) as gw, running_worker(limited):
        good = await Client.connect(f"{gw.ws}/ws/v2/connect")
        await good.subscribe("odds_updates", sport="NHL")
        await wait_until(lambda: workers_synced(redis_client, keys), message="index")
        abuser = await Client.connect(f"{gw.ws}/ws/v2/connect")
        try:
            async with odds_feed(redis_client, keys, "NHL") as sent:
                # Bad origin.
                status, body, _ = await refused(
                    f"{gw.ws}/ws/v2/connect", origin="https://evil.test"
                )
                assert (status, body["code"]) == (403, "origin_not_allowed")
                # Malformed JSON, unknown types, bad filters, long values, too many subscriptions.
                for frame, code in (
                    ("{oops", "invalid_json"),
                    ('{"type": "hack"}', "unknown_type"),
                    ('{"type": "subscribe", "subscription_type": "nba", "filters": {"x": 1}}',
                     "invalid_filter"),
                    ('{"type": "subscribe", "subscription_type": "odds_updates", '
                     '"filters": {"sportsbook": "' + "B" * 21 + '"}}', "invalid_filter"),
                ):  # fmt: skip
                    mark = len(abuser.frames)
                    await abuser.send(frame)
                    assert (await abuser.next_of("error", after=mark))["code"] == code
                await asyncio.sleep(1.0)  # refill the message bucket
                for sport in ("MLB", "NBA", "NFL"):
                    await abuser.subscribe("odds_updates", sport=sport)
                reply = await abuser.request(
                    {"type": "subscribe", "subscription_type": "odds_updates",
                     "filters": {"sport": "NHL"}}, "subscription_confirmed")  # fmt: skip
                assert reply["code"] == "too_many_subscriptions"
                # Message flood: an error, then a 1008 close.
                for _ in range(40):
                    await abuser.send({"type": "ping"})
                await wait_until(lambda: abuser.closed_code is not None, message="flood closed")
                assert abuser.closed_code == 1008
                assert [e["code"] for e in abuser.of("error")][-1] == "rate_limited"
                # Oversized frame.
                big = await Client.connect(f"{gw.ws}/ws/v2/connect")
                await big.send("x" * (limited.max_message_bytes + 1))
                await wait_until(lambda: big.closed_code is not None, message="1009")
                assert big.closed_code == 1009
                # Connection flood from one address: 429 with Retry-After.
                refusals: list[aiohttp.WSServerHandshakeError] = []
                flood: list[Client] = []
                for _ in range(15):
                    try:
                        flood.append(await Client.connect(f"{gw.ws}/ws/v2/connect"))
                    except aiohttp.WSServerHandshakeError as exc:
                        refusals.append(exc)
                assert refusals, "the connection flood was never refused"
                assert {r.status for r in refusals} == {429}
                assert all(int((r.headers or {})["Retry-After"]) >= 1 for r in refusals)
                for c in flood:
                    await c.close()
                await big.close()
                # ...and the good client got every event meant for it, in order.
                mark = len(sent)
                await wait_until(lambda: len(sent) > mark + 20, message="more events")
            await wait_until(
                lambda: len(good.of("odds_update")) == len(sent), message="good client caught up"
            )
            got = [f["event_id"] for f in good.of("odds_update")]
            assert sorted(got) == sorted(sent)  # each once; every event is a game of its own,
            assert len(set(got)) == len(got)  # so no order across them is promised
            assert good.closed_code is None
        finally:
            await abuser.close()
            await good.close()


async def test_forwarded_for_trusted_only_from_configured_proxies(secure: Settings) -> None:
    tight = {"connect_rate_per_ip": 0.1, "connect_burst_per_ip": 1}
    behind_proxy = secure.model_copy(update={**tight, "trusted_proxies": ["127.0.0.1/32"]})
    async with running_gateway(behind_proxy) as gw:
        for ip in ("203.0.113.7", "203.0.113.8"):  # distinct clients behind the proxy
            c = await Client.connect(f"{gw.ws}/ws/v2/connect", headers={"X-Forwarded-For": ip})
            await c.close()
        status, body, _ = await refused(
            f"{gw.ws}/ws/v2/connect", headers={"X-Forwarded-For": "203.0.113.7"}
        )
        assert (status, body["code"]) == (429, "rate_limited")
    async with running_gateway(secure.model_copy(update=tight)) as gw:  # no trusted proxy
        c = await Client.connect(f"{gw.ws}/ws/v2/connect", headers={"X-Forwarded-For": "1.1.1.1"})
        await c.close()
        status, _, _ = await refused(
            f"{gw.ws}/ws/v2/connect", headers={"X-Forwarded-For": "2.2.2.2"}
        )
        assert status == 429, "a spoofed X-Forwarded-For must not buy a fresh bucket"


async def test_connections_per_user_are_counted_cluster_wide(secure: Settings) -> None:
    capped = secure.model_copy(update={"max_connections_per_user": 2})
    async with running_gateway(capped) as a, running_gateway(capped) as b:
        token = hs()
        first = await Client.connect(f"{a.ws}/ws/v2/connect?token={token}")
        second = await Client.connect(f"{b.ws}/ws/v2/connect?token={token}")
        try:
            status, body, _ = await refused(f"{a.ws}/ws/v2/connect?token={token}")
            assert (status, body["code"]) == (429, "too_many_connections")
            other_user = await Client.connect(f"{b.ws}/ws/v2/connect?token={hs(sub='bob')}")
            await other_user.close()
            await second.close()

            async def slot_free() -> bool:
                try:
                    c = await Client.connect(f"{b.ws}/ws/v2/connect?token={token}")
                except aiohttp.WSServerHandshakeError:
                    return False
                await c.close()
                return True

            await wait_until(slot_free, timeout=5, message="slot released")
        finally:
            await first.close()
            await second.close()


def test_issue_token_round_trip() -> None:
    token = issue_token(SECRET, "dave", ttl=60, scopes=["nba"])
    body = jwt.decode(token, SECRET, algorithms=["HS256"])
    assert body["sub"] == "dave" and body["scopes"] == ["nba"]
