// The analytics view: how the whole cluster is used, minute by minute, from
// `GET /ws/v2/analytics` (admin credentials), drawn as time-series charts with uPlot, which
// `npm run build` in clients/js vendors from the locked npm package into gateway/static (the
// page's CSP allows scripts and styles from its own origin only; uPlot needs no eval and sets
// styles through the DOM, never inline markup). What each figure means: README, "Usage
// analytics". Data goes on the page as text, never HTML.

import uPlot from "./uPlot.esm.js";
import { CLOSE_EXPLANATIONS, closeAdvice } from "./contract.js";
import { $, el } from "./dashboard-dom.js";

export const ADMIN_TOKEN = "oddstream.admin";
const CONNECTION_TOKEN = "oddstream.token";
const REFRESH_MS = 10_000;
const MOST_SERIES = 8; // keyed charts show the busiest keys of the window
const PALETTE = ["#4f8cff", "#2bd17e", "#ffb84d", "#ff5c6c", "#b48cff", "#4fd1d9", "#ff87c3", "#c3e05a"];

const fixed = (...pairs) => (series) =>
  pairs.map(([label, pick]) => ({ label, values: series.map(pick) }));

/** The busiest keys of `pick(minute)` over the window, one series each. */
const keyed = (pick, prefix = "") => (series) => {
  const totals = new Map();
  for (const minute of series) {
    for (const [key, n] of Object.entries(pick(minute) ?? {})) totals.set(key, (totals.get(key) ?? 0) + n);
  }
  return [...totals.entries()]
    .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
    .slice(0, MOST_SERIES)
    .map(([key]) => ({ label: prefix + key, values: series.map((m) => (pick(m) ?? {})[key] ?? 0) }));
};

/** Each chart: what it shows, and its series from the rollup's minutes. */
export const CHARTS = [
  { id: "connections", title: "Connections", note: "open and peak per minute; opened, closed and reconnects in it",
    series: fixed(["open", (m) => m.connections.open], ["peak", (m) => m.connections.peak],
                  ["opened", (m) => m.connections.opened], ["closed", (m) => m.connections.closed],
                  ["reconnects", (m) => m.connections.reconnects]) },
  { id: "subscriptions", title: "Subscriptions by type", note: "open at each minute's last sample",
    series: keyed((m) => m.subscriptions.active) },
  { id: "messages", title: "Messages out by type", note: "frames written to clients per minute",
    series: keyed((m) => m.messages.out) },
  { id: "latency", title: "Delivery latency (ms)", note: "ingest to gateway write, percentiles per minute",
    series: fixed(["p50", (m) => m.latency_ms.p50], ["p90", (m) => m.latency_ms.p90],
                  ["p99", (m) => m.latency_ms.p99]) },
  { id: "resumes", title: "Resumes and closes", note: "subscribes with a position; connections ended, by close code",
    series: (series) => [
      ...fixed(["recovered", (m) => m.resumes.recovered], ["resynced", (m) => m.resumes.resynced])(series),
      ...keyed((m) => m.closes, "close ")(series),
    ] },
  { id: "slow", title: "Slow consumers", note: "frames conflated and held, clients closed 4008",
    series: fixed(["conflated", (m) => m.slow_consumers.conflated], ["held", (m) => m.slow_consumers.held],
                  ["closed 4008", (m) => m.slow_consumers.closed]) },
];

const number = (n) => (n === null || n === undefined ? "\u2014" : Number(n).toLocaleString("en-US"));
const ms = (n) => (n === null || n === undefined ? "\u2014" : `${Number(n).toLocaleString("en-US")} ms`);
const sum = (counts) => Object.values(counts ?? {}).reduce((a, b) => a + b, 0);

