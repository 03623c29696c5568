/** Per-file setup: a real WebSocket for the client, and Testing Library's cleanup. */

import { cleanup } from "@testing-library/react";
import { afterEach } from "vitest";
import { WebSocket as NodeWebSocket } from "ws";

// Node 20 has no global WebSocket; `ws` is a real one (RFC 6455 over TCP) with the browser's
// interface (onmessage, onclose with code and reason, subprotocols), so the client runs as is.
(globalThis as { WebSocket: unknown }).WebSocket = NodeWebSocket;

afterEach(() => {
  cleanup();
});
