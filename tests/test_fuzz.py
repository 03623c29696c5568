"""Property-based fuzzing of the client protocol through a real gateway, worker and Redis.

Hypothesis sends arbitrary text frames, JSON values, message-shaped objects, binary frames,
text frames that are not UTF-8 and frames around the size limit. For every frame the gateway
must answer with a valid server frame or an `error` (or close 1009 / 1007 where the WebSocket
protocol says so); it must never crash, hang, log an error or leak a connection or a room.

Design: hypothesis and async fixtures do not mix, so ONE gateway and ONE worker run for the
whole module in a background thread with its own event loop (`FuzzGateway`). Each example is
played by a synchronous hypothesis test on a fresh client event loop (`asyncio.Runner`) with a
fresh WebSocket; gateway state is read on the gateway's own loop (`FuzzGateway.call`), never
from the test thread.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import logging
import socket
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aiohttp
import orjson
import pytest
from aiohttp import WSMsgType
from hypothesis import HealthCheck, assume, example, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from pydantic import SecretStr, ValidationError
from redis.exceptions import RedisError

from oddstream.embedded import EmbeddedRedis
from oddstream.gateway.auth import issue_token
from oddstream.gateway.state import METRICS
from oddstream.shared.keys import Keys
from oddstream.shared.protocol import (
    CLIENT_MESSAGE_TYPES,
    DATA_MESSAGE_TYPES,
    ErrorCode,
    ProtocolError,
    ServerMessage,
    ServerMessageType,
    SubscriptionType,
    client_message_adapter,
)
from oddstream.shared.rooms import parse_room
from oddstream.shared.settings import Settings
from oddstream.workers.consumer import Worker
from tests.harness import RunningGateway, held_rooms, running_gateway, running_worker

T = TypeVar("T")

#: The fuzz gateway's frame limit: small, so frames around it are cheap to build.
LIMIT = 2048
#: The fuzz gateway's token secret, and the user a token-carrying client connects as.
SECRET = "fuzz-secret-0123456789abcdef0123456789"
USER = "fuzzer"
#: Seconds a single exchange may take before it counts as a hang.
REPLY_TIMEOUT = 5.0
#: Seconds the gateway gets to release a closed client's connection and rooms.
RELEASE_TIMEOUT = 5.0

#: aiohttp's close codes for a frame over the limit and for a text frame that is not UTF-8.
CLOSE_TOO_BIG = 1009
CLOSE_INVALID_TEXT = 1007

#: Server frames that are not replies to a client message (heartbeats, data, notices).
UNSOLICITED = {ServerMessageType.PING.value, *(t.value for t in DATA_MESSAGE_TYPES)}
#: A snapshot follows a subscription's confirmation (the reply), before live data.
UNSOLICITED.add(ServerMessageType.SNAPSHOT.value)
if hasattr(ServerMessageType, "TOKEN_EXPIRING"):
    UNSOLICITED.add(ServerMessageType.TOKEN_EXPIRING.value)

#: The reply each valid client message gets (an `error` is always acceptable too).
REPLIES: dict[str, set[str]] = {
    "ping": {"pong"},
    "status": {"status"},
    "subscribe": {"subscription_confirmed"},
    "unsubscribe": {"unsubscribed"},
    "auth": {"auth_refreshed"},
}

#: Error codes that mean the gateway failed, never an acceptable answer to any input.
FAILURE_CODES = {ErrorCode.INTERNAL_ERROR.value}


# --------------------------------------------------------------------------------------------
# The gateway under test, in its own thread
# --------------------------------------------------------------------------------------------


class ErrorLog(logging.Handler):
    """Collects ERROR records (tracebacks) from the gateway, worker, aiohttp and asyncio."""

    LOGGERS = ("oddstream", "aiohttp", "asyncio")

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []
        self._lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        with self._lock:
            self.records.append(record)

    def since(self, mark: int) -> list[str]:
        with self._lock:
            return [self.format(r) for r in self.records[mark:]]

    def __len__(self) -> int:
        with self._lock:
            return len(self.records)


@dataclass(frozen=True)
class GatewayState:
    connections: int
    rooms: list[str]
    specs: int
    backlogged: int
    background: int
    registry_rooms: int
    gateway_rooms: int
    gateway_connections: int
    worker_rooms: int
    dead_tasks: list[str]

    @property
    def released(self) -> bool:
        """No client and no room left on the gateway or in the registry."""
        return (
            self.connections == 0
            and not self.rooms
            and self.specs == 0
            and self.backlogged == 0
            and self.registry_rooms == 0
            and self.gateway_rooms == 0
        )

    @property
    def clean(self) -> bool:
        """`released`, and every asynchronous trace of the clients is gone too."""
        return (
            self.released
            and self.background == 0
            and self.gateway_connections == 0
            and self.worker_rooms == 0
        )


class FuzzGateway:
    """A real gateway and worker on a background thread's event loop."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.keys = Keys.of(settings)
        self.errors = ErrorLog()
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._gateway: RunningGateway | None = None
        self._worker: Worker | None = None
        self._thread = threading.Thread(target=self._run, name="fuzz-gateway", daemon=True)

    # --- lifecycle ---------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported by start()/stop() on the test thread
            self._failure = exc
        finally:
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with (
            running_gateway(self.settings) as gateway,
            running_worker(self.settings) as worker,
        ):
            self._gateway, self._worker = gateway, worker
            self._ready.set()
            await self._stop.wait()

    def start(self) -> None:
        for name in ErrorLog.LOGGERS:
            logging.getLogger(name).addHandler(self.errors)
        self._thread.start()
        assert self._ready.wait(30), "the fuzz gateway did not start within 30 s"
        if self._failure is not None:
            raise AssertionError("the fuzz gateway failed to start") from self._failure

    def stop(self) -> None:
        try:
            if self._loop is not None and self._stop is not None and self._thread.is_alive():
                self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(30)
            assert not self._thread.is_alive(), "the fuzz gateway did not stop within 30 s"
            if self._failure is not None:
                raise AssertionError("the fuzz gateway crashed") from self._failure
        finally:
            for name in ErrorLog.LOGGERS:
                logging.getLogger(name).removeHandler(self.errors)

    # --- access from the test thread ---------------------------------------------------------

    @property
    def gateway(self) -> RunningGateway:
        assert self._gateway is not None
        return self._gateway

    @property
    def url(self) -> str:
        return f"{self.gateway.ws}/ws/v2/connect"

    def call(self, fn: Callable[[], Awaitable[T]], timeout: float = 10.0) -> T:
        """Run `fn()` on the gateway's loop and return its result."""
        assert self._loop is not None
        if not self._thread.is_alive():
            raise AssertionError("the fuzz gateway thread died") from self._failure

        async def wrapper() -> T:
            return await fn()

        return asyncio.run_coroutine_threadsafe(wrapper(), self._loop).result(timeout)

    async def _state(self) -> GatewayState:
        node = self.gateway.node
        assert self._worker is not None
        redis = node.redis
        try:
            registry_rooms = len(await held_rooms(redis, self.keys))
            gateway_rooms = int(await redis.hlen(self.keys.gateway_rooms(node.gateway_id)))
            gateway_connections = int(
                await redis.hlen(self.keys.gateway_connections(node.gateway_id))
            )
        except RedisError:  # pragma: no cover - reported as a leak by the callers
            registry_rooms = gateway_rooms = gateway_connections = -1
        return GatewayState(
            connections=len(node.connections),
            rooms=sorted(node.rooms),
            specs=len(node.rooms._specs),
            backlogged=len(node.fanout.backlogged),
            background=len(node._background),
            registry_rooms=registry_rooms,
            gateway_rooms=gateway_rooms,
            gateway_connections=gateway_connections,
            worker_rooms=len(self._worker.index),
            dead_tasks=[t.get_name() for t in node._tasks if t.done()],
        )

    def state(self) -> GatewayState:
        return self.call(self._state)

    def wait_state(
        self, predicate: Callable[[GatewayState], bool], what: str, timeout: float
    ) -> GatewayState:
        deadline = time.monotonic() + timeout
        while True:
            state = self.state()
            assert not state.dead_tasks, f"gateway background tasks died: {state.dead_tasks}"
            if predicate(state):
                return state
            if time.monotonic() > deadline:
                raise AssertionError(f"{what} not reached within {timeout}s: {state}")
            time.sleep(0.01)

    def metric(self, name: str, **labels: str) -> float:
        async def read() -> float:
            value = self.gateway.app[METRICS].registry.get_sample_value(name, labels)
            return value or 0.0

        return self.call(read)