/** The analytics view: fetches the rollup while shown, and draws charts, tiles and tables. */
export class AnalyticsView {
  constructor(baseUrl, toasts) {
    this.url = `${baseUrl.replace(/^ws/, "http")}/ws/v2/analytics`;
    this.toasts = toasts;
    this.root = $("analytics-view");
    this.plots = new Map(); // chart id -> { plot, labels }
    this.timer = null;
    this.last = null; // the last rollup shown (for the tests and devtools)
    this.buildCharts();
    $("analytics-minutes").addEventListener("change", () => this.refresh());
    $("analytics-refresh").addEventListener("click", () => this.refresh());
    $("analytics-auth").addEventListener("submit", (event) => {
      event.preventDefault();
      const token = $("analytics-admin-token").value.trim();
      if (token) sessionStorage.setItem(ADMIN_TOKEN, token);
      this.refresh();
    });
    window.addEventListener("resize", () => this.resize());
  }

  buildCharts() {
    const holder = $("analytics-charts");
    for (const chart of CHARTS) {
      holder.append(
        el("figure", { class: "panel chart", dataset: { chart: chart.id } },
          el("figcaption", {}, el("strong", {}, chart.title), el("span", { class: "muted" }, chart.note)),
          el("div", { class: "plot" }),
          el("p", { class: "empty" }, "None in this window.")),
      );
    }
  }

  show() {
    this.root.hidden = false;
    this.refresh();
    clearInterval(this.timer);
    this.timer = setInterval(() => this.refresh(), REFRESH_MS);
  }

  hide() {
    this.root.hidden = true;
    clearInterval(this.timer);
    this.timer = null;
  }

  /** The admin token if one was given, else the connection's (a token with `admin: true`). */
  credentials() {
    return sessionStorage.getItem(ADMIN_TOKEN) || sessionStorage.getItem(CONNECTION_TOKEN);
  }

  async refresh() {
    const minutes = $("analytics-minutes").value;
    const token = this.credentials();
    let response;
    try {
      response = await fetch(`${this.url}?minutes=${encodeURIComponent(minutes)}`, {
        headers: token ? { Authorization: `Bearer ${token}` } : {},
      });
    } catch (error) {
      this.status("error", "Analytics unreachable", String(error.message ?? error));
      return;
    }
    const body = await response.json().catch(() => ({}));
    if (response.status === 401) {
      this.askForToken(token ? "This token is not an admin's." : "Paste the admin token.");
      return;
    }
    if (!response.ok) {
      this.status("error", `Analytics failed (${response.status})`, body.error ?? "", body.hint);
      return;
    }
    $("analytics-auth").hidden = true;
    this.render(body);
  }

  askForToken(why) {
    $("analytics-auth").hidden = false;
    $("analytics-auth-message").textContent =
      `${why} Use the admin token \`oddstream dev\` prints (ODDSTREAM_ADMIN_TOKEN), or connect with a token whose admin claim is true.`;
    $("analytics-admin-token").focus();
  }

  status(level, title, message, suggestion) {
    this.toasts.show({ level, title, message, suggestion });
  }

  render(body) {
    this.last = body;
    const series = body.series;
    const xs = series.map((m) => m.start);
    for (const chart of CHARTS) this.draw(chart, xs, chart.series(series));
    this.renderTiles(body);
    this.renderTables(body);
    const gateways = Math.max(0, ...series.map((m) => m.gateways));
    $("analytics-summary").textContent =
      `${body.minutes} minutes to ${new Date(body.to).toLocaleTimeString([], { hour12: false })}, ` +
      `${gateways} gateway${gateways === 1 ? "" : "s"} reporting, refreshed every ${REFRESH_MS / 1000} s ` +
      `(gateways flush every ${body.flush_interval} s; kept ${Math.round(body.retention_seconds / 3600)} h)`;
    this.root.dataset.loaded = "true";
  }

  draw(chart, xs, lines) {
    const figure = this.root.querySelector(`[data-chart="${chart.id}"]`);
    const target = figure.querySelector(".plot");
    const hasData = lines.some((line) => line.values.some((v) => v !== null && v !== 0));
    figure.querySelector(".empty").hidden = hasData;
    figure.dataset.points = String(lines.reduce((n, l) => n + l.values.filter((v) => v).length, 0));
    const labels = lines.map((line) => line.label).join("\u0000");
    const data = [xs, ...lines.map((line) => line.values)];
    const current = this.plots.get(chart.id);
    if (current && current.labels === labels && current.minutes === xs.length) {
      current.plot.setData(data);
      showLatest(current.plot);
      return;
    }
    current?.plot.destroy();
    const plot = new uPlot(this.options(lines, target, xs.length), data, target);
    this.plots.set(chart.id, { plot, labels, minutes: xs.length });
  }

