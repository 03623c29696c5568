import { defineConfig } from "@playwright/test";

// End-to-end tests of the built example app (dist/, or EXAMPLE_DIST) in Debian's Chromium,
// against a real `oddstream dev` each run starts itself. Playwright's own browser download is
// never used.
export default defineConfig({
  testDir: "e2e",
  timeout: 120_000,
  expect: { timeout: 20_000 },
  workers: 1,
  fullyParallel: false,
  retries: 0,
  reporter: [["list"]],
  outputDir: "test-results",
  use: {
    browserName: "chromium",
    headless: true,
    viewport: { width: 1360, height: 900 },
    launchOptions: {
      executablePath: process.env["ODDSTREAM_CHROMIUM"] ?? "/usr/bin/chromium",
      args: [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
      ],
    },
  },
});
