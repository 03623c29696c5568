/** Helpers for tests against the real gateway started by globalSetup. */

import { createHmac, randomBytes } from "node:crypto";
import { afterEach, inject } from "vitest";
import { WebSocketManager } from "@oddstream/client";
import { createWebSocketStore, type StoreConfig, type WebSocketStoreApi } from "../src/index.js";

export const gateway = () => inject("gateway");

export interface RoomRow {
  room: string;
  subscription_type: string;
  filters: Record<string, unknown>;
  subscribers: number;
  gateways: Record<string, number>;
}

async function admin<T>(path: string): Promise<T> {
  const { http, admin: token } = gateway();
  const response = await fetch(`${http}${path}`, { headers: { Authorization: `Bearer ${token}` } });
  if (!response.ok) throw new Error(`GET ${path}: HTTP ${response.status}`);
  return (await response.json()) as T;
}

/** Every room in the cluster (GET /ws/v2/rooms, admin). */
export async function rooms(): Promise<RoomRow[]> {
  return (await admin<{ rooms: RoomRow[] }>("/ws/v2/rooms")).rooms;
}

/** The room with this id, or undefined when no gateway holds it. */
export async function room(id: string | null | undefined): Promise<RoomRow | undefined> {
  if (!id) return undefined;
  return (await rooms()).find((r) => r.room === id);
}

/** Subscribers the cluster counts in this room: 0 when released (whether the registry drops
 * the room or keeps it listed with no subscriber). */
export async function subscribers(id: string | null | undefined): Promise<number> {
  return (await room(id))?.subscribers ?? 0;
}

/** A unique game id, so a test's room is its own. */
export function uniqueGame(label = "t"): string {
  return `${label}-${randomBytes(5).toString("hex")}`;
}

/** An HS256 token the test gateway accepts (it was started with this secret). */
export function signToken(sub: string, claims: Record<string, unknown> = {}): string {
  const enc = (v: object | string) =>
    Buffer.from(typeof v === "string" ? v : JSON.stringify(v)).toString("base64url");
  const now = Math.floor(Date.now() / 1000);
  const head = enc({ alg: "HS256", typ: "JWT" });
  const body = enc({ sub, iat: now, exp: now + 3600, jti: randomBytes(6).toString("hex"), ...claims });
  const sig = createHmac("sha256", gateway().secret).update(`${head}.${body}`).digest("base64url");
  return `${head}.${body}.${sig}`;
}

/** Poll `check` until it returns a truthy value or `timeout` ms pass (then throw its last). */
export async function eventually<T>(
  check: () => T | Promise<T>,
  { timeout = 10_000, interval = 50, what = "condition" } = {},
): Promise<NonNullable<Awaited<T>>> {
  const deadline = Date.now() + timeout;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value) return value as NonNullable<Awaited<T>>;
      last = value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) {
      throw new Error(`${what} not met in ${timeout} ms (last: ${last instanceof Error ? last.message : JSON.stringify(last)})`);
    }
    await new Promise((r) => setTimeout(r, interval));
  }
}

const stores: WebSocketStoreApi[] = [];

/** A store on a fresh client pointed at the test gateway; destroyed after the test. */
export function newStore(config: StoreConfig = {}): WebSocketStoreApi {
  const manager = new WebSocketManager({ base_url: gateway().ws });
  const store = createWebSocketStore({ manager, config });
  stores.push(store);
  return store;
}

afterEach(() => {
  for (const store of stores.splice(0)) store.getState().destroy();
});

/** WebSockets opened so far in this process (counted by wrapping the global constructor). */
export function countSockets(): { readonly opened: number; restore(): void } {
  const Original = globalThis.WebSocket;
  let opened = 0;
  class Counting extends (Original as unknown as { new (url: string, protocols?: string | string[]): WebSocket }) {
    constructor(url: string, protocols?: string | string[]) {
      super(url, protocols);
      opened += 1;
    }
  }
  (globalThis as { WebSocket: unknown }).WebSocket = Counting;
  return {
    get opened() {
      return opened;
    },
    restore() {
      (globalThis as { WebSocket: unknown }).WebSocket = Original;
    },
  };
}
