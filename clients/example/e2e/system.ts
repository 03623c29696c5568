/**
 * What the end-to-end tests run against: a real `oddstream dev` (embedded Redis, gateway,
 * worker, demo feed) that can be stopped and started again on the same port with the same
 * secrets (so the page's token stays valid), and a static file server for the built app.
 */

import { readFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import { createServer as createNetServer } from "node:net";
import { extname, join, normalize, resolve } from "node:path";
import { startDev, type RunningDev } from "../../react/scripts/oddstreamDev.mjs";

export type { RunningDev };
export { startDev };

/** A free TCP port on 127.0.0.1 (bound and released). */
export function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createNetServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => resolvePort(port));
    });
  });
}

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".json": "application/json",
};

/** Serve `root` (a built app) on a free port; resolves with its base URL and a closer. */
export async function serveStatic(root: string): Promise<{ url: string; close(): Promise<void> }> {
  const base = resolve(root);
  const server: Server = createServer(async (request, response) => {
    const path = decodeURIComponent(new URL(request.url ?? "/", "http://x").pathname);
    const file = normalize(join(base, path.endsWith("/") ? `${path}index.html` : path));
    if (!file.startsWith(base)) {
      response.writeHead(403).end();
      return;
    }
    try {
      const body = await readFile(file);
      response.writeHead(200, { "Content-Type": TYPES[extname(file)] ?? "application/octet-stream" });
      response.end(body);
    } catch {
      response.writeHead(404).end("not found");
    }
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

export interface RoomRow {
  room: string;
  subscription_type: string;
  filters: Record<string, unknown>;
  subscribers: number;
}

/** GET /ws/v2/rooms with the admin token. */
export async function rooms(dev: RunningDev): Promise<RoomRow[]> {
  const response = await fetch(`${dev.http}/ws/v2/rooms`, {
    headers: { Authorization: `Bearer ${dev.admin}` },
  });
  if (!response.ok) throw new Error(`rooms: HTTP ${response.status}`);
  return ((await response.json()) as { rooms: RoomRow[] }).rooms;
}
