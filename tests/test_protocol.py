"""Protocol constants: close codes and what clients should do about them."""

from __future__ import annotations

import pytest

from oddstream.shared.protocol import CloseCode, close_advice


@pytest.mark.parametrize(
    ("code", "advice"),
    [
        (1000, "terminal"), (1001, "reconnect_now"), (1006, "reconnect_backoff"),
        (1009, "terminal"), (1011, "reconnect_backoff"), (4008, "reconnect_now"),
        (4050, "reconnect_now"), (4101, "reconnect_backoff"), (4111, "reconnect_backoff"),
        (4300, "reconnect_backoff"), (4401, "refresh_token"), (4503, "terminal"),
        (4999, "terminal"), (3000, "reconnect_backoff"),
    ],
)  # fmt: skip
def test_close_advice_by_code_and_range(code: int, advice: str) -> None:
    assert close_advice(code).value == advice


def test_every_close_code_we_send_has_documented_advice() -> None:
    expected = {
        "NORMAL": "terminal", "GOING_AWAY": "reconnect_now", "POLICY_VIOLATION": "terminal",
        "MESSAGE_TOO_BIG": "terminal", "INTERNAL_ERROR": "reconnect_backoff",
        "SLOW_CONSUMER": "reconnect_now", "HEARTBEAT_TIMEOUT": "reconnect_backoff",
        "SERVICE_UNAVAILABLE": "reconnect_backoff", "TOKEN_EXPIRED": "refresh_token",
        "FORBIDDEN": "terminal",
    }  # fmt: skip
    assert {c.name: c.advice.value for c in CloseCode} == expected
