"""Reconnect delays: exponential with jitter, the seed's 2, 4, 8, 16, 30 s schedule."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal

__all__ = ["Backoff"]


@dataclass(frozen=True)
class Backoff:
    """Delay before reconnect attempt n (1-based): base * factor**(n-1), at most `max_delay`.

    The default is the seed's schedule, 2, 4, 8, 16, 30 s. Jitter spreads clients that lost
    the same gateway so they do not all come back in the same instant:
    `"full"` picks uniformly in [0, d]; `"proportional"` in [(1 - ratio) * d, d]; `"none"`
    keeps the exact schedule (tests).
    """

    base: float = 2.0
    factor: float = 2.0
    max_delay: float = 30.0
    jitter: Literal["none", "full", "proportional"] = "proportional"
    jitter_ratio: float = 0.2

    def schedule(self, attempt: int) -> float:
        """The un-jittered delay before attempt `attempt` (1-based)."""
        exponent = max(0, attempt - 1)
        try:
            raw = self.base * self.factor**exponent
        except OverflowError:
            raw = self.max_delay
        return min(self.max_delay, raw)

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """The delay to wait before attempt `attempt`, jittered as configured."""
        nominal = self.schedule(attempt)
        if self.jitter == "none":
            return nominal
        draw = (rng or random).random()
        if self.jitter == "full":
            return nominal * draw
        return nominal * (1.0 - self.jitter_ratio * draw)
