"""The OpenAPI description at /ws/v2/openapi.json: valid OpenAPI 3.1, one entry per route the
app registers, and true of a live gateway (schemathesis, with real Redis and a real worker)."""

from __future__ import annotations

import asyncio
import functools
import time
from typing import Any

import aiohttp
import requests
import schemathesis
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from openapi_spec_validator import OpenAPIV31SpecValidator, validate
from redis.asyncio import Redis
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.errors import FailureGroup

from oddstream.gateway.app import create_app
from oddstream.gateway.openapi import OPENAPI_PATH
from oddstream.shared.ingest import Ingester, parse_event
from oddstream.shared.keys import Keys
from oddstream.shared.settings import Settings
from tests.harness import ADMIN, Client, running_gateway, running_worker, wait_until

#: What every response is held to: no 5xx, a described status, content type, headers, body.
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]

#: Examples per operation and generation mode: enough to find drift, quick on two cores.
EXAMPLES = 20

Operation = tuple[str, str]  # (method, path template)


async def fetch_document(base: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as session, session.get(base + OPENAPI_PATH) as resp:
        assert resp.status == 200
        assert resp.content_type == "application/json"
        document: dict[str, Any] = await resp.json()
        return document


def described(document: dict[str, Any]) -> set[Operation]:
    return {
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method in {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
    }


def security(document: dict[str, Any], op: Operation) -> Any:
    method, path = op
    return document["paths"][path][method.lower()].get("security")


def upgrades(document: dict[str, Any]) -> set[Operation]:
    """The WebSocket endpoints: operations that answer 101 Switching Protocols."""
    return {
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if "101" in operation.get("responses", {})
    }


async def test_served_document_is_valid_openapi_31(settings: Settings) -> None:
    async with running_gateway(settings) as gateway:
        document = await fetch_document(gateway.http)
    assert document["openapi"].startswith("3.1.")
    validate(document, cls=OpenAPIV31SpecValidator)
    # The analytics window the document allows is this gateway's retention.
    (minutes,) = [
        p
        for p in document["paths"]["/ws/v2/analytics"]["get"]["parameters"]
        if p["name"] == "minutes"
    ]
    assert minutes["schema"]["maximum"] == settings.analytics_retention_seconds // 60
    assert {"/ws/v2/connect", "/ws/v2/sport/{sport}"} <= {p for _, p in upgrades(document)}


async def test_every_route_is_described_and_every_description_is_a_route(
    settings: Settings,
) -> None:
    """A new endpoint without a description fails here, and so does a stale description."""
    app = create_app(settings)
    registered: set[Operation] = set()
    for route in app.router.routes():
        path = route.resource.canonical if route.resource is not None else None
        assert path is not None, f"a route without a resource: {route}"
        registered.add((route.method, path))
    # aiohttp answers HEAD wherever GET is (add_get's allow_head); the document says so once,
    # in info.description, instead of repeating every GET.
    heads = {(m, p) for m, p in registered if m == "HEAD"}
    assert {("GET", p) for _, p in heads} <= registered, "a HEAD route without its GET"
    registered -= heads
    async with running_gateway(settings) as gateway:
        document = await fetch_document(gateway.http)
    assert registered - described(document) == set(), "routes missing from the OpenAPI document"
    assert described(document) - registered == set(), "described operations with no route"
    assert "HEAD is answered wherever GET is" in document["info"]["description"]


def fuzz(
    operation: schemathesis.APIOperation[Any, Any, Any, Any],
    mode: GenerationMode,
    base_url: str,
    session: requests.Session,
    headers: dict[str, str],
) -> set[int]:
    """Hypothesis over one operation: each generated request sent, its response checked."""
    statuses: set[int] = set()

    @hypothesis_settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
    )
    @given(case=operation.as_strategy(generation_mode=mode, headers=headers))
    def check(case: schemathesis.Case[Any]) -> None:
        response = case.call_and_validate(
            base_url=base_url, session=session, checks=CHECKS, timeout=10
        )
        statuses.add(response.status_code)

    check()
    return statuses


def run_schemathesis(
    document: dict[str, Any], base_url: str, operations: set[Operation], headers: dict[str, str]
) -> dict[Operation, set[int]]:
    """Schemathesis over `operations`, positive and negative data, every response checked.

    Runs in a thread: it makes blocking requests while the gateway serves on the test's loop.
    Returns the statuses seen per operation, so the caller can tell what was exercised."""
    # An explicit configuration: no schemathesis.toml from the working directory applies.
    schema = schemathesis.openapi.from_dict(document, config=schemathesis.Config())
    seen: dict[Operation, set[int]] = {}
    failures: list[str] = []
    with requests.Session() as session:
        for method, path in sorted(operations):
            raw = document["paths"][path][method.lower()]
            # Invalid data needs an input to put it in: a parameter or a body.
            takes_input = bool(raw.get("parameters") or raw.get("requestBody"))
            modes = [GenerationMode.POSITIVE] + [GenerationMode.NEGATIVE] * takes_input
            for mode in modes:
                try:
                    statuses = fuzz(schema[path][method], mode, base_url, session, headers)
                except (Exception, FailureGroup) as exc:  # FailureGroup: a BaseExceptionGroup
                    failures.append(f"{method} {path} ({mode.value} data):\n{exc}")
                else:
                    seen.setdefault((method, path), set()).update(statuses)
    assert not failures, "\n\n".join(failures)
    return seen


async def _traffic(redis: Redis, keys: Keys, ws: str) -> list[Client]:
    """Connections in rooms and an event delivered, so the lists and analytics are not empty."""
    clients = [
        await Client.connect(f"{ws}/ws/v2/odds?sport=MLB&sportsbook=DraftKings,FanDuel"),
        await Client.connect(f"{ws}/ws/v2/arbitrage?min_profit=1.5"),
    ]
    for client in clients:
        await client.next_of("subscription_confirmed")
    event = {"kind": "odds", "sport": "MLB", "game_id": "MLB-OPENAPI-1", "sportsbook": "DraftKings",
             "market": "moneyline", "home_price": -120, "away_price": 110}  # fmt: skip
    await Ingester(redis, keys).publish(parse_event(event))
    await clients[0].next_of("odds_update")
    return clients


async def test_schemathesis_against_a_live_gateway(
    settings: Settings, redis_client: Redis, keys: Keys
) -> None:
    settings = settings.model_copy(update={"analytics_flush_interval": 0.2})
    async with running_gateway(settings) as gateway, running_worker(settings):
        await wait_until(lambda: gateway.node.pipeline_ok, message="the pipeline canary")
        clients = await _traffic(redis_client, keys, gateway.ws)
        try:
            await wait_until(
                lambda: (
                    len(gateway.node.connections) == 2
                    and not any(c.dirty for c in gateway.node.connections.values())
                ),
                message="the connections recorded",
            )
            # A minute of analytics with the connections in it (flushed every 0.2 s).
            minute = keys.analytics(int(time.time()) // 60)
            await wait_until(lambda: redis_client.exists(minute), message="analytics flushed")
            document = await fetch_document(gateway.http)
            http = described(document) - upgrades(document)
            admin = {op for op in http if security(document, op) == [{"adminBearer": []}]}
            assert len(admin) >= 5  # rooms, connections, analytics, broadcast, revoke
            # Every operation with admin credentials, then every one without.
            fuzz_all = functools.partial(run_schemathesis, document, gateway.http, http)
            as_admin = await asyncio.to_thread(fuzz_all, ADMIN)
            anonymous = await asyncio.to_thread(fuzz_all, {})
        finally:
            for client in clients:
                await client.close()
    # The admin endpoints were exercised, not just refused, and refused without credentials.
    for op in admin:
        assert any(s < 400 for s in as_admin[op]), (op, as_admin[op])
        assert anonymous[op] == {401}, (op, anonymous[op])
    # Public ones answer everyone: status (its public fields), whoami (anonymous).
    assert 200 in anonymous[("GET", "/ws/v2/status")]
    assert 200 in anonymous[("GET", "/ws/v2/whoami")]


#: A WebSocket upgrade's headers (RFC 6455's sample key).
UPGRADE = {
    "Upgrade": "websocket",
    "Connection": "Upgrade",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    "Sec-WebSocket-Version": "13",
}


#: New connections the handshake test's gateway allows one address at once (hardly refilled).
BURST = 12


def check_handshakes(document: dict[str, Any], base_url: str) -> list[tuple[str, int]]:
    """Upgrades accepted and refused, each answer checked against its operation's description."""
    # 101 is no server error (schemathesis expects 2xx to 4xx by default).
    upgrade_ok = {"not_a_server_error": {"expected-statuses": ["101", "2xx", "3xx", "4xx"]}}
    config = schemathesis.Config.from_dict({"checks": upgrade_ok})
    schema = schemathesis.openapi.from_dict(document, config=config)
    cases: list[tuple[str, dict[str, Any], int]] = [
        ("/ws/v2/connect", {"headers": UPGRADE}, 101),
        ("/ws/v2/odds", {"headers": UPGRADE, "query": {"sport": ["MLB", "NBA"]}}, 101),
        ("/ws/v2/sport/{sport}", {"headers": UPGRADE, "path_parameters": {"sport": "nhl"}}, 101),
        # not an upgrade: aiohttp's plain-text 400
        ("/ws/v2/connect", {}, 400),
        ("/ws/v2/sport/{sport}", {"headers": UPGRADE, "path_parameters": {"sport": "XFL"}}, 400),
        ("/ws/v2/odds", {"headers": UPGRADE, "query": {"player": "Aaron Judge"}}, 400),
        ("/ws/v2/arbitrage", {"headers": UPGRADE, "query": {"min_profit": "lots"}}, 400),
        ("/ws/v2/portfolio", {"headers": UPGRADE}, 401),
        ("/ws/v2/connect", {"headers": {**UPGRADE, "Authorization": "Bearer not-a-jwt"}}, 401),
        ("/ws/v2/connect", {"headers": {**UPGRADE, "Origin": "https://evil.example"}}, 403),
    ]
    answered = []
    for path, parts, expected in cases:
        case = schema[path]["GET"].Case(**parts)
        response = case.call_and_validate(base_url=base_url, checks=CHECKS, timeout=10)
        assert response.status_code == expected, (path, parts, response.text)
        answered.append((path, response.status_code))
    # The connection-rate limit: once the burst is spent, upgrades are refused.
    for _ in range(BURST):
        case = schema["/ws/v2/connect"]["GET"].Case(headers=UPGRADE)
        response = case.call_and_validate(base_url=base_url, checks=CHECKS, timeout=10)
        answered.append(("/ws/v2/connect", response.status_code))
        if response.status_code == 429:
            break
    return answered


async def test_websocket_handshakes_match_their_description(settings: Settings) -> None:
    """What HTTP sees of the WebSocket endpoints: the 101, and each refusal's status and body."""
    settings = settings.model_copy(
        update={
            "allowed_origins": ["https://allowed.example"],
            "connect_rate_per_ip": 0.01,
            "connect_burst_per_ip": BURST,
        }
    )
    async with running_gateway(settings) as gateway:
        document = await fetch_document(gateway.http)
        answered = await asyncio.to_thread(check_handshakes, document, gateway.http)
    assert {status for _, status in answered} == {101, 400, 401, 403, 429}
