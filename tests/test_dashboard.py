"""The live dashboard at `/`, in a real Chromium, against a real gateway, worker and Redis."""

from __future__ import annotations

import json
import re
from typing import Any

from playwright.async_api import Page, expect

from oddstream.embedded import EmbeddedRedis
from oddstream.shared.ingest import Ingester, parse_event
from oddstream.shared.keys import Keys
from oddstream.shared.redis import create_redis
from oddstream.shared.rooms import ALLOWED_FILTERS
from oddstream.shared.settings import Settings
from tests.browser import SCREENSHOTS, PageLog, chromium, live_system, open_page
from tests.harness import wait_until

SECONDS = 1000  # Playwright timeouts are in ms


async def frames_seen(page: Page) -> list[dict[str, Any]]:
    """Data frames recorded by `record_frames` (type, sport, rooms), oldest first."""
    raw = await page.evaluate("JSON.stringify(window.__frames || [])")
    frames: list[dict[str, Any]] = json.loads(raw)
    return frames


async def record_frames(page: Page) -> None:
    await page.evaluate(
        """() => {
            window.__frames = [];
            window.oddstream.manager.on("message", (f) => window.__frames.push(
                {type: f.type, sport: f.data && f.data.sport, rooms: f.rooms}));
        }"""
    )


async def start_with(page: Page, url: str, subscriptions: list[dict[str, Any]] | None) -> None:
    """Open the dashboard with these saved subscriptions (None: the defaults)."""
    if subscriptions is not None:
        saved = json.dumps(json.dumps(subscriptions))
        await page.add_init_script(f"localStorage.setItem('oddstream.subscriptions', {saved})")
    await page.goto(url)


async def toast(page: Page, level: str, title: str) -> None:
    await expect(
        page.locator(f".toast[data-level={level}] .toast-title", has_text=title).first
    ).to_be_visible(timeout=15 * SECONDS)


def no_page_errors(log: PageLog) -> None:
    assert log.errors == [], log.errors


async def test_dashboard_connects_and_shows_live_odds(settings: Settings) -> None:
    async with live_system(settings, rate=80) as system, chromium() as browser:
        page, log = await open_page(browser)
        await start_with(page, f"{system.http}/#token={system.token('alice')}", None)
        status = page.locator("#status")
        await expect(status).to_have_attribute("data-state", "connected", timeout=10 * SECONDS)
        await expect(page.locator("#identity")).to_have_text("signed in as alice")
        await toast(page, "success", "Connected")
        # The token left the address bar (it lives in sessionStorage for this tab only).
        assert "token" not in page.url

        # The default subscriptions are confirmed and the board fills with real games.
        chips = page.locator("#subscription-list .subscription")
        await expect(chips).to_have_count(3)
        await expect(page.locator('.subscription[data-confirmed="true"]')).to_have_count(3)
        await expect(page.locator(".game").first).to_be_visible(timeout=10 * SECONDS)
        await expect(page.locator("#odds-empty")).to_be_hidden()

        # Prices update in place: the same game cards, new values, movement marked.
        games_before = await page.locator(".game").count()
        summary = page.locator("#odds-summary")
        first = await summary.inner_text()
        await expect(summary).not_to_have_text(first, timeout=10 * SECONDS)
        await expect(page.locator(".price .value.up, .price .value.down").first).to_be_visible()
        assert await page.locator(".game").count() >= games_before
        card_ids = await page.locator(".game").evaluate_all("cs => cs.map(c => c.dataset.game)")
        assert len(card_ids) == len(set(card_ids)), "a game must have one card, updated in place"
        # The subscription form offers the sportsbooks the feed quotes, each once.
        books = await page.locator("#known-books option").evaluate_all("os => os.map(o => o.value)")
        columns = await page.locator(".game").first.locator("th").all_inner_texts()
        assert books and len(books) == len(set(books)) and set(books) <= set(columns)

        # Arbitrage and predictions panels fill too; the debug panel shows live stats.
        await expect(page.locator("#prediction-list > li").first).to_be_visible(
            timeout=10 * SECONDS
        )
        await expect(page.locator("#arbitrage-list > li").first).to_be_visible(timeout=20 * SECONDS)
        await page.locator("#debug summary").click()
        await expect(page.locator("#debug-connection")).to_contain_text("alice")
        await expect(page.locator("#debug-frames li").first).to_be_visible(timeout=5 * SECONDS)
        await page.locator("#debug summary").click()
        await page.evaluate("window.scrollTo(0, 0)")

        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        await page.wait_for_timeout(1500)  # let a few prices flash for the picture
        await page.screenshot(path=str(SCREENSHOTS / "dashboard.png"))
        assert (SCREENSHOTS / "dashboard.png").stat().st_size > 50_000
        no_page_errors(log)


