// The debug panel: stats, connection info, subscriptions with their rooms and positions, the
// last 50 frames; ping and status buttons.

import { $, el } from "./dashboard-dom.js";
import { time } from "./dashboard-format.js";

/** Stats, connection info, subscriptions and the last frames, refreshed every second. */
export class DebugPanel {
  constructor(manager, toasts) {
    this.manager = manager;
    this.toasts = toasts;
    this.frames = $("debug-frames");
    manager.on("frame", (frame) => this.frame(frame));
    $("debug-ping").addEventListener("click", async () => {
      try {
        const ms = await manager.ping();
        toasts.show({ level: "info", title: "Pong", message: `Round trip ${ms} ms.` });
      } catch (error) {
        toasts.show({ level: "error", title: "Ping failed", message: error.message, suggestion: error.hint });
      }
    });
    $("debug-status").addEventListener("click", async () => {
      try {
        const status = await manager.status();
        this.frame({ type: "status", timestamp: new Date().toISOString(), data: status });
      } catch (error) {
        toasts.show({ level: "error", title: "Status failed", message: error.message, suggestion: error.hint });
      }
    });
    $("debug-clear").addEventListener("click", () => this.frames.replaceChildren());
    setInterval(() => this.render(), 1000);
    this.render();
  }

  frame(frame) {
    if (!$("debug").open) return;
    const stamp = frame.timestamp ? time(frame.timestamp) : time(Date.now());
    this.frames.prepend(el("li", { dataset: { type: frame.type } },
      `${stamp} `, el("span", { class: "ftype" }, frame.type), ` ${JSON.stringify(frame.data ?? frame.error ?? "")}`));
    while (this.frames.children.length > 50) this.frames.lastElementChild.remove();
  }

  render() {
    const stats = this.manager.stats;
    const uptime = stats.connected_since ? `${Math.round((Date.now() - stats.connected_since) / 1000)} s` : "\u2014";
    kv($("debug-stats"), {
      "messages": stats.messages_received,
      "data messages": stats.data_messages,
      "reconnects": stats.reconnects,
      "token refreshes": stats.token_refreshes,
      "resumed / resynced": `${stats.resumes} / ${stats.resyncs}`,
      "duplicates dropped": stats.duplicates,
      "latency": stats.latency_ms === null ? "\u2014" : `${stats.latency_ms} ms`,
      "connected for": uptime,
      "last message": stats.last_message_at ? time(stats.last_message_at) : "\u2014",
    });
    const welcome = this.manager.welcome?.data || {};
    kv($("debug-connection"), {
      "state": this.manager.state,
      "url": this.manager.url,
      "gateway": welcome.gateway ?? "\u2014",
      "client id": this.manager.welcome?.client_id ?? "\u2014",
      "user": welcome.user ?? "anonymous",
      "heartbeat": welcome.heartbeat_interval ? `${welcome.heartbeat_interval} s` : "\u2014",
      "last error": this.manager.lastError ? `${this.manager.lastError.code}: ${this.manager.lastError.message}` : "\u2014",
    });
    $("debug-subscriptions").textContent = JSON.stringify(this.manager.subscriptionList(), null, 1);
  }
}

function kv(root, pairs) {
  root.replaceChildren(...Object.entries(pairs).flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, String(v))]));
}