def _fuzz_settings(redis_url: str) -> Settings:
    """The conftest's short intervals, a small frame limit and abuse limits out of the way
    (one client IP opens a connection per example; the limits have tests of their own)."""
    wanted: dict[str, Any] = {
        "redis_url": redis_url,
        "redis_prefix": f"fuzz{uuid.uuid4().hex[:10]}",
        "host": "127.0.0.1",
        "port": 0,
        "gateway_heartbeat": 0.2,
        "gateway_ttl": 1.0,
        "worker_heartbeat": 0.2,
        "worker_ttl": 1.0,
        "worker_block_ms": 200,
        "partitions": 4,
        "partition_lease_ms": 600,
        "trim_interval": 0.5,
        "shutdown_grace": 2.0,
        "canary_interval": 0.5,
        "max_message_bytes": LIMIT,
        "jwt_secret": SecretStr(SECRET),
        "connect_rate_per_ip": 100_000.0,
        "connect_burst_per_ip": 100_000,
        "messages_per_second": 100_000.0,
        "message_burst": 100_000,
    }
    return Settings(**{k: v for k, v in wanted.items() if k in Settings.model_fields})


@pytest.fixture(scope="module")
def fuzz_gw(redis_server: EmbeddedRedis) -> Iterator[FuzzGateway]:
    gw = FuzzGateway(_fuzz_settings(redis_server.url))
    gw.start()
    try:
        yield gw
    finally:
        gw.stop()


