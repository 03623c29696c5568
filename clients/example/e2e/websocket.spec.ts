/**
 * The seed's websocket.spec.ts: the BUILT example app (dist/, or EXAMPLE_DIST for the packed
 * packages' app, see clients/react/scripts/pack-check.sh) in Debian's Chromium, against a real
 * `oddstream dev` started here on a fixed port, so it can be stopped and started again.
 */

import { randomBytes } from "node:crypto";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { expect, test, type Page } from "@playwright/test";
import { freePort, rooms, serveStatic, startDev, type RunningDev } from "./system.js";

const HERE = dirname(fileURLToPath(import.meta.url));
const DIST = process.env["EXAMPLE_DIST"] ?? resolve(HERE, "..", "dist");
const SCREENSHOT = resolve(HERE, "..", "screenshot.png");
const TOKEN_HINT = "Obtain a new token from your identity provider and reconnect.";

const secret = randomBytes(32).toString("hex");
const admin = randomBytes(16).toString("hex");
let port = 0;
let dev: RunningDev;
let site: { url: string; close(): Promise<void> };

test.describe.configure({ mode: "serial" });

/** The system, allowing the page's origin (the static server's, not the gateway's own). */
function startSystem(): Promise<RunningDev> {
  return startDev({ port, rate: 150, secret, admin, env: { ODDSTREAM_ALLOWED_ORIGINS: site.url } });
}

test.beforeAll(async () => {
  port = await freePort();
  site = await serveStatic(DIST);
  dev = await startSystem();
});

test.afterAll(async () => {
  await dev?.stop();
  await site?.close();
});

function pageUrl(token: string): string {
  return `${site.url}/#gateway=${encodeURIComponent(dev.ws)}&token=${encodeURIComponent(token)}`;
}

async function prices(page: Page): Promise<string> {
  return (await page.getByTestId("price").allTextContents()).join(" ");
}

async function received(page: Page): Promise<number> {
  return Number(await page.getByTestId("odds-board").getAttribute("data-received"));
}

/** The rooms someone is subscribed to (a released room may stay listed with 0 subscribers). */
async function live() {
  return (await rooms(dev)).filter((r) => r.subscribers > 0);
}

let page: Page;

test("@smoke connects and shows live odds", async ({ browser }) => {
  page = await browser.newPage();
  const errors: string[] = [];
  page.on("pageerror", (e) => errors.push(e.message));
  await page.goto(pageUrl(dev.token));
  const status = page.getByTestId("connection-status");
  await expect(status).toHaveAttribute("data-state", "connected");
  await expect(status).toContainText("demo");
  await expect.poll(() => page.getByTestId("odds-cell").count()).toBeGreaterThan(10);
  await expect(page.getByTestId("price").first()).toHaveText(/^[+-]\d+$/);
  // Live: the prices on the page change by themselves.
  const before = await prices(page);
  await expect.poll(() => prices(page), { timeout: 20_000 }).not.toBe(before);
  await expect(page.getByTestId("game").first()).toContainText("@");
  expect(errors).toEqual([]);
  if (!process.env["EXAMPLE_DIST"]) {
    // The README's screenshot: live odds, a pick on the slip, predictions and arbitrage.
    await page.getByTestId("price").nth(2).click();
    await expect(page.getByTestId("bet-slip")).toContainText("wins");
    await expect(page.getByTestId("predictions")).toContainText("projection", { timeout: 30_000 });
    await expect(page.getByTestId("arbitrage").locator("li").first()).toBeVisible({ timeout: 45_000 });
    await expect.poll(() => page.getByTestId("odds-cell").count(), { timeout: 30_000 }).toBeGreaterThan(30);
    await page.screenshot({ path: SCREENSHOT, fullPage: false });
  }
});

test("unmounting a component releases its subscription on the server", async () => {
  const arbitrageRooms = async () =>
    (await live()).filter((r) => r.subscription_type === "arbitrage").map((r) => r.subscribers);
  await expect.poll(arbitrageRooms).toEqual([1]);
  const odds = (await live()).filter((r) => r.subscription_type === "odds_updates");
  expect(odds.map((r) => [r.filters, r.subscribers])).toEqual([[{ sport: ["MLB"] }, 1]]);

  await page.getByTestId("toggle-arbitrage").uncheck();
  await expect(page.getByTestId("arbitrage")).toHaveCount(0);
  await expect.poll(arbitrageRooms).toEqual([]);
  // the rest of the page keeps its subscriptions
  expect((await live()).filter((r) => r.subscription_type === "odds_updates")).toHaveLength(1);

  await page.getByTestId("toggle-arbitrage").check();
  await expect.poll(arbitrageRooms).toEqual([1]);

  // Switching sport releases the MLB rooms and takes the NBA ones.
  await page.getByRole("button", { name: "NBA" }).click();
  await expect
    .poll(async () => (await live()).map((r) => `${r.subscription_type}:${JSON.stringify(r.filters["sport"])}`).sort())
    .toEqual(['arbitrage:["NBA"]', 'odds_updates:["NBA"]', 'predictions:["NBA"]']);
  await page.getByRole("button", { name: "MLB" }).click();
  await expect.poll(async () => (await live()).length).toBe(3);
});

test("a gateway restart shows reconnecting and a toast, then recovers without a reload", async () => {
  await page.evaluate(() => ((window as unknown as { marker: number }).marker = 42));
  const status = page.getByTestId("connection-status");
  await expect(status).toHaveAttribute("data-state", "connected");

  await dev.stop();
  await expect(status).toHaveAttribute("data-state", "reconnecting", { timeout: 15_000 });
  await expect(status).toContainText(/Reconnecting/);
  await expect(page.getByTestId("toast").filter({ hasText: "Disconnected" }).first()).toBeVisible();

  dev = await startSystem();
  await expect(status).toHaveAttribute("data-state", "connected", { timeout: 45_000 });
  await expect(page.getByTestId("toast").filter({ hasText: "Reconnected" }).first()).toBeVisible();
  // The new system's Redis started empty: the positions the page held are unknown there, so
  // its subscriptions resync (the state reloaded from snapshots) and a toast says so.
  await expect(page.getByTestId("toast").filter({ hasText: "Resynced: live state reloaded" }).first()).toBeVisible();
  await expect(page.getByTestId("resumes")).toHaveText(/^\d+ \/ [1-9]\d*$/);
  // Same page (no reload), its subscriptions back on the new system, data flowing again.
  expect(await page.evaluate(() => (window as unknown as { marker?: number }).marker)).toBe(42);
  await expect.poll(async () => (await live()).map((r) => r.subscription_type).sort()).toEqual([
    "arbitrage",
    "odds_updates",
    "predictions",
  ]);
  const count = await received(page);
  await expect.poll(() => received(page)).toBeGreaterThan(count);
  await page.close();
});

test("a bad token shows the gateway's suggestion", async ({ browser }) => {
  const bad = await browser.newPage();
  await bad.goto(pageUrl("not-a-valid-token"));
  const status = bad.getByTestId("connection-status");
  await expect(status).toHaveAttribute("data-state", "closed");
  await expect(status).toContainText(TOKEN_HINT);
  const toast = bad.getByRole("alert").filter({ hasText: "Sign-in failed" });
  await expect(toast).toBeVisible();
  await expect(toast.getByTestId("toast-suggestion")).toHaveText(TOKEN_HINT);
  await bad.close();
});
