"""The OpenAPI 3.1 description of every HTTP endpoint of the gateway, served at
`GET /ws/v2/openapi.json`.

One source: the document is built here, in Python. Request bodies come from the pydantic models
the handlers validate with (`BroadcastEvent`), enums from `shared.protocol`, filters from
`shared.rooms`; response bodies are the TypedDicts below, turned into JSON Schema by pydantic.
The handlers build plain dicts, so a field added to a response must be added here too:
responses are described with `additionalProperties: false`, and `tests/test_openapi.py` runs
schemathesis against a live gateway, so an undescribed field, status or endpoint fails it.

WebSocket endpoints are described as what HTTP sees of them: a GET answered 101 (the upgrade)
or refused before the upgrade with a JSON error body. Their frames are described by the JSON
Schema at `GET /ws/v2/schema`, not here.
"""

from __future__ import annotations

import functools
from typing import Annotated, Any, Literal, NotRequired

import orjson
from pydantic import ConfigDict, Field, TypeAdapter, with_config
from typing_extensions import TypedDict

from oddstream.gateway.node import VERSION
from oddstream.shared.events import BroadcastEvent
from oddstream.shared.protocol import (
    SPORT_TYPES,
    SUBPROTOCOL,
    TOKEN_SUBPROTOCOL_PREFIX,
    ErrorCode,
    ServerMessageType,
    SubscriptionType,
)
from oddstream.shared.rooms import ALLOWED_FILTERS, LIST_FILTERS, MAX_FILTER_VALUES

__all__ = ["OPENAPI_PATH", "openapi_document", "openapi_json"]

OPENAPI_PATH = "/ws/v2/openapi.json"

#: Minutes of analytics kept with the default retention (`ODDSTREAM_ANALYTICS_RETENTION_SECONDS`).
DEFAULT_ANALYTICS_MINUTES = 86_400 // 60

_STRICT = ConfigDict(extra="forbid")
Count = Annotated[int, Field(ge=0)]
Counts = dict[str, Count]
FilterValues = list[str] | float


# --- response bodies ------------------------------------------------------------------------


@with_config(_STRICT)
class ErrorBody(TypedDict):
    """Every HTTP error the gateway answers itself: what went wrong and how to fix it."""

    status: Literal["error"]
    code: ErrorCode
    error: Annotated[str, Field(description="What went wrong, then how to fix it (`hint`).")]
    hint: Annotated[str, Field(description="How to fix it, alone (for UIs).")]
    reason: NotRequired[
        Annotated[
            str,
            Field(
                description="Why a token was refused (401 only): invalid_algorithm, "
                "invalid_signature, invalid_key, token_expired, token_not_yet_valid, "
                "invalid_audience, invalid_issuer, malformed_token, unknown_key, "
                "auth_not_configured, token_required or revoked."
            ),
        ]
    ]


@with_config(_STRICT)
class ThisGateway(TypedDict):
    """The answering gateway's own figures."""

    connections: Count
    rooms: Count
    ready: bool
    pipeline: bool


@with_config(_STRICT)
class RedisUp(TypedDict):
    ok: Literal[True]
    version: str | None
    latency_ms: Annotated[float, Field(ge=0)]
    used_memory: Annotated[int | None, Field(description="Bytes.")]


@with_config(_STRICT)
class RedisDown(TypedDict):
    ok: Literal[False]
    error: str


@with_config(_STRICT)
class Members(TypedDict):
    """Gateways or workers alive (beating in Redis)."""

    alive: Count
    ids: list[str]


@with_config(_STRICT)
class PartitionFigures(TypedDict):
    length: Count
    lag: Annotated[int, Field(ge=0, description="Entries past the partition's delivered cursor.")]


@with_config(_STRICT)
class StatusBody(TypedDict):
    """Public callers get `service`, `version`, `status`, `uptime_seconds` and `timestamp`
    only; admins get everything (with Redis down, what does not come from Redis)."""

    service: Literal["oddstream"]
    version: str
    status: Annotated[
        Literal["ok", "degraded", "unavailable"],
        Field(description="degraded: no gateway or no worker alive; unavailable: Redis is down"),
    ]
    uptime_seconds: Annotated[float, Field(ge=0)]
    timestamp: Annotated[str, Field(description="ISO 8601, UTC")]
    gateway_id: NotRequired[str]
    this_gateway: NotRequired[ThisGateway]
    redis: NotRequired[RedisUp | RedisDown]
    gateways: NotRequired[Members]
    workers: NotRequired[Members]
    connections: NotRequired[Annotated[int, Field(ge=0, description="Across the cluster.")]]
    rooms: NotRequired[Annotated[int, Field(ge=0, description="Rooms some gateway holds.")]]
    streams: NotRequired[
        Annotated[dict[str, PartitionFigures], Field(description="Per ingest partition.")]
    ]
    deadletter: NotRequired[Annotated[int, Field(ge=0, description="Dead-lettered events.")]]