# --------------------------------------------------------------------------------------------
# Frames and the oracle
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Frame:
    """One client frame: a str is sent as text, bytes as binary unless `opcode` says TEXT."""

    payload: str | bytes
    opcode: WSMsgType = WSMsgType.TEXT

    @property
    def data(self) -> bytes:
        return self.payload.encode() if isinstance(self.payload, str) else self.payload

    def __repr__(self) -> str:
        shown = self.payload if len(self.payload) <= 300 else self.payload[:300]
        more = "" if len(self.payload) <= 300 else f"...(+{len(self.payload) - 300})"
        return f"Frame({shown!r}{more}, {self.opcode.name})"


def text(payload: str) -> Frame:
    return Frame(payload, WSMsgType.TEXT)


def binary(payload: bytes) -> Frame:
    return Frame(payload, WSMsgType.BINARY)


def message(body: Any) -> Frame:
    return Frame(orjson.dumps(body).decode(), WSMsgType.TEXT)


@dataclass(frozen=True)
class Expect:
    """What must answer one frame."""

    close: int | None = None  # the connection must close with this code (no reply)
    replies: frozenset[str] = frozenset()  # acceptable reply types; empty: no reply at all
    code: str | None = None  # the exact error code required, if an error is the answer
    request_id: Any = None  # the id an `error` reply must echo (the raw str/int id)
    reply_id: Any = None  # the id a success reply must echo (the validated id)
    check_id: bool = False


def _request_id(body: dict[str, Any]) -> tuple[Any, bool]:
    """The id an error before validation echoes: str or int ids only (bools are ints in
    Python, so their echo is not checked)."""
    raw = body.get("id")
    if isinstance(raw, bool):
        return None, False
    return (raw, True) if isinstance(raw, str | int) else (None, True)


def expect(frame: Frame) -> Expect:
    size = len(frame.data)
    if size > LIMIT:
        return Expect(close=CLOSE_TOO_BIG)
    if frame.opcode is WSMsgType.BINARY:
        return Expect(
            replies=frozenset({"error"}), code=ErrorCode.BINARY_NOT_SUPPORTED.value, check_id=True
        )
    try:
        data = frame.data.decode()
    except UnicodeDecodeError:
        return Expect(close=CLOSE_INVALID_TEXT)
    error = frozenset({"error"})
    try:
        body = orjson.loads(data)
    except orjson.JSONDecodeError:
        return Expect(replies=error, code=ErrorCode.INVALID_JSON.value, check_id=True)
    if not isinstance(body, dict):
        return Expect(replies=error, code=ErrorCode.INVALID_MESSAGE.value, check_id=True)
    request_id, check_id = _request_id(body)
    type_ = body.get("type")
    if not isinstance(type_, str) or type_ not in CLIENT_MESSAGE_TYPES:
        return Expect(replies=error, code=ErrorCode.UNKNOWN_TYPE.value, request_id=request_id,
                      check_id=check_id)  # fmt: skip
    try:
        valid = client_message_adapter.validate_python(body)
    except ValidationError:
        return Expect(replies=error, code=ErrorCode.INVALID_MESSAGE.value, request_id=request_id,
                      check_id=check_id)  # fmt: skip
    if type_ == "pong":
        return Expect()  # a heartbeat answer: nothing comes back
    return Expect(
        replies=frozenset(REPLIES.get(type_, {t.value for t in ServerMessageType}) | {"error"}),
        request_id=request_id,
        reply_id=getattr(valid, "id", None),
        check_id=check_id,
    )


