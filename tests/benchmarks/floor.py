"""Oddstream against the bare-aiohttp floor, in one run: figures, ratios, and the targets.

    python -m tests.benchmarks.floor                 # every scenario, one round (~10 min)
    python -m tests.benchmarks.floor --rounds 3      # medians of 3, sides alternating
    python -m tests.benchmarks.floor --only base,15k
    python -m tests.benchmarks.floor --smoke         # every scenario at 1/50 scale (~1 min)

The floor is `tests.benchmarks.floor_server`: plain aiohttp writing one prebuilt frame per
member, fed from the same ingest streams by one `XREAD` (its docstring lists what it leaves
out). Each scenario runs `tests.benchmarks.load` once per side per round with the same
clients, feeder and embedded Redis, alternating which side goes first (ABBA) so the machine's
drift hits both alike, with `--pin`: the server processes (Oddstream's gateway and worker, or
the floor) share core 0, and Redis, the feeder and the clients core 1, as issue #13 measured
("one core per system").

Scenarios (clients, rooms, events/s; each event goes to clients/rooms members):
- `base`: 1,000 clients in 100 rooms at 5,000 and 10,000 events/s (50k and 100k
  deliveries/s);
- `15k`: 15,000 clients in 1,500 rooms at 500 events/s (5k deliveries/s), and the time to
  connect and subscribe them all;
- `100x100`: 10,000 clients in 100 rooms at 500 events/s (50k deliveries/s);
- `10x1000`: 10,000 clients in 10 rooms at 50 events/s (50k deliveries/s).

Targets (issue #13), Oddstream / floor in the same run, medians over rounds:
- p99 at 50k deliveries/s (`base`): at most 1.5x;
- server CPU per delivery at 100k/s (`base`; gateway + worker against the floor's one
  process): at most 1.5x;
- memory per idle subscribed connection (`15k`, the larger sample): at most floor + 1 KiB;
- p99 at 5k deliveries/s with 15,000 clients: at most 2x;
- connecting and subscribing 15,000 clients: at most 1.5x.
The larger rooms get figures and ratios without a target. The last line is JSON.
`--smoke` runs every scenario at a fiftieth of its clients, rooms and rate for a second and a
half: figures that mean nothing, a whole run that shows the benchmark works
(`tests/test_benchmarks.py`).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from tests.benchmarks.load import machine, run_load

SIDES = ("floor", "oddstream")
#: Servers on core 0, the rest on core 1 (`load.py --pin`), where both cores are ours.
PIN = ["--pin"] if {0, 1} <= os.sched_getaffinity(0) else []


@dataclass(frozen=True)
class Scenario:
    name: str
    clients: int
    rooms: int
    rates: tuple[int, ...]
    duration: float = 10

    def args(self, server: str) -> list[str]:
        return ["--server", server, *PIN, "--clients", str(self.clients),
                "--rooms", str(self.rooms), "--rates", ",".join(map(str, self.rates)),
                "--duration", str(self.duration), "--drain", "5"]  # fmt: skip

    def smoke(self) -> Scenario:
        """The same at a fiftieth of the scale, briefly (`--smoke`)."""
        return Scenario(self.name, max(20, self.clients // 50), max(2, self.rooms // 50),
                        tuple(max(50, r // 50) for r in self.rates), 1.5)  # fmt: skip


SCENARIOS = (
    Scenario("base", 1000, 100, (5000, 10000)),
    Scenario("15k", 15000, 1500, (500,)),
    Scenario("100x100", 10000, 100, (500,)),
    Scenario("10x1000", 10000, 10, (50,)),
)


@dataclass(frozen=True)
class Target:
    """One figure of one scenario, compared as Oddstream against the floor."""

    name: str
    scenario: str
    figure: Callable[[dict[str, Any]], float]
    limit: float
    additive: bool = False  # limit is "floor + limit" rather than "floor x limit"

    def judge(self, floor: float, ours: float) -> tuple[str, bool]:
        if self.additive:
            return f"+{ours - floor:.2f} (limit +{self.limit:g})", ours <= floor + self.limit
        ratio = ours / floor if floor else float("inf")
        return f"{ratio:.2f}x (limit {self.limit:g}x)", ratio <= self.limit


def p99(run: int) -> Callable[[dict[str, Any]], float]:
    return lambda r: float(r["runs"][run]["latency_ms"]["p99"] or float("inf"))


TARGETS = (
    Target("p99 ms at 50k deliveries/s", "base", p99(0), 1.5),
    Target(
        "server CPU us per delivery at 100k/s",
        "base",
        lambda r: float(r["runs"][1]["server_cpu_us_per_delivery"]),
        1.5,
    ),
    Target(
        "KiB per idle connection (15,000)",
        "15k",
        lambda r: float(r["memory"]["kib_per_connection"]),
        1.0,
        additive=True,
    ),
    Target("p99 ms at 5k deliveries/s, 15,000 clients", "15k", p99(0), 2.0),
    Target(
        "seconds to connect and subscribe 15,000", "15k", lambda r: float(r["connect_seconds"]), 1.5
    ),
)


def summary(run: dict[str, Any]) -> dict[str, Any]:
    """Per rate: what each side delivered, its latency and its CPU."""
    return {
        "connect_seconds": run["connect_seconds"],
        "kib_per_connection": run["memory"]["kib_per_connection"],
        "rates": [
            {
                "rate": r["rate"],
                "delivered_per_s": r["delivered_per_s"],
                "completeness": r["completeness"],
                "p50_ms": r["latency_ms"]["p50"],
                "p99_ms": r["latency_ms"]["p99"],
                "server_cpu_us_per_delivery": r["server_cpu_us_per_delivery"],
                "cpu_pct": {k: r["cpu_pct"].get(k) for k in ("gateway", "worker", "redis")},
            }
            for r in run["runs"]
        ],
    }


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.benchmarks.floor", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--rounds", type=int, default=1, help="runs per side and scenario (1)")
    p.add_argument("--only", help="comma-separated scenarios (default: all)")
    p.add_argument("--smoke", action="store_true", help="every scenario at 1/50 scale, briefly")
    a = p.parse_args(argv)
    chosen = [s for s in SCENARIOS if not a.only or s.name in a.only.split(",")]
    if a.smoke:
        chosen = [s.smoke() for s in chosen]
    if not chosen:
        p.error(f"--only: none of {[s.name for s in SCENARIOS]}")
    info = machine()
    print(f"machine: {info['cpu']}, {info['cores']} cores, Python {info['python']}", flush=True)
    reports: dict[str, dict[str, list[dict[str, Any]]]] = {
        s.name: {side: [] for side in SIDES} for s in chosen
    }
    started = time.monotonic()
    for n in range(a.rounds):
        for scenario in chosen:
            order = SIDES if n % 2 == 0 else SIDES[::-1]
            for side in order:
                label = f"round {n + 1} {scenario.name} {side}"
                reports[scenario.name][side].append(run_load(scenario.args(side), label))
    elapsed = round(time.monotonic() - started)

    print(f"\n{a.rounds} round(s) in {elapsed}s; medians; ratio = oddstream / floor")
    print(
        f"{'scenario':<9} {'events/s':>8} {'side':<9} {'delivered/s':>11} {'complete':>8} "
        f"{'p50 ms':>7} {'p99 ms':>7} {'us/dlv':>7} {'connect s':>9} {'KiB/conn':>8}"
    )
    figures: dict[str, Any] = {}
    for scenario in chosen:
        sides = {side: [summary(r) for r in reports[scenario.name][side]] for side in SIDES}
        figures[scenario.name] = sides
        for i, rate in enumerate(scenario.rates):
            for side in SIDES:
                runs = sides[side]

                def med(key: str, i: int = i, runs: list[dict[str, Any]] = runs) -> float:
                    return median([r["rates"][i][key] or float("inf") for r in runs])

                print(f"{scenario.name:<9} {rate:>8} {side:<9} {med('delivered_per_s'):>11.0f} "
                      f"{med('completeness'):>8.2%} {med('p50_ms'):>7.2f} {med('p99_ms'):>7.2f} "
                      f"{med('server_cpu_us_per_delivery'):>7.2f} "
                      f"{median([r['connect_seconds'] for r in runs]):>9.2f} "
                      f"{median([r['kib_per_connection'] for r in runs]):>8.2f}")  # fmt: skip
            f, o = (median([r["rates"][i]["p99_ms"] or float("inf") for r in sides[s]])
                    for s in SIDES)  # fmt: skip
            print(f"{'':<9} {'':>8} {'ratio':<9} p99 {o / f:.2f}x")

    print("\ntargets (oddstream against the floor, same run):")
    verdicts = []
    for t in TARGETS:
        if t.scenario not in reports:
            continue
        floor, ours = (median([t.figure(r) for r in reports[t.scenario][s]]) for s in SIDES)
        text, ok = t.judge(floor, ours)
        verdicts.append({"target": t.name, "floor": floor, "oddstream": ours, "met": ok})
        print(
            f"  {t.name}: floor {floor:g}, oddstream {ours:g}: {text}: {'MET' if ok else 'NOT MET'}"
        )
    print(json.dumps({"machine": info, "rounds": a.rounds, "targets": verdicts,
                      "figures": figures}))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
