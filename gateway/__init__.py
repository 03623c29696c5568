"""The WebSocket gateway: aiohttp endpoints, the gateway node and its parts, security."""

from oddstream.gateway.app import create_app, gunicorn_app, make_runner
from oddstream.gateway.node import GatewayNode

__all__ = ["GatewayNode", "create_app", "gunicorn_app", "make_runner"]