@dataclass
class Exchange:
    frames: list[Frame]
    received: list[dict[str, Any]] = field(default_factory=list)
    close_code: int | None = None
    probe_answered: bool = False

    def fail(self, why: str) -> AssertionError:
        got = [(f.get("type"), f.get("code"), f.get("id")) for f in self.received]
        return AssertionError(
            f"{why}\n  sent: {self.frames!r}\n  received (type, code, id): {got}"
            f"\n  close code: {self.close_code}"
        )


def check_server_frame(raw: str, exchange: Exchange) -> dict[str, Any]:
    """A server frame must be a JSON object that is a valid `ServerMessage`."""
    try:
        frame = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise exchange.fail(f"server sent a text frame that is not JSON: {raw[:200]!r}") from None
    if not isinstance(frame, dict):
        raise exchange.fail(f"server sent a frame that is not an object: {raw[:200]!r}")
    try:
        ServerMessage.model_validate(frame)
    except ValidationError as exc:
        raise exchange.fail(f"server frame {frame!r} is not a valid ServerMessage: {exc}") from None
    if frame["type"] == ServerMessageType.ERROR.value:
        if frame.get("code") not in {c.value for c in ErrorCode}:
            raise exchange.fail(f"error frame without a known code: {frame!r}")
        if frame.get("status") != "error" or not frame.get("error"):
            raise exchange.fail(f"error frame without status/error text: {frame!r}")
    return frame


#: How a client leaves: a close handshake; dropping the TCP connection (no close frame) once
#: everything is answered; or dropping it right after sending, while replies are in flight.
LEAVES = ("close", "drop", "drop_early")


def drop(ws: aiohttp.ClientWebSocketResponse) -> None:
    """Shut the TCP connection down under the client: the gateway sees EOF, no close frame."""
    sock = ws.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


async def play(
    url: str, frames: list[Frame], leave: str = "close", user: str | None = None
) -> Exchange:
    """Connect (anonymous, or as `user` with a valid token), take the welcome, send `frames`
    then a probe ping, read until the probe's pong (or the close a frame must cause), then
    leave as `leave` says. A hang fails the example."""
    exchange = Exchange(frames)
    probe = f"probe-{uuid.uuid4().hex}"
    # A frame that closes the connection ends the sequence: nothing after it is sent.
    closing = next((i for i, f in enumerate(frames) if expect(f).close is not None), None)
    to_send = frames if closing is None else frames[: closing + 1]
    async with aiohttp.ClientSession() as session:
        headers = {"Authorization": f"Bearer {issue_token(SECRET, user)}"} if user else None
        ws = await session.ws_connect(url, autoping=True, max_msg_size=0, headers=headers)
        try:
            async with asyncio.timeout(REPLY_TIMEOUT):
                first = await ws.receive()
                assert first.type is WSMsgType.TEXT, f"no welcome: {first!r}"
                welcome = check_server_frame(first.data, exchange)
                assert welcome["type"] == ServerMessageType.WELCOME.value, welcome
                for frame in to_send:
                    await ws.send_frame(frame.data, frame.opcode)
                if leave == "drop_early":
                    drop(ws)
                    return exchange
                if closing is None:
                    await ws.send_str(orjson.dumps({"type": "ping", "id": probe}).decode())
                while True:
                    msg = await ws.receive()
                    if msg.type is WSMsgType.TEXT:
                        reply = check_server_frame(msg.data, exchange)
                        if reply["type"] == "pong" and reply.get("id") == probe:
                            exchange.probe_answered = True
                            break
                        exchange.received.append(reply)
                    elif msg.type is WSMsgType.BINARY:
                        raise exchange.fail(f"server sent a binary frame: {msg.data!r}")
                    elif msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED):
                        exchange.close_code = ws.close_code
                        break
                    elif msg.type is WSMsgType.ERROR:
                        exchange.close_code = ws.close_code
                        raise exchange.fail(f"client-side WebSocket error: {msg.data!r}")
                if leave == "drop":
                    drop(ws)
        except TimeoutError:
            raise exchange.fail(f"no answer within {REPLY_TIMEOUT}s: the gateway hung") from None
        finally:
            await ws.close()
    return exchange


