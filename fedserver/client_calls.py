"""At most a few calls in progress per client id.

Why: a long-poll or an open stream holds a server slot (a worker thread in the
synchronous server) for as long as it lasts, so one authenticated client opening many of
them could starve everyone else within the global limits. A client daemon needs one call
at a time (plus an overlapping retry of a call it thinks was lost), so ``limit`` is small.
Invariants: a client id holds at most ``limit`` calls at once, counted from
authentication to the call's end (a server-streaming pull until its last chunk); one
more is refused at once with RESOURCE_EXHAUSTED and the rejection reason
``too_many_calls``; the table holds only ids with a call in progress.

What it does not do: with a shared token, a holder claiming a victim's id uses up the
victim's calls too (per-client tokens or certificates prevent that).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from fedcore.rejections import TOO_MANY_CALLS
from fedserver.throttling import Throttled


class ClientCallLimit:
    def __init__(self, *, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit!r}")
        self._limit = limit
        self._lock = threading.Lock()
        self._calls: dict[str, int] = {}

    @contextmanager
    def hold(self, client_id: str) -> Iterator[None]:
        with self._lock:
            held = self._calls.get(client_id, 0)
            if held >= self._limit:
                raise Throttled(TOO_MANY_CALLS,
                                f"client has {held} calls in progress, the limit is "
                                f"{self._limit} (network.max_calls_per_client)")
            self._calls[client_id] = held + 1
        try:
            yield
        finally:
            with self._lock:
                left = self._calls[client_id] - 1
                if left:
                    self._calls[client_id] = left
                else:
                    del self._calls[client_id]

    def in_progress(self, client_id: str) -> int:
        with self._lock:
            return self._calls.get(client_id, 0)
