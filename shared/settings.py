"""Settings for every Oddstream process, read from the environment (and `.env`).

The seed's variables keep their names (`REDIS_URL`, `JWT_SECRET`, `WEBSOCKET_*`); ours carry
the `ODDSTREAM_` prefix so they never collide with a host's generic `HOST` or `PORT`.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from oddstream.shared.redis import check_url_form, redact_url

#: A list read from one variable as commas (`a,b`) or JSON (`["a","b"]`).
CommaList = Annotated[list[str], NoDecode]
#: What a browser sends as `Origin`: scheme, host and optional port (a trailing `/` forgiven).
_ORIGIN = re.compile(r"https?://[^/?#@\s\\]+/?", re.IGNORECASE)

__all__ = ["Settings", "SettingsError", "load_settings"]


class Settings(BaseSettings):
    """One settings class for gateway, worker, ingest and dev; each reads what it needs."""

    model_config = SettingsConfigDict(
        env_prefix="ODDSTREAM_",
        env_file=".env",
        extra="ignore",
        populate_by_name=True,
        frozen=True,
    )

    # --- the seed's variables -----------------------------------------------------------
    redis_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("REDIS_URL", "redis_url"),
        description="Redis to use. Unset: gateway and worker use redis://127.0.0.1:6379/0; "
        "`oddstream dev` starts an embedded Redis instead. A Sentinel-managed primary: "
        "`redis+sentinel://[[user]:password@]host:port[,host:port...]/<service>[/<db>]` (the "
        "sentinels' addresses and the `monitor` name; the password is the data nodes' and the "
        "sentinels', unless `?sentinel_password=` gives theirs, empty for none); a failover "
        "is followed without a restart.",
    )
    jwt_secret: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("JWT_SECRET", "jwt_secret"),
        description="HS256 secret for tokens. Unset: only anonymous connections are accepted. "
        "In production at least 32 bytes (RFC 7518 3.2) and no placeholder, or the gateway "
        "refuses to start.",
    )
    heartbeat_interval: float = Field(
        default=30.0,
        gt=0,
        validation_alias=AliasChoices("WEBSOCKET_HEARTBEAT_INTERVAL", "heartbeat_interval"),
        description="Seconds between the gateway's application-level pings.",
    )
    connection_timeout: float = Field(
        default=60.0,
        gt=0,
        validation_alias=AliasChoices("WEBSOCKET_CONNECTION_TIMEOUT", "connection_timeout"),
        description="Seconds of client silence after which a connection is closed.",
    )
    max_connections: int = Field(
        default=1000,
        ge=1,
        validation_alias=AliasChoices("WEBSOCKET_MAX_CONNECTIONS", "max_connections"),
        description="WebSocket connections one gateway process accepts.",
    )

    # --- authentication and authorization ----------------------------------------------
    jwt_algorithms: CommaList = Field(
        default=["HS256"],
        description="Accepted token algorithms (explicit allow-list; `none` is never accepted). "
        "HS* use JWT_SECRET; RS*/ES* use ODDSTREAM_JWT_PUBLIC_KEY or ODDSTREAM_JWT_JWKS_URL.",
    )
    jwt_public_key: str | None = Field(
        default=None, description="PEM public key for RS*/ES* tokens."
    )
    jwt_jwks_url: str | None = Field(
        default=None, description="JWKS URL for RS*/ES* tokens; keys cached, looked up by `kid`."
    )
    jwt_issuer: str | None = Field(default=None, description="Required `iss`, when set.")
    jwt_audience: str | None = Field(default=None, description="Required `aud`, when set.")
    jwt_leeway: float = Field(default=10.0, ge=0, description="Clock skew allowed on exp/nbf/iat.")
    allow_anonymous: bool = Field(
        default=True, description="Accept connections without a token (never for portfolio)."
    )
    token_expiry_notice: float = Field(
        default=60.0,
        ge=0,
        description="Seconds before a connected token's `exp` that the gateway sends "
        "`token_expiring`; without a fresh `auth` the connection closes 4401 at expiry.",
    )
    admin_token: SecretStr | None = Field(
        default=None,
        description="Static admin credential for management endpoints (`Authorization: "
        "Bearer ...`). Tokens with claim `admin: true` are admins too.",
    )
    odds_api_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("ODDS_API_KEY", "odds_api_key"),
        description="The Odds API key for `oddstream feed the-odds-api` (never a flag, never "
        "logged). Unset: only `--from-file` works.",
    )
    allowed_origins: CommaList = Field(
        default=[],
        description="Origins allowed to open WebSockets and to call the HTTP endpoints (CORS), "
        "besides the gateway's own. Empty (the default): its own origin only, the scheme and "
        "host the request was made to (Host; X-Forwarded-Proto and X-Forwarded-Host from "
        "`trusted_proxies` only). `*` allows any origin (an explicit opt-in). Requests "
        "without an Origin header (non-browsers) are always allowed.",
    )

    # --- abuse limits ----------------------------------------------------------------------
    connect_rate_per_ip: float = Field(
        default=20.0, gt=0, description="New connections per second per client IP (refill)."
    )
    connect_burst_per_ip: int = Field(
        default=40, ge=1, description="New connections a client IP may open at once."
    )
    trusted_proxies: CommaList = Field(
        default=[],
        description="Proxy addresses (IPs or CIDRs) whose X-Forwarded-For is believed.",
    )
    messages_per_second: float = Field(
        default=20.0, gt=0, description="Client messages per second per connection (refill)."
    )
    message_burst: int = Field(default=40, ge=1, description="Client messages allowed at once.")
    rate_limit_strikes: int = Field(
        default=20,
        ge=1,
        description="Messages refused for rate in a row before the connection is closed 1008.",
    )
    max_subscriptions: int = Field(default=50, ge=1, description="Subscriptions per connection.")
    max_filter_value_length: int = Field(
        default=100, ge=1, le=1000, description="Longest filter value accepted."
    )
    max_connections_per_user: int = Field(
        default=0,
        ge=0,
        description="Connections one user may hold across the whole cluster (counted in Redis). "
        "Zero means no limit.",
    )

    # --- ours ---------------------------------------------------------------------------
    env: Literal["production", "development"] = Field(
        default="production",
        description="`production` (the default; `oddstream gateway` and gunicorn): the gateway "
        "refuses to start with a weak JWT_SECRET, or with none when tokens are required. "
        "`development` skips that check; `oddstream dev` always runs as development.",
    )
    host: str = Field(default="127.0.0.1", description="Gateway bind address.")
    port: int = Field(default=8000, ge=0, le=65535, description="Gateway port; 0 picks a free one.")
    public_url: str | None = Field(
        default=None, description="URL other gateways/clients reach this one at (for status only)."
    )
    redis_cluster: Literal["auto", "yes", "no"] = Field(
        default="auto",
        description="Whether REDIS_URL names a Redis Cluster node (any node of the cluster): "
        "`auto` asks the server at start-up; `yes` requires a cluster (a standalone Redis, or "
        "a node that does not answer, stops start-up with one line); `no` requires a "
        "standalone Redis or a Sentinel URL. A cluster must be `ok` at start-up. Spread the "
        "data path over its masters with `ODDSTREAM_SHARDS` (a few per master).",
    )
    redis_prefix: str = Field(
        default="oddstream",
        min_length=1,
        pattern=r"^[A-Za-z0-9_.:-]+$",
        description="Prefix of every Redis key, so several deployments can share one Redis.",
    )
    gateway_heartbeat: float = Field(
        default=1.0, gt=0, description="Seconds between a gateway's liveness beats in Redis."
    )
    gc_full_interval: float = Field(
        default=600.0,
        ge=0,
        description="Longest time (s) between a gateway's or worker's full garbage "
        "collections (a gateway also runs one once an eighth of its connections closed); "
        "between them what settled (after start-up, after connections opened) is frozen "
        "(gc.freeze), so collections do not pause in proportion to what a process holds. "
        "0: CPython's defaults.",
    )
    gateway_ttl: float = Field(
        default=5.0,
        gt=0,
        description="Seconds without a beat after which a gateway is reaped and no longer sent to.",
    )
    worker_heartbeat: float = Field(default=1.0, gt=0, description="Seconds between worker beats.")
    worker_ttl: float = Field(
        default=5.0, gt=0, description="Seconds until a silent worker is dead."
    )
    worker_batch: int = Field(
        default=200, ge=1, le=10_000, description="Entries a worker reads per stream per call."
    )
    worker_block_ms: int = Field(
        default=1000,
        ge=1,
        le=4000,
        description="Blocking read time; kept below redis-py's 5 s socket timeout.",
    )
    partitions: int = Field(
        default=16,
        ge=1,
        le=1024,
        description="Ingest partitions: events are spread by game (else user, else sport) over "
        "this many streams, each owned by one worker at a time, so one game's events are "
        "processed in ingest order. Every process of a deployment must use the same number.",
    )
    shards: int = Field(
        default=1,
        ge=1,
        le=64,
        description="Shards of the data path: ingest partition p, with its games' latest values, "
        "its part of every room's history and an inbox per gateway, is in shard p % shards, "
        "one Redis Cluster slot (hash tag) each. On a Redis Cluster, a few per master spread "
        "the load; on one Redis, 1. A room's position has one part per shard. Every process "
        "of a deployment must use the same number, at most `partitions`.",
    )
    partition_lease_ms: int = Field(
        default=1200,
        ge=100,
        le=60_000,
        description="How long a worker's claim on a partition lasts without renewal (renewed "
        "every third of it). A dead or stalled worker's partitions are taken over after this; "
        "a stalled worker that wakes up delivers nothing it no longer owns.",
    )
    history_seconds: float = Field(
        default=120.0,
        ge=0,
        description="Resume window: each room keeps its recent events at least this long "
        "(unless it reaches `history_size` first) and older ones are trimmed, and a room nobody "
        "holds any more keeps being recorded this long, so a client that drops and comes back "
        "within it misses nothing. 0 turns history, resume and lingering rooms off.",
    )
    history_size: int = Field(
        default=50_000,
        ge=1,
        description="Most events one room keeps (approximate), a memory cap: a room busier "
        "than history_size / history_seconds events a second keeps less than the window.",
    )
    offline_history_seconds: float = Field(
        default=86_400.0,
        ge=0,
        description="How long portfolio and system-alert rooms keep their history, so a user "
        "who returns with their last position receives what they missed, once.",
    )
    offline_history_size: int = Field(
        default=10_000, ge=1, description="Events kept per portfolio or alerts room."
    )
    snapshot_ttl: float = Field(
        default=6 * 3600.0,
        gt=0,
        description="How long the latest value per game/book/market (odds) or "
        "game/player/market (predictions) is kept for snapshots after its last update.",
    )
    max_replay: int = Field(
        default=5000,
        ge=1,
        description="Most frames one resume replays; a client further behind gets "
        "`recovered: false` and a snapshot instead.",
    )
    max_replay_bytes: int = Field(
        default=4 * 1024 * 1024,
        ge=1024,
        description="Most bytes one resume or snapshot sends; beyond it a resume is "
        "`recovered: false` and a snapshot is cut (the frame says `truncated`).",
    )
    stream_retention: float = Field(
        default=60.0,
        ge=0,
        description="Seconds consumed ingest entries are kept. Unread entries are never trimmed; "
        "zero trims consumed entries at once.",
    )
    trim_interval: float = Field(
        default=5.0, gt=0, description="Seconds between a worker's trims of the ingest streams."
    )
    deadletter_maxlen: int = Field(
        default=10_000, ge=1, description="Approximate number of dead letters kept for inspection."
    )
    compression: bool = Field(
        default=True,
        description="Negotiate permessage-deflate (RFC 7692) with clients that offer it "
        "(browsers always do): each frame is compressed once, without context takeover, and "
        "the same bytes go to every client that negotiated it. False: every frame uncompressed.",
    )
    compression_min_bytes: int = Field(
        default=256,
        ge=0,
        description="Frames with a shorter payload are sent uncompressed even to clients that "
        "negotiated compression (a few bytes saved would not pay for the work).",
    )
    max_message_bytes: int = Field(
        default=64 * 1024, ge=256, description="Largest client frame accepted; larger closes 1009."
    )
    send_buffer_bytes: int = Field(
        default=1024 * 1024,
        ge=1024,
        description="Bytes queued to one client beyond which must-deliver data (alerts, "
        "arbitrage, portfolio) closes it as a slow consumer (4008).",
    )
    conflate_buffer_bytes: int = Field(
        default=64 * 1024,
        ge=1024,
        description="Bytes queued to one client beyond which odds and predictions are held "
        "and conflated (newest per game/book/market replaces older) until it drains.",
    )
    max_conflated_keys: int = Field(
        default=10_000,
        ge=1,
        description="Distinct conflation keys held for one backed-up client before it is "
        "closed as a slow consumer; bounds memory per connection.",
    )
    canary_interval: float = Field(
        default=5.0,
        gt=0,
        description="Seconds between a gateway's pipeline canaries; /readyz fails when none "
        "came back within three intervals.",
    )
    shutdown_grace: float = Field(
        default=10.0, ge=0, description="Seconds a process has to drain on SIGTERM/SIGINT."
    )
    analytics_enabled: bool = Field(
        default=True,
        description="Count usage analytics in each gateway and flush per-minute rollups to "
        "Redis (`GET /ws/v2/analytics`). False: nothing is counted or written, and the "
        "endpoint answers 404.",
    )
    analytics_retention_seconds: int = Field(
        default=86_400,
        ge=60,
        le=31 * 86_400,
        description="How long each per-minute rollup is kept (its key's TTL, counted from the "
        "start of its minute); also the most minutes `/ws/v2/analytics` serves.",
    )
    analytics_flush_interval: float = Field(
        default=5.0,
        gt=0,
        le=60,
        description="Seconds between a gateway's flushes of its counts to Redis (and at every "
        "minute boundary).",
    )
    analytics_top_games: int = Field(
        default=20,
        ge=1,
        le=1000,
        description="Most-watched games each gateway records per minute (its top N by "
        "subscribers with a game_id filter).",
    )
    log_level: str = Field(default="INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR)$")
    log_format: Literal["json", "console"] | None = Field(
        default=None,
        description="Log lines on stderr: `json` (one JSON object a line) or `console` "
        "(readable). Unset: json in production, console in development (`oddstream dev`).",
    )

    @field_validator("jwt_algorithms", "allowed_origins", "trusted_proxies", mode="before")
    @classmethod
    def _comma_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                import json

                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @field_validator("jwt_algorithms")
    @classmethod
    def _known_algorithms(cls, value: list[str]) -> list[str]:
        allowed = {"HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "ES256", "ES384",
                   "ES512", "PS256", "PS384", "PS512", "EdDSA"}  # fmt: skip
        bad = [a for a in value if a not in allowed]
        if bad or not value:
            raise ValueError(f"use one or more of {', '.join(sorted(allowed))} (not {bad})")
        return value

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        bad = [o for o in value if o != "*" and not _ORIGIN.fullmatch(o)]
        if bad:
            raise ValueError(
                "use `*` or origins like https://app.example.com:8443 (scheme, host, optional "
                f"port, no path), not {', '.join(map(repr, bad))}"
            )
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value:
            check_url_form(value)
        return value

    @model_validator(mode="after")
    def _shards_within_partitions(self) -> Settings:
        if self.shards > self.partitions:
            raise ValueError(
                f"ODDSTREAM_SHARDS ({self.shards}) must be at most ODDSTREAM_PARTITIONS "
                f"({self.partitions}): every shard holds at least one ingest partition"
            )
        return self

    @property
    def effective_redis_url(self) -> str:
        return self.redis_url or "redis://127.0.0.1:6379/0"


class SettingsError(Exception):
    """Start-up configuration is invalid; `str()` is one line naming the variable."""


def _variable_name(field: str) -> str:
    for info in Settings.model_fields.values():
        alias = info.validation_alias
        if isinstance(alias, AliasChoices) and field in alias.choices:
            first = alias.choices[0]
            return first if isinstance(first, str) else field
    return f"ODDSTREAM_{field.upper()}"


def load_settings(*, flags: dict[str, str] | None = None, **overrides: Any) -> Settings:
    """Read settings from the environment; raise SettingsError with one clear line if bad.

    `flags` maps overridden fields to the command-line flag that set them, for the message.
    """
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            field = str(err["loc"][0]) if err["loc"] else "?"
            given = err.get("input")
            if field in ("redis_url", "REDIS_URL") and isinstance(given, str):
                given = redact_url(given)  # never a password in a message
            name = (flags or {}).get(field) or _variable_name(field)
            problems.append(f"{name}={given!r}: {err['msg']}")
        raise SettingsError("invalid setting " + "; ".join(problems)) from None
