"""The JSON Schema served at `/ws/v2/schema`: every frame, ingest event and code table."""

from __future__ import annotations

from typing import Any

from oddstream.shared.events import ingest_event_adapter
from oddstream.shared.protocol import (
    CLOSE_ADVICE_RANGES,
    CloseAdvice,
    CloseCode,
    ErrorCode,
    ServerMessage,
    SubscriptionType,
    client_message_adapter,
)
from oddstream.shared.rooms import ALLOWED_FILTERS

__all__ = ["json_schema"]


def json_schema() -> dict[str, Any]:
    """JSON Schema of every frame, for client authors in any language."""
    ranges = {f"{low}-{high - 1}": advice.value for low, high, advice in CLOSE_ADVICE_RANGES}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Oddstream WebSocket protocol",
        "client_message": client_message_adapter.json_schema(),
        "server_message": ServerMessage.model_json_schema(),
        "subscription_types": [t.value for t in SubscriptionType],
        "allowed_filters": {t.value: sorted(ALLOWED_FILTERS[t]) for t in SubscriptionType},
        "error_codes": [c.value for c in ErrorCode],
        "close_codes": {c.name: {"code": c.value, "advice": c.advice.value} for c in CloseCode},
        "close_advice_ranges": {**ranges, "other": CloseAdvice.RECONNECT_BACKOFF.value},
        "ingest_event": ingest_event_adapter.json_schema(),
    }
