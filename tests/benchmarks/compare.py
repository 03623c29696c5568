"""The live path's speed, side by side: this code against an older commit, in one run.

    python -m tests.benchmarks.compare --baseline 4839950            # candidate: HEAD
    python -m tests.benchmarks.compare --baseline 4839950 --rounds 5 --rates 5000,12000,16000

Both versions are checked out with `git worktree add --detach` into a temporary directory, so
uncommitted edits in this checkout are not measured, and removed at the end. Each round runs
`tests.benchmarks.load` (this checkout's script: the same clients, feeder loop and
measurement for both sides) once per side, alternating which side goes first (ABBA...), with
`PYTHONPATH=<worktree>/deploy:<worktree>/clients/python`: the gateway and worker it starts and
its feeder's `Ingester` import that side's code, so each side's feeder writes what its workers
read (per-kind streams before partitions, partitions after). The figures per side and round:

- **p99 at 50k deliveries/s**: the p99 latency of the first rate (default 5000 events/s to
  1,000 clients in 100 rooms, 10 per room = 50,000 deliveries/s);
- **saturation**: the most deliveries/s received over the rates run (default 5000, 10000,
  15000 and 20000 events/s): the rate the whole pipeline sustains on this machine. A run is
  marked "feeder-bound" when the pipeline never fell behind what the feeder offered (received
  >= 97% of the offered deliveries per second at every rate): its ceiling is then above the
  figure, which is the feeder's (it shares the 2 cores too).

Both sides get events of the same size: `--payload` (default: the larger side's smallest odds
event, each side's feeder padding its events up to it). The odds formats (#14) put every
price in three formats into the event, so the candidate's smallest odds event is 300 bytes of
JSON against the baseline's 165 at the load benchmark's default of 200; compared at the
default, the candidate would carry half as many bytes again per frame for a reason that is not
the change measured. `--payload 200` gives that comparison.

It prints each run, then the median of the rounds per side and the ratio candidate/baseline,
and whether the candidate stays within `--tolerance` (10%): p99 at most 1.1x, saturation at
least 0.9x; then, for information, the CPU that gateway, worker and Redis spent per delivery
at the first rate (a cost, steadier than the p99 on a busy machine). The machine is shared
(2 cores) and its speed drifts, so alternating and taking medians matters more than any
single run. The last line is JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from tests.benchmarks.load import machine, run_load

ROOT = Path(__file__).resolve().parents[2]


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, check=True, capture_output=True,
                          text=True).stdout.strip()  # fmt: skip


@contextlib.contextmanager
def worktree(rev: str, where: Path) -> Iterator[Path]:
    git("worktree", "add", "--detach", str(where), rev)
    try:
        yield where
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(where)], cwd=ROOT,
                       check=False, capture_output=True)  # fmt: skip


def side_env(tree: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = f"{tree / 'deploy'}{os.pathsep}{tree / 'clients' / 'python'}"
    return env


def check_imports(tree: Path) -> str:
    """The code a side's processes import must come from its worktree, not this checkout."""
    probe = (
        "import oddstream.shared.ingest as m, oddstream.workers.consumer as w; print(m.__file__)"
    )
    out = subprocess.run([sys.executable, "-c", probe], env=side_env(tree), cwd=ROOT, text=True,
                         capture_output=True, check=True).stdout.strip()  # fmt: skip
    if not Path(out).resolve().is_relative_to(tree.resolve()):
        raise RuntimeError(f"{tree}: imported {out} instead of the worktree's code")
    return out


def smallest_event_bytes(tree: Path) -> int:
    """The JSON size of the load feeder's smallest odds event with a side's `OddsEvent`."""
    probe = "from tests.benchmarks.load import smallest_event_bytes as f; print(f())"
    return int(subprocess.run([sys.executable, "-c", probe], env=side_env(tree), cwd=ROOT,
                              text=True, capture_output=True, check=True).stdout)  # fmt: skip


def run_side(tree: Path, a: argparse.Namespace, label: str) -> dict[str, Any]:
    args = ["--clients", str(a.clients), "--rooms", str(a.rooms), "--rates", a.rates,
            "--duration", str(a.duration), "--payload", str(a.payload)]  # fmt: skip
    return run_load(args, label, side_env(tree))


