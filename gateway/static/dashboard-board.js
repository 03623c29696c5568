// The live odds board: one card per game, prices by market and sportsbook.

import { ODDS_MARKETS } from "./contract.js";
import { $, el } from "./dashboard-dom.js";
import { american, isNewerEvent, priceTitle, signed } from "./dashboard-format.js";

/** One card per game, markets by sportsbooks; prices update in place and flash on movement.
 * The markets are the contract's; the sportsbooks are the ones the data quotes, as columns in
 * the order they were first seen (the same on every card). A game remembers which rooms
 * delivered it, so unsubscribing clears what only it brought. A snapshot (sent when a
 * subscription starts, or could not resume) fills the cards with the latest prices before the
 * live updates behind it. A market its book suspended shows its last prices greyed with a
 * SUSP badge until the book opens it again (`status` "open", or any price update after it).
 * Within a game, event ids order its events: a conflated price update that a slow link
 * delivers after a later suspension (which is never conflated) must not undo it, so a cell
 * never takes an event older than the one it shows. */
export class OddsBoard {
  constructor(manager) {
    this.root = $("odds-board");
    this.games = new Map(); // game_id -> {card, head, rows: Map, cells: Map, rooms: Set, sport}
    this.books = []; // sportsbooks in the order first seen
    this.updates = 0;
    this.snapshots = 0;
    manager.on("message", (frame) => {
      if (frame.type === "odds_update") this.update(frame);
    });
    manager.on("snapshot", ({ frame }) => this.snapshot(frame));
    // A subscription that could not resume: what it showed may be stale; its snapshot follows.
    manager.on("resync", ({ subscription, snapshot }) => {
      if (snapshot && subscription.room) this.forget(subscription.room);
    });
    manager.on("subscriptions", () => this.prune(manager));
  }

  /** Drop what only `room` brought (cards of games no other room delivered). */
  forget(room) {
    for (const [id, game] of this.games) {
      game.rooms.delete(room);
      if (game.rooms.size === 0) {
        game.card.remove();
        this.games.delete(id);
      }
    }
    $("odds-empty").hidden = this.games.size > 0;
  }

  /** The latest value of every game, book and market the room covers, as updates. */
  snapshot(frame) {
    const events = frame.data?.events ?? [];
    let applied = 0;
    for (const event of events) {
      if (event.type !== "odds_update" || !event.data) continue;
      this.update({ ...event, rooms: [frame.room], snapshot: true });
      applied += 1;
    }
    if (applied) {
      this.snapshots += 1;
      this.root.dataset.snapshot = String(applied);
    }
  }

  update(frame) {
    const odds = frame.data;
    if (odds.sportsbook && !this.books.includes(odds.sportsbook)) this.addBook(odds.sportsbook);
    const game = this.game(odds);
    for (const room of frame.rooms || []) game.rooms.add(room);
    game.card.dataset.updated = String(Date.now());
    const cell = game.cells.get(`${odds.market}|${odds.sportsbook}`);
    if (!cell) return;
    if (frame.event_id && !isNewerEvent(frame.event_id, cell.dataset.eventId)) return;
    if (frame.event_id) cell.dataset.eventId = frame.event_id;
    const sides = odds.market === "total" ? ["over_price", "under_price"] : ["home_price", "away_price"];
    const lines = odds.line === undefined || odds.line === null
      ? ["", ""]
      : odds.market === "total" ? [`o${odds.line}`, `u${odds.line}`] : [signed(odds.line), signed(-odds.line)];
    const priced = sides.some((side) => odds[side] !== undefined && odds[side] !== null);
    // A status change without prices (a book pulling a market) keeps the last prices shown.
    if (priced) {
      cell.replaceChildren(...sides.map((side, i) => {
        const move = odds.movement?.[side];
        const name = side.replace("_price", "");
        return el("div", { class: "price" },
          lines[i] ? el("span", { class: "line" }, lines[i]) : null,
          el("span", {
            class: `value ${move === "up" || move === "down" ? move : ""}`,
            dataset: { side },
            title: priceTitle(odds.prices?.[name]),
          }, american(odds[side])),
        );
      }));
    }
    const suspended = odds.status === "suspended";
    cell.classList.toggle("suspended", suspended);
    cell.dataset.status = suspended ? "suspended" : "open";
    cell.querySelector(".susp-badge")?.remove();
    if (suspended) {
      cell.prepend(el("span", { class: "susp-badge", title: `Suspended by ${odds.sportsbook}` }, "SUSP"));
    }
    cell.dataset.updated = String(Date.now());
    this.updates += 1;
    this.summary();
  }

  /** A sportsbook seen for the first time: a new column on every card. */
  addBook(book) {
    this.books.push(book);
    // The subscription form offers the books the feed quotes (no hand-kept list).
    const known = document.getElementById("known-books");
    if (known && ![...known.options].some((option) => option.value === book)) {
      known.append(el("option", { value: book }));
    }
    for (const game of this.games.values()) this.addColumn(game, book);
  }

  addColumn(game, book) {
    game.head.append(el("th", {}, book));
    for (const [market, row] of game.rows) {
      const cell = el("td", { class: "cell", dataset: { market, book } }, el("span", { class: "cell-empty" }, "\u2014"));
      game.cells.set(`${market}|${book}`, cell);
      row.append(cell);
    }
  }

  game(odds) {
    let game = this.games.get(odds.game_id);
    if (game) return game;
    const head = el("tr", {}, el("th", {}, "Market"));
    const rows = new Map(ODDS_MARKETS.map((market) => [market, el("tr", {}, el("td", { class: "market" }, market))]));
    const card = el("article", { class: "game", dataset: { game: odds.game_id, sport: odds.sport } },
      el("div", { class: "game-head" },
        el("span", { class: "sport", dataset: { sport: odds.sport } }, odds.sport),
        el("span", { class: "teams" }, `${odds.away_team ?? "Away"} @ ${odds.home_team ?? "Home"}`),
        el("span", { class: "game-id" }, odds.game_id),
      ),
      el("table", { class: "odds-table" },
        el("thead", {}, head),
        el("tbody", {}, [...rows.values()]),
      ),
    );
    game = { card, head, rows, cells: new Map(), rooms: new Set(), sport: odds.sport };
    for (const book of this.books) this.addColumn(game, book);
    this.games.set(odds.game_id, game);
    const ordered = [...this.games.entries()].sort(([a], [b]) => a.localeCompare(b));
    const index = ordered.findIndex(([id]) => id === odds.game_id);
    const next = ordered[index + 1];
    this.root.insertBefore(card, next ? next[1].card : null);
    $("odds-empty").hidden = true;
    return game;
  }

  prune(manager) {
    const live = new Set([...manager.subscriptions.values()].map((s) => s.room).filter(Boolean));
    for (const [id, game] of this.games) {
      for (const room of [...game.rooms]) if (!live.has(room)) game.rooms.delete(room);
      if (game.rooms.size === 0) {
        game.card.remove();
        this.games.delete(id);
      }
    }
    if (this.games.size === 0) this.books = []; // the next subscription's books, from scratch
    $("odds-empty").hidden = this.games.size > 0;
    this.summary();
  }

  summary() {
    $("odds-summary").textContent = this.games.size
      ? `${this.games.size} games · ${this.updates.toLocaleString()} updates`
      : "";
  }
}
