"""The dashboard's analytics view in a real Chromium, against a real gateway, worker and Redis.

Clients subscribe to games, resume and close; the view must ask for admin credentials, then
draw its uPlot charts from `GET /ws/v2/analytics` under the page's strict CSP, with the figures
the endpoint gives. It writes `analytics.png` to `tests.browser.SCREENSHOTS` (the README's
picture when that is `tests/screenshots`).
"""

from __future__ import annotations

import json
from typing import Any

from playwright.async_api import Page, expect

from oddstream.shared.settings import Settings
from tests.browser import SCREENSHOTS, chromium, live_system, open_page
from tests.harness import ADMIN_TOKEN, Client, wait_until

SECONDS = 1000  # Playwright timeouts are in ms
WATCHED = {"MLB-2026-001": 3, "NBA-2026-002": 2, "NHL-2026-001": 1}


async def rollup_on_page(page: Page) -> dict[str, Any]:
    """The rollup the view drew last (the view keeps it as `last`)."""
    body: dict[str, Any] = json.loads(
        await page.evaluate("JSON.stringify(window.oddstream.analytics.last)")
    )
    return body


async def inked_pixels(page: Page, chart: str) -> int:
    """Pixels of the chart's canvas that are not blank: its axes, grid and lines."""
    count: int = await page.evaluate(
        """(chart) => {
            const canvas = document.querySelector(`[data-chart="${chart}"] canvas`);
            const context = canvas.getContext("2d");
            const { data } = context.getImageData(0, 0, canvas.width, canvas.height);
            let inked = 0;
            for (let i = 3; i < data.length; i += 4) if (data[i] > 0) inked++;
            return inked;
        }""",
        chart,
    )
    return count


