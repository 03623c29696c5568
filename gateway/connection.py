"""One client connection: its identity, rooms and counters, and its message loop.

Writes go straight to the transport as complete pre-built frames (see `gateway.frames`), so a
delivery costs one `transport.write` and no task. A client that negotiated permessage-deflate
gets each frame's compressed form (`Frame.deflated`: made once per frame, shared by every such
member), the others its plain form.

Backpressure policy, per kind of data, so memory per connection stays bounded and other
clients see no added delay:
- odds and predictions only matter as their latest value: once more than
  `conflate_buffer_bytes` wait in the transport, they are held in `pending`, one frame per
  conflation key (game, book or player, market), a newer frame replacing an older one, and
  written when the socket drains (`flush_pending`). The client stays current, never grows.
- alerts, arbitrage and portfolio must all arrive: past `send_buffer_bytes` the client cannot
  keep up, and is closed with 4008 so it reconnects and catches up.
- held frames may reach the client after must-deliver frames that came later; within one
  conflation key the newest value is always the last one delivered.

Batching (opt-in at connect, `?batch=N&batch_ms=D`): data frames (live, and replays) are
held in `batched` and written N to a message, as one text message whose payload is a JSON
array of them (`gateway.frames.array_frame`, from the pre-built payloads), when N are held or
D ms after the first was held (one timer handle per connection holding frames, no task),
whichever comes first; a lone frame held at the deadline goes out as itself. With D = 0
nothing is held: the frames of one inbox read go out at once, N to an array (no timer).
It happens at write time, after the catch-up hold and seams and after conflation, which
works as above (arrays count against the same buffer limits). Everything else (replies,
errors, pings, welcome, snapshots, the gateway's own alerts) is written as before, after the
held frames, so the order a client sees is the order it would see without batching; so is a
close. An array is one connection's: compressed for it alone if it negotiated deflate.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, Protocol

import orjson
from aiohttp import WSCloseCode, WSMsgType, web
from pydantic import ValidationError
from structlog.typing import FilteringBoundLogger

from oddstream.gateway.analytics import UsageAnalytics
from oddstream.gateway.auth import AuthError, Identity, authorize_room
from oddstream.gateway.frames import DEFLATE_WINDOW_BITS, Frame, Item, array_frame
from oddstream.gateway.limits import TokenBucket
from oddstream.gateway.metrics import GatewayMetrics
from oddstream.gateway.resume import Replay, Seam, Snapshot, parse_position, seam_of, through_seams
from oddstream.shared.logs import get_logger
from oddstream.shared.protocol import (
    CLIENT_MESSAGE_TYPES,
    AuthMessage,
    CloseCode,
    ErrorCode,
    PingMessage,
    PongMessage,
    ProtocolError,
    ServerMessageType,
    StatusMessage,
    SubscribeMessage,
    UnsubscribeMessage,
    client_message_adapter,
    describe_validation_error,
    error_frame,
    server_frame,
    utc_now_iso,
)
from oddstream.shared.rooms import RoomSpec
from oddstream.shared.settings import Settings

if TYPE_CHECKING:
    from asyncio import Transport

__all__ = ["Connection", "ConnectionHost"]

log = get_logger(__name__)

#: Seconds a slow consumer gets to take its close frame before the socket is aborted.
SLOW_CLOSE_SECONDS = 1.0


class ConnectionHost(Protocol):
    """What a connection needs from the gateway node that holds it, and nothing more."""

    @property
    def gateway_id(self) -> str: ...

    @property
    def settings(self) -> Settings: ...

    @property
    def metrics(self) -> GatewayMetrics: ...

    @property
    def redis_ok(self) -> bool:
        """Whether Redis answers this gateway (every shard's inbox reads, on a cluster)."""
        ...

    @property
    def analytics(self) -> UsageAnalytics:
        """Per-minute usage counts; recording is synchronous and O(1)."""
        ...

    async def join(self, conn: Connection, spec: RoomSpec) -> bool:
        """Add `conn` to the room; False if it was in already. The room is registered in
        Redis before this returns (a confirmation means events are routed here); raises
        `ProtocolError` (`service_unavailable`) when it cannot be."""
        ...

    async def leave(self, conn: Connection, room_ids: list[str]) -> None:
        """Take `conn` out of rooms; never raises for Redis (holdings are restored later)."""
        ...

    async def verify_token(self, token: str) -> Identity:
        """The identity of a fresh token; raises `AuthError`."""
        ...

    def hold_backlog(self, conn: Connection) -> None:
        """Write `conn`'s held (conflated) frames on a later tick, once its socket drains."""
        ...

    def changed(self, conn: Connection, identity: bool = False) -> None:
        """Something `/ws/v2/connections` shows changed (its record is rewritten at the next
        beat; counters are read live, never a reason); `identity`: the token was swapped, so
        its expiry is scheduled again."""
        ...

    async def catch_up(
        self, spec: RoomSpec, position: str | None, snapshot: bool
    ) -> tuple[Replay, Snapshot | None]:
        """What a just-joined subscription gets before live frames (`gateway.resume`): the
        events after `position`, or (not recovered, or new) a snapshot when asked for."""
        ...

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run a fire-and-forget coroutine that the host cancels when it stops."""
        ...


class Connection:
    """A WebSocket client on this gateway."""

    __slots__ = (
        "batch",
        "batch_delay",
        "batch_timer",
        "batched",
        "bucket",
        "client_id",
        "closed_with",
        "closing",
        "conflate_limit",
        "connected_at",
        "deflate_min",
        "dirty",
        "endpoint",
        "expiry_notified",
        "held",
        "host",
        "identity",
        "last_seen",
        "messages_received",
        "messages_sent",
        "pending",
        "remote",
        "rooms",
        "seams",
        "send_limit",
        "strikes",
        "transport",
        "ws",
    )

    def __init__(
        self,
        host: ConnectionHost,
        ws: web.WebSocketResponse,
        transport: Transport,
        identity: Identity,
        endpoint: str,
        remote: str | None,
        batch: tuple[int, int] | None = None,
    ) -> None:
        self.host = host
        self.ws = ws
        self.transport = transport
        self.identity = identity
        self.endpoint = endpoint
        self.remote = remote
        self.client_id = str(uuid.uuid4())
        self.connected_at = utc_now_iso()
        self.rooms: dict[str, RoomSpec] = {}
        self.messages_sent = 0
        self.messages_received = 0
        self.last_seen = time.monotonic()
        self.closing = False
        self.closed_with: int | None = None  # the close code the gateway sent, if it closed
        #: The record in Redis is behind: a field it shows other than the counters changed
        #: (the host writes it at its next beat).
        self.dirty = True
        self.send_limit = host.settings.send_buffer_bytes
        self.conflate_limit = host.settings.conflate_buffer_bytes
        #: Clients that negotiated permessage-deflate (with the shared frames' window): the
        #: smallest payload compressed for them (`Frame.deflated`); None: plain frames only.
        self.deflate_min: int | None = (
            host.settings.compression_min_bytes if ws.compress == DEFLATE_WINDOW_BITS else None
        )
        self.pending: dict[bytes, Frame] | None = None  # held frames by conflation key
        #: Live frames kept back while a subscription catches up (replay, snapshot).
        self.held: list[Item] | None = None
        #: Rooms whose catch-up just ended: live frames it already covered are dropped.
        self.seams: dict[str, Seam] = {}
        self.bucket = TokenBucket(host.settings.messages_per_second, host.settings.message_burst)
        self.strikes = 0  # messages refused for rate in a row
        self.expiry_notified = False
        #: Batching (`?batch=`): messages per array (0: off) and the longest hold, seconds.
        self.batch, self.batch_delay = (batch[0], batch[1] / 1000) if batch else (0, 0.0)
        self.batched: list[Frame] | None = None  # data frames held for the next array
        self.batch_timer: asyncio.TimerHandle | None = None  # writes `batched` when due

    @property
    def logger(self) -> FilteringBoundLogger:
        """A logger whose events carry this connection's `client_id` and `gateway` (bound when
        something is logged, which is rare: no memory held per connection)."""
        return log.bind(client_id=self.client_id, gateway=self.host.gateway_id)

    # --- sending -------------------------------------------------------------------------

    def wire(self, frame: Frame) -> bytes:
        """The bytes of `frame` for this client: compressed if it negotiated deflate."""
        if self.deflate_min is None:
            return frame.plain
        return frame.packed or frame.deflated(self.deflate_min)

    def deliver(self, items: list[Item]) -> int:
        """Deliver (conflation key, frame) pairs of one inbox read; returns frames written."""
        if self.held is not None:
            self.held.extend(items)  # released in order once the subscription caught up
            return len(items)
        if self.seams:
            items = through_seams(items, self.seams, time.monotonic())
            if not items:
                return 0
        transport = self.transport
        if self.closing or transport.is_closing():
            return 0
        if self.batch:
            return self._deliver_batched(items)
        written = 0
        if self.pending is None:
            if len(items) == 1 and transport.get_write_buffer_size() <= self.conflate_limit:
                frame = items[0][1]  # fast path: the client keeps up
                transport.write(frame.plain if self.deflate_min is None else self.wire(frame))
                self.messages_sent += 1
                return 1
            written = self._write_while_draining(items)
            if written == len(items):
                return written
            items = items[written:]
        direct = self._conflate(items)
        if direct is None:
            return written
        if direct and self.write(b"".join([self.wire(f) for f in direct]), len(direct)):
            return written + len(direct)
        return written

    def _conflate(self, items: list[Item]) -> list[Frame] | None:
        """A slow client's items: keyed ones held in `pending` (newest per key), the others
        returned to be written now; None when too many are held (the client is closed)."""
        direct: list[Frame] = []
        pending = self.pending if self.pending is not None else {}
        conflated = 0
        for key, frame in items:
            if key:
                if key in pending:
                    conflated += 1
                pending[key] = frame
            else:
                direct.append(frame)
        self.pending = pending or None
        analytics = self.host.analytics
        if len(direct) < len(items):
            analytics.count("slow|held", len(items) - len(direct))
        if conflated:
            self.host.metrics.conflated.inc(conflated)
            analytics.count("slow|conflated", conflated)
        if len(pending) > self.host.settings.max_conflated_keys:
            self.close_slow("too many distinct updates held for a slow client")
            return None
        if pending:
            self.host.hold_backlog(self)
        return direct

    # --- batching (`?batch=`) ---------------------------------------------------------------

    def _deliver_batched(self, items: list[Item]) -> int:
        """`deliver` for a batching client: frames join the held batch (written `batch` to a
        message); past the conflation limit, keyed frames are conflated as for any client."""
        if self.pending is None and self.transport.get_write_buffer_size() <= self.conflate_limit:
            self._hold_batch([frame for _, frame in items])
            return len(items)
        direct = self._conflate(items)
        if not direct:
            return 0
        self._hold_batch(direct)
        return len(direct)

    def _hold_batch(self, frames: list[Frame]) -> None:
        """Hold `frames` (a list the caller gives up) for arrays: each full `batch` is written
        at once, the rest when the timer started by the first held frame fires."""
        batched = self.batched
        if batched is None:
            batched = frames
        else:
            batched.extend(frames)
        count = self.batch
        if self.batch_delay == 0:  # batch_ms=0: what arrives together goes out together
            self.batched = None
            if not self._write_raw(self._arrays(batched), len(batched)):
                self._drop_batch()
            return
        if len(batched) >= count:
            cut = len(batched) - len(batched) % count
            self.batched = None
            if not self._write_raw(self._arrays(batched[:cut]), cut):
                self._drop_batch()
                return
            batched = batched[cut:]
        if batched:
            self.batched = batched
            if self.batch_timer is None:
                loop = asyncio.get_running_loop()
                self.batch_timer = loop.call_later(self.batch_delay, self.flush_batch)
        else:
            self.batched = None
            if self.batch_timer is not None:
                self.batch_timer.cancel()
                self.batch_timer = None

    def _arrays(self, frames: list[Frame]) -> bytes:
        """The wire bytes of `frames` as arrays of up to `batch` messages (a lone one as
        itself: its shared frame)."""
        count, deflate_min = self.batch, self.deflate_min
        if not frames:
            return b""
        if len(frames) <= count:  # one message, the common case
            if len(frames) == 1:
                return self.wire(frames[0])
            return array_frame(frames, deflate_min)
        return b"".join([
            self.wire(chunk[0]) if len(chunk) == 1 else array_frame(chunk, deflate_min)
            for chunk in (frames[i : i + count] for i in range(0, len(frames), count))
        ])  # fmt: skip

    def flush_batch(self) -> None:
        """Write the held batch now: its delay is up, something else is about to be written
        (order is kept), or the connection closes."""
        timer, self.batch_timer = self.batch_timer, None
        if timer is not None:
            timer.cancel()
        frames, self.batched = self.batched, None
        if frames:
            self._write_raw(self._arrays(frames), len(frames))

    def _drop_batch(self) -> None:
        self.batched = None
        if self.batch_timer is not None:
            self.batch_timer.cancel()
            self.batch_timer = None

    def _write_while_draining(self, items: list[Item]) -> int:
        """Write frames in chunks while the socket takes them: each chunk fills what is left
        below the conflation limit (at least one frame), so a stalled client's buffer passes
        the limit by one chunk at most, however large the batch. Returns frames written."""
        transport, wire = self.transport, self.wire
        written, total = 0, len(items)
        while written < total:
            room = self.conflate_limit - transport.get_write_buffer_size()
            if room < 0:
                break
            start, size = written, 0
            chunk: list[bytes] = []
            while written < total and (size <= room or written == start):
                data = wire(items[written][1])
                chunk.append(data)
                size += len(data)
                written += 1
            transport.write(chunk[0] if len(chunk) == 1 else b"".join(chunk))
        self.messages_sent += written
        return written

    def flush_pending(self) -> bool:
        """Write held frames once the socket has drained; True when nothing is held any more."""
        if self.pending is None:
            return True
        if self.closing or self.transport.is_closing():
            self.pending = None
            return True
        if self.transport.get_write_buffer_size() > self.conflate_limit:
            return False
        if self.batch:
            held, self.pending = list(self.pending.values()), None
            self.flush_batch()  # what was held for an array came first
            self.transport.write(self._arrays(held))
            self.messages_sent += len(held)
            return True
        frames, self.pending = [self.wire(f) for f in self.pending.values()], None
        self.transport.write(b"".join(frames))
        self.messages_sent += len(frames)
        return True

    def write(self, frames: bytes, count: int = 1) -> bool:
        """Write `count` pre-built frames (concatenated) in one call; False (and a close is
        scheduled) if the client is gone or too slow. The hot path: keep it lean. A batching
        client's held frames are written first."""
        if self.batched:
            self.flush_batch()
        return self._write_raw(frames, count)

    def _write_raw(self, frames: bytes, count: int) -> bool:
        transport = self.transport
        if self.closing or transport.is_closing():
            return False
        if transport.get_write_buffer_size() > self.send_limit:
            self.close_slow("send buffer full: reconnect and catch up")
            return False
        transport.write(frames)
        self.messages_sent += count
        return True

    def send(self, payload: bytes, message_type: ServerMessageType) -> bool:
        sent = self.write(self.wire(Frame(payload)))
        if sent:
            self.host.metrics.messages_out_of(message_type.value).inc()
            self.host.analytics.count("out|" + message_type.value)
        return sent

    def send_error(self, code: ErrorCode, message: str, request_id: Any = None) -> None:
        self.host.metrics.errors_of(code.value).inc()
        self.send(
            error_frame(code, message, client_id=self.client_id, request_id=request_id),
            ServerMessageType.ERROR,
        )

    def close_slow(self, reason: str) -> None:
        """Close a client that cannot keep up: 4008, and abort if it does not even read that."""
        self.pending = None
        self._drop_batch()
        if not self.closing:
            self.host.analytics.count("slow|closed")
        self.close_soon(CloseCode.SLOW_CONSUMER, reason, abort_after=SLOW_CLOSE_SECONDS)

    def close_soon(
        self, code: CloseCode, reason: str, abort_after: float | None = None
    ) -> asyncio.Task[Any] | None:
        """Close from synchronous code (fan-out, drain): mark closing now, close in a task,
        which is returned (None if the connection was closing already). Idempotent."""
        if self.closing:
            return None
        if self.batched:
            self.flush_batch()  # before the close frame (a slow consumer's were dropped)
            if self.closing:  # writing them found the client too slow: closing already
                return None
        self.closing = True
        self.closed_with = int(code)
        self.host.metrics.closes_of(str(int(code))).inc()
        return self.host.spawn(self._close(code, reason, abort_after))

    async def _close(self, code: CloseCode, reason: str, abort_after: float | None) -> None:
        closing = self.ws.close(code=int(code), message=reason.encode()[:120])
        if abort_after is None:
            await closing
            return
        try:
            await asyncio.wait_for(closing, abort_after)
        except TimeoutError:
            # The close frame sits behind a full buffer the client never reads: drop it.
            self.transport.abort()

    def close_code(self) -> int:
        """How the connection ended: the code the gateway sent, else the one aiohttp saw
        (the client's), else 1006 (abnormal closure)."""
        return int(self.closed_with or self.ws.close_code or WSCloseCode.ABNORMAL_CLOSURE)

    # --- receiving -----------------------------------------------------------------------

    async def serve(self) -> None:
        """Read client frames until the socket closes."""
        async for msg in self.ws:
            self.last_seen = time.monotonic()
            if msg.type is WSMsgType.TEXT:
                self.messages_received += 1
                if not self.bucket.take():
                    self.refuse_for_rate()
                    continue
                self.strikes = 0
                await self.handle_text(msg.data)
            elif msg.type is WSMsgType.BINARY:
                self._received("binary")
                self.send_error(ErrorCode.BINARY_NOT_SUPPORTED, "Binary frames are not accepted.")
            elif msg.type is WSMsgType.ERROR:
                # aiohttp hands the reason over as the message, with the close code it sent.
                if getattr(msg.data, "code", None) == CloseCode.MESSAGE_TOO_BIG:
                    self.closed_with = int(CloseCode.MESSAGE_TOO_BIG)
                    self.host.metrics.errors_of(ErrorCode.MESSAGE_TOO_LARGE.value).inc()
                    self.host.metrics.closes_of(str(int(CloseCode.MESSAGE_TOO_BIG))).inc()
                break

    def _received(self, message_type: str) -> None:
        self.host.metrics.messages_in_of(message_type).inc()
        self.host.analytics.count("in|" + message_type)

    def refuse_for_rate(self) -> None:
        """A message over the rate: an `error`, and a 1008 close when it goes on."""
        self.strikes += 1
        self._received("rate_limited")
        if self.strikes >= self.host.settings.rate_limit_strikes:
            self.close_soon(CloseCode.POLICY_VIOLATION, "message rate limit exceeded")
        elif self.strikes == 1:  # one error per burst, not one per dropped message
            self.send_error(
                ErrorCode.RATE_LIMITED,
                f"More than {self.host.settings.messages_per_second:g} messages a second; "
                "this one was dropped.",
            )

    async def handle_text(self, data: str) -> None:
        request_id: Any = None
        try:
            try:
                body = orjson.loads(data)
            except orjson.JSONDecodeError:
                self._received("invalid")
                raise ProtocolError(
                    ErrorCode.INVALID_JSON, "The message is not valid JSON."
                ) from None
            if not isinstance(body, dict):
                self._received("invalid")
                raise ProtocolError(ErrorCode.INVALID_MESSAGE, "A message must be a JSON object.")
            raw_id = body.get("id")
            if isinstance(raw_id, str | int) and not isinstance(raw_id, bool):
                request_id = raw_id
            message_type = body.get("type")
            if not isinstance(message_type, str) or message_type not in CLIENT_MESSAGE_TYPES:
                self._received("unknown")
                raise ProtocolError(
                    ErrorCode.UNKNOWN_TYPE, f"Unknown message type {message_type!r}."
                )
            self._received(message_type)
            try:
                message = client_message_adapter.validate_python(body)
            except ValidationError as exc:
                raise ProtocolError(
                    ErrorCode.INVALID_MESSAGE, f"Invalid '{message_type}' message: "
                    + describe_validation_error(exc) + "."
                ) from None  # fmt: skip
            await self.dispatch(message)
        except ProtocolError as exc:
            self.send_error(exc.code, exc.message, request_id)
        except Exception:
            self.logger.exception("gateway.message.failed")
            self.send_error(
                ErrorCode.INTERNAL_ERROR, "The gateway failed on this message.", request_id
            )

    async def dispatch(self, message: Any) -> None:
        match message:
            case SubscribeMessage():
                settings = self.host.settings
                spec = authorize_room(
                    self.identity, message.subscription_type, message.filters, settings
                )
                if spec.room_id not in self.rooms and len(self.rooms) >= settings.max_subscriptions:
                    raise ProtocolError(
                        ErrorCode.TOO_MANY_SUBSCRIPTIONS,
                        f"This connection already has {len(self.rooms)} subscriptions, "
                        "the maximum.",
                    )
                await self.subscribe(spec, message.id, message.position, message.snapshot)
            case AuthMessage():
                await self.refresh_token(message)
            case UnsubscribeMessage():
                await self.unsubscribe(message)
            case PingMessage():
                self.send(
                    server_frame(
                        ServerMessageType.PONG,
                        {"server_time": utc_now_iso()},
                        client_id=self.client_id,
                        request_id=message.id,
                    ),
                    ServerMessageType.PONG,
                )
            case PongMessage():
                pass  # last_seen is already updated: that is all a pong is for
            case StatusMessage():
                self.send(
                    server_frame(
                        ServerMessageType.STATUS,
                        self.status(),
                        client_id=self.client_id,
                        request_id=message.id,
                    ),
                    ServerMessageType.STATUS,
                )

    async def subscribe(
        self,
        spec: RoomSpec,
        request_id: Any = None,
        position: str | None = None,
        snapshot: bool = True,
    ) -> None:
        """Join the room, confirm, then replay what was missed after `position` (or send a
        snapshot), then live frames: held back meanwhile, released minus duplicates."""
        if position is not None:
            parse_position(position)  # `invalid_position` before anything is done
        if not self.host.redis_ok:
            # Redis (or, on a cluster, one of its masters) is down or failing over: no catch-up
            # could be read, and the client is told so, as when the room cannot be registered.
            raise ProtocolError(
                ErrorCode.SERVICE_UNAVAILABLE,
                "Redis is unavailable right now (an outage or a failover): subscribe again "
                "shortly.",
            )
        if not await self.host.join(self, spec):
            self._confirm(spec, request_id, {"already_subscribed": True})
            return
        self.rooms[spec.room_id] = spec
        self.host.changed(self)
        self.held = []
        try:
            replay, snap = await self.host.catch_up(spec, position, snapshot)
        finally:
            held, self.held = self.held, None
        self._confirm(spec, request_id, {
            "already_subscribed": False, "position": replay.position or None,
            "recovered": replay.recovered, "replayed": len(replay.frames),
        })  # fmt: skip
        frames = [*replay.frames, snap.frame] if snap is not None else replay.frames
        if frames:
            # Bounded by `max_replay_bytes`: written even past the send buffer's limit; a
            # batching client gets the replay in arrays, the snapshot alone.
            if self.batch:
                data = self._arrays([Frame(f) for f in replay.frames])
                if snap is not None:
                    data += self.wire(Frame(snap.frame))
                self.transport.write(data)
            else:
                self.transport.write(b"".join(self.wire(Frame(f)) for f in frames))
            self.messages_sent += len(frames)
            if replay.frames:
                self.host.analytics.count("out|replay", len(replay.frames))
            if snap is not None:
                self.host.analytics.count("out|snapshot")
        self.seams[spec.room_id] = seam_of(spec, replay, snap, time.monotonic())
        if held:
            self.deliver(held)

    def _confirm(self, spec: RoomSpec, request_id: Any, extra: dict[str, Any]) -> None:
        self.send(
            server_frame(
                ServerMessageType.SUBSCRIPTION_CONFIRMED,
                {**spec.to_dict(), "room": spec.room_id, **extra},
                client_id=self.client_id,
                request_id=request_id,
            ),
            ServerMessageType.SUBSCRIPTION_CONFIRMED,
        )

    async def refresh_token(self, message: AuthMessage) -> None:
        """Swap in a fresh token for the same user; subscriptions are kept."""
        try:
            fresh = await self.host.verify_token(message.token)
        except AuthError as exc:
            raise ProtocolError(exc.code, f"{exc.message} ({exc.reason})") from None
        if fresh.user != self.identity.user:
            raise ProtocolError(ErrorCode.FORBIDDEN, "A refreshed token must be for the same user.")
        self.identity = fresh
        self.expiry_notified = False
        self.host.changed(self, identity=True)
        self.send(
            server_frame(
                ServerMessageType.AUTH_REFRESHED,
                {"user": fresh.user, "token_expires_at": fresh.expires_at},
                client_id=self.client_id,
                request_id=message.id,
            ),
            ServerMessageType.AUTH_REFRESHED,
        )

    def check_expiry(self, now: float) -> None:
        """Warn shortly before the token expires; close 4401 once it has."""
        expires_at = self.identity.expires_at
        if expires_at is None or self.closing:
            return
        if now >= expires_at:
            self.close_soon(CloseCode.TOKEN_EXPIRED, "token expired: refresh it and reconnect")
            return
        notice_at = expires_at - self.host.settings.token_expiry_notice
        if not self.expiry_notified and now >= notice_at:
            self.expiry_notified = True
            data = {
                "token_expires_at": expires_at,
                "seconds_left": round(expires_at - now, 3),
                "action": 'send {"type": "auth", "token": "<fresh token>"}',
            }
            self.send(
                server_frame(ServerMessageType.TOKEN_EXPIRING, data, client_id=self.client_id),
                ServerMessageType.TOKEN_EXPIRING,
            )

    async def unsubscribe(self, message: UnsubscribeMessage) -> None:
        if message.room is not None:
            room_id = message.room
        elif message.subscription_type is not None:
            room_id = authorize_room(
                self.identity, message.subscription_type, message.filters, self.host.settings
            ).room_id
        else:
            raise ProtocolError(
                ErrorCode.INVALID_MESSAGE,
                "'unsubscribe' needs 'subscription_type' (with its 'filters') or 'room'.",
            )
        spec = self.rooms.get(room_id)
        if spec is None:
            raise ProtocolError(ErrorCode.NOT_SUBSCRIBED, f"Not subscribed to room {room_id!r}.")
        await self.host.leave(self, [room_id])
        del self.rooms[room_id]
        self.host.changed(self)
        self.send(
            server_frame(
                ServerMessageType.UNSUBSCRIBED,
                {**spec.to_dict(), "room": room_id},
                client_id=self.client_id,
                request_id=message.id,
            ),
            ServerMessageType.UNSUBSCRIBED,
        )

    # --- views ---------------------------------------------------------------------------

    def subscriptions(self) -> list[dict[str, Any]]:
        return [{**spec.to_dict(), "room": rid} for rid, spec in self.rooms.items()]

    def status(self) -> dict[str, Any]:
        return {
            "client_id": self.client_id,
            "user": self.identity.user,
            "gateway": self.host.gateway_id,
            "connected_at": self.connected_at,
            "subscriptions": self.subscriptions(),
            "messages_sent": self.messages_sent,
            "messages_received": self.messages_received,
        }

    def listing(self) -> dict[str, Any]:
        """The connection as `/ws/v2/connections` lists it, counters as of now."""
        return {**self.status(), "endpoint": self.endpoint, "remote": self.remote}

    def record(self) -> bytes:
        """The stored record: `listing()` as JSON, its counters as of when it was written."""
        return orjson.dumps(self.listing())