def verify(exchange: Exchange) -> None:
    """Match replies to frames in order: each frame gets exactly its expected answer."""
    replies = [f for f in exchange.received if f["type"] not in UNSOLICITED]
    position = 0
    for frame in exchange.frames:
        want = expect(frame)
        if want.close is not None:
            if exchange.close_code != want.close:
                raise exchange.fail(f"{frame!r} must close {want.close}")
            if exchange.probe_answered:
                raise exchange.fail("the probe was answered after a closing frame")
            break
        if not want.replies:
            continue  # no reply expected; a stray one shows up as misalignment below
        if position >= len(replies):
            raise exchange.fail(f"no reply to {frame!r}")
        reply = replies[position]
        position += 1
        if reply["type"] not in want.replies:
            raise exchange.fail(f"{frame!r} got a {reply['type']!r}, not one of {want.replies}")
        if reply["type"] == "error":
            if reply["code"] in FAILURE_CODES:
                raise exchange.fail(f"the gateway failed on {frame!r}: {reply['error']}")
            if want.code is not None and reply["code"] != want.code:
                raise exchange.fail(f"{frame!r} must get error {want.code!r}")
        wanted_id = want.request_id if reply["type"] == "error" else want.reply_id
        if want.check_id and reply.get("id") != wanted_id:
            raise exchange.fail(f"{frame!r}: reply id {reply.get('id')!r} != {wanted_id!r}")
    else:
        if not exchange.probe_answered:
            raise exchange.fail("the probe ping was not answered")
        if exchange.close_code is not None:
            raise exchange.fail("the gateway closed a connection it had no reason to close")
    if position != len(replies):
        raise exchange.fail(f"unexpected extra replies: {replies[position:]}")


def run_example(
    gw: FuzzGateway, frames: list[Frame], leave: str = "close", user: str | None = None
) -> None:
    """One example: play it, check every answer, then check nothing is left behind."""
    # Exactly LIMIT bytes is the documented boundary; it has its own test below.
    assume(all(len(f.data) != LIMIT for f in frames))
    mark = len(gw.errors)
    with asyncio.Runner() as runner:
        exchange = runner.run(play(gw.url, frames, leave, user))
    if leave != "drop_early":  # replies were never read: only the clean-up is checked
        verify(exchange)
    gw.wait_state(lambda s: s.released, "release of the closed client's connection and rooms",
                  RELEASE_TIMEOUT)  # fmt: skip
    logged = gw.errors.since(mark)
    assert not logged, f"the gateway logged errors on {frames!r}:\n" + "\n".join(logged)


def assert_clean(gw: FuzzGateway) -> None:
    """After a whole run: nothing left on the gateway, in Redis or in the worker's index."""
    state = gw.wait_state(lambda s: s.clean, "a clean gateway after fuzzing", 10.0)
    assert state.connections == 0 and state.rooms == []


# --------------------------------------------------------------------------------------------
# Strategies
# --------------------------------------------------------------------------------------------

#: Integers JSON (orjson) can carry: i64 and u64.
json_ints = st.integers(min_value=-(2**63), max_value=2**64 - 1)
json_scalars = st.none() | st.booleans() | json_ints | st.floats() | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)

