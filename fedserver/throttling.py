"""Counting events per key in fixed time windows, and the refusal a limit raises.

Why: several limits in front of the coordinator (failed authentications per peer, new
client ids per window) answer the same question — "how many of these happened lately,
and when may the caller try again?" — and must never let an attacker grow their memory.
Invariants: :class:`WindowCounter` holds at most ``max_keys`` keys (the least recently
counted one is forgotten first, so the table is bounded whatever the number of keys an
attacker invents); a key's count resets when its window (``window_s`` from its first
event) has passed. :class:`Throttled` is what a limit raises: the servicer maps it to
RESOURCE_EXHAUSTED with its ``reason`` in the rejection trailer (:mod:`fedcore.rejections`).
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Callable


class Throttled(Exception):
    """A call refused by a rate or concurrency limit (RESOURCE_EXHAUSTED).

    ``reason`` is the machine-readable name sent in the rejection trailer;
    ``retry_after_s`` how long until the limit lets this caller through again."""

    def __init__(self, reason: str, message: str, *, retry_after_s: float = 0.0) -> None:
        super().__init__(message)
        self.reason = reason
        self.retry_after_s = retry_after_s


class WindowCounter:
    """Events per key in fixed windows, over a bounded table (thread-safe)."""

    def __init__(self, *, window_s: float, max_keys: int,
                 clock: Callable[[], float]) -> None:
        if not (math.isfinite(window_s) and window_s > 0):
            raise ValueError(f"window_s must be finite and > 0, got {window_s!r}")
        if max_keys < 1:
            raise ValueError(f"max_keys must be >= 1, got {max_keys!r}")
        self._window_s = window_s
        self._max_keys = max_keys
        self._clock = clock
        self._lock = threading.Lock()
        self._windows: OrderedDict[str, tuple[float, int]] = OrderedDict()  # key -> (start, n)

    def __len__(self) -> int:
        return len(self._windows)

    def count(self, key: str) -> tuple[int, float]:
        """(events of ``key`` in its current window, seconds until that window ends)."""
        with self._lock:
            return self._current(key)

    def add(self, key: str) -> int:
        """Count one event of ``key``; returns the count in its window, this one included."""
        with self._lock:
            n, _ = self._current(key)
            start = self._windows[key][0] if n else self._clock()
            self._windows[key] = (start, n + 1)
            self._windows.move_to_end(key)
            while len(self._windows) > self._max_keys:
                self._windows.popitem(last=False)
            return n + 1

    def _current(self, key: str) -> tuple[int, float]:
        entry = self._windows.get(key)
        if entry is None:
            return 0, 0.0
        left = entry[0] + self._window_s - self._clock()
        if left <= 0:
            del self._windows[key]
            return 0, 0.0
        return entry[1], left
