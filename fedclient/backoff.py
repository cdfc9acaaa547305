"""Exponential backoff with full jitter, so restarted coordinators are not stampeded."""

from __future__ import annotations

import random


class ExponentialBackoff:
    def __init__(self, *, initial_s: float, max_s: float, rng: random.Random) -> None:
        if not 0 < initial_s <= max_s:
            raise ValueError("need 0 < initial_s <= max_s")
        self._initial, self._max, self._rng = initial_s, max_s, rng
        self._attempt = 0

    def next_delay(self) -> float:
        """Uniform in [0, min(max, initial * 2^attempt)]; grows with each call."""
        cap = min(self._max, self._initial * (2 ** self._attempt))
        self._attempt = min(self._attempt + 1, 32)
        return self._rng.uniform(0, cap)

    def reset(self) -> None:
        self._attempt = 0
