"""The aiohttp application: WebSocket endpoints, management routes and lifecycle.

Lifecycle: `cleanup_ctx` opens the Redis client and starts the Hub (registration, inbox
reader, beats); `on_shutdown` drains the Hub first (readiness fails, clients get 1001,
the gateway deregisters), then the cleanup context stops tasks and closes Redis.
Under gunicorn use `gateway.app:gunicorn_app` with aiohttp's GunicornUVLoopWebWorker.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from redis.exceptions import RedisError

from oddstream.gateway.auth import (
    AuthError,
    Identity,
    TokenVerifier,
    authorize_room,
    check_not_revoked,
    check_production_secrets,
)
from oddstream.gateway.browser import add_browser_routes
from oddstream.gateway.connection import Connection
from oddstream.gateway.frames import DeflateResponse
from oddstream.gateway.limits import IpRateLimiter, Network, client_ip, parse_networks
from oddstream.gateway.management import json_error, routes
from oddstream.gateway.metrics import GatewayMetrics
from oddstream.gateway.node import GatewayNode, slot_member
from oddstream.gateway.state import (
    IP_LIMITER,
    METRICS,
    NODE,
    REDIS,
    SETTINGS,
    TRUSTED,
    VERIFIER,
)
from oddstream.shared.logs import get_logger
from oddstream.shared.protocol import (
    BATCH_COUNTS,
    BATCH_DELAY_MS,
    BATCH_DELAYS_MS,
    SPORT_TYPES,
    SUBPROTOCOL,
    ErrorCode,
    ProtocolError,
    ServerMessageType,
    SubscriptionType,
    server_frame,
)
from oddstream.shared.redis import create_redis
from oddstream.shared.rooms import RoomSpec
from oddstream.shared.settings import Settings, load_settings

__all__ = ["RedactingAccessLogger", "create_app", "gunicorn_app", "make_runner"]

log = get_logger(__name__)
#: The access log: `http.access` events (the path only, never the query string).
access_log = get_logger("aiohttp.access")

#: Query parameters that are not filters.
_CONTROL_PARAMS = frozenset({"token", "reconnect", "batch", "batch_ms"})

InitialRoom = Callable[[web.Request, Identity], RoomSpec | None]


def _filters_from_query(request: web.Request) -> dict[str, object]:
    """`?sport=MLB&sportsbook=DraftKings,FanDuel`: repeated keys or commas make a list."""
    filters: dict[str, object] = {}
    for key in request.query:
        if key in _CONTROL_PARAMS or key in filters:
            continue
        values = [v for raw in request.query.getall(key) for v in raw.split(",") if v.strip()]
        if not values:
            raise ProtocolError(
                ErrorCode.INVALID_FILTER, f"Filter '{key}' has an empty value; omit it instead."
            )
        if key == "min_profit":
            try:
                filters[key] = float(values[0])
            except ValueError:
                raise ProtocolError(
                    ErrorCode.INVALID_FILTER, "Filter 'min_profit' must be a number (percent)."
                ) from None
        else:
            filters[key] = values[0] if len(values) == 1 else values
    return filters


def _batching(request: web.Request) -> tuple[int, int] | None:
    """`?batch=N&batch_ms=D`: data frames N to a message, held at most D ms; None when not
    asked for. Raises `ProtocolError` (`invalid_request`) for values out of range."""
    count_text, delay_text = request.query.get("batch"), request.query.get("batch_ms")
    if count_text is None:
        if delay_text is not None:
            raise ProtocolError(ErrorCode.INVALID_REQUEST, "'batch_ms' needs 'batch' too.")
        return None
    (low, high), (shortest, longest) = BATCH_COUNTS, BATCH_DELAYS_MS
    try:
        count = int(count_text)
        delay = BATCH_DELAY_MS if delay_text is None else int(delay_text)
    except ValueError:
        count = delay = -1
    if not low <= count <= high or not shortest <= delay <= longest:
        raise ProtocolError(
            ErrorCode.INVALID_REQUEST,
            f"Batching takes 'batch' (messages per frame, {low} to {high}) and optionally "
            f"'batch_ms' (the longest hold, {shortest} to {longest} ms; default "
            f"{BATCH_DELAY_MS}): whole numbers; got batch={count_text!r}, "
            f"batch_ms={delay_text!r}.",
        )
    return count, delay


def _typed_room(type_: SubscriptionType) -> InitialRoom:
    def initial(request: web.Request, identity: Identity) -> RoomSpec:
        settings = request.app[SETTINGS]
        return authorize_room(identity, type_, _filters_from_query(request), settings)

    return initial


def _sport_room(request: web.Request, identity: Identity) -> RoomSpec:
    sport = request.match_info["sport"].lower()
    if sport not in {t.value for t in SPORT_TYPES}:
        raise ProtocolError(
            ErrorCode.INVALID_SUBSCRIPTION_TYPE,
            f"Unknown sport {request.match_info['sport']!r}; use MLB, NBA, NFL or NHL.",
        )
    settings = request.app[SETTINGS]
    return authorize_room(identity, sport, _filters_from_query(request), settings)


def _no_room(request: web.Request, identity: Identity) -> None:
    return None


#: An origin as (scheme, host, port), comparable: `http://A:80` is `http://a`.
OriginKey = tuple[str, str, int]
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin_key(text: str) -> OriginKey | None:
    """`scheme://host[:port]` as (scheme, host, port), default ports filled in, lowercase;
    None for anything else (`null`, a path, user info)."""
    scheme, sep, authority = text.strip().partition("://")
    authority = authority.removesuffix("/")
    if not sep or not authority or any(ch in authority for ch in "/?#@\\ "):
        return None
    scheme = scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        return None
    try:
        url = urlsplit(f"{scheme}://{authority}")
        port = url.port
    except ValueError:
        return None
    if not url.hostname:
        return None
    return scheme, url.hostname, port or _DEFAULT_PORTS[scheme]


def _from_trusted_proxy(request: web.BaseRequest, trusted: list[Network]) -> bool:
    try:
        peer = ipaddress.ip_address(request.remote or "")
    except ValueError:
        return False
    return any(peer in network for network in trusted)


def _first_value(header: str | None) -> str | None:
    """The first entry of a forwarded header: what the proxy nearest the client saw."""
    first = (header or "").split(",")[0].strip()
    return first or None


def own_origin(request: web.BaseRequest, trusted: list[Network]) -> OriginKey | None:
    """The origin this request was made to: its scheme and `Host`; behind a trusted proxy
    (`ODDSTREAM_TRUSTED_PROXIES`) its `X-Forwarded-Proto` and `X-Forwarded-Host` instead."""
    scheme, host = request.scheme, request.headers.get("Host")
    if trusted and _from_trusted_proxy(request, trusted):
        scheme = _first_value(request.headers.get("X-Forwarded-Proto")) or scheme
        host = _first_value(request.headers.get("X-Forwarded-Host")) or host
    return _origin_key(f"{scheme}://{host}") if host else None


def origin_allowed(request: web.BaseRequest, allowed: list[str], trusted: list[Network]) -> bool:
    """Browsers always send Origin; requests without one (services, bots) are not cross-site.
    Allowed: the gateway's own origin, the listed ones, any with `*`."""
    origin = request.headers.get("Origin")
    if origin is None or "*" in allowed:
        return True
    key = _origin_key(origin)
    if key is None:
        return False
    return key == own_origin(request, trusted) or any(key == _origin_key(a) for a in allowed)