# Fragments of almost-JSON: numbers out of range, escapes, surrogates, nesting, truncation.
JSON_TOKENS = [
    "{", "}", "[", "]", ":", ",", " ", "\n", '"', "\\", '"type"', '"id"', '"filters"',
    '"subscription_type"', '"room"', '"subscribe"', '"unsubscribe"', '"ping"', '"pong"',
    '"status"', '"auth"', '"odds_updates"', '"sport"', '"MLB"', "null", "true", "false", "0",
    "-0", "1e400", "-1e400", "1.5", "18446744073709551616", "-9223372036854775809", "NaN",
    "Infinity", '"\\ud800"', '"\\udc00\\ud800"', '"\\u0000"', '"\\uZZZZ"', "\x00", "\ufeff",
    "[" * 300, "]" * 300, "{\"a\":" * 100,
]  # fmt: skip
json_soup = st.lists(st.sampled_from(JSON_TOKENS), max_size=12).map("".join)

subscription_types = (
    st.sampled_from([t.value for t in SubscriptionType])
    | st.sampled_from([t.value.upper() for t in SubscriptionType])
    | st.text(max_size=15)
    | json_values
)
FILTER_KEYS = ["sport", "game_id", "player", "sportsbook", "min_profit"]
filter_keys = st.sampled_from(FILTER_KEYS) | st.text(max_size=10)
filter_words = st.sampled_from(["MLB", "nba", "NFL", "nhl", "DraftKings", "FanDuel", "g1", " ", ""])
filter_values = (
    filter_words
    | st.text(max_size=12)
    | st.lists(filter_words | st.text(max_size=12) | json_ints, max_size=5)
    | st.floats()
    | json_ints
    | st.integers(95, 105).map(lambda n: "x" * n)  # around the value length limit
    | st.integers(45, 55).map(lambda n: [f"v{i}" for i in range(n)])  # around the count limit
    | json_values
)
filters = st.dictionaries(filter_keys, filter_values, max_size=4) | json_values
request_ids = (
    st.none() | json_ints | st.text(max_size=20) | st.booleans() | st.floats() | json_values
)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


#: Seconds since the epoch an hour from the test run: far enough that no token expires
#: (or is announced as expiring) during an example.
LATER = int(time.time()) + 3600

claims = st.fixed_dictionaries(
    {},
    optional={
        "sub": st.sampled_from([USER, "someone-else"]) | json_values,
        "exp": st.integers(LATER, 2**40) | st.text(max_size=12) | json_values,
        "iat": st.integers(0, LATER - 7200) | json_values,
        "nbf": st.integers(0, LATER - 7200) | json_values,
        "scopes": (
            st.lists(st.sampled_from([*(t.value for t in SubscriptionType), "*", "admin"]))
            | st.text(max_size=30)
            | json_values
        ),
        "admin": json_values,
        "iss": json_values,
        "aud": json_values,
    },
)
jwt_headers = st.fixed_dictionaries(
    {"alg": st.sampled_from(["HS256", "HS512", "none", "RS256", "ES256"]) | json_values},
    optional={"typ": st.just("JWT") | json_values, "kid": json_values},
)


@st.composite
def tokens(draw: st.DrawFn) -> str:
    """Garbage, or a JWT of arbitrary header and claims, signed right, wrongly or not at all."""
    if draw(st.booleans()):
        return draw(st.text(max_size=60))
    header = draw(st.just({"alg": "HS256", "typ": "JWT"}) | jwt_headers | json_values)
    body = draw(claims | json_values)
    signing_input = f"{_b64(orjson.dumps(header))}.{_b64(orjson.dumps(body))}"
    how = draw(st.sampled_from(["signed", "signed", "garbage", "none"]))
    if how == "signed":
        signature = hmac.new(SECRET.encode(), signing_input.encode(), hashlib.sha256).digest()
    elif how == "garbage":
        signature = draw(st.binary(max_size=40))
    else:
        signature = b""
    return f"{signing_input}.{_b64(signature)}"


plausible_ids = st.none() | json_ints | st.text(max_size=12)


@st.composite
def plausible_message(draw: st.DrawFn) -> list[Frame]:
    """A well-formed ping, pong, status or auth (with any token), maybe with an id."""
    body: dict[str, Any] = {"type": draw(st.sampled_from(["ping", "pong", "status", "auth"]))}
    if body["type"] == "auth":
        body["token"] = draw(tokens())
    if (rid := draw(plausible_ids)) is not None:
        body["id"] = rid
    return [message(body)]


