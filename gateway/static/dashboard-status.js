// The connection status indicator in the header (connected with latency, reconnecting with a
// countdown, disconnected) and the banner that says why a connection failed for good.

import { ConnectionState } from "./oddstream.js";
import { $ } from "./dashboard-dom.js";

/** Connected / reconnecting with a countdown / disconnected, plus the final-error banner. */
export class StatusIndicator {
  constructor(manager) {
    this.manager = manager;
    this.root = $("status");
    this.text = $("status-text");
    this.detail = $("status-detail");
    this.toggle = $("connect-toggle");
    this.banner = $("banner");
    this.timer = null;
    manager.on("state", (detail) => this.render(detail));
    manager.on("stats", () => this.render(manager.stateDetail));
    this.render(manager.stateDetail);
  }

  render(detail) {
    clearInterval(this.timer);
    this.timer = null;
    const state = detail.state;
    this.root.dataset.state = state;
    this.toggle.textContent = state === ConnectionState.CLOSED ? "Reconnect" : "Disconnect";
    switch (state) {
      case ConnectionState.CONNECTED: {
        this.text.textContent = "Connected";
        const latency = this.manager.stats.latency_ms;
        this.detail.textContent = latency === null ? "" : `${Math.round(latency)} ms`;
        this.hideBanner();
        break;
      }
      case ConnectionState.CONNECTING:
        this.text.textContent = "Connecting\u2026";
        this.detail.textContent = "";
        break;
      case ConnectionState.RECONNECTING:
        this.renderReconnecting(detail);
        break;
      case ConnectionState.DISCONNECTED:
        this.text.textContent = "Connection lost";
        this.detail.textContent = detail.reason || "";
        break;
      default:
        this.text.textContent = "Disconnected";
        this.detail.textContent = detail.error ? detail.error.code : "";
        if (detail.error) this.showBanner(detail.error);
    }
  }

  renderReconnecting(detail) {
    const max = detail.max_attempts === Infinity ? "" : ` of ${detail.max_attempts}`;
    const attempt = detail.attempt ? `attempt ${detail.attempt}${max}` : "";
    if (detail.connecting || !detail.next_attempt_at) {
      this.text.textContent = "Reconnecting\u2026";
      this.detail.textContent = attempt;
      return;
    }
    const tick = () => {
      const left = Math.max(0, Math.ceil((detail.next_attempt_at - Date.now()) / 1000));
      this.text.textContent = `Reconnecting in ${left}s`;
      this.detail.textContent = attempt;
    };
    tick();
    this.timer = setInterval(tick, 250);
  }

  showBanner(error) {
    $("banner-title").textContent = error.name === "AuthError" ? "Sign-in failed." : "Not connected.";
    $("banner-message").textContent = ` ${error.message}`;
    $("banner-suggestion").textContent = error.hint ? `Try: ${error.hint}` : "";
    $("banner-action").textContent = error.name === "AuthError" ? "Change token" : "Reconnect";
    this.banner.dataset.kind = error.name === "AuthError" ? "auth" : "connection";
    this.banner.hidden = false;
  }

  hideBanner() {
    this.banner.hidden = true;
  }
}
