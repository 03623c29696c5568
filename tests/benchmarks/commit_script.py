"""What the worker's commit script costs Redis per event, and which part costs what.

    python -m tests.benchmarks.commit_script                 # 200 events per call
    python -m tests.benchmarks.commit_script --events 13 --rounds 200

Runs `workers/lua/commit.lua` on an embedded Redis, alone on it, with reads built like the
worker's for the load benchmark's case (an odds event matching one room, held by one gateway:
one history entry, one latest value, one inbox item), then variants of the script with one
part cut out, interleaved (ABAB...) so the machine's drift hits them alike. Per variant it
prints Redis's own time per event (`INFO commandstats`: EVALSHA's microseconds, which include
the commands the script calls), the median over the rounds of each variant:

- full: the script as shipped;
- no_inbox: frames built, but no inbox item added (nor the inbox XADD);
- no_frames: no frame built either (no deliveries);
- no_event: the read decoded and walked, nothing per event (history, latest value, frames);
- empty: a script that returns at once (EVALSHA and argument passing alone).

The differences between neighbours are what each part costs: decoding the read, recording
(history XADD, latest value HSET, their strings), building frames, adding them to the inbox.
Wall-clock microseconds: on a busy machine the script can be descheduled mid-run, so compare
variants of one run, not runs.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

import redis

from oddstream.embedded import EmbeddedRedis
from tests.benchmarks.load import machine

SCRIPT = Path(__file__).resolve().parents[2] / "workers" / "lua" / "commit.lua"

#: Variant -> (what to replace, with what): each cuts one more part than the one before.
CUTS: dict[str, list[tuple[str, str]]] = {
    "full": [],
    "no_inbox": [
        (
            "add(delivery[1], value)",
            "local _ = value",
        )
    ],
    "no_frames": [
        ("  for _, delivery in ipairs(item[9]) do", "  for _, delivery in ipairs({}) do"),
    ],
    "no_event": [
        (
            "local function commit_event(item, conflatable)\n",
            "local function commit_event(item, conflatable)\n  if true then return end\n",
        )
    ],
}


def variant(source: str, name: str) -> str:
    if name == "empty":
        return "return {}"
    for old, new in CUTS[name]:
        if old not in source:
            raise SystemExit(f"commit.lua changed: cannot make variant {name!r} ({old.strip()!r})")
        source = source.replace(old, new, 1)
    return source


def read(seq0: int, events: int) -> tuple[list[str], list[Any]]:
    """The keys and arguments of one commit of `events` odds events from partition 0, as the
    worker builds them (`Worker._match_read`) for 100 rooms of one game each on one gateway."""
    data = json.dumps({
        "kind": "odds", "sport": "MLB", "game_id": "G1", "sportsbook": "FanDuel",
        "market": "total", "over_price": -110, "under_price": -110,
        "prices": {side: {"american": -110, "decimal": 1.909, "fractional": "10/11"}
                   for side in ("over", "under")},
        "pad": "x" * 100, "sent_at": 1.0,
    })  # fmt: skip
    items, datas = [], []
    for i in range(events):
        game, room = f"G{(seq0 + i) % 100}", f"odds_updates.{(seq0 + i) % 100:016x}"
        event_id = f"0:{seq0 + i + 1}-0"
        datas.append(data)
        key = f"odds|{game}|FanDuel|total"
        items.append(["d", event_id, "odds_update", key, 13 + i, game,
                      "2026-12-05T09:00:00.000Z", [[room, "l"]], [[1, [room]]]])  # fmt: skip
    keys = ["b:dead", "b:epoch", "b:sports", "b:lease:0", "b:cursor:0", "b:inbox:gw"]
    args: list[Any] = [
        "worker", "epoch", 1000, "b:history:", 50_000, 120_000, 1000, 86_400_000,
        "b:latest:", "b:games:", 60_000,
        json.dumps([[f"{seq0}-0", f"{seq0 + events}-0", [], items]]),
    ]  # fmt: skip
    return keys, args + datas


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200, help="events per script call")
    parser.add_argument("--rounds", type=int, default=60, help="calls per variant and pass")
    parser.add_argument("--passes", type=int, default=3, help="interleaved passes")
    a = parser.parse_args()
    source = SCRIPT.read_text()
    names = [*CUTS, "empty"]
    server = EmbeddedRedis().start()
    try:
        r = redis.Redis(port=server.port)
        r.set("b:lease:0", "worker")
        r.xadd("b:inbox:gw", {"n": "0"})
        shas = {name: r.script_load(variant(source, name)) for name in names}
        per_event: dict[str, list[float]] = defaultdict(list)
        seq = 0
        for _ in range(a.passes):
            for name in names:
                for _ in range(a.rounds):
                    keys, args = read(seq, a.events)
                    r.set("b:cursor:0", f"{seq}-0")  # where this read started (variants skip it)
                    seq += a.events
                    r.config_resetstat()
                    skipped = r.evalsha(shas[name], len(keys), *keys, *args)
                    if name != "empty" and skipped != [[], []]:  # a benchmark of nothing
                        raise SystemExit(f"the commit skipped its partition: {skipped}")
                    usec = r.info("commandstats")["cmdstat_evalsha"]["usec"]
                    per_event[name].append(usec / a.events)
    finally:
        server.stop()
    print(f"machine: {machine()}; {a.events} events per call, {a.rounds * a.passes} calls each")
    medians = {name: statistics.median(values) for name, values in per_event.items()}
    for name in names:
        print(f"  {name:10s} {medians[name]:6.2f} us/event")
    parts = [("inbox items and XADD", "full", "no_inbox"), ("frames", "no_inbox", "no_frames"),
             ("recording (history, latest)", "no_frames", "no_event"),
             ("decoding and walking the read", "no_event", "empty")]  # fmt: skip
    for label, more, less in parts:
        print(f"  {label:30s} {medians[more] - medians[less]:6.2f} us/event")
    print(json.dumps({"machine": machine(), "events_per_call": a.events,
                      "us_per_event": {k: round(v, 2) for k, v in medians.items()}}))  # fmt: skip


if __name__ == "__main__":
    main()
