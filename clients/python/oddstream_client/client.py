"""An asyncio client for the Oddstream gateway that survives what the gateway does to it.

Why a client library: every consumer of the WebSocket protocol must answer heartbeats, act on
close-code advice (`contract.close_advice`), back off, refresh tokens before they expire
and resubscribe after a reconnect. Getting that right once, here, keeps bots and services from
each re-implementing it (and from stampeding the gateways when they restart).

    async with OddstreamClient("ws://127.0.0.1:8000/ws/v2/connect") as client:
        sub = await client.subscribe("odds_updates", sport="MLB")
        async for frame in sub:
            print(frame["data"])

One supervisor task per client owns the connection: it connects, reads, and on a close decides
from the close code's advice group whether to reconnect at once, back off, refresh the token
first, or stop. `Subscription` objects outlive connections: they are re-sent after every
reconnect with their last position, so the gateway replays what was missed (or says it cannot,
`recovered: false`, and sends a snapshot), and they keep yielding frames, each event once.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
from yarl import URL

from oddstream_client.backoff import Backoff
from oddstream_client.contract import (
    BATCH_COUNTS,
    BATCH_DELAYS_MS,
    DATA_MESSAGE_TYPES,
    CloseAdvice,
    ErrorCode,
    ServerMessageType,
    close_advice,
)
from oddstream_client.errors import (
    HTTP_ERRORS,
    AuthError,
    ConnectionClosed,
    OddstreamError,
    SubscriptionError,
    error_for,
    error_from_frame,
)
from oddstream_client.state import ClientStats, ConnectionState, StateEvent
from oddstream_client.subscription import (
    DEDUPE_WINDOW,
    SNAPSHOT_FRAME,
    ResumeCallback,
    Subscription,
)

__all__ = ["OddstreamClient"]

log = logging.getLogger(__name__)

Frame = dict[str, Any]
TokenProvider = Callable[[], Awaitable[str]]
FrameCallback = Callable[[Frame], Awaitable[None] | None]
StateCallback = Callable[["StateEvent"], None]

#: Close code aiohttp reports for a connection that ended without a close frame.
ABNORMAL_CLOSURE = 1006
#: The error code of a subscribe whose position the gateway cannot parse.
INVALID_POSITION = "invalid_position"


@dataclass
class _Ended:
    """How a connection attempt or a connection ended, for the supervisor to act on."""

    advice: CloseAdvice
    reason: str
    close_code: int | None = None
    error: OddstreamError | None = None
    retry_after: float = 0.0
    was_connected: bool = False


class _SessionLost(Exception):
    """The connection a request went out on is gone; retry on the next one."""


# --- the client ------------------------------------------------------------------------------


class OddstreamClient:
    """A reconnecting Oddstream WebSocket client (see the module docstring).

    `token` or `token_provider` authenticate (as `Authorization: Bearer`, never in the URL);
    the provider is called before every (re)connect and on `token_expiring`. `max_attempts`
    bounds consecutive failed reconnects (None: retry forever). `heartbeat_timeout` is how
    long silence means a dead connection (default twice the gateway's heartbeat interval).
    `ping_interval` is how often to measure latency with our own ping (None: only `ping()`).
    `dedupe_window` is how many recent event ids each subscription remembers to drop
    duplicates (a replay overlapping what was already delivered). `compression` offers
    permessage-deflate (RFC 7692), which the gateway accepts unless turned off there: frames
    arrive compressed (about half the bytes for odds, far less for snapshots) and are inflated
    by aiohttp; False offers nothing, for a client short of CPU on a fast link. `batch`
    `(count, delay_ms)` asks the gateway for data messages in arrays of up to `count` (2 to
    64), each sent once `count` are held or `delay_ms` (0 to 100) after the first: fewer
    WebSocket messages for a high-rate client, for up to `delay_ms` more latency; they are
    unpacked here, each handled on its own, in order (`welcome["data"]["batch"]` shows it is
    on). Values out of range raise ValueError.
    """

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        token_provider: TokenProvider | None = None,
        backoff: Backoff | None = None,
        max_attempts: int | None = 5,
        heartbeat_timeout: float | None = None,
        ping_interval: float | None = 30.0,
        connect_timeout: float = 10.0,
        request_timeout: float = 10.0,
        max_buffered: int = 10_000,
        rng: random.Random | None = None,
        dedupe_window: int = DEDUPE_WINDOW,
        compression: bool = True,
        batch: tuple[int, int] | None = None,
    ) -> None:
        if batch is not None:
            count, delay_ms = batch
            (low, high), (shortest, longest) = BATCH_COUNTS, BATCH_DELAYS_MS
            if not (low <= count <= high and shortest <= delay_ms <= longest):
                raise ValueError(
                    f"batch must be ({low}..{high}, {shortest}..{longest} ms), got {batch!r}"
                )
        self.url = URL(url)
        self.batch = batch
        self.backoff = backoff if backoff is not None else Backoff()
        self.max_attempts = max_attempts
        self.heartbeat_timeout = heartbeat_timeout
        self.ping_interval = ping_interval
        self.connect_timeout = connect_timeout
        self.request_timeout = request_timeout
        self.max_buffered = max_buffered
        self.dedupe_window = dedupe_window
        self.compression = compression
        self.welcome: Frame | None = None
        self.final_error: OddstreamError | None = None
        self._token = token
        self._token_provider = token_provider
        self._rng = rng
        self._state = ConnectionState.DISCONNECTED
        self._state_callbacks: list[StateCallback] = []
        self._resume_callbacks: list[ResumeCallback] = []
        self._subs: list[Subscription] = []
        self._pending: dict[str, asyncio.Future[Frame]] = {}
        # Subscribe requests in flight: request id -> (subscription, position it resumes from).
        self._pending_subs: dict[str, tuple[Subscription, str | None]] = {}
        self._ids = itertools.count(1)
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._send_lock = asyncio.Lock()
        self._connected = asyncio.Event()
        self._first: asyncio.Future[None] | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Future[Any]] = set()
        self._closing = False
        self._messages = 0
        self._data_messages = 0
        self._reconnects = 0
        self._token_refreshes = 0
        self._latency: float | None = None
        self._resumes = 0
        self._resyncs = 0

    # --- public API ------------------------------------------------------------------------

    @property
    def state(self) -> ConnectionState:
        return self._state

    @property
    def stats(self) -> ClientStats:
        return ClientStats(
            messages_received=self._messages,
            data_messages=self._data_messages,
            reconnects=self._reconnects,
            token_refreshes=self._token_refreshes,
            latency=self._latency,
            subscriptions=len(self._subs),
            duplicates=sum(sub.duplicates for sub in self._subs),
            resumes=self._resumes,
            resyncs=self._resyncs,
        )

    @property
    def compressed(self) -> bool:
        """Whether the current connection negotiated permessage-deflate (False while none)."""
        return self._ws is not None and bool(self._ws.compress)

    @property
    def subscriptions(self) -> list[Subscription]:
        return list(self._subs)

    def on_state(self, callback: StateCallback) -> Callable[[], None]:
        """Call `callback(event)` on every state change; returns a function that unregisters."""
        self._state_callbacks.append(callback)

        def remove() -> None:
            with contextlib.suppress(ValueError):
                self._state_callbacks.remove(callback)

        return remove

    def on_resume(self, callback: ResumeCallback) -> Callable[[], None]:
        """Call `callback(event)` whenever a subscribe that carried a position is confirmed
        (every resubscribe after a reconnect, and `subscribe(..., position=...)`):
        `event.recovered` says whether the missed frames follow (`event.replayed` of them) or
        were lost (rebuild from the snapshot that follows). Returns a remover."""
        self._resume_callbacks.append(callback)

        def remove() -> None:
            with contextlib.suppress(ValueError):
                self._resume_callbacks.remove(callback)

        return remove

    async def connect(self) -> None:
        """Connect (retrying per the backoff policy); returns once the gateway said welcome.

        Raises the final error (`ConnectionClosed`, `AuthError`, ...) if it never connects.
        """
        if self._supervisor is not None:
            raise RuntimeError("connect() was already called on this client")
        loop = asyncio.get_running_loop()
        self._session = aiohttp.ClientSession()
        self._first = loop.create_future()
        self._supervisor = asyncio.create_task(self._supervise(), name="oddstream.client")
        try:
            await asyncio.shield(self._first)
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        """Close the connection for good; subscriptions' iterators end."""
        self._closing = True
        ws = self._ws
        if ws is not None and not ws.closed:
            with contextlib.suppress(Exception):
                await ws.close()
        supervisor = self._supervisor
        if supervisor is not None and not supervisor.done():
            await asyncio.wait({supervisor}, timeout=1.0)
        if supervisor is not None and not supervisor.done():
            supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await supervisor
        self._finish(ConnectionState.CLOSED, reason="closed by client", close_code=1000)
        for task in list(self._tasks):
            task.cancel()
        if self._session is not None:
            await self._session.close()

    async def __aenter__(self) -> OddstreamClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def subscribe(
        self,
        subscription_type: str,
        filters: dict[str, Any] | None = None,
        /,
        *,
        position: str | None = None,
        snapshot: bool = True,
        **more: Any,
    ) -> Subscription:
        """Subscribe and return once the gateway confirmed; raises `SubscriptionError`,
        `AuthError`, ... on an `error` reply. Re-sent automatically after every reconnect,
        from the subscription's latest `position`.

        `position` (a `Subscription.position` saved earlier, e.g. by a process that stopped)
        resumes from there: check `sub.recovered` on return (True: the missed frames come
        first; False: they are gone and, for odds, predictions and sport types, a snapshot
        comes first instead). A malformed position raises `SubscriptionError`
        (`invalid_position`). If this client already holds the room (another subscription
        with the same filters), the gateway resumes nothing for it: it shares that room's
        frames from now (`recovered` None). `snapshot=False` asks for no snapshot.
        """
        merged = {**(filters or {}), **more}
        sub = Subscription(
            self,
            subscription_type,
            merged,
            self.max_buffered,
            position=position,
            snapshot=snapshot,
            dedupe_window=self.dedupe_window,
        )
        await self._request(sub._subscribe_body(), sub=(sub, position))
        if sub not in self._subs and sub.active:
            self._subs.append(sub)
        return sub

    async def ping(self) -> float:
        """Round trip of one ping -> pong in seconds (also kept in `stats.latency`)."""
        started = time.monotonic()
        await self._request({"type": "ping"}, retry=False)
        self._latency = time.monotonic() - started
        return self._latency

    # --- requests --------------------------------------------------------------------------

    def _confirmed(self, sub: Subscription, reply: Frame, sent: str | None) -> None:
        """A subscription's confirmation, applied as it is read: the frames right behind it
        (replay, snapshot) are routed with the subscription's room and position current."""
        if not sub.active:
            return
        event = sub._confirmed(reply, sent)
        if sub not in self._subs:
            self._subs.append(sub)
        if event is None:
            return
        if event.recovered:
            self._resumes += 1
        else:
            self._resyncs += 1
        log.debug(
            "client.resume room=%s recovered=%s replayed=%d",
            sub.room,
            event.recovered,
            event.replayed,
        )
        for callback in list(self._resume_callbacks):
            try:
                result = callback(event)
            except Exception:
                log.exception("client.resume_callback.failed")
                continue
            if result is not None:
                self._track(asyncio.ensure_future(result))

    async def _request(
        self,
        body: Frame,
        *,
        retry: bool = True,
        sub: tuple[Subscription, str | None] | None = None,
    ) -> Frame:
        """Send `body` with a fresh id and wait for the reply carrying it.

        With `retry`, a connection lost before the reply means: wait for the next connection
        and send again (subscribing is idempotent on the gateway).
        """
        while True:
            ws = await self._wait_connected()
            try:
                return await self._send_request(ws, body, sub)
            except _SessionLost:
                if not retry or self._closing:
                    raise ConnectionClosed(
                        "the connection was lost before the reply", temporary=not self._closing
                    ) from None

    async def _send_request(
        self,
        ws: aiohttp.ClientWebSocketResponse,
        body: Frame,
        sub: tuple[Subscription, str | None] | None = None,
    ) -> Frame:
        request_id = f"c{next(self._ids)}"
        future: asyncio.Future[Frame] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        if sub is not None:
            self._pending_subs[request_id] = sub
        try:
            await self._send(ws, {**body, "id": request_id})
            async with asyncio.timeout(self.request_timeout):
                reply = await future
        except TimeoutError:
            raise OddstreamError(
                "timeout", f"no reply to {body['type']!r} in time", temporary=True
            ) from None
        finally:
            self._pending.pop(request_id, None)
            self._pending_subs.pop(request_id, None)
        if reply.get("type") == ServerMessageType.ERROR:
            raise error_from_frame(reply)
        return reply

    async def _send(self, ws: aiohttp.ClientWebSocketResponse, body: Frame) -> None:
        try:
            async with self._send_lock:
                await ws.send_str(orjson.dumps(body).decode())
        except (ConnectionError, aiohttp.ClientError) as exc:
            raise _SessionLost from exc

    async def _wait_connected(self) -> aiohttp.ClientWebSocketResponse:
        while True:
            if self._state is ConnectionState.CLOSED or self._supervisor is None:
                raise self.final_error or ConnectionClosed("the client is not connected")
            ws = self._ws
            if self._state is ConnectionState.CONNECTED and ws is not None and not ws.closed:
                return ws
            self._connected.clear()
            await self._connected.wait()

    async def _unsubscribe(self, sub: Subscription) -> None:
        if sub not in self._subs:
            sub._end()
            return
        self._subs.remove(sub)
        sub._end()
        shared = any(other.room == sub.room for other in self._subs)
        ws = self._ws
        if shared or sub.room is None or ws is None or self._state != ConnectionState.CONNECTED:
            return  # not re-sent after a reconnect either: it is gone from `_subs`
        with contextlib.suppress(_SessionLost, SubscriptionError):
            await self._send_request(ws, {"type": "unsubscribe", "room": sub.room})

    # --- supervisor ------------------------------------------------------------------------

    async def _supervise(self) -> None:
        """Connect, serve, and act on how each connection ended, until told to stop."""
        attempt = 0  # consecutive failed attempts that counted against max_attempts
        tries = 0  # reconnects since the last good connection, for ?reconnect=N
        ever_connected = False
        try:
            while not self._closing:
                self._emit(ConnectionState.CONNECTING, attempt=attempt)
                ended = await self._connect_once(tries if ever_connected else 0)
                if ended.was_connected:
                    ever_connected = True
                    attempt = tries = 0
                if ended.was_connected and not self._closing:
                    self._emit(
                        ConnectionState.DISCONNECTED,
                        close_code=ended.close_code,
                        reason=ended.reason,
                    )
                if self._closing:
                    break
                delay = 0.0
                if ended.advice is CloseAdvice.TERMINAL:
                    self._give_up(ended, ended.error)
                    return
                if ended.advice is CloseAdvice.REFRESH_TOKEN and self._token_provider is None:
                    expired = AuthError(
                        ErrorCode.TOKEN_EXPIRED,
                        f"{ended.reason}; no token_provider to get a fresh token",
                    )
                    self._give_up(ended, expired)
                    return
                if ended.advice is CloseAdvice.RECONNECT_BACKOFF or not ended.was_connected:
                    attempt += 1
                    if self.max_attempts is not None and attempt > self.max_attempts:
                        message = f"gave up after {self.max_attempts} attempts: {ended.reason}"
                        final: OddstreamError = ConnectionClosed(
                            message, close_code=ended.close_code
                        )
                        if ended.error is not None and not ended.error.temporary:
                            final = ended.error
                        self._give_up(_Ended(ended.advice, message, ended.close_code), final)
                        return
                    delay = max(self.backoff.delay(attempt, self._rng), ended.retry_after)
                tries += 1
                self._emit(
                    ConnectionState.RECONNECTING,
                    attempt=attempt,
                    delay=delay,
                    close_code=ended.close_code,
                    reason=ended.reason,
                )
                await asyncio.sleep(delay)
        except Exception as exc:  # a bug here must not leave callers waiting forever
            log.exception("client.supervisor.failed")
            crash = ConnectionClosed(f"client failed: {exc!r}")
            self._finish(ConnectionState.CLOSED, reason=str(crash), close_code=None, error=crash)
        finally:
            self._finish(ConnectionState.CLOSED, reason="closed by client", close_code=1000)

    def _give_up(self, ended: _Ended, error: OddstreamError | None) -> None:
        if error is None:
            error = ConnectionClosed(ended.reason, close_code=ended.close_code)
        self._finish(
            ConnectionState.CLOSED, reason=ended.reason, close_code=ended.close_code, error=error
        )

    async def _connect_once(self, reconnect: int) -> _Ended:
        """One connection attempt and, if it succeeds, the whole connection."""
        url = self.url.update_query(reconnect=reconnect) if reconnect else self.url
        if self.batch is not None:
            url = url.update_query(batch=self.batch[0], batch_ms=self.batch[1])
        if self._token_provider is not None:
            try:
                self._token = await self._token_provider()
            except Exception as exc:
                error = OddstreamError(
                    "token_provider_failed", f"the token provider failed: {exc!r}", temporary=True
                )
                return _Ended(CloseAdvice.RECONNECT_BACKOFF, error.message, error=error)
        try:
            headers = {"Authorization": f"Bearer {self._token}"} if self._token else {}
            assert self._session is not None
            async with asyncio.timeout(self.connect_timeout):
                ws = await self._session.ws_connect(
                    url,
                    headers=headers,
                    autoping=True,
                    autoclose=True,
                    compress=15 if self.compression else 0,  # 15: a 32 KiB window, the most
                    timeout=aiohttp.ClientWSTimeout(ws_close=2.0),
                )
        except aiohttp.WSServerHandshakeError as exc:
            return self._refused(exc)
        except (OSError, aiohttp.ClientError, TimeoutError) as exc:
            return _Ended(CloseAdvice.RECONNECT_BACKOFF, f"connect failed: {exc or type(exc)}")
        try:
            return await self._serve(ws)
        finally:
            self._ws = None
            self._connected.set()  # wake waiters so they see the new state
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(_SessionLost())
            with contextlib.suppress(Exception):
                await ws.close()

    def _refused(self, exc: aiohttp.WSServerHandshakeError) -> _Ended:
        """An upgrade refused with an HTTP status: retry what can pass later, stop the rest."""
        code = HTTP_ERRORS.get(exc.status, ErrorCode.INTERNAL_ERROR)
        error = error_for(code, f"the gateway refused the connection (HTTP {exc.status})")
        retry_after = 0.0
        if exc.headers is not None:
            with contextlib.suppress(ValueError):
                retry_after = float(exc.headers.get("Retry-After", "0"))
        reason = f"HTTP {exc.status}"
        if error.temporary or exc.status >= 500:
            return _Ended(
                CloseAdvice.RECONNECT_BACKOFF, reason, error=error, retry_after=retry_after
            )
        if exc.status == 401 and self._token_provider is not None:
            # The provider may hand out a good token next time (expired, revoked, rotated).
            return _Ended(CloseAdvice.RECONNECT_BACKOFF, reason, error=error)
        return _Ended(CloseAdvice.TERMINAL, reason, error=error)

    async def _serve(self, ws: aiohttp.ClientWebSocketResponse) -> _Ended:
        """Welcome, resubscribe, then read until the connection ends."""
        self._ws = ws
        try:
            msg = await ws.receive(timeout=self.connect_timeout)
        except TimeoutError:
            return _Ended(CloseAdvice.RECONNECT_BACKOFF, "no welcome from the gateway")
        if msg.type is not aiohttp.WSMsgType.TEXT:
            return self._closed_by(ws, msg, was_connected=False)
        welcome = orjson.loads(msg.data)
        if welcome.get("type") != ServerMessageType.WELCOME:
            return _Ended(CloseAdvice.RECONNECT_BACKOFF, f"expected welcome, got {welcome!r}")
        self.welcome = welcome
        self._messages += 1
        interval = float((welcome.get("data") or {}).get("heartbeat_interval") or 30.0)
        silence = self.heartbeat_timeout or 2 * interval
        reader = asyncio.create_task(self._read(ws, silence), name="oddstream.client.read")
        pinger: asyncio.Task[None] | None = None
        try:
            resubscribed = await self._resubscribe(ws, reader)
            if resubscribed is not None:
                return resubscribed
            if self._first is not None and not self._first.done():
                self._first.set_result(None)
            elif not self._closing:
                self._reconnects += 1
            self._emit(ConnectionState.CONNECTED)
            self._connected.set()
            if self.ping_interval:
                pinger = asyncio.create_task(self._ping_loop(self.ping_interval))
            return await reader
        finally:
            for task in (reader, pinger):
                if task is not None and not task.done():
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task

    async def _resubscribe(
        self, ws: aiohttp.ClientWebSocketResponse, reader: asyncio.Task[_Ended]
    ) -> _Ended | None:
        """Send every remembered subscription again; None when all are back (or refused)."""
        if not self._subs:
            return None

        async def again(sub: Subscription) -> None:
            sent = sub.position
            try:
                try:
                    await self._send_request(ws, sub._subscribe_body(), (sub, sent))
                except OddstreamError as exc:
                    if exc.code != INVALID_POSITION or sent is None:
                        raise
                    # A position this gateway cannot read (another version?): start afresh,
                    # reported to the application as a resync.
                    log.warning("client.resubscribe.invalid_position %s: %s", sub, exc)
                    sub._forget_position()
                    await self._send_request(ws, sub._subscribe_body(), (sub, sent))
            except _SessionLost:
                return
            except OddstreamError as exc:
                if exc.temporary:
                    raise
                # Refused now (e.g. scopes changed): end that subscription, keep the others.
                log.warning("client.resubscribe.refused %s: %s", sub, exc)
                if sub in self._subs:
                    self._subs.remove(sub)
                sub._end(exc)

        async def all_again() -> None:
            await asyncio.gather(*(again(sub) for sub in list(self._subs)))

        resend = asyncio.create_task(all_again())
        done, _ = await asyncio.wait({reader, resend}, return_when=asyncio.FIRST_COMPLETED)
        if reader in done:
            resend.cancel()
            with contextlib.suppress(BaseException):
                await resend
            return reader.result()
        try:
            resend.result()
        except OddstreamError as exc:
            return _Ended(CloseAdvice.RECONNECT_BACKOFF, f"resubscribe failed: {exc}", error=exc)
        return None

    async def _read(self, ws: aiohttp.ClientWebSocketResponse, silence: float) -> _Ended:
        while True:
            try:
                msg = await ws.receive(timeout=silence)
            except TimeoutError:
                # No frame (not even the gateway's ping) for too long: the link is dead.
                with contextlib.suppress(Exception):
                    await ws.close()
                return _Ended(
                    CloseAdvice.RECONNECT_BACKOFF,
                    f"heartbeat timeout: nothing received for {silence:g}s",
                    was_connected=True,
                )
            if msg.type is aiohttp.WSMsgType.TEXT:
                try:
                    frame = orjson.loads(msg.data)
                except orjson.JSONDecodeError:
                    log.warning("client.frame.invalid_json")
                    continue
                if isinstance(frame, dict):
                    self._dispatch(ws, frame)
                elif isinstance(frame, list):  # a batch (`batch=`): each as if it came alone
                    for item in frame:
                        if isinstance(item, dict):
                            self._dispatch(ws, item)
            elif msg.type is aiohttp.WSMsgType.BINARY:
                continue
            else:
                return self._closed_by(ws, msg, was_connected=True)

    def _closed_by(
        self, ws: aiohttp.ClientWebSocketResponse, msg: aiohttp.WSMessage, *, was_connected: bool
    ) -> _Ended:
        if msg.type is aiohttp.WSMsgType.CLOSE and isinstance(msg.data, int):
            code, reason = msg.data, str(msg.extra or "")
        elif msg.type is aiohttp.WSMsgType.ERROR:
            code, reason = ABNORMAL_CLOSURE, f"connection error: {msg.data}"
        else:
            code, reason = ws.close_code or ABNORMAL_CLOSURE, ""
        if self._closing:
            return _Ended(
                CloseAdvice.TERMINAL, "closed by client", code, was_connected=was_connected
            )
        advice = close_advice(code)
        reason = f"closed {code}" + (f": {reason}" if reason else "")
        return _Ended(advice, reason, code, was_connected=was_connected)

    def _dispatch(self, ws: aiohttp.ClientWebSocketResponse, frame: Frame) -> None:
        self._messages += 1
        kind = frame.get("type")
        request_id = frame.get("id")
        if isinstance(request_id, str) and request_id in self._pending:
            future = self._pending[request_id]
            claim = self._pending_subs.pop(request_id, None)
            if not future.done():
                if claim is not None and kind == ServerMessageType.SUBSCRIPTION_CONFIRMED:
                    self._confirmed(claim[0], frame, claim[1])
                future.set_result(frame)
            return
        if kind == ServerMessageType.PING:
            self._track(asyncio.ensure_future(self._pong(ws)))
        elif kind == ServerMessageType.TOKEN_EXPIRING:
            self._track(asyncio.ensure_future(self._refresh_token()))
        elif kind == SNAPSHOT_FRAME:
            self._route_snapshot(frame)
        elif kind in DATA_MESSAGE_TYPES:
            self._data_messages += 1
            self._route(frame)
        elif kind == ServerMessageType.ERROR:
            log.warning("client.error code=%s %s", frame.get("code"), frame.get("error"))

    def _route(self, frame: Frame) -> None:
        """Hand a data frame to the subscriptions whose rooms it matched (once each)."""
        rooms = frame.get("rooms")
        if rooms:
            targets = [sub for sub in self._subs if sub.room in rooms]
        elif frame.get("type") == ServerMessageType.SYSTEM_ALERT:
            # The gateway's own alerts (service_degraded/restored) go to every connection.
            targets = [sub for sub in self._subs if sub.subscription_type == "system_alerts"]
        else:
            targets = []
        for sub in targets:
            sub._data(frame)  # each drops what it already delivered (by event_id)

    def _route_snapshot(self, frame: Frame) -> None:
        """A snapshot goes to the subscription(s) of its room that asked for one."""
        room = frame.get("room")
        in_room = [sub for sub in self._subs if sub.room is not None and sub.room == room]
        for sub in [sub for sub in in_room if sub._wants_snapshot()] or in_room:
            sub._snapshot(frame)

    async def _pong(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        with contextlib.suppress(_SessionLost):
            await self._send(ws, {"type": "pong"})

    async def _refresh_token(self) -> None:
        """Answer `token_expiring` with a fresh token, so the connection is never cut."""
        if self._token_provider is None:
            log.warning("client.token_expiring: no token_provider; the gateway will close 4401")
            return
        try:
            self._token = await self._token_provider()
            await self._request({"type": "auth", "token": self._token}, retry=False)
        except OddstreamError as exc:
            log.warning("client.token_refresh.failed %s", exc)
            return
        self._token_refreshes += 1

    async def _ping_loop(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            with contextlib.suppress(OddstreamError, TimeoutError):
                async with asyncio.timeout(interval):
                    await self.ping()

    # --- bookkeeping -----------------------------------------------------------------------

    def _track(self, future: asyncio.Future[Any]) -> None:
        self._tasks.add(future)
        future.add_done_callback(self._tasks.discard)

    def _emit(self, state: ConnectionState, **details: Any) -> None:
        self._state = state
        event = StateEvent(state=state, at=time.monotonic(), **details)
        log.debug("client.state %s", event.describe())
        for callback in list(self._state_callbacks):
            try:
                callback(event)
            except Exception:
                log.exception("client.state_callback.failed")

    def _finish(
        self,
        state: ConnectionState,
        *,
        reason: str,
        close_code: int | None,
        error: OddstreamError | None = None,
    ) -> None:
        """Enter the final state once: wake every waiter, end every iterator."""
        if self._state is ConnectionState.CLOSED:
            return
        self.final_error = error
        self._emit(state, reason=reason, close_code=close_code, error=error)
        self._connected.set()
        if self._first is not None and not self._first.done():
            self._first.set_exception(
                error or ConnectionClosed(reason, close_code=close_code, temporary=False)
            )
        for sub in self._subs:
            sub._end(error)
