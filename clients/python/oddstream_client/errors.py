"""Typed errors: what the gateway refused, or what the client could not do."""

from __future__ import annotations

from typing import Any

from oddstream_client.contract import (
    ERROR_CLASSES,
    TEMPORARY_ERRORS,
    ErrorCode,
)

__all__ = [
    "AuthError",
    "ConnectionClosed",
    "OddstreamError",
    "SubscriptionError",
    "error_for",
]

Frame = dict[str, Any]


class OddstreamError(Exception):
    """Anything the gateway refused or the client could not do.

    `code` is the gateway's `ErrorCode` where there is one (so callers can branch on stable
    codes, not on text); `temporary` says whether retrying the same thing later can succeed;
    `hint` is the gateway's suggestion of what to do (also the end of `message`).
    """

    def __init__(
        self, code: str, message: str, *, temporary: bool = False, hint: str | None = None
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.temporary = temporary
        self.hint = hint


class AuthError(OddstreamError):
    """Missing, bad, expired or insufficient credentials: fix the token, not the request."""


class SubscriptionError(OddstreamError):
    """A subscription the gateway will not serve as asked (type, filters, limits)."""


class ConnectionClosed(OddstreamError):
    """The connection is gone: for good (`temporary=False`) or while reconnecting."""

    def __init__(
        self,
        message: str,
        *,
        close_code: int | None = None,
        code: str = "connection_closed",
        temporary: bool = False,
    ) -> None:
        super().__init__(code, message, temporary=temporary)
        self.close_code = close_code


#: The typed error for each error class of the contract.
_ERROR_TYPES: dict[str, type[OddstreamError]] = {
    "auth": AuthError,
    "subscription": SubscriptionError,
}


def error_for(code: str, message: str, hint: str | None = None) -> OddstreamError:
    """The typed error for a gateway error code (unknown codes get the base class)."""
    try:
        known: str = ErrorCode(code)
    except ValueError:
        known = code
    temporary = known in TEMPORARY_ERRORS
    kind = _ERROR_TYPES.get(ERROR_CLASSES.get(known, "general"), OddstreamError)
    return kind(known, message, temporary=temporary, hint=hint)


def error_from_frame(frame: Frame) -> OddstreamError:
    hint = frame.get("hint")
    return error_for(
        str(frame.get("code") or "unknown"),
        str(frame.get("error") or ""),
        hint if isinstance(hint, str) else None,
    )


#: Upgrade refusals (the JSON body is not available through aiohttp's handshake error).
HTTP_ERRORS: dict[int, ErrorCode] = {
    400: ErrorCode.INVALID_REQUEST,
    401: ErrorCode.INVALID_TOKEN,
    403: ErrorCode.FORBIDDEN,
    404: ErrorCode.NOT_FOUND,
    429: ErrorCode.RATE_LIMITED,
    503: ErrorCode.SERVICE_UNAVAILABLE,
}
