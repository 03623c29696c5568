"""Pre-connect authentication: the token is checked before the WebSocket upgrade.

A bad token gets an HTTP 401 with a JSON reason, never an upgrade followed by a close.
Tokens come from `?token=` (the seed's way) or `Authorization: Bearer`. HS256 with
`JWT_SECRET`; the algorithm list is explicit, so `alg: none` and key confusion are refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import jwt
from aiohttp import web

from shared.protocol import ErrorCode

__all__ = ["AuthError", "Identity", "authenticate", "issue_token"]

ALGORITHMS = ["HS256"]
LEEWAY_SECONDS = 10


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a connection belongs to; `user` is the token's `sub`, None when anonymous."""

    user: str | None = None
    expires_at: float | None = None
    claims: dict[str, Any] = field(default_factory=dict)

    @property
    def anonymous(self) -> bool:
        return self.user is None


ANONYMOUS = Identity()


class AuthError(Exception):
    def __init__(self, code: ErrorCode, reason: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message


def _token_from(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip() or None
    return request.query.get("token") or None


def authenticate(request: web.Request, secret: str | None) -> Identity:
    """Identity of the request, or AuthError (which the handler turns into a 401)."""
    token = _token_from(request)
    if token is None:
        return ANONYMOUS
    if secret is None:
        raise AuthError(
            ErrorCode.INVALID_TOKEN,
            "auth_not_configured",
            "This gateway has no JWT_SECRET, so it cannot verify tokens; connect without one.",
        )
    try:
        claims = jwt.decode(
            token, secret, algorithms=ALGORITHMS, leeway=LEEWAY_SECONDS, options={"require": []}
        )
    except jwt.ExpiredSignatureError:
        raise AuthError(
            ErrorCode.TOKEN_EXPIRED, "token_expired", "The token has expired."
        ) from None
    except jwt.ImmatureSignatureError:
        raise AuthError(
            ErrorCode.INVALID_TOKEN, "token_not_yet_valid", "The token is not valid yet (nbf/iat)."
        ) from None
    except jwt.InvalidSignatureError:
        raise AuthError(
            ErrorCode.INVALID_TOKEN, "invalid_signature", "The token's signature does not verify."
        ) from None
    except jwt.InvalidAlgorithmError:
        raise AuthError(
            ErrorCode.INVALID_TOKEN,
            "invalid_algorithm",
            f"The token's algorithm is not allowed; use one of {', '.join(ALGORITHMS)}.",
        ) from None
    except jwt.InvalidTokenError as exc:
        raise AuthError(
            ErrorCode.INVALID_TOKEN, "malformed_token", f"The token is malformed ({exc})."
        ) from None
    sub = claims.get("sub")
    exp = claims.get("exp")
    return Identity(
        user=str(sub) if sub is not None else None,
        expires_at=float(exp) if isinstance(exp, int | float) else None,
        claims=claims,
    )


def issue_token(secret: str, user: str, *, ttl: float = 86_400, **claims: Any) -> str:
    """Sign a token (for `oddstream dev`, tests and the benchmark)."""
    import time

    now = int(time.time())
    body = {"sub": user, "iat": now, "exp": now + int(ttl), **claims}
    return jwt.encode(body, secret, algorithm="HS256")