client_messages = st.fixed_dictionaries(
    {"type": st.sampled_from(sorted(CLIENT_MESSAGE_TYPES)) | st.text(max_size=10) | json_values},
    optional={
        "id": request_ids,
        "subscription_type": subscription_types,
        "filters": filters,
        "room": st.text(max_size=40) | json_values,
        "token": tokens() | json_values,
        "timestamp": (
            st.datetimes().map(lambda d: d.isoformat()) | st.text(max_size=30) | json_values
        ),
        "extra": json_values,
    },
)

plausible_filters = st.fixed_dictionaries(
    {},
    optional={
        "sport": st.sampled_from(["MLB", "nba", "NFL"]) | st.lists(filter_words, max_size=3),
        "game_id": st.text(alphabet="abc123", min_size=1, max_size=6) | st.integers(0, 10**6),
        "sportsbook": st.lists(st.sampled_from(["DraftKings", "FanDuel"]), min_size=1, max_size=2),
        "min_profit": st.floats(min_value=-1, max_value=1001, allow_nan=False),
    },
)


@st.composite
def subscribe_and_leave(draw: st.DrawFn) -> list[Frame]:
    """A plausible subscribe, maybe followed by its unsubscribe (by type+filters or by room)."""
    type_ = draw(st.sampled_from([t.value for t in SubscriptionType]))
    flt = draw(plausible_filters)
    sub: dict[str, Any] = {"type": "subscribe", "subscription_type": type_, "filters": flt}
    if draw(st.booleans()):
        sub["id"] = draw(st.integers(0, 1000) | st.text(max_size=8))
    out = [message(sub)]
    how = draw(st.sampled_from(["stay", "same", "room", "twice"]))
    if how == "same":
        out.append(message({"type": "unsubscribe", "subscription_type": type_, "filters": flt}))
    elif how == "room":
        try:
            room = parse_room(type_, flt).room_id
        except ProtocolError:
            room = draw(st.text(max_size=20))
        out.append(message({"type": "unsubscribe", "room": room}))
    elif how == "twice":
        out.append(message(sub))
    return out


