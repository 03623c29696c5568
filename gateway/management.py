"""HTTP management endpoints. Every gateway answers for the whole cluster, from Redis."""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web
from pydantic import ValidationError
from redis.asyncio import Redis
from redis.exceptions import RedisError

from oddstream.gateway.analytics import read_rollups
from oddstream.gateway.openapi import OPENAPI_PATH, openapi_json
from oddstream.gateway.state import METRICS, NODE, VERIFIER
from oddstream.shared.events import BroadcastEvent
from oddstream.shared.keys import Keys
from oddstream.shared.protocol import (
    ErrorCode,
    ServerMessageType,
    describe_validation_error,
    utc_now_iso,
)
from oddstream.shared.schema import json_schema

__all__ = ["json_error", "json_response", "routes"]

routes = web.RouteTableDef()

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: How long a revocation is remembered: tokens issued before it are refused meanwhile.
REVOCATION_SECONDS = 7 * 86_400

#: What /ws/v2/status shows without admin credentials.
PUBLIC_STATUS_FIELDS = ("service", "version", "status", "uptime_seconds", "timestamp")


def admin_only(handler: Handler) -> Handler:
    """Management endpoints need admin credentials (see gateway.auth.TokenVerifier.is_admin)."""

    @functools.wraps(handler)
    async def guarded(request: web.Request) -> web.StreamResponse:
        if not await request.app[VERIFIER].is_admin(request):
            request.app[METRICS].errors_of(ErrorCode.UNAUTHORIZED.value).inc()
            return json_error(
                401, ErrorCode.UNAUTHORIZED, "This endpoint needs admin credentials.",
                headers={"WWW-Authenticate": 'Bearer realm="oddstream-admin"'},
            )  # fmt: skip
        return await handler(request)

    return guarded


MAX_PAGE = 1000

#: Lag is counted up to this many entries per partition (a bounded XRANGE per status call).
MAX_LAG_COUNTED = 10_000


def json_response(
    body: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=orjson.dumps(body), status=status, content_type="application/json", headers=headers
    )


