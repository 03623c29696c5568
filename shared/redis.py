"""One way to build a Redis client, so every process gets the same timeouts and retries.

`REDIS_URL` is a redis-py URL (`redis://`, `rediss://`, `unix://`) or a Sentinel-managed
primary: `redis+sentinel://[[user]:password@]host:port[,host:port...]/<service>[/<db>]`.
The credentials are the data nodes' and, unless `?sentinel_password=` (and
`?sentinel_username=`) says otherwise, the sentinels' too; `?sentinel_password=` empty means
the sentinels need none. The client asks the sentinels for the primary's address whenever it
opens a connection, so after a failover the next connection goes to the promoted replica, and
at most once a second on the way to a command, so connections to an old primary that is still
running are dropped. A connection to a demoted primary fails (redis-py turns its READONLY
answers into connection errors), which the callers already treat as an outage and retry.

Redis Cluster: a `redis://` URL naming any node of a cluster gives a cluster client
(redis-py's `RedisCluster`, which follows the cluster's slots, redirections and failovers).
Whether a URL names a cluster is asked of the server once at start-up (`check_redis_url`,
`ODDSTREAM_REDIS_CLUSTER=auto`, the default) or configured (`yes`, `no`); every client made
for that URL in the process is then of that kind. The cluster client serves the same
commands as the single-node one for keys of one slot, which is all Oddstream sends (see
`shared/keys.py`), and is typed as `Redis` for that reason; `is_cluster` tells the few
places that differ (scripts in pipelines).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, cast
from urllib.parse import parse_qs, unquote

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import MasterNotFoundError, Sentinel, SentinelConnectionPool
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

__all__ = [
    "RedisStartError",
    "SentinelURL",
    "SentinelUnreachableError",
    "UnknownServiceError",
    "check_redis_url",
    "check_url_form",
    "create_redis",
    "is_cluster",
    "is_sentinel_url",
    "parse_sentinel_url",
    "redact_url",
]

#: Longer than any blocking read we issue (<= 4 s), so a quiet stream is not a timeout.
SOCKET_TIMEOUT = 10.0
CONNECT_TIMEOUT = 5.0
#: A sentinel that does not answer within this is skipped for the next one.
SENTINEL_TIMEOUT = 2.0
#: How often, at most, a client checks with the sentinels that its connections still go to
#: the primary (besides when it opens a connection).
PRIMARY_CHECK_INTERVAL = 1.0
SENTINEL_SCHEME = "redis+sentinel"
SENTINEL_PORT = 26379
#: The URL schemes REDIS_URL may use.
SCHEMES = ("redis", "rediss", "unix", SENTINEL_SCHEME)
_QUERY_OPTIONS = ("sentinel_username", "sentinel_password")
SENTINEL_FORM = f"{SENTINEL_SCHEME}://[[user]:password@]host:port[,host:port...]/<service>[/<db>]"


@dataclass(frozen=True)
class SentinelURL:
    """A parsed `redis+sentinel://` URL."""

    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int = 0
    username: str | None = None
    password: str | None = None
    sentinel_username: str | None = None
    sentinel_password: str | None = None


def is_sentinel_url(url: str) -> bool:
    return url.strip().lower().startswith(f"{SENTINEL_SCHEME}://")


def redact_url(url: str) -> str:
    """`url` with the password (and a `sentinel_password`) replaced by `***`, for messages."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    netloc, slash, tail = rest.partition("/")
    if "@" in netloc:
        userinfo, _, hosts = netloc.rpartition("@")
        # `user:password`, `:password`; alone, it may be a password written without its `:`.
        userinfo = userinfo.split(":", 1)[0] + ":***" if ":" in userinfo else "***"
        netloc = f"{userinfo}@{hosts}"
    if "sentinel_password=" in tail or "password=" in tail:
        path, _, query = tail.partition("?")
        parts = [
            p.split("=", 1)[0] + "=***"
            if p.split("=", 1)[0].endswith("password") and p.split("=", 1)[1:] != [""]
            else p
            for p in query.split("&")
        ]
        tail = f"{path}?{'&'.join(parts)}"
    return f"{scheme}{sep}{netloc}{slash}{tail}"


def _host_port(text: str) -> tuple[str, int]:
    """`host:port`, `[v6]:port`, or a host alone (port 26379)."""
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or not host or (rest and not rest.startswith(":")):
            raise ValueError(f"bad sentinel address {text!r}; use host:port or [ipv6]:port")
        port_text = rest[1:] if rest else ""
    else:
        host, colon, port_text = text.rpartition(":")
        if not colon:
            host, port_text = text, ""
        if ":" in host:
            raise ValueError(f"bad sentinel address {text!r}; write IPv6 as [addr]:port")
    if not host or any(c.isspace() or c in "@/?#" for c in host):
        raise ValueError(f"bad sentinel address {text!r}; use host:port")
    if not port_text:
        return host, SENTINEL_PORT
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"bad sentinel port in {text!r}; use a number from 1 to 65535")
    return host, int(port_text)