def oversize(limit: int) -> st.SearchStrategy[Frame]:
    """Frames just under and over the limit, text (maybe multi-byte) and binary. A frame of
    exactly the limit is left to `test_frame_of_exactly_the_limit_is_accepted`."""

    def build(n: int, fill: str, as_binary: bool) -> Frame:
        if as_binary:
            return binary(b"\x00" * n)
        body = '{"type":"ping","id":"'
        pad = max(0, (n - len(body) - 2) // len(fill.encode()))
        return text(body + fill * pad + '"}')

    return st.builds(
        build,
        st.integers(limit - 8, limit + 64) | st.integers(limit + 1, 4 * limit),
        st.sampled_from(["x", "é", "€", "😀"]),
        st.booleans(),
    )


def sequences(frames: st.SearchStrategy[Frame], max_size: int) -> st.SearchStrategy[list[Frame]]:
    """1 to `max_size` items on one connection, each a frame or a subscribe(+leave) pair."""
    items = st.one_of(frames.map(lambda f: [f]), subscribe_and_leave(), plausible_message())
    return st.lists(items, min_size=1, max_size=max_size).map(
        lambda chunks: [f for chunk in chunks for f in chunk]
    )


text_frames = st.text(max_size=200).map(text) | json_soup.map(text)
json_frames = json_values.map(message)
message_frames = client_messages.map(message)
binary_frames = st.binary(max_size=256).map(binary)
raw_text_frames = st.binary(max_size=64).map(lambda b: Frame(b, WSMsgType.TEXT))
any_frame = st.one_of(text_frames, json_frames, message_frames, binary_frames, raw_text_frames)

FUZZ = hsettings(
    max_examples=50,
    deadline=None,
    # One real gateway serves every example; a slow example is a network round trip, not a
    # slow strategy, and the gateway is shared on purpose (module fixture, never reset).
    suppress_health_check=[HealthCheck.too_slow],
)


# --------------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------------


def test_arbitrary_text_gets_an_error_or_a_reply(fuzz_gw: FuzzGateway) -> None:
    @FUZZ
    @given(frames=st.lists(text_frames, min_size=1, max_size=3))
    def run(frames: list[Frame]) -> None:
        run_example(fuzz_gw, frames)

    run()
    assert_clean(fuzz_gw)


def test_arbitrary_json_values_get_an_error_or_a_reply(fuzz_gw: FuzzGateway) -> None:
    @FUZZ
    @given(frames=st.lists(json_frames, min_size=1, max_size=3))
    def run(frames: list[Frame]) -> None:
        run_example(fuzz_gw, frames)

    run()
    assert_clean(fuzz_gw)


def test_message_shaped_objects_get_an_error_or_their_reply(fuzz_gw: FuzzGateway) -> None:
    @hsettings(FUZZ, max_examples=70)
    # A `type` that is a list or an object must get `unknown_type` like any other unknown
    # type, not `internal_error`: always tried, whatever hypothesis's database remembers.
    @example(frames=[message({"type": []})], leave="close", user=None)
    @example(frames=[message({"type": {"a": 1}, "id": 7})], leave="close", user=None)
    @given(
        frames=sequences(message_frames, max_size=4),
        leave=st.sampled_from(LEAVES),
        user=st.sampled_from([None, USER]),
    )
    def run(frames: list[Frame], leave: str, user: str | None) -> None:
        run_example(fuzz_gw, frames, leave, user)

    run()
    assert_clean(fuzz_gw)


def test_binary_and_non_utf8_frames_get_an_error_or_a_close(fuzz_gw: FuzzGateway) -> None:
    @hsettings(FUZZ, max_examples=30)
    @given(frames=st.lists(binary_frames | raw_text_frames, min_size=1, max_size=3))
    def run(frames: list[Frame]) -> None:
        run_example(fuzz_gw, frames)

    run()
    assert_clean(fuzz_gw)


def test_mixed_sequences_with_frames_over_the_limit(fuzz_gw: FuzzGateway) -> None:
    @hsettings(FUZZ, max_examples=50)
    @given(
        before=sequences(any_frame, max_size=3),
        big=st.none() | oversize(LIMIT),
        leave=st.sampled_from(LEAVES),
        user=st.sampled_from([None, USER]),
    )
    def run(before: list[Frame], big: Frame | None, leave: str, user: str | None) -> None:
        run_example(fuzz_gw, before + ([big] if big is not None else []), leave, user)

    run()
    assert_clean(fuzz_gw)


# --- the size limit's edges, spelled out -----------------------------------------------------


def test_frame_of_exactly_the_limit_is_accepted(fuzz_gw: FuzzGateway) -> None:
    """Settings/README: `max_message_bytes` is the *largest frame accepted*; larger closes
    1009. A frame of exactly the limit must therefore be answered, not closed."""
    body = '{"type":"ping","id":"' + "x" * (LIMIT - 23) + '"}'
    assert len(body.encode()) == LIMIT
    with asyncio.Runner() as runner:
        exchange = runner.run(play(fuzz_gw.url, [Frame(body, WSMsgType.TEXT)]))
    assert exchange.close_code is None, (
        f"a {LIMIT}-byte frame (exactly max_message_bytes) was closed {exchange.close_code}"
    )
    assert [f["type"] for f in exchange.received] == ["pong"]


def test_frame_over_the_limit_closes_1009_and_is_counted(fuzz_gw: FuzzGateway) -> None:
    """README: `message_too_large` (metric) counts frames over the limit; the socket closes
    1009 and the gateway counts that close."""
    errors = fuzz_gw.metric("oddstream_errors_total", code=ErrorCode.MESSAGE_TOO_LARGE.value)
    closes = fuzz_gw.metric("oddstream_closes_total", code=str(CLOSE_TOO_BIG))
    with asyncio.Runner() as runner:
        exchange = runner.run(play(fuzz_gw.url, [text("x" * (LIMIT + 1))]))
    assert exchange.close_code == CLOSE_TOO_BIG
    fuzz_gw.wait_state(lambda s: s.released, "release of the closed client", RELEASE_TIMEOUT)
    assert (
        fuzz_gw.metric("oddstream_errors_total", code=ErrorCode.MESSAGE_TOO_LARGE.value)
        == errors + 1
    ), "a frame over the limit was not counted as message_too_large"
    assert fuzz_gw.metric("oddstream_closes_total", code=str(CLOSE_TOO_BIG)) == closes + 1, (
        "the 1009 close was not counted"
    )