  options(lines, target, minutes) {
    const axis = { stroke: "#8b95b3", grid: { stroke: "rgba(38, 48, 79, .8)", width: 1 },
                   ticks: { stroke: "rgba(38, 48, 79, .8)", width: 1 } };
    return {
      width: Math.max(260, target.clientWidth),
      height: 190,
      scales: { x: { time: true } },
      axes: [axis, { ...axis, size: 56 }],
      legend: { live: true },
      hooks: { ready: [showLatest] },
      series: [
        { label: "minute" },
        ...lines.map((line, i) => ({
          label: line.label,
          stroke: PALETTE[i % PALETTE.length],
          width: 2,
          spanGaps: false,
          // A minute alone between empty ones (latency) is a point, not an invisible line.
          points: { show: minutes <= 120, size: 5 },
        })),
      ],
    };
  }

  resize() {
    for (const [id, { plot }] of this.plots) {
      const target = this.root.querySelector(`[data-chart="${id}"] .plot`);
      plot.setSize({ width: Math.max(260, target.clientWidth), height: 190 });
    }
  }

  renderTiles(body) {
    const w = body.window;
    const tiles = [
      ["peak-connections", "peak connections", number(w.connections.peak)],
      ["opened", "connections opened", number(w.connections.opened)],
      ["reconnects", "reconnects", number(w.connections.reconnects)],
      ["messages-out", "messages out", number(sum(w.messages.out))],
      ["latency-p50", "latency p50", ms(w.latency_ms.p50)],
      ["latency-p99", "latency p99", ms(w.latency_ms.p99)],
      ["resumes", "resumes recovered / resynced", `${number(w.resumes.recovered)} / ${number(w.resumes.resynced)}`],
      ["slow-closed", "slow consumers closed", number(w.slow_consumers.closed)],
    ];
    $("analytics-tiles").replaceChildren(
      ...tiles.map(([id, label, value]) =>
        el("div", { class: "tile", dataset: { figure: id } },
          el("span", { class: "tile-value" }, value), el("span", { class: "tile-label" }, label))),
    );
  }

  renderTables(body) {
    const w = body.window;
    const latest = body.series[body.series.length - 1];
    const games = $("analytics-games");
    games.replaceChildren(
      ...w.games.map((g) =>
        el("li", { dataset: { game: g.game_id } }, el("span", { class: "game-id" }, g.game_id),
          el("span", { class: "count" }, number(g.peak_watchers)))),
    );
    $("analytics-games-empty").hidden = w.games.length > 0;

    const dimensions = new Set([...Object.keys(latest.subscriptions.by_filter), ...Object.keys(w.subscriptions.new_by_filter)]);
    $("analytics-filters").replaceChildren(
      row("th", "filter", "open now", "new in window"),
      ...[...dimensions].sort().map((d) =>
        row("td", d, number(latest.subscriptions.by_filter[d] ?? 0), number(w.subscriptions.new_by_filter[d] ?? 0))),
    );

    $("analytics-closes").replaceChildren(
      row("th", "code", "closes", "meaning"),
      ...Object.entries(w.closes).sort((a, b) => b[1] - a[1]).map(([code, n]) =>
        row("td", code, number(n), closeMeaning(code))),
    );
  }
}

/** Until the chart is hovered, its legend shows the values of the latest minute. */
function showLatest(plot) {
  plot.setLegend({ idx: plot.data[0].length - 1 });
}

/** A close code in words: the gateway's own explanation, else the advice its range gives. */
function closeMeaning(code) {
  if (CLOSE_EXPLANATIONS[code]) return CLOSE_EXPLANATIONS[code][0];
  if (code === "1000") return "Closed normally.";
  return `The client's own code (advice: ${closeAdvice(Number(code)).replaceAll("_", " ")}).`;
}

function row(cell, ...values) {
  return el("tr", {}, ...values.map((v) => el(cell, {}, v)));
}
