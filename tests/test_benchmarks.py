"""The benchmarks still run: `tests.benchmarks.floor --smoke`, end to end.

Figures at a fiftieth of the scale mean nothing, so none is compared with anything: the test
shows that both servers (Oddstream's gateway and worker, the bare-aiohttp floor) start,
take every client, deliver every event of every scenario, and that the report holds a figure
for every target of issue #13.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys

import pytest

from tests.benchmarks.floor import SCENARIOS, SIDES, TARGETS
from tests.benchmarks.load import ROOT


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_floor_benchmark_runs_every_scenario_on_both_sides() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tests.benchmarks.floor", "--smoke"],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    figures = report["figures"]
    assert set(figures) == {s.name for s in SCENARIOS}
    for name, sides in figures.items():
        assert set(sides) == set(SIDES)
        for side, runs in sides.items():
            (run,) = runs
            assert run["kib_per_connection"] > 0 and run["connect_seconds"] > 0, (name, side)
            for rate in run["rates"]:
                # Every event reached every member of its room, on both sides.
                assert rate["completeness"] == 1.0, (name, side, rate)
                assert rate["delivered_per_s"] > 0 and rate["p99_ms"] is not None
    verdicts = {v["target"]: v for v in report["targets"]}
    assert set(verdicts) == {t.name for t in TARGETS}
    for verdict in verdicts.values():
        assert math.isfinite(verdict["floor"]) and verdict["floor"] > 0, verdict
        assert math.isfinite(verdict["oddstream"]) and verdict["oddstream"] > 0, verdict
        assert isinstance(verdict["met"], bool)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_cluster_benchmark_runs_both_setups_side_by_side() -> None:
    """`tests.benchmarks.cluster` at a small scale: two gateways and three workers deliver
    every event on one Redis and on a three-master cluster, in one run."""
    done = subprocess.run(
        [sys.executable, "-m", "tests.benchmarks.cluster", "--rates", "500", "--clients", "60",
         "--rooms", "6", "--duration", "2"],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert [r["setup"] for r in report["rows"]] == ["one Redis", "cluster, 6 shards"]
    for row in report["rows"]:
        assert row["completeness"] == 1.0, row
        assert row["delivered_per_s"] > 0 and row["latency_ms"]["p99"] is not None
    assert "cluster / one Redis" in done.stdout


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_side_by_side_comparison_runs_both_commits_with_equal_payloads() -> None:
    """`tests.benchmarks.compare` at a small scale against the commit before the delivery
    guarantees (#10's speed point is measured with it): both sides' code starts from its own
    worktree, delivers every event, carries events padded to the same size, and the summary
    holds both medians and their ratio. Needs the repository's history (a clone has it)."""
    done = subprocess.run(
        [sys.executable, "-m", "tests.benchmarks.compare", "--baseline", "4839950",
         "--rounds", "1", "--rates", "300", "--clients", "40", "--rooms", "4",
         "--duration", "2"],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    smallest = [int(m) for m in re.findall(r"its smallest odds event: (\d+) B", done.stdout)]
    assert len(smallest) == 2 and smallest[1] > smallest[0]  # #14's prices in three formats
    assert report["config"]["payload"] == max(smallest)
    assert done.stdout.count(f"--payload {max(smallest)}") == 2  # both sides padded to it
    for side in ("baseline", "candidate"):
        (run,) = report["runs"][side]
        assert run["completeness_at_first_rate"] == 1.0, (side, run)
        assert run["delivered_per_s_at_first_rate"] > 0 and run["p99_ms_at_first_rate"] > 0
    for figure in report["summary"].values():
        assert math.isfinite(figure["ratio"]) and figure["ratio"] > 0, figure