class RevokeRequest(TypedDict):
    user: Annotated[str, Field(min_length=1, description="The token `sub` to revoke.")]


@with_config(_STRICT)
class RevokeBody(TypedDict):
    status: Literal["revoked"]
    user: str
    gateways_notified: Count


@with_config(_STRICT)
class Room(TypedDict):
    room: str
    subscription_type: SubscriptionType
    filters: dict[str, FilterValues]
    subscribers: Annotated[int, Field(ge=0, description="On every gateway together.")]
    gateways: Annotated[Counts, Field(description="Subscribers per gateway id.")]
    lingering_until_ms: Annotated[
        int | None,
        Field(description="For a room no gateway holds, until when it is kept for resume."),
    ]


@with_config(_STRICT)
class RoomsBody(TypedDict):
    count: Count
    rooms: list[Room]


@with_config(_STRICT)
class Subscription(TypedDict):
    subscription_type: SubscriptionType
    filters: dict[str, FilterValues]
    user: NotRequired[Annotated[str, Field(description="The owner of a portfolio room.")]]
    room: str


@with_config(_STRICT)
class ConnectionRecord(TypedDict):
    """One connection as its gateway recorded it (written at the next beat after it opened,
    subscribed, unsubscribed or refreshed its token); counters are read live when listed."""

    client_id: str
    user: str | None
    gateway: str
    connected_at: Annotated[str, Field(description="ISO 8601, UTC")]
    subscriptions: list[Subscription]
    messages_sent: Count
    messages_received: Count
    endpoint: Annotated[str, Field(description="connect, odds, arbitrage, sport or portfolio")]
    remote: Annotated[str, Field(description="The client's address.")]


@with_config(_STRICT)
class ConnectionsPage(TypedDict):
    total: Count
    offset: Count
    limit: Count
    next_offset: Annotated[int | None, Field(description="null on the last page.")]
    connections: list[ConnectionRecord]


@with_config(_STRICT)
class MinuteConnections(TypedDict):
    open: Count
    peak: Count
    opened: Count
    closed: Count
    reconnects: Count


@with_config(_STRICT)
class WindowConnections(TypedDict):
    peak: Count
    opened: Count
    closed: Count
    reconnects: Count


@with_config(_STRICT)
class MinuteSubscriptions(TypedDict):
    active: Annotated[Counts, Field(description="By subscription type, at the last sample.")]
    by_filter: Annotated[Counts, Field(description="By filter dimension (`none`: no filter).")]
    new: Counts
    new_by_filter: Counts


@with_config(_STRICT)
class WindowSubscriptions(TypedDict):
    new: Counts
    new_by_filter: Counts


@with_config(_STRICT)
class GameWatchers(TypedDict):
    game_id: str
    watchers: Count


@with_config(_STRICT)
class GamePeakWatchers(TypedDict):
    game_id: str
    peak_watchers: Count


Messages = TypedDict("Messages", {"out": Counts, "in": Counts})
with_config(_STRICT)(Messages)


@with_config(_STRICT)
class Resumes(TypedDict):
    recovered: Count
    resynced: Count


Millis = Annotated[float | None, Field(description="ms; null when nothing was delivered")]


@with_config(_STRICT)
class Latency(TypedDict):
    """Delivery latency, ingest to gateway write."""

    count: Count
    p50: Millis
    p90: Millis
    p99: Millis
    buckets: Annotated[
        Counts, Field(description="Deliveries per bucket, keyed by its upper bound in ms.")
    ]


@with_config(_STRICT)
class SlowConsumers(TypedDict):
    conflated: Count
    held: Count
    closed: Count


