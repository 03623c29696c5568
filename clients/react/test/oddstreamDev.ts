/**
 * Starts a real Oddstream system (`oddstream dev`: embedded Redis, a gateway, a worker and the
 * demo feed) as a subprocess, as the Python client's tests do, and reads its banner.
 *
 * The command: `ODDSTREAM_DEV_COMMAND` (split on spaces), else the repository's
 * `.ci-venv/bin/oddstream` (CI) or `.venv/bin/oddstream` (a developer's checkout), else
 * `oddstream` from PATH.
 */

import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export interface DevSystem {
  /** e.g. http://127.0.0.1:41234 */
  http: string;
  /** e.g. ws://127.0.0.1:41234 */
  ws: string;
  /** The demo user's token (user "demo"). */
  token: string;
  /** The admin token for the management endpoints. */
  admin: string;
  /** The JWT secret the system signs with (tests sign tokens of their own). */
  secret: string;
  port: number;
}

export interface RunningDev extends DevSystem {
  process: ChildProcess;
  /** SIGINT (a graceful stop: clients get 1001), then SIGKILL after `grace` ms. */
  stop(grace?: number): Promise<void>;
}

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");

export function devCommand(): string[] {
  const given = process.env["ODDSTREAM_DEV_COMMAND"];
  if (given && given.trim()) return given.trim().split(/\s+/);
  for (const venv of [".ci-venv", ".venv"]) {
    const candidate = resolve(REPO, venv, "bin", "oddstream");
    if (existsSync(candidate)) return [candidate];
  }
  return ["oddstream"];
}

export interface StartOptions {
  /** 0 (the default): a free port. */
  port?: number;
  /** Simulated events per second. */
  rate?: number;
  /** Keep tokens valid across restarts by passing the same secret and admin token. */
  secret?: string;
  admin?: string;
  /** Extra environment. */
  env?: Record<string, string>;
}

/** Start `oddstream dev` and resolve once it printed its banner (60 s at most). */
export function startDev(options: StartOptions = {}): Promise<RunningDev> {
  const [command, ...args] = devCommand();
  const secret = options.secret ?? randomBytes(32).toString("hex");
  const admin = options.admin ?? randomBytes(16).toString("hex");
  const env: NodeJS.ProcessEnv = {
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
  const child = spawn(command as string, [...args, "dev", "--rate", String(options.rate ?? 50)], {
    env,
    stdio: ["ignore", "ignore", "pipe"],
  });
  let banner = "";
  return new Promise<RunningDev>((resolvePromise, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`oddstream dev printed no banner in 60 s:\n${banner}`));
    }, 60_000);
    child.once("error", (error) => {
      clearTimeout(timer);
      reject(new Error(`cannot run ${command}: ${error.message} (set ODDSTREAM_DEV_COMMAND)`));
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`oddstream dev exited (${code}) before its banner:\n${banner}`));
    });
    const onData = (chunk: Buffer): void => {
      banner += chunk.toString();
      if (!banner.includes("Press Ctrl-C to stop.")) return;
      child.stderr?.off("data", onData);
      child.stderr?.resume(); // keep draining the logs so the pipe never fills
      clearTimeout(timer);
      child.removeAllListeners("exit");
      const http = /Dashboard\s+(http:\/\/[^/\s]+)\//.exec(banner)?.[1];
      const token = /Dev token\s+\(.*?\)\s+(\S+)/.exec(banner)?.[1];
      const adminToken = /Admin token\s+\(.*?\)\s+(\S+)/.exec(banner)?.[1];
      if (!http || !token || !adminToken) {
        child.kill("SIGKILL");
        reject(new Error(`no URL or token in the banner:\n${banner}`));
        return;
      }
      const port = Number(new URL(http).port);
      resolvePromise({
        http,
        ws: http.replace(/^http/, "ws"),
        token,
        admin: adminToken,
        secret,
        port,
        process: child,
        stop: (grace = 20_000) => stopProcess(child, grace),
      });
    };
    child.stderr?.on("data", onData);
  });
}

function stopProcess(child: ChildProcess, grace: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise<void>((resolvePromise) => {
    const kill = setTimeout(() => child.kill("SIGKILL"), grace);
    child.once("exit", () => {
      clearTimeout(kill);
      resolvePromise();
    });
    child.kill("SIGINT");
  });
}
