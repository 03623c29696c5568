// @ts-check
/**
 * Renders per second of a page showing 200 live odds cells under a 1,000 updates/s feed, with
 * and without the store's batching. A script, not a test:
 *
 *   npm run bench                      (in clients/react; after `npm ci`)
 *   node bench/renders.mjs --rate 1000 --seconds 10
 *
 * It starts `oddstream dev` (with its demo feed slowed to 1 event/s on other games), builds
 * bench/ (React's production build of the package's source), serves it, and runs
 * bench/feed.py: odds for 40 games x 5 sportsbooks, spread evenly at --rate through the real
 * ingest path, worker and gateway. For each mode a fresh Debian Chromium page loads, waits for
 * data, then counts for --seconds: updates received, commits of the board (renders), renders
 * of cells, and animation frames the page managed. Prints a table (and --json for machines).
 */

import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:http";
import { cpus, tmpdir } from "node:os";
import { dirname, extname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import react from "@vitejs/plugin-react";
import { chromium } from "playwright-core";
import { build } from "vite";
import { devCommand, startDev } from "../scripts/oddstreamDev.mjs";

const HERE = dirname(fileURLToPath(import.meta.url));
const { values: opts } = parseArgs({
  options: {
    rate: { type: "string", default: "1000" },
    seconds: { type: "string", default: "10" },
    json: { type: "boolean", default: false },
  },
});
const RATE = Number(opts.rate);
const SECONDS = Number(opts.seconds);

/** The Python that runs `oddstream`, for the feeder (same environment, same packages). */
function python() {
  const command = devCommand();
  const script = command[command.length - 1] ?? "oddstream";
  const prefix = command.slice(0, -1); // e.g. ["env", "PYTHONPATH=..."]
  if (script.includes("/")) return [...prefix, join(dirname(script), "python")];
  return [...prefix, "python3"];
}

/** @param {string} root */
function serve(root) {
  const types = /** @type {Record<string, string>} */ ({
    ".html": "text/html",
    ".js": "text/javascript",
    ".css": "text/css",
  });
  const server = createServer((request, response) => {
    const path = new URL(request.url ?? "/", "http://x").pathname;
    const file = join(root, path === "/" ? "index.html" : path);
    try {
      const body = readFileSync(file);
      response.writeHead(200, { "Content-Type": types[extname(file)] ?? "application/octet-stream" });
      response.end(body);
    } catch {
      response.writeHead(404).end();
    }
  });
  return new Promise((done) =>
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      done({ server, url: `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}` });
    }),
  );
}

const out = mkdtempSync(join(tmpdir(), "oddstream-bench-"));
await build({
  root: HERE,
  base: "./",
  logLevel: "warn",
  mode: "production",
  plugins: [react()],
  build: { outDir: out, emptyOutDir: true },
});
const site = /** @type {{server: import("node:http").Server, url: string}} */ (await serve(out));
// The page is served from another origin than the gateway's: allow it (nothing else is).
const dev = await startDev({ rate: 1, env: { ODDSTREAM_ALLOWED_ORIGINS: site.url } });
const [py = "python3", ...pyArgs] = python();
const feeder = spawn(py, [...pyArgs, join(HERE, "feed.py"), "--rate", String(RATE), "--duration", "600"], {
  env: { ...process.env, REDIS_URL: dev.redis },
  stdio: ["ignore", "inherit", "inherit"],
});
const browser = await chromium.launch({
  executablePath: process.env["ODDSTREAM_CHROMIUM"] ?? "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run"],
});

/** @param {boolean} batch */
async function measure(batch) {
  const page = await browser.newPage();
  await page.goto(`${site.url}/?gateway=${encodeURIComponent(dev.ws)}&batch=${batch ? 1 : 0}`);
  await page.waitForFunction(() => Number(document.getElementById("meta")?.dataset["cells"]) >= 200, null, {
    timeout: 60_000,
  });
  await page.waitForTimeout(2000); // warm-up
  const cdp = await page.context().newCDPSession(page);
  await cdp.send("Performance.enable");
  /** Main-thread time spent in tasks so far, in s (Chrome's TaskDuration metric). */
  const busy = async () =>
    (await cdp.send("Performance.getMetrics")).metrics.find((m) => m.name === "TaskDuration")?.value ?? 0;
  /** @returns {Promise<{commits: number, cellRenders: number, frames: number, received: number, at: number, busy: number}>} */
  const sample = async () => ({
    ...(await page.evaluate(() => {
      const b = /** @type {any} */ (window).bench;
      return { ...b.counters, received: b.received(), at: performance.now() };
    })),
    busy: await busy(),
  });
  const start = await sample();
  await page.waitForTimeout(SECONDS * 1000);
  const end = await sample();
  await page.close();
  const s = (end.at - start.at) / 1000;
  return {
    batching: batch,
    updates_per_s: Math.round((end.received - start.received) / s),
    renders_per_s: Math.round((end.commits - start.commits) / s),
    cell_renders_per_s: Math.round((end.cellRenders - start.cellRenders) / s),
    frames_per_s: Math.round((end.frames - start.frames) / s),
    main_thread_busy_pct: Math.round((100 * (end.busy - start.busy)) / s),
    seconds: Math.round(s * 10) / 10,
  };
}

try {
  const results = [await measure(true), await measure(false)];
  const machine = `${cpus().length} x ${cpus()[0]?.model.trim() ?? "?"}, Node ${process.version}, Chromium ${browser.version()}`;
  if (opts.json) console.log(JSON.stringify({ rate: RATE, machine, results }, null, 2));
  console.log(`\n200 live odds cells, feed at ${RATE} updates/s, ${SECONDS} s per mode (${machine})`);
  console.log("| batching | updates/s received | renders/s (board commits) | cell renders/s | frames/s | main thread busy |");
  console.log("| --- | --- | --- | --- | --- | --- |");
  for (const r of results) {
    console.log(
      `| ${r.batching ? "on" : "off"} | ${r.updates_per_s} | ${r.renders_per_s} | ${r.cell_renders_per_s} | ${r.frames_per_s} | ${r.main_thread_busy_pct}% |`,
    );
  }
} finally {
  await browser.close();
  const fed = new Promise((r) => feeder.once("exit", r));
  feeder.kill("SIGTERM");
  await fed;
  site.server.close();
  await dev.stop();
  rmSync(out, { recursive: true, force: true });
}
