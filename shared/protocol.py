"""The WebSocket message protocol: client and server frames, error codes and close codes.

Every frame is one JSON object in a text frame. Client frames are validated by the pydantic
models below; server frames are built by `server_frame` (control replies) or assembled once
per event by the worker's commit script (data frames, see `workers/lua/commit.lua`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import IntEnum, StrEnum
from typing import Annotated, Any, Literal

import orjson
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    TypeAdapter,
    ValidationError,
)

__all__ = [
    "BATCH_COUNTS",
    "BATCH_DELAYS_MS",
    "BATCH_DELAY_MS",
    "CLIENT_MESSAGE_TYPES",
    "CLOSE_ADVICE_RANGES",
    "CLOSE_EXPLANATIONS",
    "DATA_MESSAGE_TYPES",
    "ERROR_CLASSES",
    "ERROR_HINTS",
    "RFC_CLOSE_ADVICE",
    "SPORT_TYPES",
    "SUBPROTOCOL",
    "TEMPORARY_ERRORS",
    "TOKEN_SUBPROTOCOL_PREFIX",
    "AuthMessage",
    "ClientMessage",
    "CloseAdvice",
    "CloseCode",
    "ErrorClass",
    "ErrorCode",
    "PingMessage",
    "PongMessage",
    "ProtocolError",
    "ServerMessage",
    "ServerMessageType",
    "StatusMessage",
    "SubscribeMessage",
    "SubscriptionType",
    "UnsubscribeMessage",
    "client_message_adapter",
    "close_advice",
    "describe_validation_error",
    "error_frame",
    "server_frame",
    "utc_now_iso",
]


class SubscriptionType(StrEnum):
    ODDS_UPDATES = "odds_updates"
    PREDICTIONS = "predictions"
    ANALYTICS = "analytics"
    ARBITRAGE = "arbitrage"
    MLB = "mlb"
    NBA = "nba"
    NFL = "nfl"
    NHL = "nhl"
    SYSTEM_ALERTS = "system_alerts"
    PORTFOLIO = "portfolio"

    @property
    def sport(self) -> str | None:
        """The sport a sport type stands for (`mlb` -> `MLB`), else None."""
        return self.value.upper() if self in SPORT_TYPES else None


SPORT_TYPES = frozenset(
    {SubscriptionType.MLB, SubscriptionType.NBA, SubscriptionType.NFL, SubscriptionType.NHL}
)


class ServerMessageType(StrEnum):
    WELCOME = "welcome"
    SUBSCRIPTION_CONFIRMED = "subscription_confirmed"
    UNSUBSCRIBED = "unsubscribed"
    STATUS = "status"
    PING = "ping"
    PONG = "pong"
    ERROR = "error"
    TOKEN_EXPIRING = "token_expiring"
    AUTH_REFRESHED = "auth_refreshed"
    SNAPSHOT = "snapshot"  # the latest values a new (or resynced) subscription starts from
    # data frames, one per event kind
    ODDS_UPDATE = "odds_update"
    PREDICTION_UPDATE = "prediction_update"
    ARBITRAGE_ALERT = "arbitrage_alert"
    ANALYTICS_UPDATE = "analytics_update"
    SYSTEM_ALERT = "system_alert"
    PORTFOLIO_UPDATE = "portfolio_update"
    BROADCAST = "broadcast"


DATA_MESSAGE_TYPES = frozenset(
    {
        ServerMessageType.ODDS_UPDATE,
        ServerMessageType.PREDICTION_UPDATE,
        ServerMessageType.ARBITRAGE_ALERT,
        ServerMessageType.ANALYTICS_UPDATE,
        ServerMessageType.SYSTEM_ALERT,
        ServerMessageType.PORTFOLIO_UPDATE,
        ServerMessageType.BROADCAST,
    }
)


class ErrorCode(StrEnum):
    """Stable machine-readable codes carried by every `error` frame and HTTP error body."""

    INVALID_JSON = "invalid_json"
    INVALID_MESSAGE = "invalid_message"
    UNKNOWN_TYPE = "unknown_type"
    BINARY_NOT_SUPPORTED = "binary_not_supported"
    INVALID_SUBSCRIPTION_TYPE = "invalid_subscription_type"
    INVALID_FILTER = "invalid_filter"
    NOT_SUBSCRIBED = "not_subscribed"
    AUTH_REQUIRED = "auth_required"
    INVALID_TOKEN = "invalid_token"
    TOKEN_EXPIRED = "token_expired"
    FORBIDDEN = "forbidden"
    TOO_MANY_CONNECTIONS = "too_many_connections"
    MESSAGE_TOO_LARGE = "message_too_large"
    SERVICE_UNAVAILABLE = "service_unavailable"
    INTERNAL_ERROR = "internal_error"
    INVALID_REQUEST = "invalid_request"
    NOT_FOUND = "not_found"
    RATE_LIMITED = "rate_limited"
    TOO_MANY_SUBSCRIPTIONS = "too_many_subscriptions"
    ORIGIN_NOT_ALLOWED = "origin_not_allowed"
    UNAUTHORIZED = "unauthorized"
    INVALID_POSITION = "invalid_position"


#: What a client should do about each error: appended to the human-readable message.
ERROR_HINTS: dict[ErrorCode, str] = {
    ErrorCode.INVALID_JSON: "Send each message as one JSON object in a text frame.",
    ErrorCode.INVALID_MESSAGE: "Check the fields against the protocol schema at /ws/v2/schema.",
    ErrorCode.UNKNOWN_TYPE: "Use one of: subscribe, unsubscribe, ping, pong, status, auth.",
    ErrorCode.BINARY_NOT_SUPPORTED: "Send JSON as a text frame, not a binary frame.",
    ErrorCode.INVALID_SUBSCRIPTION_TYPE: "Use one of: "
    + ", ".join(t.value for t in SubscriptionType)
    + ".",
    ErrorCode.INVALID_FILTER: "Fix the filter named above; see the README's filter table.",
    ErrorCode.NOT_SUBSCRIBED: "Send `status` to list this connection's subscriptions.",
    ErrorCode.AUTH_REQUIRED: "Connect with a valid token (?token=... or Authorization: Bearer).",
    ErrorCode.INVALID_TOKEN: "Obtain a new token from your identity provider and reconnect.",
    ErrorCode.TOKEN_EXPIRED: "Refresh the token and reconnect.",
    ErrorCode.FORBIDDEN: "This account may not do that; ask an administrator for access.",
    ErrorCode.TOO_MANY_CONNECTIONS: "Retry later, or connect to another gateway.",
    ErrorCode.MESSAGE_TOO_LARGE: "Keep client messages under the gateway's size limit.",
    ErrorCode.SERVICE_UNAVAILABLE: "A temporary fault: retry in a few seconds.",
    ErrorCode.INTERNAL_ERROR: "A bug on our side: retry, and report it if it persists.",
    ErrorCode.INVALID_REQUEST: "Check the request body against the README.",
    ErrorCode.NOT_FOUND: "Check the URL against the README's endpoint list.",
    ErrorCode.RATE_LIMITED: "Slow down: wait a moment before sending or connecting again.",
    ErrorCode.TOO_MANY_SUBSCRIPTIONS: "Unsubscribe from rooms you no longer need first.",
    ErrorCode.ORIGIN_NOT_ALLOWED: "Open the page from an origin the gateway allows.",
    ErrorCode.UNAUTHORIZED: "Send admin credentials: Authorization: Bearer <admin token>.",
    ErrorCode.INVALID_POSITION: "Send a position exactly as the gateway gave it, or none.",
}


class CloseAdvice(StrEnum):
    """What a client should do when closed; clients act on this, not on single codes."""

    RECONNECT_NOW = "reconnect_now"
    RECONNECT_BACKOFF = "reconnect_backoff"
    REFRESH_TOKEN = "refresh_token"
    TERMINAL = "terminal"


class CloseCode(IntEnum):
    """WebSocket close codes the gateway uses.

    Our codes are grouped by range so a client can act on codes it does not know:
    4000-4099 reconnect at once, 4100-4399 reconnect with backoff, 4400-4499 refresh the
    token first, 4500-4999 do not reconnect (terminal). RFC 6455 codes are mapped one by one
    in `close_advice`; anything else (e.g. 1006, abnormal closure) means reconnect with backoff.
    """

    NORMAL = 1000  # closed on request
    GOING_AWAY = 1001  # gateway draining: reconnect now (the gateway spreads clients over time)
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009  # a client frame over the size limit
    INTERNAL_ERROR = 1011
    SLOW_CONSUMER = 4008  # could not keep up with must-deliver data: reconnect and resubscribe
    HEARTBEAT_TIMEOUT = 4101  # silent for WEBSOCKET_CONNECTION_TIMEOUT
    SERVICE_UNAVAILABLE = 4111  # Redis or the pipeline is down
    TOKEN_EXPIRED = 4401  # refresh the token, then reconnect
    FORBIDDEN = 4503  # not allowed: do not retry as is

    @property
    def advice(self) -> CloseAdvice:
        return close_advice(int(self))


#: RFC 6455 codes, advised one by one.
RFC_CLOSE_ADVICE: dict[int, CloseAdvice] = {
    1000: CloseAdvice.TERMINAL,
    1001: CloseAdvice.RECONNECT_NOW,
    1008: CloseAdvice.TERMINAL,
    1009: CloseAdvice.TERMINAL,
    1011: CloseAdvice.RECONNECT_BACKOFF,
    1012: CloseAdvice.RECONNECT_NOW,
    1013: CloseAdvice.RECONNECT_BACKOFF,
}

#: Our own codes, advised by range [low, high): a client knows what to do with a code it has
#: never seen. Anything in neither table means reconnect with backoff.
CLOSE_ADVICE_RANGES: tuple[tuple[int, int, CloseAdvice], ...] = (
    (4000, 4100, CloseAdvice.RECONNECT_NOW),
    (4100, 4400, CloseAdvice.RECONNECT_BACKOFF),
    (4400, 4500, CloseAdvice.REFRESH_TOKEN),
    (4500, 5000, CloseAdvice.TERMINAL),
)


def close_advice(code: int) -> CloseAdvice:
    """What to do about any close code, known or not."""
    if code in RFC_CLOSE_ADVICE:
        return RFC_CLOSE_ADVICE[code]
    for low, high, advice in CLOSE_ADVICE_RANGES:
        if low <= code < high:
            return advice
    return CloseAdvice.RECONNECT_BACKOFF


#: Why a connection closed, in words a user understands, and what they can do (clients show
#: these; 1006 is what a client sees when the network dropped without a close frame).
CLOSE_EXPLANATIONS: dict[int, tuple[str, str]] = {
    1001: ("The gateway is restarting.", "Reconnecting to another gateway now."),
    1006: ("The connection dropped.", "Check your network; reconnecting automatically."),
    1008: ("The gateway closed the connection for a policy violation.", "Reload the page."),
    1009: ("A message was too large for the gateway.", "Send smaller messages."),
    1011: ("The gateway hit an internal error.", "Reconnecting; report it if it persists."),
    4008: ("This client fell behind the live feed.", "Reconnecting; close other busy tabs."),
    4101: ("The gateway heard nothing from this client for too long.", "Reconnecting."),
    4111: ("The live data service is unavailable.", "Reconnecting with backoff."),
    4401: ("Your session token expired.", "Sign in again to get a fresh token."),
    4503: ("This account may not stay connected (access revoked).", "Sign in again."),
}


class ErrorClass(StrEnum):
    """How clients sort error codes into typed errors."""

    AUTH = "auth"  # missing, bad, expired or insufficient credentials: fix the token
    SUBSCRIPTION = "subscription"  # a subscription the gateway will not serve as asked
    GENERAL = "general"


#: Codes that are not `ErrorClass.GENERAL`.
ERROR_CLASSES: dict[ErrorCode, ErrorClass] = {
    ErrorCode.AUTH_REQUIRED: ErrorClass.AUTH,
    ErrorCode.INVALID_TOKEN: ErrorClass.AUTH,
    ErrorCode.TOKEN_EXPIRED: ErrorClass.AUTH,
    ErrorCode.FORBIDDEN: ErrorClass.AUTH,
    ErrorCode.UNAUTHORIZED: ErrorClass.AUTH,
    ErrorCode.INVALID_SUBSCRIPTION_TYPE: ErrorClass.SUBSCRIPTION,
    ErrorCode.INVALID_FILTER: ErrorClass.SUBSCRIPTION,
    ErrorCode.NOT_SUBSCRIBED: ErrorClass.SUBSCRIPTION,
    ErrorCode.TOO_MANY_SUBSCRIPTIONS: ErrorClass.SUBSCRIPTION,
    ErrorCode.INVALID_POSITION: ErrorClass.SUBSCRIPTION,
}

#: Codes for which the same request can succeed later.
TEMPORARY_ERRORS: frozenset[ErrorCode] = frozenset(
    {
        ErrorCode.RATE_LIMITED,
        ErrorCode.SERVICE_UNAVAILABLE,
        ErrorCode.TOO_MANY_CONNECTIONS,
        ErrorCode.INTERNAL_ERROR,
    }
)

#: The WebSocket subprotocol the gateway speaks; browsers offer it next to
#: `TOKEN_SUBPROTOCOL_PREFIX + <token>`, so tokens never sit in a URL.
SUBPROTOCOL = "oddstream.v2"
TOKEN_SUBPROTOCOL_PREFIX = "bearer."


#: Batching, asked for at connect (`?batch=N&batch_ms=D`): data frames arrive N to a message
#: (a JSON array), each array written when N are held or D ms after the first, whichever is
#: first. The messages per array and the delays a client may ask for (inclusive), and the
#: delay when only `batch` is given.
BATCH_COUNTS = (2, 64)
BATCH_DELAYS_MS = (0, 100)
BATCH_DELAY_MS = 5


class ProtocolError(Exception):
    """A client request that cannot be served; becomes an `error` frame, never a crash."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def describe_validation_error(exc: ValidationError) -> str:
    """The first few problems of a pydantic validation error, as one line for a client."""
    parts = []
    for err in exc.errors()[:3]:
        where = ".".join(str(p) for p in err["loc"]) or "event"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


