"""Throughput on a Redis Cluster next to one Redis, in one run, with the same servers.

    python -m tests.benchmarks.cluster     # 2 gateways, 3 workers; 5k and 20k ev/s
    python -m tests.benchmarks.cluster --rates 5000,20000,40000 --clients 1000 --rooms 100

Runs `tests.benchmarks.load` twice, one after the other, with two gateways and three workers:
on one Redis (one shard), then on a local Redis Cluster of three masters with a replica each
(`--shards`, 6 by default: two per master), and prints the figures side by side: deliveries
per second, completeness, latency, and CPU of the gateways, workers and Redis (all six nodes
on the cluster). Everything runs on this machine: a cluster's masters then share its cores
with everything else, so this shows what the cluster costs and that it delivers, not the
capacity it would add on machines of its own.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from tests.benchmarks.load import run_load


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.benchmarks.cluster", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--rates", default="5000,20000", help="events/s to run in turn (5000,20000)")
    p.add_argument("--clients", type=int, default=1000)
    p.add_argument("--rooms", type=int, default=100)
    p.add_argument("--duration", type=float, default=10)
    p.add_argument("--gateways", type=int, default=2)
    p.add_argument("--workers", type=int, default=3)
    p.add_argument("--shards", type=int, default=6, help="shards on the cluster (6)")
    a = p.parse_args(argv)
    common = ["--rates", a.rates, "--clients", str(a.clients), "--rooms", str(a.rooms),
              "--duration", str(a.duration), "--gateways", str(a.gateways),
              "--workers", str(a.workers)]  # fmt: skip
    single = run_load(common, "one Redis")
    cluster = run_load([*common, "--cluster", "--shards", str(a.shards)], "Redis Cluster")
    print(f"\nmachine: {single['machine']['cpu']}, {single['machine']['cores']} cores, Redis "
          f"{single['machine']['redis']}; {a.gateways} gateways, {a.workers} workers, "
          f"{a.clients} clients in {a.rooms} rooms")  # fmt: skip
    print(f"{'ev/s':>6} {'setup':<22} {'delivered/s':>11} {'complete':>9} {'p50 ms':>7} "
          f"{'p99 ms':>7} {'gw%':>5} {'wk%':>5} {'redis%':>7}")  # fmt: skip
    rows: list[dict[str, Any]] = []
    for one, many in zip(single["runs"], cluster["runs"], strict=True):
        for label, r in (("one Redis", one), (f"cluster, {a.shards} shards", many)):
            lat, cpu = r["latency_ms"], r["cpu_pct"]
            print(f"{r['rate']:>6.0f} {label:<22} {r['delivered_per_s']:>11} "
                  f"{r['completeness']:>9.2%} {lat['p50']!s:>7} {lat['p99']!s:>7} "
                  f"{cpu['gateway']:>5.0f} {cpu.get('worker', 0):>5.0f} "
                  f"{cpu['redis']:>7.0f}")  # fmt: skip
            rows.append({"setup": label, **r})
        ratio = many["delivered_per_s"] / max(1, one["delivered_per_s"])
        print(f"{'':>6} {'cluster / one Redis':<22} {ratio:>10.2f}x")
    print(json.dumps({"machine": single["machine"], "rows": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