def json_error(
    status: int,
    code: ErrorCode,
    message: str,
    *,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> web.Response:
    from oddstream.shared.protocol import ERROR_HINTS

    return json_response(
        {
            "status": "error",
            "code": code.value,
            "error": f"{message} {ERROR_HINTS[code]}",
            "hint": ERROR_HINTS[code],
            **extra,
        },
        status,
        headers,
    )


async def stream_figures(redis: Redis, keys: Keys) -> dict[str, dict[str, Any]]:
    """Length of each ingest partition and its lag: entries past its delivered cursor."""
    figures: dict[str, dict[str, Any]] = {}
    for partition in range(keys.partitions):
        stream = keys.ingest(partition)
        cursor: Any = await redis.get(keys.cursor(partition))
        after = b"(" + cursor if cursor else b"-"
        unread: Any = await redis.xrange(stream, after, "+", count=MAX_LAG_COUNTED)
        figures[str(partition)] = {"length": await redis.xlen(stream), "lag": len(unread)}
    return figures


async def _json_object(request: web.Request) -> dict[str, Any] | web.Response:
    """The request's JSON object body, or the 400 to answer with."""
    try:
        body = await request.json(loads=orjson.loads)
    except ValueError:
        return json_error(400, ErrorCode.INVALID_JSON, "The body is not valid JSON.")
    if not isinstance(body, dict):
        return json_error(400, ErrorCode.INVALID_REQUEST, "The body must be a JSON object.")
    return body


@routes.get("/ws/v2/status")
async def status(request: web.Request) -> web.Response:
    node = request.app[NODE]
    body: dict[str, Any] = {
        "service": "oddstream",
        "version": node.describe()["version"],
        "gateway_id": node.gateway_id,
        "uptime_seconds": round(time.time() - node.started_at, 3),
        "timestamp": utc_now_iso(),
        "this_gateway": {"connections": len(node.connections), "rooms": len(node.rooms),
                         "ready": node.ready, "pipeline": node.pipeline_ok},
    }  # fmt: skip
    try:
        started = time.perf_counter()
        await node.redis.ping()
        latency_ms = (time.perf_counter() - started) * 1000
        info = await node.redis.info("server")
        memory = await node.redis.info("memory")
        gateways = await node.registry.gateways_alive()
        workers = await node.registry.workers_alive()
        body.update(
            status="ok" if gateways and workers else "degraded",
            redis={
                "ok": True,
                "version": info.get("redis_version"),
                "latency_ms": round(latency_ms, 3),
                "used_memory": memory.get("used_memory"),
            },
            gateways={"alive": len(gateways), "ids": sorted(gateways)},
            workers={"alive": len(workers), "ids": sorted(workers)},
            connections=sum(int(g.get("connections", 0)) for g in gateways.values()),
            rooms=await node.registry.held_room_count(),
            streams=await stream_figures(node.redis, node.keys),
            deadletter=sum([await node.redis.xlen(key) for key in node.keys.deadletters]),
        )
        status_code = 200
    except RedisError as exc:
        body.update(status="unavailable", redis={"ok": False, "error": str(exc)})
        status_code = 503
    if not await request.app[VERIFIER].is_admin(request):
        # In public only what is safe: no ids, hosts, counts of users or Redis details.
        body = {k: v for k, v in body.items() if k in PUBLIC_STATUS_FIELDS}
    return json_response(body, status_code)


@routes.post("/ws/v2/admin/revoke")
@admin_only
async def revoke(request: web.Request) -> web.Response:
    """Disconnect every connection of a user, cluster-wide, and refuse their current tokens."""
    body = await _json_object(request)
    if isinstance(body, web.Response):
        return body
    user = body.get("user")
    if not isinstance(user, str) or not user:
        return json_error(400, ErrorCode.INVALID_REQUEST, "The body needs a 'user' string.")
    node = request.app[NODE]
    told = await node.registry.revoke_user(user, time.time(), REVOCATION_SECONDS)
    return json_response({"status": "revoked", "user": user, "gateways_notified": told})


@routes.get("/ws/v2/rooms")
@admin_only
async def rooms(request: web.Request) -> web.Response:
    node = request.app[NODE]
    detail = await node.registry.rooms_detail()
    return json_response({"count": len(detail), "rooms": detail})


def _page_param(request: web.Request, name: str, default: int, high: int, low: int = 0) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise ValueError(f"'{name}' must be a whole number from {low} to {high}, not {raw!r}")
    return value


@routes.get("/ws/v2/connections")
@admin_only
async def connections(request: web.Request) -> web.Response:
    """The records gateways write when a connection opens, subscribes, unsubscribes or
    refreshes its token (and delete when it closes); the page's counters are read live."""
    node = request.app[NODE]
    try:
        limit = _page_param(request, "limit", 100, MAX_PAGE)
        offset = _page_param(request, "offset", 0, 10**9)
    except ValueError as exc:
        return json_error(400, ErrorCode.INVALID_REQUEST, str(exc) + ".")
    records = await node.registry.connections()
    page = records[offset : offset + limit]
    await node.live_records(page)
    next_offset = offset + len(page) if offset + len(page) < len(records) else None
    return json_response(
        {
            "total": len(records),
            "offset": offset,
            "limit": limit,
            "next_offset": next_offset,
            "connections": page,
        }
    )


#: Query parameters of /ws/v2/analytics.
ANALYTICS_PARAMS = ("minutes", "top")


@routes.get("/ws/v2/analytics")
@admin_only
async def analytics(request: web.Request) -> web.Response:
    """Usage analytics of the whole cluster, per minute (see `gateway.analytics`)."""
    settings = request.app[NODE].settings
    if not settings.analytics_enabled:
        return json_error(
            404, ErrorCode.NOT_FOUND,
            "Usage analytics are turned off (ODDSTREAM_ANALYTICS_ENABLED=false).",
        )  # fmt: skip
    unknown = sorted(set(request.query) - set(ANALYTICS_PARAMS))
    if unknown:
        return json_error(
            400, ErrorCode.INVALID_REQUEST,
            f"Unknown parameter {unknown[0]!r}; this endpoint takes 'minutes' and 'top'.",
        )  # fmt: skip
    kept = settings.analytics_retention_seconds // 60
    try:
        minutes = _page_param(request, "minutes", min(60, kept), kept, low=1)
        top = _page_param(request, "top", 10, 100, low=1)
    except ValueError as exc:
        return json_error(400, ErrorCode.INVALID_REQUEST, str(exc) + ".")
    node = request.app[NODE]
    try:
        body = await read_rollups(node.redis, node.keys, minutes=minutes, top=top)
    except RedisError:
        return json_error(
            503, ErrorCode.SERVICE_UNAVAILABLE, "Analytics cannot be read right now (Redis).",
            headers={"Retry-After": "2"},
        )  # fmt: skip
    body["flush_interval"] = settings.analytics_flush_interval
    body["retention_seconds"] = settings.analytics_retention_seconds
    return json_response(body)


@routes.post("/ws/v2/broadcast/test")
@admin_only
async def broadcast_test(request: web.Request) -> web.Response:
    """Publish a test message through ingest and the workers, like a real event."""
    body = await _json_object(request)
    if isinstance(body, web.Response):
        return body
    try:
        event = BroadcastEvent.model_validate({**body, "kind": "broadcast"})
    except ValidationError as exc:
        code = (
            ErrorCode.INVALID_SUBSCRIPTION_TYPE
            if any(e["loc"][:1] == ("subscription_type",) for e in exc.errors())
            else ErrorCode.INVALID_REQUEST
        )
        return json_error(400, code, describe_validation_error(exc) + ".")
    event_id = await request.app[NODE].ingester.publish(event)
    request.app[METRICS].messages_in_of("broadcast_test").inc()
    return json_response(
        {
            "status": "accepted",
            "event_id": event_id.decode(),
            "subscription_type": event.subscription_type.value,
            "message_type": ServerMessageType.BROADCAST.value,
        },
        202,
    )


@routes.get("/ws/v2/schema")
async def schema(request: web.Request) -> web.Response:
    return json_response(json_schema())


@routes.get(OPENAPI_PATH)
async def openapi(request: web.Request) -> web.Response:
    """This gateway's HTTP endpoints, OpenAPI 3.1 (`gateway.openapi`)."""
    kept = request.app[NODE].settings.analytics_retention_seconds // 60
    return web.Response(body=openapi_json(kept), content_type="application/json")


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    node = request.app[NODE]
    gateway_metrics = request.app[METRICS]
    # Without Redis, local figures still render; cluster ones keep their last values.
    with contextlib.suppress(RedisError):
        gateway_metrics.update_cluster(
            await node.registry.workers_alive(),
            await stream_figures(node.redis, node.keys),
            await node.registry.held_room_count(),
        )
    return web.Response(
        body=gateway_metrics.render(), headers={"Content-Type": "text/plain; version=0.0.4"}
    )


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    """Ready = registered, Redis reachable, not draining, and the pipeline proven by canary."""
    node = request.app[NODE]
    age = time.monotonic() - node.last_canary if node.last_canary is not None else None
    checks: dict[str, Any] = {
        "registered": node.registered,
        "redis": node.redis_ok,
        "draining": node.draining,
        "pipeline": node.pipeline_ok,
        "last_canary_age_s": round(age, 3) if age is not None else None,
    }
    try:
        await node.redis.ping()
    except RedisError:
        checks["redis"] = False
    ready = bool(
        checks["registered"] and checks["redis"] and not checks["draining"] and checks["pipeline"]
    )
    status = "ready" if ready else "not_ready"
    return json_response({"status": status, **checks}, 200 if ready else 503)
