// The feeds beside the odds board, newest first: arbitrage alerts with legs and stakes,
// predictions with projection, edge and confidence, and an activity feed for alerts,
// analytics and portfolio updates.

import { $, el } from "./dashboard-dom.js";
import { american, time } from "./dashboard-format.js";

/** A newest-first list with a bounded length. */
class Feed {
  constructor(listId, emptyId, limit, countId = null) {
    this.list = $(listId);
    this.empty = $(emptyId);
    this.count = countId ? $(countId) : null;
    this.limit = limit;
    this.total = 0;
  }

  add(item) {
    item.classList.add("fresh");
    this.list.prepend(item);
    while (this.list.children.length > this.limit) this.list.lastElementChild.remove();
    this.total += 1;
    this.empty.hidden = true;
    if (this.count) this.count.textContent = this.total.toLocaleString();
  }
}

function arbitrageItem(frame) {
  const arb = frame.data;
  const expires = arb.expires_in_s ? ` · expires in ${arb.expires_in_s}s` : "";
  const status = arb.status === "closed" ? " · closed" : arb.status === "updated" ? " · updated" : "";
  return el("li", { class: arb.status === "closed" ? "closed" : "",
                    dataset: { sport: arb.sport, game: arb.game_id, arbitrage: arb.arbitrage_id ?? "" } },
    el("div", { class: "arb-head" },
      el("span", {}, el("span", { class: "sport", dataset: { sport: arb.sport } }, arb.sport), " ",
        `${arb.away_team ?? ""} @ ${arb.home_team ?? ""}`),
      el("span", { class: "profit" }, `${Number(arb.profit_pct).toFixed(2)}%`),
    ),
    el("div", { class: "meta" }, `${arb.market ?? ""} · ${time(frame.timestamp)}${status}${expires}`),
    el("ul", { class: "legs" }, (arb.legs || []).map((leg) => el("li", {},
      el("b", {}, leg.sportsbook), ` ${leg.selection} `, el("b", {}, american(leg.price)), ` · stake ${leg.stake_pct}%`))),
  );
}

function predictionItem(frame) {
  const p = frame.data;
  const confidence = Math.round((p.confidence ?? 0) * 100);
  return el("li", { dataset: { sport: p.sport, player: p.player ?? "" } },
    el("div", { class: "pred-head" },
      el("span", {}, el("b", {}, p.player ?? p.game_id), ` ${p.market ?? ""} ${p.line ?? ""}`),
      p.recommendation ? el("span", { class: `rec ${p.recommendation}` }, p.recommendation) : null,
    ),
    el("div", { class: "meta" }, `projection ${p.projection ?? "?"} · edge ${p.edge ?? "?"} · ${confidence}% · ${p.model ?? ""}`),
    el("div", { class: "confidence" }, el("span", { dataset: { width: confidence } })),
  );
}

function activityItem(frame) {
  const d = frame.data || {};
  const text = d.message
    || (d.action ? `${d.action.replace("_", " ")} ${d.selection ?? ""} ${d.pnl !== undefined ? `P&L ${d.pnl}` : ""}` : null)
    || (d.home_win_prob !== undefined ? `${d.away_team} @ ${d.home_team}: home win ${Math.round(d.home_win_prob * 100)}%` : null)
    || JSON.stringify(d).slice(0, 120);
  return el("li", { dataset: { level: d.level ?? "info", type: frame.type } },
    el("div", { class: "meta" }, `${frame.type.replace("_", " ")} · ${time(frame.timestamp)}`),
    el("div", {}, text),
  );
}

/** The three feeds, filled from the manager's data frames (and predictions from snapshots). */
export function showFeeds(manager) {
  const arbitrage = new Feed("arbitrage-list", "arbitrage-empty", 20, "arb-count");
  const predictions = new Feed("prediction-list", "prediction-empty", 30, "pred-count");
  const activity = new Feed("activity-list", "activity-empty", 30);
  const addPrediction = (frame) => {
    const item = predictionItem(frame);
    const bar = item.querySelector(".confidence span");
    bar.style.width = `${bar.dataset.width}%`;
    predictions.add(item);
  };
  // One entry per opportunity (`arbitrage_id`): an update replaces it, a close greys it out
  // and it goes a few seconds later.
  const opportunities = new Map();
  const addArbitrage = (frame) => {
    const id = frame.data?.arbitrage_id;
    const item = arbitrageItem(frame);
    if (id) opportunities.get(id)?.remove();
    if (id && frame.data?.status !== "closed") opportunities.set(id, item);
    else if (id) {
      opportunities.delete(id);
      setTimeout(() => item.remove(), 8000);
    }
    arbitrage.add(item);
  };
  manager.on("message", (frame) => {
    if (frame.type === "arbitrage_alert") addArbitrage(frame);
    else if (frame.type === "prediction_update") addPrediction(frame);
    else if (frame.type !== "odds_update") activity.add(activityItem(frame));
  });
  // A snapshot's predictions (the latest per game, player and market), oldest first.
  manager.on("snapshot", ({ frame }) => {
    const latest = (frame.data?.events ?? []).filter((e) => e.type === "prediction_update" && e.data);
    latest.sort((a, b) => String(a.timestamp).localeCompare(String(b.timestamp)));
    for (const event of latest.slice(-predictions.limit)) addPrediction(event);
  });
}
