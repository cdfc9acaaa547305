"""Every refused RPC counted by method and status code, and logged once per cause.

A client that keeps sending a bad update, or a fleet with a wrong token, would flood the
log if every refusal were a line; an operator still needs to see each new kind of refusal
at once. :class:`RejectionLog` counts every refusal in
``fedprune_rpc_rejections_total{method, code}`` and logs a cause (method, status code and
the error's kind: exception class, or the round rejection's reason) the first time it is
seen, then at most once per ``every_s`` with the number of refusals since the last line.
Causes never include client-controlled text (ids, messages), so their number is bounded by
the code: methods x codes x error kinds.

Invariant: recording never raises into the RPC path and takes no coordinator lock.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter

log = logging.getLogger("fedserver.rejections")
LOG_EVERY_S = 60.0


class RejectionLog:
    def __init__(self, *, registry: CollectorRegistry, every_s: float = LOG_EVERY_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.counter = Counter("fedprune_rpc_rejections",
                               "Refused RPCs, by method and gRPC status code",
                               ["method", "code"], registry=registry)
        self._every_s = every_s
        self._clock = clock
        self._lock = threading.Lock()
        self._causes: dict[tuple[str, str, str], tuple[float, int]] = {}  # last line, since

    def rejected(self, *, method: str, code: str, kind: str, detail: str) -> None:
        """Count one refusal; log it if its cause is new or was last logged long ago.
        ``kind`` names the cause (bounded), ``detail`` is the clipped status message."""
        self.counter.labels(method, code).inc()
        cause = (method, code, kind)
        now = self._clock()
        with self._lock:
            last, since = self._causes.get(cause, (None, 0))
            if last is not None and now - last < self._every_s:
                self._causes[cause] = (last, since + 1)
                return
            self._causes[cause] = (now, 0)
        more = f" ({since} more since the last line)" if since else ""
        log.warning("refused %s with %s (%s): %s%s", method, code, kind, detail, more)
