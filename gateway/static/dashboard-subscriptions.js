// The subscription manager: the form that subscribes (offering the filters each type
// accepts, from the gateway's schema) and the list of subscriptions with their message counts
// and remove buttons; the choices are kept in localStorage.

import { ALLOWED_FILTERS } from "./contract.js";
import { $, el } from "./dashboard-dom.js";

const DEFAULT_SUBSCRIPTIONS = [
  { type: "odds_updates", filters: {} },
  { type: "arbitrage", filters: {} },
  { type: "predictions", filters: {} },
];
const SAVED_SUBSCRIPTIONS = "oddstream.subscriptions";

export const describeFilters = (filters) => {
  const parts = Object.entries(filters).map(([k, v]) => `${k}=${Array.isArray(v) ? v.join("|") : v}`);
  return parts.length ? parts.join("  ") : "all";
};

/** Which filters each subscription type accepts: the contract this page was built with, then
 * the schema of the gateway it talks to (which may be another version, see `#gateway=`). */
let filtersOfType = ALLOWED_FILTERS;

export async function loadAllowedFilters(baseUrl) {
  try {
    const response = await fetch(`${baseUrl.replace(/^ws/, "http")}/ws/v2/schema`);
    if (response.ok) filtersOfType = (await response.json()).allowed_filters ?? filtersOfType;
  } catch {
    // keep the contract's table
  }
}

function allowedFilters(type) {
  return new Set(filtersOfType[type] ?? ALLOWED_FILTERS[type] ?? []);
}

/** The form and list that add and remove subscriptions; choices are kept in localStorage. */
export class SubscriptionPanel {
  constructor(manager, toasts) {
    this.manager = manager;
    this.toasts = toasts;
    this.form = $("subscribe-form");
    this.list = $("subscription-list");
    this.error = $("form-error");
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.submit();
    });
    $("sub-type").addEventListener("change", () => this.showFilters());
    manager.on("subscriptions", () => this.render());
    manager.on("message", () => this.scheduleRender());
    this.showFilters();
    this.pending = false;
  }

  /** Only the filters the chosen type accepts are offered. */
  showFilters() {
    const allowed = allowedFilters($("sub-type").value);
    for (const label of this.form.querySelectorAll("[data-filter]")) {
      label.hidden = !allowed.has(label.dataset.filter);
    }
  }

  filtersFromForm() {
    const type = $("sub-type").value;
    const allowed = allowedFilters(type);
    const filters = {};
    for (const name of allowed) {
      const value = this.form.elements[name].value.trim();
      if (!value) continue;
      if (name === "min_profit") {
        const number = Number(value);
        if (!Number.isFinite(number) || number < 0) throw new Error("Min profit must be a number of 0 or more.");
        filters[name] = number;
      } else {
        filters[name] = value;
      }
    }
    return { type, filters };
  }

  async submit() {
    this.error.textContent = "";
    let wanted;
    try {
      wanted = this.filtersFromForm();
    } catch (error) {
      this.error.textContent = error.message;
      return;
    }
    const button = $("subscribe-button");
    button.disabled = true;
    try {
      await this.manager.subscribe(wanted.type, wanted.filters);
      this.toasts.show({ level: "success", title: "Subscribed", message: `${wanted.type} · ${describeFilters(wanted.filters)}` });
      this.save();
    } catch (error) {
      // The manager already raised a toast with the gateway's suggestion; say it here too.
      this.error.textContent = error.hint ? `${error.message} ${error.hint}` : error.message;
    } finally {
      button.disabled = false;
    }
  }

  async remove(sub) {
    try {
      await this.manager.unsubscribe(sub);
      this.toasts.show({ level: "info", title: "Unsubscribed", message: `${sub.type} · ${describeFilters(sub.filters)}` });
    } catch (error) {
      this.toasts.show({ level: "error", title: "Unsubscribe failed", message: error.message, suggestion: error.hint });
    }
    this.save();
  }

  save() {
    const saved = [...this.manager.subscriptions.values()].map(({ type, filters }) => ({ type, filters }));
    localStorage.setItem(SAVED_SUBSCRIPTIONS, JSON.stringify(saved));
  }

  saved() {
    try {
      const raw = localStorage.getItem(SAVED_SUBSCRIPTIONS);
      return raw === null ? DEFAULT_SUBSCRIPTIONS : JSON.parse(raw);
    } catch {
      return DEFAULT_SUBSCRIPTIONS;
    }
  }

  scheduleRender() {
    if (this.pending) return;
    this.pending = true;
    setTimeout(() => {
      this.pending = false;
      this.render();
    }, 500);
  }

  render() {
    const subs = [...this.manager.subscriptions.values()];
    $("subscriptions-empty").hidden = subs.length > 0;
    this.list.replaceChildren(...subs.map((sub) => {
      const remove = el("button", { class: "remove", type: "button", "aria-label": `Unsubscribe ${sub.type} ${describeFilters(sub.filters)}` }, "\u00d7");
      remove.addEventListener("click", () => this.remove(sub));
      return el("li", { class: "subscription", dataset: { key: sub.key, type: sub.type, confirmed: String(sub.confirmed) } },
        el("span", { class: "sub-type" }, sub.type),
        remove,
        el("span", { class: "sub-filters" }, describeFilters(sub.filters)),
        el("span", { class: "sub-meta" },
          el("span", { class: "sub-state" }, sub.confirmed ? "live" : "pending"),
          ` · ${sub.received} msg`),
      );
    }));
  }
}
