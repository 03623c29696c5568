"""Prometheus metrics of one gateway, plus cluster-wide worker and stream figures.

Each app owns its CollectorRegistry (no process-global state), so tests can run several
gateways in one process. Worker counters come from the workers' beats in Redis and stream
lag from XINFO, refreshed when `/metrics` is scraped.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

__all__ = ["GatewayMetrics"]


def _children(metric: Counter) -> Callable[[str], Counter]:
    """`metric.labels` for a one-label counter, with its children cached: prometheus_client
    checks and converts the label values on every call, which was 5% of a gateway's CPU
    while accepting connections (a welcome, a subscribe and a confirmation each count)."""
    return lru_cache(maxsize=512)(metric.labels)


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.connections = Gauge(
            "oddstream_connections", "Open WebSocket connections on this gateway", registry=r
        )
        self.rooms = Gauge("oddstream_rooms", "Rooms with members on this gateway", registry=r)
        self.cluster_rooms = Gauge("oddstream_cluster_rooms", "Rooms in the cluster", registry=r)
        self.messages_in = Counter(
            "oddstream_messages_in", "Client messages received, by type", ["type"], registry=r
        )
        self.messages_out = Counter(
            "oddstream_messages_out", "Messages sent to clients, by type", ["type"], registry=r
        )
        self.connections_opened = Counter(
            "oddstream_connections_opened", "Connections accepted", ["endpoint"], registry=r
        )
        self.reconnections = Counter(
            "oddstream_reconnections",
            "Connections that declared themselves a reconnect (?reconnect=N)",
            registry=r,
        )
        self.errors = Counter(
            "oddstream_errors", "Errors sent or refused, by code", ["code"], registry=r
        )
        self.closes = Counter(
            "oddstream_closes", "Connections closed by the gateway, by close code", ["code"],
            registry=r,
        )  # fmt: skip
        self.messages_in_of = _children(self.messages_in)
        self.messages_out_of = _children(self.messages_out)
        self.connections_opened_of = _children(self.connections_opened)
        self.errors_of = _children(self.errors)
        self.closes_of = _children(self.closes)
        self.redis_up = Gauge(
            "oddstream_redis_up", "1 while this gateway reaches Redis, else 0", registry=r
        )
        self.redis_outages = Counter(
            "oddstream_redis_outages", "Times this gateway lost Redis", registry=r
        )
        self.canary_seconds = Gauge(
            "oddstream_canary_seconds",
            "Round trip of the last pipeline canary (ingest -> worker -> this gateway)",
            registry=r,
        )
        self.conflated = Counter(
            "oddstream_conflated",
            "Held odds/prediction frames replaced by a newer one for a backed-up client",
            registry=r,
        )
        self.resumes = Counter(
            "oddstream_resumes", "Subscribes with a position, by whether they recovered",
            ["result"], registry=r,
        )  # fmt: skip
        self.snapshots = Counter(
            "oddstream_snapshots", "Snapshots sent to new or resynced subscriptions", registry=r
        )
        self.inbox_deliveries = Counter(
            "oddstream_inbox_deliveries",
            "Event deliveries read from this gateway's inbox",
            registry=r,
        )
        self.worker_events = Gauge(
            "oddstream_worker_events", "Events processed by each live worker",
            ["worker", "stage"], registry=r,
        )  # fmt: skip
        self.stream_lag = Gauge(
            "oddstream_stream_lag", "Entries of an ingest partition not yet delivered",
            ["stream"], registry=r,
        )  # fmt: skip
        self.stream_length = Gauge(
            "oddstream_stream_length", "Entries held in each stream", ["stream"], registry=r
        )

    def update_cluster(
        self, workers: dict[str, dict[str, Any]], streams: dict[str, dict[str, Any]], rooms: int
    ) -> None:
        self.worker_events.clear()
        for worker_id, info in workers.items():
            for stage in (
                "processed",
                "matched",
                "deliveries",
                "deadlettered",
                "canaries",
                "errors",
                "stale",
                "commits",
            ):
                self.worker_events.labels(worker_id, stage).set(info.get(stage, 0))
        for name, figures in streams.items():
            if figures.get("lag") is not None:
                self.stream_lag.labels(name).set(figures["lag"])
            self.stream_length.labels(name).set(figures.get("length", 0))
        self.cluster_rooms.set(rooms)

    def render(self) -> bytes:
        return generate_latest(self.registry)