def parse_sentinel_url(url: str) -> SentinelURL:
    """Parse `redis+sentinel://...`; `ValueError` (one line, no password) if malformed."""
    text = url.strip()
    scheme, sep, rest = text.partition("://")
    if scheme.lower() != SENTINEL_SCHEME or not sep:
        raise ValueError(f"not a {SENTINEL_SCHEME}:// URL; use {SENTINEL_FORM}")
    if "#" in rest:
        raise ValueError(f"a fragment (#) has no meaning here; use {SENTINEL_FORM}")
    rest, _, query = rest.partition("?")
    netloc, slash, path = rest.partition("/")
    username = password = None
    if "@" in netloc:
        userinfo, _, netloc = netloc.rpartition("@")
        user_text, colon, password_text = userinfo.partition(":")
        if not colon:
            raise ValueError(f"credentials are written [user]:password@; use {SENTINEL_FORM}")
        username = unquote(user_text) or None
        password = unquote(password_text) or None
    if not netloc:
        raise ValueError(f"no sentinel address; use {SENTINEL_FORM}")
    sentinels = tuple(_host_port(part.strip()) for part in netloc.split(","))
    segments = path.split("/") if slash else []
    if segments and segments[-1] == "" and len(segments) > 1:
        segments.pop()  # a trailing slash
    if not segments or not segments[0]:
        raise ValueError(f"no service name (the sentinels' `monitor` name); use {SENTINEL_FORM}")
    service = unquote(segments[0])
    if any(c.isspace() for c in service):
        raise ValueError(f"service name {service!r} has white space; use {SENTINEL_FORM}")
    db = 0
    if len(segments) == 2:
        if not segments[1].isdigit():
            raise ValueError(f"database {segments[1]!r} is not a number; use {SENTINEL_FORM}")
        db = int(segments[1])
    elif len(segments) > 2:
        raise ValueError(f"too many path parts after the service name; use {SENTINEL_FORM}")
    options: dict[str, str] = {}
    if query:
        try:
            parsed = parse_qs(query, keep_blank_values=True, strict_parsing=True)
        except ValueError:
            raise ValueError(
                f"bad query string; the options are {', '.join(_QUERY_OPTIONS)}"
            ) from None
        for key, values in parsed.items():
            if key not in _QUERY_OPTIONS:
                known = ", ".join(_QUERY_OPTIONS)
                raise ValueError(f"unknown option {key!r}; the options are {known}")
            if len(values) > 1:
                raise ValueError(f"option {key!r} given twice")
            options[key] = values[0]
    sentinel_username, sentinel_password = username, password
    if "sentinel_username" in options:
        sentinel_username = options["sentinel_username"] or None
    if "sentinel_password" in options:
        sentinel_password = options["sentinel_password"] or None
    return SentinelURL(
        sentinels=sentinels,
        service=service,
        db=db,
        username=username,
        password=password,
        sentinel_username=sentinel_username,
        sentinel_password=sentinel_password,
    )


def check_url_form(url: str) -> None:
    """What settings validation checks: a known scheme; a sentinel URL must parse.
    `ValueError` (one line, without the password) otherwise."""
    scheme, sep, _ = url.strip().partition("://")
    if not sep or scheme.lower() not in SCHEMES:
        raise ValueError(
            "use redis://[[user]:password@]host:port/<db>, rediss://..., unix://... or "
            f"{SENTINEL_FORM}"
        )
    if scheme.lower() == SENTINEL_SCHEME:
        parse_sentinel_url(url)


# --- errors that name the setting -------------------------------------------------------------


class UnknownServiceError(MasterNotFoundError):
    """The sentinels answered, but none of them monitors the URL's service: a configuration
    error, not an outage."""


class SentinelUnreachableError(MasterNotFoundError):
    """No sentinel answered."""


class RedisStartError(Exception):
    """A start-up check failed; `str()` is one line naming REDIS_URL. `exit_status` 2 is a
    configuration error; 1 means Redis cannot be reached now (a process that waits for Redis
    may go on)."""

    def __init__(self, message: str, exit_status: int) -> None:
        super().__init__(message)
        self.exit_status = exit_status


def _address(client: Redis) -> str:
    kwargs = client.connection_pool.connection_kwargs
    return f"{kwargs.get('host')}:{kwargs.get('port')}"