async def test_subscribing_and_unsubscribing_in_the_ui_changes_what_arrives(
    settings: Settings,
) -> None:
    async with live_system(settings, rate=120) as system, chromium() as browser:
        page, log = await open_page(browser)
        await start_with(page, f"{system.http}/", [])
        await expect(page.locator("#status")).to_have_attribute("data-state", "connected")
        await record_frames(page)
        await expect(page.locator("#subscriptions-empty")).to_be_visible()
        await page.wait_for_timeout(800)
        assert await frames_seen(page) == [], "nothing arrives without a subscription"

        # Odds for NBA only.
        await page.select_option("#sub-type", "odds_updates")
        await page.select_option("#sub-sport", "NBA")
        await page.click("#subscribe-button")
        chip = page.locator('.subscription[data-type="odds_updates"]')
        await expect(chip).to_have_attribute("data-confirmed", "true")
        await expect(chip).to_contain_text("sport=NBA")
        await expect(page.locator(".game").first).to_be_visible(timeout=10 * SECONDS)
        sports = await page.locator(".game").evaluate_all("cs => cs.map(c => c.dataset.sport)")
        assert set(sports) == {"NBA"}, sports

        # Add predictions for NHL: predictions arrive, all NHL; odds stay NBA.
        await page.select_option("#sub-type", "predictions")
        await page.select_option("#sub-sport", "NHL")
        await page.click("#subscribe-button")
        await expect(page.locator("#prediction-list > li").first).to_be_visible(
            timeout=10 * SECONDS
        )
        frames = await frames_seen(page)
        assert {(f["type"], f["sport"]) for f in frames} <= {
            ("odds_update", "NBA"),
            ("prediction_update", "NHL"),
        }, frames

        # Remove the odds subscription: the board clears and no odds arrive any more.
        await page.get_by_role("button", name=re.compile(r"Unsubscribe odds_updates")).click()
        await expect(chip).to_have_count(0)
        await expect(page.locator(".game")).to_have_count(0)
        await expect(page.locator("#odds-empty")).to_be_visible()
        await page.wait_for_timeout(300)  # frames already in flight may still land
        after = len(await frames_seen(page))
        await page.wait_for_timeout(1500)
        later = (await frames_seen(page))[after:]
        assert later, "predictions keep arriving"
        assert {f["type"] for f in later} == {"prediction_update"}, later

        # The choice survives a reload (saved in localStorage), and is resubscribed.
        saved = await page.evaluate("localStorage.getItem('oddstream.subscriptions')")
        assert json.loads(saved) == [{"type": "predictions", "filters": {"sport": "NHL"}}]
        no_page_errors(log)


async def test_gateway_restart_shows_reconnecting_then_resubscribes_without_reload(
    settings: Settings,
) -> None:
    async with live_system(settings, rate=80) as system, chromium() as browser:
        page, log = await open_page(browser)
        await start_with(page, f"{system.http}/", [{"type": "odds_updates", "filters": {}}])
        status = page.locator("#status")
        await expect(status).to_have_attribute("data-state", "connected")
        await expect(page.locator(".game").first).to_be_visible(timeout=10 * SECONDS)
        await page.evaluate("window.__sameDocument = true")

        await system.stop_gateway()
        await expect(status).to_have_attribute("data-state", "reconnecting", timeout=5 * SECONDS)
        await toast(page, "warning", "Disconnected")
        # While waiting, the indicator counts down to the next attempt.
        await expect(page.locator("#status-text")).to_have_text(
            re.compile(r"Reconnecting in \d+s"), timeout=10 * SECONDS
        )
        await expect(page.locator("#status-detail")).to_have_text(re.compile(r"attempt \d of 5"))

        await system.start_gateway()
        await expect(status).to_have_attribute("data-state", "connected", timeout=20 * SECONDS)
        await toast(page, "success", "Reconnected")
        await toast(page, "info", "Resubscribed")
        assert await page.evaluate("window.__sameDocument") is True, "no page reload"

        # Data flows again on the new connection: new odds frames after the restart.
        await record_frames(page)
        await wait_until(
            lambda: _has_frames(page), timeout=10, message="odds after the gateway came back"
        )
        stats = await page.evaluate("window.oddstream.manager.stats")
        assert stats["reconnects"] == 1
        no_page_errors(log)


