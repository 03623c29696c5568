"""Typed keys for what the aiohttp application holds (no module-level mutable state)."""

from __future__ import annotations

from aiohttp import web
from redis.asyncio import Redis

from gateway.hub import Hub
from gateway.metrics import GatewayMetrics
from shared.ingest import Ingester
from shared.settings import Settings

__all__ = ["HUB", "INGESTER", "METRICS", "REDIS", "SETTINGS"]

SETTINGS = web.AppKey("settings", Settings)
REDIS = web.AppKey("redis", Redis)
HUB = web.AppKey("hub", Hub)
METRICS = web.AppKey("metrics", GatewayMetrics)
INGESTER = web.AppKey("ingester", Ingester)