class _Sentinels(Sentinel):
    """redis-py's Sentinel with errors that say which setting is wrong and why."""

    def __init__(self, url: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.shown_url = redact_url(url)

    async def discover_master(self, service_name: str) -> tuple[str, int]:
        errors: list[str] = []
        known = False
        others: set[str] = set()
        for number, sentinel in enumerate(self.sentinels):
            try:
                answer = await sentinel.sentinel_masters()
            except (RedisConnectionError, ResponseError, RedisTimeoutError) as exc:
                errors.append(f"{_address(sentinel)} ({exc})".replace("\n", " "))
                continue
            # RESP2 answers a mapping by name (redis-py's parser); RESP3 a list of states.
            masters: Mapping[str, Any] = (
                answer if isinstance(answer, dict) else {m["name"]: m for m in answer}
            )
            state = masters.get(service_name)
            if state is None:
                others.update(masters)
                continue
            known = True
            if self.check_master_state(state, service_name):
                # The sentinel that answered goes first next time (as redis-py does).
                self.sentinels[0], self.sentinels[number] = sentinel, self.sentinels[0]
                return str(state["ip"]), int(state["port"])
        if len(errors) == len(self.sentinels):
            raise SentinelUnreachableError(
                f"REDIS_URL={self.shown_url}: no sentinel answered: {'; '.join(errors)}"
            )
        if not known:
            monitored = ", ".join(sorted(others)) or "nothing"
            raise UnknownServiceError(
                f"REDIS_URL={self.shown_url}: no sentinel monitors service {service_name!r} "
                f"(they monitor: {monitored})"
            )
        raise MasterNotFoundError(
            f"REDIS_URL={self.shown_url}: the sentinels know no healthy primary for "
            f"{service_name!r} right now (it is down or failing over)"
        )


class _FollowingPool(SentinelConnectionPool):
    """Asks the sentinels where the primary is, besides on every new connection, at most once
    every `PRIMARY_CHECK_INTERVAL` on the way to a command, and drops a pooled connection to
    an address that is no longer the primary's. Without it, after a failover that left the
    old primary running (`SENTINEL FAILOVER`, a healed partition), open connections would go
    on writing to it until Sentinel demotes it, many seconds later, and those writes would be
    lost. A sentinel that does not answer changes nothing: the connections in hand are used."""

    checked_at = -PRIMARY_CHECK_INTERVAL

    async def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        now = time.monotonic()
        if now - self.checked_at >= PRIMARY_CHECK_INTERVAL:
            self.checked_at = now
            with contextlib.suppress(RedisError):  # when it moved, idle connections are dropped
                await self.get_master_address()  # type: ignore[no-untyped-call]
        connection = await super().get_connection(*args, **kwargs)  # type: ignore[no-untyped-call]
        primary = self.master_address
        if primary is not None and (connection.host, connection.port) != tuple(primary):
            try:  # in use when the primary moved, then put back: reconnect to the new one
                await connection.disconnect()
                await connection.connect()
            except BaseException:
                await self.release(connection)
                raise
        return connection


class _SentinelManagedRedis(Redis):
    """A client of the Sentinel-managed primary; closing it closes the sentinel clients too."""

    sentinel_manager: _Sentinels | None = None

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        try:
            await super().aclose(close_connection_pool)
        finally:
            if self.sentinel_manager is not None:
                await _close_all(self.sentinel_manager.sentinels)


async def _close_all(clients: Iterable[Redis]) -> None:
    for client in clients:
        with contextlib.suppress(Exception):
            await client.aclose()


def _sentinels(url: str, target: SentinelURL) -> _Sentinels:
    return _Sentinels(
        url,
        sentinels=list(target.sentinels),
        sentinel_kwargs={
            "socket_timeout": SENTINEL_TIMEOUT,
            "socket_connect_timeout": SENTINEL_TIMEOUT,
            "username": target.sentinel_username,
            "password": target.sentinel_password,
            "decode_responses": False,
        },
    )


def _retry() -> Retry:
    return Retry(ExponentialWithJitterBackoff(base=0.05, cap=1.0), retries=3)


#: URLs found (or configured) at start-up to name a Redis Cluster node, in this process.
_CLUSTERS: set[str] = set()


def is_cluster(redis: Redis) -> bool:
    """Whether a client made by `create_redis` is a Redis Cluster client."""
    return isinstance(redis, RedisCluster)


def create_redis(url: str, *, max_connections: int = 64, cluster: bool | None = None) -> Redis:
    """A bytes-in/bytes-out client: frames pass through to sockets without re-encoding.

    A `redis+sentinel://` URL gives a client of the primary the sentinels name, with the same
    timeouts and retries; a URL that names a Redis Cluster node (`cluster`, or found so by
    `check_redis_url` in this process) a cluster client, with `max_connections` per node."""
    common: dict[str, Any] = {
        "decode_responses": False,
        "socket_timeout": SOCKET_TIMEOUT,
        "socket_connect_timeout": CONNECT_TIMEOUT,
        "health_check_interval": 15,
        "max_connections": max_connections,
        "retry": _retry(),
        "retry_on_error": [RedisConnectionError, RedisTimeoutError],
    }
    if cluster if cluster is not None else url in _CLUSTERS:
        # After a master fails, the slot map is asked for again until its replica has taken
        # over (`cluster_error_retry_attempts` rounds, each after `retry`'s backoff); a
        # command that still fails is an outage to its caller, as on one Redis.
        return cast(Redis, RedisCluster.from_url(url, **common))
    if not is_sentinel_url(url):
        return Redis.from_url(url, **common)
    target = parse_sentinel_url(url)
    sentinels = _sentinels(url, target)
    client: _SentinelManagedRedis = sentinels.master_for(
        target.service,
        redis_class=_SentinelManagedRedis,
        connection_pool_class=_FollowingPool,
        db=target.db,
        username=target.username,
        password=target.password,
        **common,
    )
    client.sentinel_manager = sentinels
    return client


# --- start-up check ---------------------------------------------------------------------------


async def _probe(url: str, target: SentinelURL) -> None:
    sentinels = _sentinels(url, target)
    try:
        await sentinels.discover_master(target.service)
    finally:
        await _close_all(sentinels.sentinels)


async def _cluster_state(url: str) -> tuple[bool, str] | None:
    """(Whether the Redis at `url` is a Redis Cluster node, its `cluster_state`); None when
    it does not answer."""
    client = Redis.from_url(url, socket_connect_timeout=1.0, socket_timeout=2.0)
    try:
        info: dict[str, Any] = await client.info("cluster")
        if not info.get("cluster_enabled"):
            return False, ""
        raw = await client.execute_command("CLUSTER", "INFO")  # type: ignore[no-untyped-call]
    except RedisError:
        return None
    finally:
        await client.aclose()
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    state = next((line.split(":", 1)[1].strip() for line in text.splitlines()
                  if line.startswith("cluster_state:")), "unknown")  # fmt: skip
    return True, state


ClusterMode = Literal["auto", "yes", "no"]


def check_redis_url(url: str, cluster: ClusterMode = "auto") -> bool:
    """At start-up, before the event loop: for a Sentinel URL, ask the sentinels once; for
    another, ask the Redis whether it is a Redis Cluster node (`cluster`: "auto"), or check
    that it is one ("yes") or is not ("no"). Returns whether it is a cluster, and remembers
    it for `create_redis`.

    Raises `RedisStartError`: exit status 2 when the sentinels answer but none monitors the
    service, when a cluster node says the cluster is not `ok` (down, or slots not served),
    when the Redis is not what `cluster` says; 1 when no sentinel answers, or when a cluster
    was configured and its node does not answer. A standalone Redis or primary that is down
    or failing over is no error here (the processes wait for it, as for a Redis restart)."""
    if not is_sentinel_url(url):
        where = f"REDIS_URL {redact_url(url)}"
        found = asyncio.run(_cluster_state(url))
        if found is None:
            if cluster == "yes":
                raise RedisStartError(f"{where} does not answer (ODDSTREAM_REDIS_CLUSTER=yes)", 1)
            return False
        is_node, state = found
        if is_node and cluster == "no":
            raise RedisStartError(
                f"{where} is a Redis Cluster node, and ODDSTREAM_REDIS_CLUSTER=no", 2
            )
        if not is_node and cluster == "yes":
            raise RedisStartError(
                f"{where} is not a Redis Cluster node, and ODDSTREAM_REDIS_CLUSTER=yes", 2
            )
        if is_node and state != "ok":
            raise RedisStartError(
                f"{where} is a Redis Cluster node whose cluster is not ok (cluster_state:"
                f"{state}): start it, or wait until every slot is served",
                2,
            )
        if is_node:
            _CLUSTERS.add(url)
        return is_node
    if cluster == "yes":
        raise RedisStartError(
            f"REDIS_URL {redact_url(url)} names Sentinel, not a Redis Cluster node, and "
            "ODDSTREAM_REDIS_CLUSTER=yes",
            2,
        )
    target = parse_sentinel_url(url)
    try:
        asyncio.run(_probe(url, target))
    except UnknownServiceError as exc:
        raise RedisStartError(str(exc), 2) from None
    except SentinelUnreachableError as exc:
        raise RedisStartError(str(exc), 1) from None
    except MasterNotFoundError:
        return False
    return False