async def _has_frames(page: Page) -> bool:
    return any(f["type"] == "odds_update" for f in await frames_seen(page))


async def test_bad_token_shows_a_clear_error_with_a_suggestion(settings: Settings) -> None:
    async with live_system(settings, rate=10) as system, chromium() as browser:
        page, log = await open_page(browser)
        await start_with(page, f"{system.http}/#token=not-a-real-token", None)
        await expect(page.locator("#status")).to_have_attribute("data-state", "closed")
        banner = page.locator("#banner")
        await expect(banner).to_be_visible()
        await expect(banner).to_contain_text("Sign-in failed")
        await expect(page.locator("#banner-suggestion")).to_contain_text(
            "Obtain a new token from your identity provider"
        )
        await expect(page.locator("#banner-action")).to_have_text("Change token")
        error_toast = page.locator(".toast[data-level=error]").first
        await expect(error_toast).to_contain_text("Sign-in failed")
        await expect(error_toast.locator(".toast-suggestion")).not_to_be_empty()

        # An expired token says so, and suggests refreshing it.
        await page.click("#banner-action")
        await page.fill("#token-input", system.token("alice", ttl=-120))
        await page.click("#token-connect")
        await expect(page.locator("#banner-suggestion")).to_contain_text(
            "Refresh the token", timeout=10 * SECONDS
        )
        assert await page.evaluate("window.oddstream.manager.lastError.code") == "token_expired"

        # A good token from the same dialog connects.
        await page.click("#banner-action")
        await page.fill("#token-input", system.token("alice"))
        await page.click("#token-connect")
        await expect(page.locator("#status")).to_have_attribute("data-state", "connected")
        await expect(banner).to_be_hidden()
        # The saved subscriptions, dropped while sign-in failed, are back and live.
        await expect(page.locator('.subscription[data-confirmed="true"]')).to_have_count(3)
        no_page_errors(log)


async def test_server_errors_show_the_gateways_suggestion(settings: Settings) -> None:
    async with live_system(settings, rate=10) as system, chromium() as browser:
        page, log = await open_page(browser)
        await start_with(page, f"{system.http}/", [])
        await expect(page.locator("#status")).to_have_attribute("data-state", "connected")
        # Portfolio needs a signed-in user: the gateway refuses, the page says what to do.
        await page.select_option("#sub-type", "portfolio")
        await page.click("#subscribe-button")
        await expect(page.locator("#form-error")).to_contain_text("token")
        refused = page.locator(".toast[data-level=error]", has_text="Subscription refused")
        await expect(refused).to_be_visible()
        await expect(refused.locator(".toast-suggestion")).to_contain_text("valid token")
        await expect(page.locator('.subscription[data-type="portfolio"]')).to_have_count(0)

        # A filter the client cannot check (too long) is refused by the gateway with its hint.
        await page.select_option("#sub-type", "predictions")
        await page.fill("#sub-player", "x" * 150)
        await page.click("#subscribe-button")
        await expect(page.locator("#form-error")).to_contain_text("filter")
        no_page_errors(log)


async def test_the_form_offers_exactly_the_filters_each_type_accepts(settings: Settings) -> None:
    """The form reads the allowed filters from the gateway's schema, not a copy of its own."""
    async with live_system(settings, rate=1) as system, chromium() as browser:
        page, log = await open_page(browser)
        await start_with(page, f"{system.http}/", [])
        await expect(page.locator("#status")).to_have_attribute("data-state", "connected")
        for type_, allowed in ALLOWED_FILTERS.items():
            await page.select_option("#sub-type", type_.value)
            shown = await page.locator("[data-filter]:visible").evaluate_all(
                "labels => labels.map(l => l.dataset.filter)"
            )
            assert sorted(shown) == sorted(allowed), type_
        no_page_errors(log)