def utc_now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# --------------------------------------------------------------------------------------------
# Client -> server
# --------------------------------------------------------------------------------------------

RequestId = Annotated[
    StrictStr | StrictInt | None,
    Field(default=None, description="Optional; echoed back in the reply so clients can match."),
]


class _ClientFrame(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: RequestId = None
    timestamp: datetime | None = Field(default=None, description="Client's send time, optional.")


class SubscribeMessage(_ClientFrame):
    type: Literal["subscribe"]
    subscription_type: str = Field(description="One of the subscription types.")
    filters: dict[str, Any] = Field(default_factory=dict)
    # One part per shard (at most 64, about 45 characters each).
    position: Annotated[str, Field(max_length=3000)] | None = Field(
        default=None,
        description="Resume: the last position this client saw in the room (from a data "
        "frame's `positions`, a confirmation or a snapshot), exactly as given.",
    )
    snapshot: bool = Field(
        default=True,
        description="Start a new or resynced odds, predictions or sport subscription with a "
        "`snapshot` of the latest values.",
    )


class UnsubscribeMessage(_ClientFrame):
    type: Literal["unsubscribe"]
    subscription_type: str | None = None
    filters: dict[str, Any] = Field(default_factory=dict)
    room: str | None = Field(default=None, description="Alternatively, the room id to leave.")


class PingMessage(_ClientFrame):
    type: Literal["ping"]


class PongMessage(_ClientFrame):
    """A client's answer to the gateway's heartbeat `ping`."""

    type: Literal["pong"]


class StatusMessage(_ClientFrame):
    type: Literal["status"]


class AuthMessage(_ClientFrame):
    """A fresh token for the same user, sent before the current one expires."""

    type: Literal["auth"]
    token: Annotated[str, Field(min_length=1, max_length=8192)]


ClientMessage = Annotated[
    SubscribeMessage | UnsubscribeMessage | PingMessage | PongMessage | StatusMessage | AuthMessage,
    Field(discriminator="type"),
]
client_message_adapter: TypeAdapter[ClientMessage] = TypeAdapter(ClientMessage)
CLIENT_MESSAGE_TYPES: frozenset[str] = frozenset(
    {"subscribe", "unsubscribe", "ping", "pong", "status", "auth"}
)


# --------------------------------------------------------------------------------------------
# Server -> client
# --------------------------------------------------------------------------------------------


class ServerMessage(BaseModel):
    """Shape of every server frame (the seed's envelope plus `code`, `id` and `rooms`)."""

    model_config = ConfigDict(extra="forbid")

    type: ServerMessageType
    status: Literal["success", "error"] = "success"
    data: dict[str, Any] | None = None
    client_id: str | None = None
    timestamp: str
    error: str | None = Field(default=None, description="Human-readable, says how to fix it.")
    code: ErrorCode | None = Field(default=None, description="Stable code of an `error`.")
    hint: str | None = Field(
        default=None,
        description="`error` frames: what to do about it (also the end of `error`), for UIs "
        "that show the problem and the suggestion apart.",
    )
    id: str | int | None = Field(default=None, description="The request id this answers.")
    rooms: list[str] | None = Field(
        default=None,
        description="Data frames: the rooms on the receiving gateway that the event matched "
        "(compare with the `room` of your confirmations; a connection gets each event once).",
    )
    event_id: str | None = Field(
        default=None, description="Data frames: the event's id, unique across the system."
    )
    positions: dict[str, str] | None = Field(
        default=None,
        description="Data frames: each room's position after this event; send it back as "
        "`position` when subscribing again to resume from there.",
    )
    replay: bool | None = Field(
        default=None, description="Data frames replayed on a resume (sent before live ones)."
    )
    room: str | None = Field(default=None, description="`snapshot`: the room it is for.")
    position: str | None = Field(
        default=None, description="`snapshot`: the room's position the snapshot is at."
    )


def server_frame(
    type_: ServerMessageType,
    data: dict[str, Any] | None = None,
    *,
    client_id: str | None = None,
    request_id: str | int | None = None,
) -> bytes:
    """Serialize a control reply (welcome, confirmation, pong, ...) to JSON bytes."""
    frame: dict[str, Any] = {
        "type": type_.value,
        "status": "success",
        "data": data,
        "timestamp": utc_now_iso(),
    }
    return _addressed(frame, client_id, request_id)


def _addressed(frame: dict[str, Any], client_id: str | None, request_id: str | int | None) -> bytes:
    if client_id is not None:
        frame["client_id"] = client_id
    if request_id is not None:
        frame["id"] = request_id
    return orjson.dumps(frame)


def error_frame(
    code: ErrorCode,
    message: str,
    *,
    client_id: str | None = None,
    request_id: str | int | None = None,
) -> bytes:
    """Serialize an `error` frame whose text says what went wrong and how to fix it."""
    frame: dict[str, Any] = {
        "type": ServerMessageType.ERROR.value,
        "status": "error",
        "code": code.value,
        "error": f"{message} {ERROR_HINTS[code]}",
        "hint": ERROR_HINTS[code],
        "data": None,
        "timestamp": utc_now_iso(),
    }
    return _addressed(frame, client_id, request_id)
