"""Typed keys for what the aiohttp application holds (no module-level mutable state)."""

from __future__ import annotations

from aiohttp import web
from redis.asyncio import Redis

from oddstream.gateway.auth import TokenVerifier
from oddstream.gateway.limits import IpRateLimiter
from oddstream.gateway.metrics import GatewayMetrics
from oddstream.gateway.node import GatewayNode
from oddstream.shared.settings import Settings

__all__ = ["IP_LIMITER", "METRICS", "NODE", "REDIS", "SETTINGS", "TRUSTED", "VERIFIER"]

SETTINGS = web.AppKey("settings", Settings)
REDIS = web.AppKey("redis", Redis)
NODE = web.AppKey("node", GatewayNode)
METRICS = web.AppKey("metrics", GatewayMetrics)
VERIFIER = web.AppKey("verifier", TokenVerifier)
IP_LIMITER = web.AppKey("ip_limiter", IpRateLimiter)
TRUSTED = web.AppKey("trusted_proxies", list)
