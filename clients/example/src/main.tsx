/**
 * Oddstream example: a small live betting page built only from the published API of
 * @oddstream/react and @oddstream/client.
 *
 * Where the gateway is, and the token, come from the URL fragment (never sent to a server):
 *   http://localhost:5173/#gateway=ws://127.0.0.1:8000&token=<jwt>
 * or from VITE_ODDSTREAM_GATEWAY at build time; else the page's own host.
 */

import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { useWebSocketStore } from "@oddstream/react";
import "@oddstream/react/styles.css";
import "./app.css";
import { App } from "./App.js";

const fragment = new URLSearchParams(window.location.hash.slice(1));
const gateway = fragment.get("gateway") ?? import.meta.env["VITE_ODDSTREAM_GATEWAY"] ?? null;

useWebSocketStore.getState().setConfig({
  base_url: gateway,
  // A betting page never gives up: back off 1, 2, 4, 8, 16, 30 s, then every 30 s.
  max_reconnect_attempts: null,
  reconnect_interval: 1000,
});

const token = fragment.get("token");
const sport = fragment.get("sport") ?? "MLB";

createRoot(document.getElementById("root") as HTMLElement).render(
  <StrictMode>
    <App token={token} initialSport={sport} />
  </StrictMode>,
);
