"""Pre-connect authentication, token refresh and admin credentials.

Tokens are checked before the WebSocket upgrade: a bad one gets an HTTP 401 with a JSON
`reason`, never an upgrade followed by a close. They come from `Authorization: Bearer`, a
`Sec-WebSocket-Protocol` entry `bearer.<token>` (so browsers need not put tokens in URLs), or
`?token=` (the seed's way; never logged, see `gateway.app.RedactingAccessLogger`).

Verification (PyJWT): the algorithm must be in `ODDSTREAM_JWT_ALGORITHMS`, and the key is
chosen by the algorithm's family, never by the token: HS* only with `JWT_SECRET`, RS*/ES*/PS*
only with the public key or the JWKS. So `alg: none` and HS/RS key confusion cannot verify.
`exp`, `nbf`, `iat` are checked with `ODDSTREAM_JWT_LEEWAY`; `iss` and `aud` when configured.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from dataclasses import dataclass, field
from typing import Any

import jwt
from aiohttp import web
from redis.exceptions import RedisError

from oddstream.shared.protocol import (
    TOKEN_SUBPROTOCOL_PREFIX,
    ErrorCode,
    ProtocolError,
    SubscriptionType,
)
from oddstream.shared.registry import Registry
from oddstream.shared.rooms import RoomSpec, parse_room
from oddstream.shared.settings import Settings, SettingsError

__all__ = [
    "ANONYMOUS",
    "MIN_SECRET_BYTES",
    "AuthError",
    "Identity",
    "TokenVerifier",
    "authorize_room",
    "check_not_revoked",
    "check_production_secrets",
    "issue_token",
    "secret_weakness",
    "token_from_request",
]


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a connection belongs to; `user` is the token's `sub`, None when anonymous."""

    user: str | None = None
    expires_at: float | None = None
    issued_at: float | None = None
    scopes: frozenset[str] | None = None  # None: no `scopes` claim, every type allowed
    admin: bool = False
    claims: dict[str, Any] = field(default_factory=dict)

    @property
    def anonymous(self) -> bool:
        return self.user is None

    def may_subscribe(self, subscription_type: str) -> bool:
        """Per-type permission from the token's `scopes` claim (`odds_updates`, `*`, ...)."""
        return self.scopes is None or "*" in self.scopes or subscription_type in self.scopes


ANONYMOUS = Identity()


