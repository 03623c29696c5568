// Toasts: connection events, errors (with the gateway's suggestion) and the outcome of a
// resume after a reconnect.

import { el } from "./dashboard-dom.js";

/** Connection events and errors as toasts; errors stay until closed, others fade. */
export class Toasts {
  constructor(root, limit = 5) {
    this.root = root;
    this.limit = limit;
  }

  show({ level, title, message, suggestion, code }) {
    const close = el("button", { class: "toast-close", type: "button", "aria-label": "Dismiss" }, "\u00d7");
    const toast = el("div", { class: "toast", role: level === "error" ? "alert" : "status", dataset: { level, code: code ?? "" } },
      el("span", { class: "bar" }),
      el("div", {},
        el("div", { class: "toast-title" }, title),
        message ? el("div", { class: "toast-message" }, message) : null,
        suggestion ? el("div", { class: "toast-suggestion" }, suggestion) : null,
      ),
      close,
    );
    close.addEventListener("click", () => toast.remove());
    this.root.append(toast);
    while (this.root.children.length > this.limit) this.root.firstElementChild.remove();
    const ttl = { info: 5000, success: 4000, warning: 8000 }[level];
    if (ttl) setTimeout(() => toast.remove(), ttl);
  }
}

/** The toast for a `resume` event: every missed update delivered, or state reloaded. */
export function resumeNotice({ recovered, resynced, replayed }) {
  const updates = `${replayed.toLocaleString()} missed update${replayed === 1 ? "" : "s"}`;
  if (resynced) {
    return {
      level: "warning",
      title: "Resynced: live state reloaded",
      message: `${resynced} subscription${resynced === 1 ? "" : "s"} could not replay what was missed; showing the latest values instead.${recovered ? ` The others resumed (${updates} delivered).` : ""}`,
      code: "resynced",
    };
  }
  return {
    level: "success",
    title: replayed ? `Resumed: ${updates} delivered` : "Resumed: no updates missed",
    message: "Nothing was lost while disconnected.",
    code: "resumed",
  };
}