@with_config(_STRICT)
class AnalyticsMinute(TypedDict):
    minute: Annotated[str, Field(description="ISO 8601, UTC")]
    start: Annotated[int, Field(description="Unix seconds")]
    gateways: Annotated[int, Field(ge=0, description="Gateways that sampled in the minute.")]
    connections: MinuteConnections
    subscriptions: MinuteSubscriptions
    games: list[GameWatchers]
    messages: Messages
    resumes: Resumes
    closes: Annotated[Counts, Field(description="Connections ended, by close code.")]
    latency_ms: Latency
    slow_consumers: SlowConsumers


@with_config(_STRICT)
class AnalyticsWindow(TypedDict):
    connections: WindowConnections
    subscriptions: WindowSubscriptions
    games: list[GamePeakWatchers]
    messages: Messages
    resumes: Resumes
    closes: Counts
    latency_ms: Latency
    slow_consumers: SlowConsumers


AnalyticsBody = TypedDict(
    "AnalyticsBody",
    {
        "minutes": Annotated[int, Field(ge=1)],
        "from": Annotated[str, Field(description="ISO 8601, UTC")],
        "to": str,
        "current_minute": Annotated[str, Field(description="Still filling.")],
        "latency_bounds_ms": list[int],
        "series": Annotated[list[AnalyticsMinute], Field(description="Oldest first.")],
        "window": AnalyticsWindow,
        "flush_interval": Annotated[float, Field(description="Seconds.")],
        "retention_seconds": int,
    },
)
with_config(_STRICT)(AnalyticsBody)


@with_config(_STRICT)
class BroadcastAccepted(TypedDict):
    status: Literal["accepted"]
    event_id: Annotated[str, Field(description="`<partition>:<stream id>`")]
    subscription_type: SubscriptionType
    message_type: Literal[ServerMessageType.BROADCAST]


ProtocolSchema = TypedDict(
    "ProtocolSchema",
    {
        "$schema": str,
        "title": str,
        "client_message": dict[str, Any],
        "server_message": dict[str, Any],
        "subscription_types": list[SubscriptionType],
        "allowed_filters": dict[str, list[str]],
        "error_codes": list[ErrorCode],
        "close_codes": dict[str, dict[str, Any]],
        "close_advice_ranges": dict[str, str],
        "ingest_event": dict[str, Any],
    },
)
with_config(_STRICT)(ProtocolSchema)


@with_config(_STRICT)
class Whoami(TypedDict):
    status: Literal["success"]
    anonymous: bool
    user: str | None
    scopes: Annotated[
        list[str] | None, Field(description="null: the token has no `scopes` claim (any type).")
    ]
    expires_at: Annotated[float | None, Field(description="Unix seconds")]
    admin: bool


@with_config(_STRICT)
class Health(TypedDict):
    status: Literal["ok"]


@with_config(_STRICT)
class Readiness(TypedDict):
    status: Literal["ready", "not_ready"]
    registered: bool
    redis: bool
    draining: bool
    pipeline: Annotated[bool, Field(description="A canary came back through the pipeline.")]
    last_canary_age_s: float | None


_BODIES: tuple[Any, ...] = (
    ErrorBody,
    StatusBody,
    RevokeRequest,
    RevokeBody,
    RoomsBody,
    ConnectionsPage,
    AnalyticsBody,
    BroadcastAccepted,
    ProtocolSchema,
    Whoami,
    Health,
    Readiness,
)


# --- building blocks --------------------------------------------------------------------------

_JSON = "application/json"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _components() -> dict[str, Any]:
    """Every body's JSON Schema, named after its type, with the types they use."""
    template = "#/components/schemas/{model}"
    _, defs = TypeAdapter.json_schemas(
        [(body.__name__, "serialization", TypeAdapter(body)) for body in _BODIES],
        ref_template=template,
    )
    schemas: dict[str, Any] = dict(defs["$defs"])
    broadcast = BroadcastEvent.model_json_schema(ref_template=template, mode="validation")
    schemas.update(broadcast.pop("$defs", {}))
    # The gateway adds `kind` itself; every other field is published with the message.
    broadcast["properties"].pop("kind")
    broadcast["required"].remove("kind")
    broadcast["title"] = "BroadcastRequest"
    broadcast["description"] = (
        "Published through ingest and the workers like a real event; reaches every room of "
        "`subscription_type` (any case), whatever its filters. Other fields travel along."
    )
    schemas["BroadcastRequest"] = broadcast
    return schemas


def _json(description: str, schema: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"description": description, "content": {_JSON: {"schema": schema}}, **extra}