async def test_a_redis_outage_is_shown_and_live_data_resumes(
    settings: Settings, private_redis: EmbeddedRedis
) -> None:
    own = settings.model_copy(update={"redis_url": private_redis.url})
    async with live_system(own, rate=60) as system, chromium() as browser:
        page, log = await open_page(browser)
        await start_with(page, f"{system.http}/", [{"type": "odds_updates", "filters": {}}])
        await expect(page.locator("#status")).to_have_attribute("data-state", "connected")
        await expect(page.locator(".game").first).to_be_visible(timeout=10 * SECONDS)

        private_redis.kill()
        paused = page.locator(".toast[data-level=warning]", has_text="Live updates paused")
        await expect(paused).to_be_visible(timeout=15 * SECONDS)
        await expect(paused.locator(".toast-suggestion")).to_contain_text("No action needed")
        # The WebSocket itself stays up: no reconnect, the indicator stays connected.
        await expect(page.locator("#status")).to_have_attribute("data-state", "connected")

        private_redis.start()
        resumed = page.locator(".toast[data-level=success]", has_text="Live updates resumed")
        await expect(resumed).to_be_visible(timeout=20 * SECONDS)
        # The subscription was re-registered by the gateway, so odds flow again.
        await record_frames(page)
        await wait_until(
            lambda: _has_frames(page), timeout=20, message="odds after Redis came back"
        )
        assert (await page.evaluate("window.oddstream.manager.stats"))["reconnects"] == 0
        no_page_errors(log)


# --- resume and snapshots ------------------------------------------------------------------------


async def test_a_gateway_restart_shows_that_the_missed_updates_were_delivered(
    settings: Settings,
) -> None:
    async with live_system(settings, rate=80) as system, chromium() as browser:
        page, log = await open_page(browser)
        await start_with(page, f"{system.http}/", [{"type": "odds_updates", "filters": {}}])
        status = page.locator("#status")
        await expect(status).to_have_attribute("data-state", "connected")
        await expect(page.locator(".game").first).to_be_visible(timeout=10 * SECONDS)

        await system.stop_gateway()  # drains: the page reconnects with its positions
        await expect(status).to_have_attribute("data-state", "reconnecting", timeout=5 * SECONDS)
        await page.wait_for_timeout(1000)  # odds keep coming meanwhile
        await system.start_gateway()
        await expect(status).to_have_attribute("data-state", "connected", timeout=20 * SECONDS)
        resumed = page.locator(".toast[data-code=resumed] .toast-title")
        await expect(resumed).to_have_text(
            re.compile(r"^Resumed: [1-9][\d,]* missed updates? delivered$"), timeout=5 * SECONDS
        )
        await expect(page.locator(".toast[data-code=resumed]")).to_contain_text("Nothing was lost")
        assert await page.locator(".toast[data-code=resynced]").count() == 0
        shown = int(re.sub(r"\D", "", await resumed.inner_text()))
        stats = await page.evaluate("window.oddstream.manager.stats")
        assert stats["resumes"] == 1 and stats["resyncs"] == 0 and stats["reconnects"] == 1
        sub = await page.evaluate("window.oddstream.manager.subscriptionList()[0]")
        assert sub["recovered"] is True and sub["position"]
        assert shown > 0
        no_page_errors(log)


async def test_a_resume_past_the_window_shows_resynced_and_reloads_the_board(
    settings: Settings,
) -> None:
    short = settings.model_copy(update={"history_seconds": 0.5})  # rooms forget fast
    async with live_system(short, rate=80) as system, chromium() as browser:
        page, log = await open_page(browser)
        await start_with(page, f"{system.http}/", [{"type": "odds_updates", "filters": {}}])
        status = page.locator("#status")
        await expect(status).to_have_attribute("data-state", "connected")
        await expect(page.locator(".game").first).to_be_visible(timeout=10 * SECONDS)
        # A live frame's position, not the snapshot's of a room that was still empty
        # ("0-<ms>", which names no entry): the resume below must replay what it missed.
        await page.wait_for_function(
            """() => [...window.oddstream.manager.subscriptions.values()]
                .every((sub) => sub.position && !/:0-\\d+$/.test(sub.position))""",
            timeout=10 * SECONDS,
        )
        await page.evaluate(
            """() => window.oddstream.manager.on("snapshot", ({frame}) => {
                window.__resync = {events: frame.data.events.length,
                                   cards: document.querySelectorAll(".game").length};
            })"""
        )

        await system.stop_gateway()
        await expect(status).to_have_attribute("data-state", "reconnecting", timeout=5 * SECONDS)
        await page.wait_for_timeout(2000)  # four resume windows
        await system.start_gateway()
        await expect(status).to_have_attribute("data-state", "connected", timeout=20 * SECONDS)
        resynced = page.locator(".toast[data-code=resynced]")
        await expect(resynced.locator(".toast-title")).to_have_text(
            "Resynced: live state reloaded", timeout=5 * SECONDS
        )
        await expect(resynced).to_contain_text("showing the latest values instead")
        assert await page.locator(".toast[data-code=resumed]").count() == 0
        # The board was reloaded from the snapshot that followed.
        after = await page.evaluate("window.__resync")
        assert after["events"] > 0 and after["cards"] > 0
        stats = await page.evaluate("window.oddstream.manager.stats")
        assert stats["resyncs"] == 1 and stats["resumes"] == 0
        no_page_errors(log)


