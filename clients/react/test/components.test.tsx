/**
 * The seed's components, rendered with Testing Library against the real gateway: status,
 * toasts with the gateway's suggestions, the subscription manager, the complete dashboard.
 */

import { act, fireEvent, render, screen, waitFor, within } from "@testing-library/react";
import type { ReactNode } from "react";
import { describe, expect, it } from "vitest";
import {
  LiveWebSocketDashboard,
  WebSocketConnectionStatus,
  WebSocketNotificationCenter,
  WebSocketProvider,
  WebSocketSubscriptionManager,
  useWebSocketConnection,
  type WebSocketStoreApi,
} from "../src/index.js";
import { eventually, gateway, newStore, subscribers, uniqueGame } from "./helpers.js";

function Connect({ token }: { token: string | null }) {
  useWebSocketConnection(token, true);
  return null;
}

function withStore(store: WebSocketStoreApi, children: ReactNode) {
  return <WebSocketProvider store={store}>{children}</WebSocketProvider>;
}

describe("WebSocketConnectionStatus", () => {
  it("shows the state, and with showDetails the gateway, user and counters", async () => {
    const store = newStore();
    render(
      withStore(
        store,
        <>
          <Connect token={gateway().token} />
          <WebSocketConnectionStatus showDetails />
        </>,
      ),
    );
    const status = screen.getByTestId("connection-status");
    await waitFor(() => expect(status.dataset["state"]).toBe("connected"), { timeout: 10_000 });
    expect(status.textContent).toMatch(/Connected/);
    const gatewayId = store.getState().identity?.gateway ?? "?";
    await waitFor(() => expect(status.textContent).toContain(gatewayId));
    expect(status.textContent).toContain("demo");
    await waitFor(() => expect(Number(within(status).getByTestId("messages-received").textContent)).toBeGreaterThan(0));
  });

  it("a refused token: disconnected, with the gateway's reason and suggestion, in the status and a toast", async () => {
    const store = newStore();
    render(
      withStore(
        store,
        <>
          <Connect token="not-a-token" />
          <WebSocketConnectionStatus />
          <WebSocketNotificationCenter />
        </>,
      ),
    );
    const status = screen.getByTestId("connection-status");
    await waitFor(() => expect(status.dataset["state"]).toBe("closed"), { timeout: 15_000 });
    const hint = "Obtain a new token from your identity provider and reconnect.";
    expect(status.textContent).toContain(hint);
    const toast = await screen.findByRole("alert");
    expect(toast.textContent).toMatch(/Sign-in failed/);
    expect(within(toast).getByTestId("toast-suggestion").textContent).toBe(hint);
    expect(within(status).getByRole("button", { name: "Reconnect now" })).toBeTruthy();
  });
});

describe("WebSocketNotificationCenter", () => {
  it("shows a toast per event; info toasts time out, any can be dismissed", async () => {
    const store = newStore();
    render(
      withStore(
        store,
        <>
          <Connect token={null} />
          <WebSocketNotificationCenter timeout={400} />
        </>,
      ),
    );
    const toast = await screen.findByText("Connected", {}, { timeout: 10_000 });
    expect(toast.closest("[data-level]")?.getAttribute("data-level")).toBe("success");
    await waitFor(() => expect(screen.queryByText("Connected")).toBeNull(), { timeout: 3000 });
    act(() => {
      store.getState().manager.dispatchEvent(new CustomEvent("notification", {
        detail: { id: 99, level: "error", title: "Boom", message: "m", suggestion: "do x", code: null, at: 0 },
      }));
    });
    const alert = await screen.findByRole("alert");
    expect(alert.textContent).toContain("do x");
    fireEvent.click(within(alert).getByRole("button", { name: "Dismiss" }));
    expect(screen.queryByRole("alert")).toBeNull();
  });
});

describe("WebSocketSubscriptionManager", () => {
  it("adds a subscription with the type's filters, shows it live, and removing it leaves the room", async () => {
    const store = newStore();
    render(
      withStore(
        store,
        <>
          <Connect token={null} />
          <WebSocketSubscriptionManager />
        </>,
      ),
    );
    const manager = screen.getByTestId("subscription-manager");
    fireEvent.change(within(manager).getByRole("combobox"), { target: { value: "predictions" } });
    // predictions accepts game_id, player and sport only
    expect(within(manager).queryByRole("textbox", { name: "sportsbook" })).toBeNull();
    const game = uniqueGame();
    fireEvent.change(within(manager).getByRole("textbox", { name: "game_id" }), { target: { value: game } });
    fireEvent.click(within(manager).getByRole("button", { name: "Subscribe" }));
    const row = await within(manager).findByTestId("chosen-subscription");
    await waitFor(() => expect(row.textContent).toContain("active"), { timeout: 10_000 });
    const id = await eventually(() => [...store.getState().subscriptions.values()][0]?.room ?? null);
    expect((await subscribers(id))).toBe(1);
    expect(within(manager).getAllByTestId("shared-subscription")).toHaveLength(1);
    fireEvent.click(within(row).getByRole("button", { name: "Remove" }));
    await eventually(async () => (await subscribers(id)) === 0, { what: "room released" });
    expect(within(manager).queryAllByTestId("shared-subscription")).toHaveLength(0);
  });

  it("a refused subscription shows the gateway's error and hint in its row", async () => {
    const store = newStore();
    render(
      withStore(
        store,
        <>
          <Connect token={null} />
          <WebSocketSubscriptionManager initial={[{ type: "arbitrage", filters: { min_profit: "5000" } }]} />
        </>,
      ),
    );
    const row = await screen.findByTestId("chosen-subscription");
    await waitFor(() => expect(row.textContent).toContain("error"), { timeout: 10_000 });
    expect(row.textContent).toMatch(/min_profit/);
    expect(row.textContent).toContain("Fix the filter named above");
  });
});

describe("LiveWebSocketDashboard", () => {
  it("the complete example: connects with the token and shows live odds, arbitrage and predictions", async () => {
    const store = newStore();
    render(withStore(store, <LiveWebSocketDashboard token={gateway().token} sport="MLB" />));
    await waitFor(() => expect(screen.getAllByTestId("odds-cell").length).toBeGreaterThan(5), { timeout: 15_000 });
    // Connected once every subscription of the welcome is confirmed: the odds room's snapshot
    // may render before the others' confirmations arrive.
    await waitFor(() => expect(screen.getByTestId("connection-status").dataset["state"]).toBe("connected"));
    const prices = screen.getAllByTestId("price").map((p) => p.textContent);
    expect(prices.some((p) => /^[+-]\d+$/.test(p ?? ""))).toBe(true);
    await waitFor(() => expect(screen.getByTestId("predictions").textContent).toMatch(/projection/), { timeout: 15_000 });
    const types = [...store.getState().subscriptions.values()].map((e) => e.type).sort();
    expect(types).toEqual(["arbitrage", "odds_updates", "predictions"]);
  });
});