def _error(description: str, *codes: ErrorCode, **extra: Any) -> dict[str, Any]:
    """An error response whose `code` is one of `codes`."""
    only = {"properties": {"code": {"enum": [c.value for c in codes]}}}
    return _json(description, {"allOf": [_ref("ErrorBody"), only]}, **extra)


def _header(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"description": description, "required": True, "schema": schema or {"type": "string"}}


_RETRY_AFTER = {"Retry-After": _header("Seconds to wait.", {"type": "integer", "minimum": 1})}

_UNAUTHORIZED = _error(
    "No admin credentials.",
    ErrorCode.UNAUTHORIZED,
    headers={"WWW-Authenticate": _header('`Bearer realm="oddstream-admin"`')},
)

_TOO_LARGE = {
    "description": "The body is over 64 KiB.",
    "content": {"text/plain": {"schema": {"type": "string"}}},
}

_ADMIN: list[dict[str, list[str]]] = [{"adminBearer": []}]


def _query(name: str, description: str, schema: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"name": name, "in": "query", "description": description, "schema": schema, **extra}


def _page(name: str, default: int, low: int, high: int, what: str) -> dict[str, Any]:
    schema = {"type": "integer", "minimum": low, "maximum": high, "default": default}
    return _query(name, what, schema)


# --- the HTTP endpoints -----------------------------------------------------------------------


