"""Protocol constants: close codes and what clients should do about them."""

from __future__ import annotations

import pytest

from shared.protocol import CloseCode, close_advice


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


def test_every_close_code_we_send_has_the_advice_of_its_range() -> None:
    for code in CloseCode:
        if code >= 4000:
            assert close_advice(int(code)) is code.advice
    assert CloseCode.GOING_AWAY.advice.value == "reconnect_now"
    assert CloseCode.TOKEN_EXPIRED.advice.value == "refresh_token"