async def test_analytics_view_draws_the_clusters_usage(settings: Settings) -> None:
    counted = settings.model_copy(update={"analytics_flush_interval": 0.5})
    async with live_system(counted, rate=60) as system, chromium() as browser:
        url = f"ws://127.0.0.1:{system.port}/ws/v2/connect"
        watchers: list[Client] = []
        for game, n in WATCHED.items():
            for _ in range(n):
                client = await Client.connect(url)
                await client.subscribe("odds_updates", game_id=game)
                watchers.append(client)
        # A reconnect that resumes, and a client that leaves with its own close code.
        first = watchers[0]
        await first.next_of("odds_update", timeout=15)
        room = first.of("subscription_confirmed")[0]["data"]["room"]
        position = first.of("odds_update")[-1]["positions"][room]
        back = await Client.connect(f"{url}?reconnect=1")
        resumed = await back.request(
            {"type": "subscribe", "subscription_type": "odds_updates",
             "filters": {"game_id": "MLB-2026-001"}, "position": position},
            "subscription_confirmed",
        )  # fmt: skip
        assert resumed["data"]["recovered"] is True
        leaver = await Client.connect(url)
        await leaver.ws.close(code=4000)
        await leaver.close()

        page, log = await open_page(browser, height=1160)
        await page.goto(f"{system.http}/#view=analytics")  # no token: the view asks for one
        auth = page.locator("#analytics-auth")
        await expect(auth).to_be_visible(timeout=10 * SECONDS)
        await expect(page.locator("#analytics-auth-message")).to_contain_text("admin token")
        await page.fill("#analytics-admin-token", ADMIN_TOKEN)
        await page.click("#analytics-auth button[type=submit]")
        await expect(auth).to_be_hidden(timeout=10 * SECONDS)
        await expect(page.locator("#analytics-view")).to_have_attribute("data-loaded", "true")
        assert await page.evaluate("sessionStorage.getItem('oddstream.admin')") == ADMIN_TOKEN
        assert await page.locator("#live-view").is_hidden()

        async def drawn_with_data() -> bool:
            await page.click("#analytics-refresh")
            await page.wait_for_timeout(300)
            body = await rollup_on_page(page)
            window = body["window"]
            return bool(
                window["latency_ms"]["count"] > 0
                and window["resumes"]["recovered"] >= 1
                and window["closes"].get("4000") == 1
                and [g["game_id"] for g in window["games"][:3]] == list(WATCHED)
            )

        await wait_until(drawn_with_data, timeout=20, interval=0.5, message="analytics data")
        body = await rollup_on_page(page)
        window = body["window"]

        # Six uPlot charts, each a canvas with ink on it and a legend naming its series.
        charts = page.locator("figure.chart")
        await expect(charts).to_have_count(6)
        await expect(page.locator("figure.chart canvas")).to_have_count(6)
        for chart in ("connections", "subscriptions", "messages", "latency", "resumes", "slow"):
            assert await inked_pixels(page, chart) > 2000, chart
        legend = page.locator('[data-chart="messages"] .u-legend')
        await expect(legend).to_contain_text("odds_update")
        await expect(page.locator('[data-chart="latency"] .u-legend')).to_contain_text("p99")
        await expect(page.locator('[data-chart="resumes"] .u-legend')).to_contain_text("close 4000")
        assert int(await page.locator('[data-chart="latency"]').get_attribute("data-points") or 0)
        # Until hovered, a legend shows the latest minute's values.
        latest = body["series"][-1]["connections"]
        legend_values = await page.locator('[data-chart="connections"] tr.u-series').evaluate_all(
            "rows => Object.fromEntries(rows.map(r => [r.querySelector('.u-label').textContent,"
            " r.querySelector('.u-value').textContent]))"
        )
        assert legend_values["open"] == str(latest["open"]), (legend_values, latest)
        assert legend_values["opened"] == str(latest["opened"]), (legend_values, latest)

        # The tiles and tables say what the endpoint said.
        peak = page.locator('[data-figure="peak-connections"] .tile-value')
        await expect(peak).to_have_text(f"{window['connections']['peak']:,}")
        assert window["connections"]["peak"] >= len(watchers) + 1  # + the resumed client
        p99 = window["latency_ms"]["p99"]
        await expect(page.locator('[data-figure="latency-p99"] .tile-value')).to_have_text(
            f"{p99:,} ms" if p99 != int(p99) else f"{int(p99):,} ms"
        )
        games = await page.locator("#analytics-games li").evaluate_all(
            "items => items.map(li => [li.dataset.game, li.querySelector('.count').textContent])"
        )
        # MLB-2026-001 has the resumed client too.
        expected = [[game, str(n + (game == "MLB-2026-001"))] for game, n in WATCHED.items()]
        assert games[:3] == expected
        closes = page.locator("#analytics-closes tr", has_text="4000")
        await expect(closes).to_contain_text("The client's own code (advice: reconnect now)")
        filters = page.locator("#analytics-filters tr", has_text="game_id")
        await expect(filters).to_be_visible()

        # Back to the live view and again: the tabs switch, nothing breaks.
        await page.click("#view-live")
        await expect(page.locator("#live-view")).to_be_visible()
        await expect(page.locator("#analytics-view")).to_be_hidden()
        await page.click("#view-analytics")
        await expect(page.locator("#analytics-view")).to_be_visible()
        await expect(page.locator("#analytics-auth")).to_be_hidden()

        # A shorter window: 15 minutes, fetched again.
        await page.select_option("#analytics-minutes", "15")
        await wait_until(
            lambda: page.evaluate("window.oddstream.analytics.last.series.length === 15"),
            message="the 15-minute window",
        )
        await expect(page.locator("#analytics-summary")).to_contain_text("15 minutes")
        p50_legend = page.locator('[data-chart="latency"] tr.u-series .u-value').first
        await expect(p50_legend).not_to_have_text("--")

        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        for close in await page.locator(".toast-close").all():
            await close.click()
        await page.evaluate("window.scrollTo(0, 0)")
        await page.screenshot(path=str(SCREENSHOTS / "analytics.png"))
        assert (SCREENSHOTS / "analytics.png").stat().st_size > 50_000
        assert log.errors == [], log.errors
        refused = [line for line in log.console if "Content Security Policy" in line]
        assert refused == [], refused
        for client in [*watchers, back]:
            await client.close()