def _management_paths(analytics_minutes: int) -> dict[str, Any]:
    return {
        "/ws/v2/status": {
            "get": {
                "operationId": "getStatus",
                "tags": ["management"],
                "summary": "Health of the whole cluster, from Redis",
                "description": "Public callers get the public fields only; admins get "
                "gateways and workers alive, connections, rooms, Redis health and latency, per "
                "ingest partition length and lag, and dead letters.",
                "security": [{}, *_ADMIN],
                "responses": {
                    "200": _json("Redis answers.", _ref("StatusBody")),
                    "503": _json("Redis is down (`status: unavailable`).", _ref("StatusBody")),
                },
            }
        },
        "/ws/v2/admin/revoke": {
            "post": {
                "operationId": "revokeUser",
                "tags": ["management"],
                "summary": "Disconnect a user everywhere and refuse their current tokens",
                "description": "Closes every connection of the user on every gateway (close "
                "code 4503) and refuses tokens issued before now for seven days "
                "(401 `revoked`).",
                "security": _ADMIN,
                "requestBody": {
                    "required": True,
                    "content": {_JSON: {"schema": _ref("RevokeRequest")}},
                },
                "responses": {
                    "200": _json("Revoked.", _ref("RevokeBody")),
                    "400": _error(
                        "Not a JSON object with a `user` string.",
                        ErrorCode.INVALID_JSON,
                        ErrorCode.INVALID_REQUEST,
                    ),
                    "401": _UNAUTHORIZED,
                    "413": _TOO_LARGE,
                },
            }
        },
        "/ws/v2/rooms": {
            "get": {
                "operationId": "listRooms",
                "tags": ["management"],
                "summary": "Every room of the cluster",
                "security": _ADMIN,
                "responses": {
                    "200": _json("The rooms, by id.", _ref("RoomsBody")),
                    "401": _UNAUTHORIZED,
                },
            }
        },
        "/ws/v2/connections": {
            "get": {
                "operationId": "listConnections",
                "tags": ["management"],
                "summary": "Every connection of the cluster, a page at a time",
                "security": _ADMIN,
                "parameters": [
                    _page("limit", 100, 0, 1000, "Connections per page."),
                    _page("offset", 0, 0, 10**9, "Connections to skip."),
                ],
                "responses": {
                    "200": _json("A page, oldest connection first.", _ref("ConnectionsPage")),
                    "400": _error("A parameter out of range.", ErrorCode.INVALID_REQUEST),
                    "401": _UNAUTHORIZED,
                },
            }
        },
        "/ws/v2/analytics": {
            "get": {
                "operationId": "getAnalytics",
                "tags": ["management"],
                "summary": "Usage analytics of the whole cluster, per minute",
                "description": "No other query parameter is accepted. `minutes` goes up to the "
                "retention (`ODDSTREAM_ANALYTICS_RETENTION_SECONDS` / 60); its default is 60, "
                "or fewer if less is kept.",
                "security": _ADMIN,
                "parameters": [
                    _page(
                        "minutes",
                        min(60, analytics_minutes),
                        1,
                        analytics_minutes,
                        "Minutes to show, the current one included.",
                    ),
                    _page("top", 10, 1, 100, "Most-watched games to list."),
                ],
                "responses": {
                    "200": _json("The window, one entry per minute.", _ref("AnalyticsBody")),
                    "400": _error(
                        "An unknown parameter or a value out of range.",
                        ErrorCode.INVALID_REQUEST,
                    ),
                    "401": _UNAUTHORIZED,
                    "404": _error(
                        "Analytics are turned off (`ODDSTREAM_ANALYTICS_ENABLED=false`).",
                        ErrorCode.NOT_FOUND,
                    ),
                    "503": _error(
                        "Redis cannot be read.", ErrorCode.SERVICE_UNAVAILABLE, headers=_RETRY_AFTER
                    ),
                },
            }
        },
        "/ws/v2/broadcast/test": {
            "post": {
                "operationId": "broadcastTest",
                "tags": ["management"],
                "summary": "Publish a test message to every room of one type",
                "security": _ADMIN,
                "requestBody": {
                    "required": True,
                    "content": {_JSON: {"schema": _ref("BroadcastRequest")}},
                },
                "responses": {
                    "202": _json(
                        "Published to ingest; clients get a `broadcast` frame.",
                        _ref("BroadcastAccepted"),
                    ),
                    "400": _error(
                        "Not a JSON object, or a field is missing or wrong.",
                        ErrorCode.INVALID_JSON,
                        ErrorCode.INVALID_REQUEST,
                        ErrorCode.INVALID_SUBSCRIPTION_TYPE,
                    ),
                    "401": _UNAUTHORIZED,
                    "413": _TOO_LARGE,
                },
            }
        },
        "/ws/v2/schema": {
            "get": {
                "operationId": "getProtocolSchema",
                "tags": ["meta"],
                "summary": "JSON Schema of the WebSocket protocol",
                "description": "Every client and server frame and ingest event, the close and "
                "error codes, and the filters each subscription type accepts.",
                "responses": {"200": _json("The protocol.", _ref("ProtocolSchema"))},
            }
        },
        OPENAPI_PATH: {
            "get": {
                "operationId": "getOpenAPI",
                "tags": ["meta"],
                "summary": "This document",
                "responses": {
                    "200": _json(
                        "OpenAPI 3.1.",
                        {"type": "object", "required": ["openapi", "info", "paths"]},
                    )
                },
            }
        },
        "/metrics": {
            "get": {
                "operationId": "getMetrics",
                "tags": ["health"],
                "summary": "Prometheus metrics (keep on an internal network)",
                "responses": {
                    "200": {
                        "description": "Prometheus text format 0.0.4.",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
        "/healthz": {
            "get": {
                "operationId": "healthz",
                "tags": ["health"],
                "summary": "Liveness: the process answers",
                "responses": {"200": _json("Alive.", _ref("Health"))},
            }
        },
        "/readyz": {
            "get": {
                "operationId": "readyz",
                "tags": ["health"],
                "summary": "Readiness: registered, Redis reachable, not draining, pipeline proven",
                "responses": {
                    "200": _json("Ready.", _ref("Readiness")),
                    "503": _json("Not ready; the body says which check failed.", _ref("Readiness")),
                },
            }
        },
    }


def _browser_paths() -> dict[str, Any]:
    text = {"schema": {"type": "string"}}
    return {
        "/": {
            "get": {
                "operationId": "dashboard",
                "tags": ["browser"],
                "summary": "The live dashboard",
                "responses": {"200": {"description": "The page.", "content": {"text/html": text}}},
            }
        },
        "/static/{name}": {
            "get": {
                "operationId": "staticFile",
                "tags": ["browser"],
                "summary": "A file of the dashboard or the built browser client",
                "parameters": [
                    {
                        "name": "name",
                        "in": "path",
                        "required": True,
                        "description": "A file name: no directories, no dotfiles.",
                        "schema": {"type": "string", "pattern": r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$"},
                        "examples": {
                            "client": {"value": "oddstream.js"},
                            "types": {"value": "oddstream.d.ts"},
                        },
                    }
                ],
                "responses": {
                    "200": {
                        "description": "The file.",
                        "content": {
                            "text/javascript": text,
                            "application/typescript": text,
                            "text/css": text,
                            "text/html": text,
                            "text/plain": text,
                        },
                    },
                    "404": _error("No such file.", ErrorCode.NOT_FOUND),
                },
            }
        },
        "/ws/v2/whoami": {
            "get": {
                "operationId": "whoami",
                "tags": ["browser"],
                "summary": "Who a token would connect as, or why its upgrade would be refused",
                "description": "The same token checks as the WebSocket upgrade, for browsers, "
                "which cannot read the status of a refused upgrade.",
                "security": [{}, {"userBearer": []}, {"tokenQuery": []}],
                "responses": {
                    "200": _json("The identity (anonymous without a token).", _ref("Whoami")),
                    "401": _error(
                        "The token would be refused; `reason` says why.",
                        ErrorCode.AUTH_REQUIRED,
                        ErrorCode.INVALID_TOKEN,
                        ErrorCode.TOKEN_EXPIRED,
                    ),
                },
            }
        },
    }


# --- the WebSocket endpoints, as HTTP sees them -----------------------------------------------


def _filter_parameters(type_: SubscriptionType) -> list[dict[str, Any]]:
    params = []
    for name in sorted(ALLOWED_FILTERS[type_]):
        if name in LIST_FILTERS:
            schema: dict[str, Any] = {
                "type": "array",
                "items": {"type": "string", "minLength": 1},
                "maxItems": MAX_FILTER_VALUES,
            }
            what = f"Filter: `{name}` values (repeat the key or separate with commas)."
            params.append(_query(name, what, schema, style="form", explode=True))
        else:
            what = f"Filter: the smallest `{name}` (percent)."
            params.append(_query(name, what, {"type": "number"}))
    return params


_HANDSHAKE_PARAMETERS = [
    {"name": name, "in": "header", "required": True, "schema": schema}
    for name, schema in (
        ("Upgrade", {"const": "websocket"}),
        ("Connection", {"type": "string", "description": "Must include `Upgrade`."}),
        ("Sec-WebSocket-Key", {"type": "string"}),
        ("Sec-WebSocket-Version", {"const": "13"}),
    )
] + [
    {
        "name": "Sec-WebSocket-Protocol",
        "in": "header",
        "description": f"Offer `{SUBPROTOCOL}`, and optionally `{TOKEN_SUBPROTOCOL_PREFIX}<token>` "
        "to send a token without putting it in the URL; the gateway answers `oddstream.v2`.",
        "schema": {"type": "string"},
    },
    _query(
        "reconnect",
        "This is a reconnect (counted in `oddstream_reconnections_total`).",
        {"type": "string"},
    ),
]


def _websocket(operation_id: str, summary: str, params: list[dict[str, Any]]) -> dict[str, Any]:
    refused = "Refused before the upgrade."
    return {
        "get": {
            "operationId": operation_id,
            "tags": ["websocket"],
            "summary": summary,
            "description": "A WebSocket upgrade. Its frames are described by the JSON Schema "
            "at `GET /ws/v2/schema`; everything that can be refused is refused here, before "
            "the upgrade, with a JSON error body.",
            "security": [{}, {"userBearer": []}, {"tokenQuery": []}],
            "parameters": _HANDSHAKE_PARAMETERS + params,
            "responses": {
                "101": {
                    "description": "Switching Protocols: the WebSocket is open and a `welcome` "
                    "frame follows.",
                    "headers": {
                        "Upgrade": _header("`websocket`"),
                        "Sec-WebSocket-Accept": _header("The handshake's answer."),
                    },
                },
                "400": {
                    "description": f"{refused} A bad filter or sport, or not a WebSocket "
                    "upgrade (aiohttp's plain-text answer).",
                    "content": {
                        _JSON: {
                            "schema": {
                                "allOf": [
                                    _ref("ErrorBody"),
                                    {
                                        "properties": {
                                            "code": {
                                                "enum": [
                                                    ErrorCode.INVALID_FILTER.value,
                                                    ErrorCode.INVALID_SUBSCRIPTION_TYPE.value,
                                                ]
                                            }
                                        }
                                    },
                                ]
                            }
                        },
                        "text/plain": {"schema": {"type": "string"}},
                    },
                },
                "401": _error(
                    f"{refused} No token where one is needed, or a bad one (`reason`).",
                    ErrorCode.AUTH_REQUIRED,
                    ErrorCode.INVALID_TOKEN,
                    ErrorCode.TOKEN_EXPIRED,
                ),
                "403": _error(
                    f"{refused} The page's origin is not allowed, or the room is not this "
                    "user's (another user's portfolio, a type outside the token's scopes).",
                    ErrorCode.ORIGIN_NOT_ALLOWED,
                    ErrorCode.FORBIDDEN,
                ),
                "429": _error(
                    f"{refused} Too many new connections from this address, or the user "
                    "holds `ODDSTREAM_MAX_CONNECTIONS_PER_USER` already.",
                    ErrorCode.RATE_LIMITED,
                    ErrorCode.TOO_MANY_CONNECTIONS,
                    headers=_RETRY_AFTER,
                ),
                "503": _error(
                    f"{refused} The gateway is full or draining, or Redis is unavailable.",
                    ErrorCode.TOO_MANY_CONNECTIONS,
                    ErrorCode.SERVICE_UNAVAILABLE,
                    headers=_RETRY_AFTER,
                ),
            },
        }
    }


def _websocket_paths() -> dict[str, Any]:
    sport_filters = _filter_parameters(SubscriptionType.MLB)  # every sport takes the same
    sport = {
        "name": "sport",
        "in": "path",
        "required": True,
        "description": "Any case.",
        "schema": {"enum": sorted(t.value.upper() for t in SPORT_TYPES)},
    }
    return {
        "/ws/v2/connect": _websocket(
            "connectWebSocket", "WebSocket without a first subscription", []
        ),
        "/ws/v2/odds": _websocket(
            "oddsWebSocket",
            "WebSocket subscribed to `odds_updates` with the query's filters",
            _filter_parameters(SubscriptionType.ODDS_UPDATES),
        ),
        "/ws/v2/arbitrage": _websocket(
            "arbitrageWebSocket",
            "WebSocket subscribed to `arbitrage` with the query's filters",
            _filter_parameters(SubscriptionType.ARBITRAGE),
        ),
        "/ws/v2/sport/{sport}": _websocket(
            "sportWebSocket",
            "WebSocket subscribed to one sport's type with the query's filters",
            [sport, *sport_filters],
        ),
        "/ws/v2/portfolio": _websocket(
            "portfolioWebSocket",
            "WebSocket subscribed to the token's user's `portfolio` (a token is required)",
            [],
        ),
    }


# --- the document -----------------------------------------------------------------------------


def openapi_document(*, analytics_minutes: int = DEFAULT_ANALYTICS_MINUTES) -> dict[str, Any]:
    """The OpenAPI 3.1 document; `analytics_minutes` is the analytics retention in minutes."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Oddstream gateway",
            "version": VERSION,
            "summary": "HTTP endpoints of a gateway: management, health, browser, WebSocket "
            "handshakes.",
            "description": "Every gateway answers for the whole cluster, from Redis. Errors "
            "the gateway answers itself carry a JSON body `{status, code, error, hint}`; an "
            "unknown path is a 404 `not_found`, a wrong method a 405 `invalid_request`. HEAD "
            "is answered wherever GET is. CORS headers (and preflight answers) follow "
            "`ODDSTREAM_ALLOWED_ORIGINS`. The WebSocket protocol's frames are described at "
            "`GET /ws/v2/schema`.",
            "license": {"name": "Proprietary"},
        },
        "tags": [
            {"name": "management", "description": "The cluster, for operators."},
            {"name": "health", "description": "For load balancers and Prometheus."},
            {"name": "meta", "description": "Descriptions of the gateway's interfaces."},
            {"name": "browser", "description": "What browsers need besides the WebSocket."},
            {"name": "websocket", "description": "WebSocket upgrades (frames: /ws/v2/schema)."},
        ],
        "paths": {
            **_websocket_paths(),
            **_management_paths(analytics_minutes),
            **_browser_paths(),
        },
        "components": {
            "schemas": _components(),
            "securitySchemes": {
                "adminBearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "`ODDSTREAM_ADMIN_TOKEN`, or a JWT with `admin: true` (or "
                    "`admin` in its scopes).",
                },
                "userBearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "A user's token (`sub` is the user).",
                },
                "tokenQuery": {
                    "type": "apiKey",
                    "in": "query",
                    "name": "token",
                    "description": "The same token in the URL (never logged).",
                },
            },
        },
    }


@functools.cache
def openapi_json(analytics_minutes: int = DEFAULT_ANALYTICS_MINUTES) -> bytes:
    """The document as served (built once per retention)."""
    return orjson.dumps(openapi_document(analytics_minutes=analytics_minutes))
