// @ts-check
/**
 * Starts a real Oddstream system (`oddstream dev`: embedded Redis, a gateway, a worker and the
 * demo feed) as a subprocess, as the Python client's tests do, and reads its banner. Shared by
 * the Vitest global setup, the example's end-to-end tests and the benchmark (plain JavaScript,
 * so the benchmark runs under bare Node).
 *
 * The command: `ODDSTREAM_DEV_COMMAND` (split on spaces), else the repository's
 * `.ci-venv/bin/oddstream` (CI) or `.venv/bin/oddstream` (a developer's checkout), else
 * `oddstream` from PATH.
 */

import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/**
 * @typedef {object} DevSystem
 * @property {string} http e.g. http://127.0.0.1:41234
 * @property {string} ws e.g. ws://127.0.0.1:41234
 * @property {string} token the demo user's token (user "demo")
 * @property {string} admin the admin token for the management endpoints
 * @property {string} secret the JWT secret the system signs with (tests sign their own tokens)
 * @property {string} redis the embedded Redis's URL
 * @property {number} port
 */

/**
 * @typedef {DevSystem & {
 *   process: import("node:child_process").ChildProcess,
 *   stop: (grace?: number) => Promise<void>,
 * }} RunningDev
 * `stop`: SIGINT (a graceful stop: clients get 1001), then SIGKILL after `grace` ms.
 */

/**
 * @typedef {object} StartOptions
 * @property {number} [port] 0 (the default): a free port
 * @property {number} [rate] simulated events per second
 * @property {string} [secret] keep tokens valid across restarts: pass the same secret...
 * @property {string} [admin] ...and the same admin token
 * @property {Record<string, string>} [env] extra environment
 */

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");

/** @returns {string[]} the command that runs `oddstream` */
export function devCommand() {
  const given = process.env["ODDSTREAM_DEV_COMMAND"];
  if (given && given.trim()) return given.trim().split(/\s+/);
  for (const venv of [".ci-venv", ".venv"]) {
    const candidate = resolve(REPO, venv, "bin", "oddstream");
    if (existsSync(candidate)) return [candidate];
  }
  return ["oddstream"];
}

/**
 * Start `oddstream dev` and resolve once it printed its banner (60 s at most).
 * @param {StartOptions} [options]
 * @returns {Promise<RunningDev>}
 */
export function startDev(options = {}) {
  const [command = "oddstream", ...args] = devCommand();
  const secret = options.secret ?? randomBytes(32).toString("hex");
  const admin = options.admin ?? randomBytes(16).toString("hex");
  /** @type {NodeJS.ProcessEnv} */
  const env = {
    ...process.env,
    ODDSTREAM_PORT: String(options.port ?? 0),
    ODDSTREAM_LOG_LEVEL: "WARNING",
    PYTHONUNBUFFERED: "1",
    JWT_SECRET: secret,
    ODDSTREAM_ADMIN_TOKEN: admin,
    ODDSTREAM_SHUTDOWN_GRACE: "2",
    ...options.env,
  };
  delete env["REDIS_URL"]; // always the embedded Redis
  const child = spawn(command, [...args, "dev", "--rate", String(options.rate ?? 50)], {
    env,
    stdio: ["ignore", "ignore", "pipe"],
  });
  let banner = "";
  return new Promise((resolvePromise, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`oddstream dev printed no banner in 60 s:\n${banner}`));
    }, 60_000);
    child.once("error", (error) => {
      clearTimeout(timer);
      reject(new Error(`cannot run ${command}: ${error.message} (set ODDSTREAM_DEV_COMMAND)`));
    });
    /** @param {number | null} code */
    const onExit = (code) => {
      clearTimeout(timer);
      reject(new Error(`oddstream dev exited (${code}) before its banner:\n${banner}`));
    };
    child.once("exit", onExit);
    /** @param {Buffer} chunk */
    const onData = (chunk) => {
      banner += chunk.toString();
      if (!banner.includes("Press Ctrl-C to stop.")) return;
      child.stderr?.off("data", onData);
      child.stderr?.resume(); // keep draining the logs so the pipe never fills
      clearTimeout(timer);
      child.off("exit", onExit);
      const http = /Dashboard\s+(http:\/\/[^/\s]+)\//.exec(banner)?.[1];
      const token = /Dev token\s+\(.*?\)\s+(\S+)/.exec(banner)?.[1];
      const adminToken = /Admin token\s+\(.*?\)\s+(\S+)/.exec(banner)?.[1];
      const redis = /Redis\s+(redis:\/\/\S+)/.exec(banner)?.[1] ?? "";
      if (!http || !token || !adminToken) {
        child.kill("SIGKILL");
        reject(new Error(`no URL or token in the banner:\n${banner}`));
        return;
      }
      resolvePromise({
        http,
        ws: http.replace(/^http/, "ws"),
        token,
        admin: adminToken,
        secret,
        redis,
        port: Number(new URL(http).port),
        process: child,
        stop: (grace = 20_000) => stopProcess(child, grace),
      });
    };
    child.stderr?.on("data", onData);
  });
}

/**
 * @param {import("node:child_process").ChildProcess} child
 * @param {number} grace
 * @returns {Promise<void>}
 */
function stopProcess(child, grace) {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolvePromise) => {
    const kill = setTimeout(() => child.kill("SIGKILL"), grace);
    child.once("exit", () => {
      clearTimeout(kill);
      resolvePromise();
    });
    child.kill("SIGINT");
  });
}
