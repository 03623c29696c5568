"""The Grafana dashboard (`deploy/grafana/oddstream.json`) asks only for what gateways serve.

Every metric name its queries use must be served by a real gateway's `/metrics` (with traffic,
so labelled series exist), with every label the query groups or filters by.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis

from oddstream.shared.ingest import Ingester, parse_event
from oddstream.shared.keys import Keys
from oddstream.shared.settings import Settings
from tests.harness import Client, running_gateway, running_worker, wait_until, workers_synced

DASHBOARD = Path(__file__).resolve().parents[1] / "deploy" / "grafana" / "oddstream.json"
METRIC = re.compile(r"\b(oddstream_[a-z0-9_]+)\b")
BY = re.compile(r"\bby\s*\(([^)]*)\)")
SELECTOR_LABEL = re.compile(r"[{,]\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)")
#: Labels Prometheus adds to every scraped series, and a histogram's bucket label.
ADDED_LABELS = {"job", "instance", "le"}


def panels_of(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for panel in dashboard["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))  # a collapsed row holds its panels
    return found


def queries(dashboard: dict[str, Any]) -> list[str]:
    """Every PromQL expression: panel targets and template variable queries."""
    exprs = [t["expr"] for p in panels_of(dashboard) for t in p.get("targets", [])]
    for variable in dashboard["templating"]["list"]:
        query = variable.get("query")
        if isinstance(query, dict):
            exprs.append(query["query"])
    return exprs


async def served_metrics(http: str) -> dict[str, set[str]]:
    """Sample name -> the label names its samples carry, from a scrape of `/metrics`."""
    async with aiohttp.ClientSession() as session, session.get(f"{http}/metrics") as resp:
        assert resp.status == 200
        text = await resp.text()
    served: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            served.setdefault(sample.name, set()).update(sample.labels)
    return served


def test_the_dashboard_is_well_formed() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    panels = panels_of(dashboard)
    assert dashboard["uid"] == "oddstream" and dashboard["title"] == "Oddstream"
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert refs and len(refs) == len(set(refs)), panel["title"]
        assert panel.get("description"), f"{panel['title']} says what it shows"
    exprs = queries(dashboard)
    assert len(exprs) >= 25
    for expr in exprs:
        assert len(set(METRIC.findall(expr))) == 1, f"one metric per query: {expr}"


async def test_every_metric_and_label_the_dashboard_queries_is_served(
    settings: Settings, redis_client: Redis, keys: Keys
) -> None:
    exprs = queries(json.loads(DASHBOARD.read_text()))
    small = settings.model_copy(update={"max_message_bytes": 256})
    async with running_gateway(small) as gw, running_worker(small):
        # Traffic, so that every labelled family has series: messages in and out by type,
        # an error, a gateway close (1009), a resume, a delivery with its latency.
        client = await Client.connect(f"{gw.ws}/ws/v2/connect?reconnect=1")
        confirmed = await client.subscribe("odds_updates", sport="NHL")
        await wait_until(lambda: workers_synced(redis_client, keys), message="index")
        await Ingester(redis_client, keys).publish(
            parse_event({"kind": "odds", "sport": "NHL", "game_id": "1",
                         "sportsbook": "FanDuel", "market": "total"})
        )  # fmt: skip
        await client.next_of("odds_update")
        await client.request({"type": "nonsense"}, "error")
        other = await Client.connect(f"{gw.ws}/ws/v2/connect")
        await other.request(
            {"type": "subscribe", "subscription_type": "odds_updates",
             "filters": {"sport": "NHL"}, "position": confirmed["data"]["position"]},
            "subscription_confirmed",
        )  # fmt: skip
        await other.send("x" * 1000)
        await wait_until(lambda: other.closed_code == 1009, message="1009")

        async def workers_reported() -> bool:
            return "oddstream_worker_events" in await served_metrics(gw.http)

        await wait_until(workers_reported, message="worker figures on /metrics")
        served = await served_metrics(gw.http)
        await client.close()
        await other.close()

    for expr in exprs:
        (name,) = set(METRIC.findall(expr))
        assert name in served, f"{name} (in {expr!r}) is not served; served: {sorted(served)}"
        wanted = {label.strip() for group in BY.findall(expr) for label in group.split(",")}
        wanted |= set(SELECTOR_LABEL.findall(expr))
        missing = wanted - ADDED_LABELS - {""} - served[name]
        assert not missing, f"{expr!r} uses labels {missing} that {name} does not have"