def figures(report: dict[str, Any]) -> dict[str, Any]:
    runs = report["runs"]
    best = max(runs, key=lambda r: r["delivered_per_s"])
    return {
        "p99_ms_at_first_rate": runs[0]["latency_ms"]["p99"],
        "p50_ms_at_first_rate": runs[0]["latency_ms"]["p50"],
        "live_path_cpu_us_per_delivery_at_first_rate": runs[0]["live_path_cpu_us_per_delivery"],
        "delivered_per_s_at_first_rate": runs[0]["delivered_per_s"],
        "completeness_at_first_rate": runs[0]["completeness"],
        "saturation_deliveries_per_s": best["delivered_per_s"],
        "saturation_at_rate": best["rate"],
        "saturation_completeness": best["completeness"],
        # Did the pipeline fall behind what the feeder offered at some rate? If not, the most
        # delivered is the feeder's ceiling on this machine, and the pipeline's is higher.
        "saturated": any(
            r["delivered_per_s"] < 0.97 * r["expected_deliveries_per_s"] for r in runs
        ),
        "most_offered_deliveries_per_s": max(r["expected_deliveries_per_s"] for r in runs),
        "per_rate": [
            {
                "rate": r["rate"],
                "offered": r["offered_events_per_s"],
                "delivered_per_s": r["delivered_per_s"],
                "completeness": r["completeness"],
                "p99_ms": r["latency_ms"]["p99"],
                "cpu_pct": r["cpu_pct"],
                "backlog_at_end": r["backlog_at_end"],
            }
            for r in runs
        ],
    }


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.benchmarks.compare", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--baseline", required=True, help="commit before the change (e.g. 4839950)")
    p.add_argument("--candidate", default="HEAD", help="commit to compare (HEAD)")
    p.add_argument("--rounds", type=int, default=3, help="runs per side, alternating (3)")
    p.add_argument(
        "--rates",
        default="5000,10000,15000,20000",
        help="events/s per run; the first is the p99 point (5000,10000,15000,20000)",
    )
    p.add_argument("--clients", type=int, default=1000)
    p.add_argument("--rooms", type=int, default=100)
    p.add_argument("--duration", type=float, default=10, help="measured seconds per rate (10)")
    p.add_argument("--payload", type=int, default=0,
                   help="bytes of event JSON, both sides (default: the larger side's smallest "
                        "odds event, so that both carry the same bytes)")  # fmt: skip
    p.add_argument("--tolerance", type=float, default=0.10, help="allowed slowdown (0.10)")
    a = p.parse_args(argv)
    revs = {"baseline": git("rev-parse", "--short", a.baseline),
            "candidate": git("rev-parse", "--short", a.candidate)}  # fmt: skip
    info = machine()
    print(f"machine: {info['cpu']}, {info['cores']} cores, Python {info['python']}, Redis "
          f"{info['redis']}")  # fmt: skip
    if int(info["redis"].split(".", 1)[0]) < 7:
        print("  note: the README's figures are on Redis 7 (jemalloc); on this one the commit "
              "script costs more per event at big reads: set ODDSTREAM_REDIS_SERVER to compare "
              "like with like", flush=True)  # fmt: skip
    print(f"baseline "
          f"{revs['baseline']} ({git('log', '-1', '--format=%s', a.baseline)[:70]}), candidate "
          f"{revs['candidate']} ({git('log', '-1', '--format=%s', a.candidate)[:70]})",
          flush=True)  # fmt: skip
    results: dict[str, list[dict[str, Any]]] = {"baseline": [], "candidate": []}
    tmp = tempfile.TemporaryDirectory(prefix="oddstream-compare-")
    with tmp, contextlib.ExitStack() as stack:
        trees = {side: stack.enter_context(worktree(rev, Path(tmp.name) / side))
                 for side, rev in revs.items()}  # fmt: skip
        smallest = {}
        for side, tree in trees.items():
            smallest[side] = smallest_event_bytes(tree)
            print(f"{side}: {tree} imports {check_imports(tree)}; its smallest odds event: "
                  f"{smallest[side]} B of JSON", flush=True)  # fmt: skip
        if not a.payload:
            a.payload = max(smallest.values())
        print(f"payload: every event padded to {a.payload} B of JSON on both sides (smaller "
              "where a side's smallest event is larger)", flush=True)  # fmt: skip
        started = time.monotonic()
        for n in range(a.rounds):
            order = ("baseline", "candidate") if n % 2 == 0 else ("candidate", "baseline")
            for side in order:
                label = f"round {n + 1} {side} {revs[side]}"
                results[side].append(figures(run_side(trees[side], a, label)))
        elapsed = round(time.monotonic() - started)

    def med(side: str, key: str) -> float:
        return float(statistics.median(r[key] for r in results[side]))

    print(f"\n{a.rounds} rounds per side in {elapsed}s; per run: p99 ms at "
          f"{a.rates.split(',')[0]} events/s, saturation deliveries/s (at rate)")  # fmt: skip
    for side in ("baseline", "candidate"):
        runs = ", ".join(f"{r['p99_ms_at_first_rate']} ms / {r['saturation_deliveries_per_s']}"
                         f" ({r['saturation_at_rate']:.0f}"
                         f"{'' if r['saturated'] else ', never behind: feeder-bound'})"
                         for r in results[side])  # fmt: skip
        print(f"  {side:<9} {revs[side]}: {runs}")
    summary: dict[str, Any] = {}
    for key, better in (("p99_ms_at_first_rate", "lower"),
                        ("saturation_deliveries_per_s", "higher")):  # fmt: skip
        base, cand = med("baseline", key), med("candidate", key)
        ratio = cand / base if base else float("nan")
        ok = ratio <= 1 + a.tolerance if better == "lower" else ratio >= 1 - a.tolerance
        summary[key] = {"baseline_median": base, "candidate_median": cand,
                        "ratio": round(ratio, 3), "within_tolerance": ok}  # fmt: skip
        print(f"{key}: baseline median {base:g}, candidate median {cand:g}, ratio "
              f"{ratio:.3f} ({better} is better): {'within' if ok else 'NOT within'} "
              f"{a.tolerance:.0%}")  # fmt: skip
    key = "live_path_cpu_us_per_delivery_at_first_rate"
    base, cand = med("baseline", key), med("candidate", key)
    summary[key] = {"baseline_median": base, "candidate_median": cand,
                    "ratio": round(cand / base, 3) if base else None}  # fmt: skip
    print(f"{key} (gateway + worker + Redis, for information): baseline median {base:g}, "
          f"candidate median {cand:g}, ratio {summary[key]['ratio']}")  # fmt: skip
    print(json.dumps({"machine": info, "config": vars(a), "revisions": revs,
                      "summary": summary, "runs": results}))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