class AuthError(Exception):
    """A token that cannot be accepted; `reason` is the stable, documented word for why."""

    def __init__(self, code: ErrorCode, reason: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message


def token_from_request(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip() or None
    for entry in request.headers.get("Sec-WebSocket-Protocol", "").split(","):
        entry = entry.strip()
        token = entry.removeprefix(TOKEN_SUBPROTOCOL_PREFIX)
        if token and token != entry:
            return token
    return request.query.get("token") or None


def _scopes(claims: dict[str, Any]) -> frozenset[str] | None:
    raw = claims.get("scopes", claims.get("scope"))
    if raw is None:
        return None
    if isinstance(raw, str):
        return frozenset(raw.split())
    if isinstance(raw, list):
        return frozenset(str(s) for s in raw)
    return frozenset()


class TokenVerifier:
    """Verifies tokens with the configured keys; one per app (the JWKS cache lives here)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.algorithms = list(settings.jwt_algorithms)
        self.secret = settings.jwt_secret.get_secret_value() if settings.jwt_secret else None
        self.public_key = settings.jwt_public_key
        self._jwks = (
            jwt.PyJWKClient(settings.jwt_jwks_url, cache_keys=True, lifespan=300)
            if settings.jwt_jwks_url
            else None
        )

    async def verify(self, token: str) -> Identity:
        """The token's identity, or AuthError with a documented reason."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError as exc:
            raise AuthError(
                ErrorCode.INVALID_TOKEN, "malformed_token", f"The token is malformed ({exc})."
            ) from None
        algorithm = header.get("alg")
        if algorithm not in self.algorithms:
            raise AuthError(
                ErrorCode.INVALID_TOKEN,
                "invalid_algorithm",
                f"The token's algorithm {algorithm!r} is not allowed; "
                f"use one of {', '.join(self.algorithms)}.",
            )
        key = await self._key_for(str(algorithm), token)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[str(algorithm)],
                audience=self.settings.jwt_audience,
                issuer=self.settings.jwt_issuer,
                leeway=self.settings.jwt_leeway,
                options={"verify_aud": self.settings.jwt_audience is not None},
            )
        except jwt.PyJWTError as exc:  # InvalidKeyError is not an InvalidTokenError
            raise _failure(exc) from None
        return _identity(claims)

    async def _key_for(self, algorithm: str, token: str) -> Any:
        if algorithm.startswith("HS"):
            if self.secret is None:
                raise _not_configured(algorithm)
            return self.secret
        if self._jwks is not None:
            try:
                # PyJWKClient is synchronous (it may fetch the JWKS): keep it off the loop.
                signing = await asyncio.to_thread(self._jwks.get_signing_key_from_jwt, token)
            except jwt.PyJWKClientError as exc:
                raise AuthError(
                    ErrorCode.INVALID_TOKEN, "unknown_key", f"No key for this token ({exc})."
                ) from None
            return signing.key
        if self.public_key is not None:
            return self.public_key
        raise _not_configured(algorithm)

    async def identify(self, request: web.Request) -> Identity:
        """Identity of an upgrade request; anonymous when it carries no token."""
        token = token_from_request(request)
        if token is None:
            if not self.settings.allow_anonymous:
                raise AuthError(
                    ErrorCode.AUTH_REQUIRED, "token_required", "This gateway requires a token."
                )
            return ANONYMOUS
        return await self.verify(token)

    async def is_admin(self, request: web.Request) -> bool:
        """Admin credentials: the configured admin token, or a token with `admin: true`."""
        header = request.headers.get("Authorization", "")
        if not header.lower().startswith("bearer "):
            return False
        presented = header[7:].strip()
        admin = self.settings.admin_token
        if admin is not None and hmac.compare_digest(
            presented.encode(), admin.get_secret_value().encode()
        ):
            return True
        try:
            return (await self.verify(presented)).admin
        except AuthError:
            return False


async def check_not_revoked(registry: Registry, identity: Identity) -> None:
    """Refuse a user's token issued before an admin revoked that user (`/ws/v2/admin/revoke`)."""
    if identity.user is None:
        return
    try:
        revoked_at = await registry.revoked_at(identity.user)
    except RedisError:
        return  # an outage must not lock every user out; revocation resumes with Redis
    if revoked_at is not None and (identity.issued_at or 0) <= revoked_at:
        raise AuthError(
            ErrorCode.INVALID_TOKEN, "revoked", "This user's tokens were revoked; sign in again."
        )


def authorize_room(
    identity: Identity, subscription_type: Any, filters: Any, settings: Settings
) -> RoomSpec:
    """The room a subscription asks for, if this identity may have it.

    Portfolio rooms belong to the token's user: a `user` filter naming someone else is
    `forbidden`, and the user never comes from the client. Token `scopes`, when present,
    limit the subscription types.
    """
    if isinstance(filters, dict) and "user" in filters:
        if str(subscription_type).lower() != SubscriptionType.PORTFOLIO.value:
            pass  # parse_room reports the unknown key
        elif identity.user is None or str(filters["user"]) != identity.user:
            raise ProtocolError(
                ErrorCode.FORBIDDEN, "You may only subscribe to your own portfolio."
            )
        else:
            filters = {k: v for k, v in filters.items() if k != "user"}
    spec = parse_room(
        subscription_type,
        filters,
        user=identity.user,
        max_value_length=settings.max_filter_value_length,
    )
    if not identity.may_subscribe(spec.type.value):
        raise ProtocolError(
            ErrorCode.FORBIDDEN, f"Your token's scopes do not include '{spec.type.value}'."
        )
    return spec


#: Verification failures, most specific first: (exception, code, reason, message).
_FAILURES: tuple[tuple[type[jwt.PyJWTError], ErrorCode, str, str], ...] = (
    (jwt.ExpiredSignatureError, ErrorCode.TOKEN_EXPIRED, "token_expired", "The token has expired."),
    (jwt.ImmatureSignatureError, ErrorCode.INVALID_TOKEN, "token_not_yet_valid",
     "The token is not valid yet."),
    (jwt.InvalidAudienceError, ErrorCode.INVALID_TOKEN, "invalid_audience",
     "The token's audience is wrong."),
    (jwt.InvalidIssuerError, ErrorCode.INVALID_TOKEN, "invalid_issuer",
     "The token's issuer is wrong."),
    (jwt.InvalidSignatureError, ErrorCode.INVALID_TOKEN, "invalid_signature",
     "The token's signature is wrong."),
    (jwt.InvalidKeyError, ErrorCode.INVALID_TOKEN, "invalid_key",
     "The token does not fit the key."),
)  # fmt: skip


def _failure(exc: jwt.PyJWTError) -> AuthError:
    for kind, code, reason, message in _FAILURES:
        if isinstance(exc, kind):
            return AuthError(code, reason, message)
    return AuthError(ErrorCode.INVALID_TOKEN, "malformed_token", f"The token is malformed ({exc}).")


def _not_configured(algorithm: str) -> AuthError:
    return AuthError(
        ErrorCode.INVALID_TOKEN,
        "auth_not_configured",
        f"This gateway has no key for {algorithm} tokens.",
    )


def _identity(claims: dict[str, Any]) -> Identity:
    sub, exp, iat = claims.get("sub"), claims.get("exp"), claims.get("iat")
    scopes = _scopes(claims)
    admin = claims.get("admin") is True or (scopes is not None and "admin" in scopes)
    return Identity(
        user=str(sub) if sub is not None else None,
        expires_at=_seconds(exp),
        issued_at=_seconds(iat),
        scopes=scopes,
        admin=admin,
        claims=claims,
    )


def _seconds(value: Any) -> float | None:
    """A NumericDate claim; PyJWT also accepts numeric strings, so do we."""
    if isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def issue_token(secret: str, user: str, *, ttl: float = 86_400, **claims: Any) -> str:
    """Sign an HS256 token (for `oddstream dev`, tests and the benchmark)."""
    now = int(time.time())
    body = {"sub": user, "iat": now, "exp": now + int(ttl), **claims}
    return jwt.encode(body, secret, algorithm="HS256")


# --- start-up checks (production) ------------------------------------------------------------

#: An HS256 key at least as long as the hash's output (RFC 7518 section 3.2).
MIN_SECRET_BYTES = 32
#: Example and template values, compared lowercase with everything but letters and digits
#: removed; refused whatever their length.
_PLACEHOLDERS = frozenset(
    {"secret", "changeme", "changeit", "devsecret", "dev", "development", "password", "test",
     "testing", "jwtsecret", "mysecret", "supersecret", "secretkey", "default", "example"}
)  # fmt: skip
#: Words that mark a template value however long it is ("CHANGE_ME_TO_A_LONG_RANDOM_STRING").
_PLACEHOLDER_MARKS = ("changeme", "changethis", "replaceme", "replacethis", "replacewith",
                      "placeholder", "yoursecret", "your256bitsecret", "insecure")  # fmt: skip
#: Fewer distinct characters than this is a repeated pattern ("secretsecret...", "aaaa...").
_MIN_DISTINCT = 8


def secret_weakness(secret: str) -> str | None:
    """Why an HS* secret is weak, or None; never echoes the secret."""
    folded = "".join(ch for ch in secret.lower() if ch.isalnum())
    if folded in _PLACEHOLDERS or any(mark in folded for mark in _PLACEHOLDER_MARKS):
        return "is a placeholder"
    size = len(secret.encode())
    if size < MIN_SECRET_BYTES:
        return (
            f"is {size} bytes, fewer than the {MIN_SECRET_BYTES} HS256 needs (RFC 7518 section 3.2)"
        )
    if len(set(secret)) < _MIN_DISTINCT:
        return "repeats a few characters"
    return None


def check_production_secrets(settings: Settings) -> None:
    """Refuse a production gateway whose tokens can be forged or never verified.

    In production (`ODDSTREAM_ENV`, the default outside `oddstream dev`): a JWT_SECRET in use
    (an HS* algorithm accepted) must not be weak, whether or not anonymous connections are
    allowed, since anyone who guesses it signs admin tokens; and when tokens are required
    (`ODDSTREAM_ALLOW_ANONYMOUS=false`) there must be a key to verify them. SettingsError with
    one line naming the setting otherwise.
    """
    if settings.env != "production":
        return
    hs = any(a.startswith("HS") for a in settings.jwt_algorithms)
    asymmetric = any(not a.startswith("HS") for a in settings.jwt_algorithms)
    # An empty JWT_SECRET is no secret: the verifier treats it as unset too.
    secret = settings.jwt_secret.get_secret_value() if settings.jwt_secret else None
    escape = "or set ODDSTREAM_ENV=development outside production"
    if hs and secret:
        weakness = secret_weakness(secret)
        if weakness is not None:
            raise SettingsError(
                f"JWT_SECRET {weakness}: use at least {MIN_SECRET_BYTES} random bytes "
                f"(e.g. `openssl rand -hex 32`), {escape}"
            )
    has_key = (hs and bool(secret)) or (
        asymmetric and bool(settings.jwt_public_key or settings.jwt_jwks_url)
    )
    if not settings.allow_anonymous and not has_key:
        raise SettingsError(
            "JWT_SECRET is not set but tokens are required (ODDSTREAM_ALLOW_ANONYMOUS=false): "
            f"set it to at least {MIN_SECRET_BYTES} random bytes (or ODDSTREAM_JWT_PUBLIC_KEY / "
            f"ODDSTREAM_JWT_JWKS_URL for RS*/ES* tokens), {escape}"
        )