async def test_a_new_odds_subscription_fills_the_board_from_its_snapshot_first(
    settings: Settings,
) -> None:
    async with live_system(settings, rate=80) as system, chromium() as browser:
        page, log = await open_page(browser)
        await start_with(page, f"{system.http}/", [])
        await expect(page.locator("#status")).to_have_attribute("data-state", "connected")
        await page.wait_for_timeout(1500)  # the feed runs: the workers keep the latest values
        await page.evaluate(
            """() => {
                window.__seen = [];
                const m = window.oddstream.manager;
                m.on("snapshot", ({frame}) => window.__seen.push({kind: "snapshot",
                    events: frame.data.events.length,
                    cards: document.querySelectorAll(".game").length,
                    priced: document.querySelectorAll(".price .value").length}));
                m.on("message", (f) => {
                    if (f.type === "odds_update") window.__seen.push({kind: "live"});
                });
            }"""
        )
        await page.select_option("#sub-type", "odds_updates")
        await page.select_option("#sub-sport", "NBA")
        await page.click("#subscribe-button")
        await expect(page.locator(".game").first).to_be_visible(timeout=10 * SECONDS)

        async def some_live() -> bool:
            seen = await page.evaluate("window.__seen")
            return any(s["kind"] == "live" for s in seen)

        await wait_until(some_live, timeout=10, message="live odds after the snapshot")
        seen = await page.evaluate("window.__seen")
        first = seen[0]
        assert first["kind"] == "snapshot", seen[:3]  # before any live update
        assert first["events"] > 0 and first["cards"] > 0 and first["priced"] > 0
        assert await page.locator("#odds-board").get_attribute("data-snapshot") == str(
            first["events"]
        )
        sports = await page.locator(".game").evaluate_all("cs => cs.map(c => c.dataset.sport)")
        assert set(sports) == {"NBA"}, sports
        no_page_errors(log)


async def test_an_arbitrage_opportunity_is_one_entry_updated_in_place_then_closed(
    settings: Settings,
) -> None:
    """Arbitrage events of one opportunity (`arbitrage_id`) replace each other in the list:
    an update shows the new profit in place of the old entry, a close greys it out."""
    async with live_system(settings, rate=5) as system, chromium() as browser:
        page, log = await open_page(browser)
        await start_with(page, f"{system.http}/", [])
        await expect(page.locator("#status")).to_have_attribute("data-state", "connected")
        await page.select_option("#sub-type", "arbitrage")
        await page.fill("#sub-game", "ARB-T1")
        await page.click("#subscribe-button")
        await expect(page.locator("#subscription-list li").first).to_be_visible()
        redis = create_redis(system.settings.effective_redis_url)
        ingester = Ingester(redis, Keys.of(system.settings))
        base = {"kind": "arbitrage", "sport": "NBA", "game_id": "ARB-T1", "market": "moneyline",
                "arbitrage_id": "ARB-T1|moneyline", "sportsbooks": ["FanDuel", "BetMGM"],
                "home_team": "Home", "away_team": "Away"}  # fmt: skip
        entries = page.locator('#arbitrage-list > li[data-arbitrage="ARB-T1|moneyline"]')
        try:
            await ingester.publish(parse_event({**base, "status": "open", "profit_pct": 2.0}))
            await expect(entries).to_have_count(1, timeout=10 * SECONDS)
            await expect(entries.locator(".profit")).to_have_text("2.00%")
            await ingester.publish(parse_event({**base, "status": "updated", "profit_pct": 2.5}))
            await expect(entries.locator(".profit")).to_have_text("2.50%", timeout=10 * SECONDS)
            await expect(entries).to_have_count(1)
            await ingester.publish(parse_event({**base, "status": "closed", "profit_pct": 2.5}))
            await expect(entries).to_have_class(re.compile(r"\bclosed\b"), timeout=10 * SECONDS)
            await expect(entries).to_have_count(1)
        finally:
            await redis.aclose()
        no_page_errors(log)