def _refusal(request: web.Request, status: int, code: ErrorCode, message: str,
             headers: dict[str, str] | None = None, **extra: Any) -> web.Response:  # fmt: skip
    request.app[METRICS].errors_of(code.value).inc()
    return json_error(status, code, message, headers=headers, **extra)


def websocket_endpoint(
    name: str, initial_room: InitialRoom
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """A WebSocket handler; everything that can be refused is refused before the upgrade."""

    async def handler(request: web.Request) -> web.StreamResponse:
        app = request.app
        settings, node = app[SETTINGS], app[NODE]
        if node.draining:
            return _refusal(request, 503, ErrorCode.SERVICE_UNAVAILABLE,
                            "This gateway is shutting down.", {"Retry-After": "1"})  # fmt: skip
        if not origin_allowed(request, settings.allowed_origins, app[TRUSTED]):
            origin = request.headers.get("Origin")
            return _refusal(request, 403, ErrorCode.ORIGIN_NOT_ALLOWED,
                            f"Origin {origin!r} may not connect.")  # fmt: skip
        ip = client_ip(request, app[TRUSTED])
        allowed, wait = app[IP_LIMITER].allow(ip)
        if not allowed:
            return _refusal(request, 429, ErrorCode.RATE_LIMITED,
                            "Too many new connections from your address.",
                            {"Retry-After": str(max(1, math.ceil(wait)))})  # fmt: skip
        try:
            identity = await app[VERIFIER].identify(request)
            if identity.user is not None:
                await check_not_revoked(node.registry, identity)
        except AuthError as exc:
            return _refusal(request, 401, exc.code, exc.message, reason=exc.reason)
        if len(node.connections) >= settings.max_connections:
            return _refusal(request, 503, ErrorCode.TOO_MANY_CONNECTIONS,
                            f"This gateway holds its maximum of {settings.max_connections} "
                            "connections.", {"Retry-After": "5"})  # fmt: skip
        try:
            batch = _batching(request)
            initial = initial_room(request, identity)
        except ProtocolError as exc:
            status = {ErrorCode.AUTH_REQUIRED: 401, ErrorCode.FORBIDDEN: 403}.get(exc.code, 400)
            return _refusal(request, status, exc.code, exc.message)

        # Frames are pre-built once per event and shared, compressed once per frame for the
        # clients that negotiate permessage-deflate (gateway.frames: no context takeover).
        ws = DeflateResponse(
            compress=settings.compression,
            # aiohttp refuses a frame of max_msg_size or more; ours is the largest accepted.
            max_msg_size=settings.max_message_bytes + 1,
            autoping=True,
            protocols=(SUBPROTOCOL,),
        )
        conn_member = slot_member(node.gateway_id, ws)
        limited = identity.user is not None and settings.max_connections_per_user > 0
        try:
            granted = not limited or await node.registry.acquire_user_slot(
                str(identity.user), conn_member, settings.max_connections_per_user
            )
        except RedisError:
            return _refusal(request, 503, ErrorCode.SERVICE_UNAVAILABLE,
                            "Connection limits cannot be checked right now.",
                            {"Retry-After": "2"})  # fmt: skip
        if not granted:
            return _refusal(request, 429, ErrorCode.TOO_MANY_CONNECTIONS,
                            f"User {identity.user!r} already holds the maximum of "
                            f"{settings.max_connections_per_user} connections.",
                            {"Retry-After": "5"})  # fmt: skip
        try:
            await ws.prepare(request)
            transport = request.transport
            if transport is None:  # pragma: no cover - the client vanished during the upgrade
                return ws
            conn = Connection(node, ws, transport, identity, name, ip, batch)
            await _serve(request, conn, initial)
        finally:
            # A stopped gateway's slots went with its deregistration (and its Redis client may
            # be closed by now).
            if limited and not node.stopped:
                with contextlib.suppress(RedisError):
                    await node.registry.release_user_slot(str(identity.user), conn_member)
        return ws

    return handler


async def _serve(request: web.Request, conn: Connection, initial: RoomSpec | None) -> None:
    node, settings, metrics = request.app[NODE], request.app[SETTINGS], request.app[METRICS]
    reconnect = bool(request.query.get("reconnect"))
    node.add(conn, reconnect)
    # Fields passed, not bound: binding copies the context even when INFO is filtered out.
    where = {"client_id": conn.client_id, "gateway": node.gateway_id}
    log.info(
        "gateway.client.connected",
        **where,
        user=conn.identity.user,
        endpoint=conn.endpoint,
        reconnect=reconnect,
    )
    metrics.connections_opened_of(conn.endpoint).inc()
    if reconnect:
        metrics.reconnections.inc()
    welcome: dict[str, Any] = {
        "gateway": node.gateway_id,
        "user": conn.identity.user,
        "endpoint": conn.endpoint,
        "heartbeat_interval": settings.heartbeat_interval,
        "connection_timeout": settings.connection_timeout,
        "token_expires_at": conn.identity.expires_at,
    }
    if conn.batch:  # only when asked for: other clients' welcome is as it always was
        welcome["batch"] = {"count": conn.batch, "delay_ms": round(conn.batch_delay * 1000)}
    try:
        conn.send(
            server_frame(ServerMessageType.WELCOME, welcome, client_id=conn.client_id),
            ServerMessageType.WELCOME,
        )
        if initial is not None:
            try:
                await conn.subscribe(initial)
            except ProtocolError as exc:
                conn.send_error(exc.code, exc.message)
        await conn.serve()
    finally:
        await node.remove(conn)
        log.info(
            "gateway.client.disconnected",
            **where,
            user=conn.identity.user,
            code=conn.close_code(),
            messages_in=conn.messages_received,
            messages_out=conn.messages_sent,
        )


@web.middleware
async def cors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """CORS for the HTTP endpoints: the gateway's own origin and `ODDSTREAM_ALLOWED_ORIGINS`
    (as for WebSockets); preflights answered."""
    origin = request.headers.get("Origin")
    allowed, trusted = request.app[SETTINGS].allowed_origins, request.app[TRUSTED]
    permitted = origin is not None and origin_allowed(request, allowed, trusted)
    if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
        response: web.StreamResponse = web.Response(status=204 if permitted else 403)
    else:
        response = await handler(request)
    if permitted and not response.prepared:
        response.headers["Access-Control-Allow-Origin"] = origin or ""
        response.headers["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
        response.headers["Access-Control-Allow-Headers"] = "Authorization, Content-Type"
        response.headers["Access-Control-Max-Age"] = "600"
        response.headers["Vary"] = "Origin"
    return response


@web.middleware
async def json_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Unknown paths and unexpected failures answer in the same JSON shape as other errors."""
    try:
        return await handler(request)
    except web.HTTPNotFound:
        return json_error(404, ErrorCode.NOT_FOUND, f"No endpoint at {request.path}.")
    except web.HTTPMethodNotAllowed as exc:
        return json_error(
            405,
            ErrorCode.INVALID_REQUEST,
            f"{request.method} is not allowed here; use {', '.join(sorted(exc.allowed_methods))}.",
        )
    except web.HTTPException:
        raise
    except Exception:
        log.exception("gateway.http.failed", method=request.method, path=request.path)
        return json_error(500, ErrorCode.INTERNAL_ERROR, "The gateway failed on this request.")


def create_app(settings: Settings) -> web.Application:
    app = web.Application(middlewares=[cors, json_errors], client_max_size=64 * 1024)
    app[SETTINGS] = settings
    app[METRICS] = GatewayMetrics()
    app[VERIFIER] = TokenVerifier(settings)
    app[IP_LIMITER] = IpRateLimiter(settings.connect_rate_per_ip, settings.connect_burst_per_ip)
    app[TRUSTED] = parse_networks(settings.trusted_proxies)

    async def redis_and_node(app: web.Application) -> AsyncIterator[None]:
        redis = create_redis(settings.effective_redis_url, max_connections=256)
        app[REDIS] = redis
        node = GatewayNode(settings, redis, app[METRICS], app[VERIFIER])
        app[NODE] = node
        try:
            await node.start()
            yield
        finally:
            await node.stop()
            # Connections that ended while the server shut down are counted by now.
            await node.flush_analytics()
            await redis.aclose()

    async def drain(app: web.Application) -> None:
        await app[NODE].stop()

    app.cleanup_ctx.append(redis_and_node)
    app.on_shutdown.append(drain)

    app.router.add_get("/ws/v2/connect", websocket_endpoint("connect", _no_room))
    app.router.add_get(
        "/ws/v2/odds", websocket_endpoint("odds", _typed_room(SubscriptionType.ODDS_UPDATES))
    )
    app.router.add_get(
        "/ws/v2/arbitrage",
        websocket_endpoint("arbitrage", _typed_room(SubscriptionType.ARBITRAGE)),
    )
    app.router.add_get("/ws/v2/sport/{sport}", websocket_endpoint("sport", _sport_room))
    app.router.add_get(
        "/ws/v2/portfolio",
        websocket_endpoint("portfolio", _typed_room(SubscriptionType.PORTFOLIO)),
    )
    app.router.add_routes(routes)
    add_browser_routes(app)
    return app


class RedactingAccessLogger(AbstractAccessLogger):
    """Access log with the path only: `?token=` must never reach a log file."""

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        access_log.info(
            "http.access",
            remote=request.remote,
            method=request.method,
            path=request.path,
            status=response.status,
            duration_ms=round(time * 1000, 1),
        )


def make_runner(app: web.Application, settings: Settings) -> web.AppRunner:
    """The runner every entry point uses (CLI, dev, tests): signals are ours, logs redacted."""
    return web.AppRunner(
        app,
        handle_signals=False,
        shutdown_timeout=settings.shutdown_grace,
        access_log_class=RedactingAccessLogger,
    )


async def gunicorn_app() -> web.Application:
    """Entry point for gunicorn: settings from the environment, one Hub per worker process.
    The production checks run here too, for a gunicorn started without deploy/gunicorn.conf.py."""
    settings = load_settings()
    check_production_secrets(settings)
    return create_app(settings)
