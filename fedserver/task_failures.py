"""Tasks that clients gave up, and why (the ``ReportFailure`` RPC).

Why: a client that cannot complete a task (its local update is not finite, the task
names a model it does not allow, the pulled model is unusable) used to go silent — the
operator saw a round time out with no clue. Now it says why, and the reason lands in the
round's record (``measurements.client_failures``: client id -> reason name) and in the
metrics. Invariants: a report is validated (known reason, bounded detail) before it is
kept; each (client, round) is kept once, so a retried report is a duplicate; a report
never counts as a result (it does not make a quorum, and the model is untouched), but it
is the client's one answer to its task: a later result for it is a conflict, and a step
whose selected clients have all answered closes without waiting for its deadline.
"""

from __future__ import annotations

import threading

from fedcore.pb import coordinator_pb2 as cpb
from fedserver.updates import InvalidUpdate

DETAIL_LIMIT = 300  # characters of a failure's detail

_NAMES = {v.number: v.name.removeprefix("FAILURE_REASON_").lower()
          for v in cpb.FailureReason.DESCRIPTOR.values if v.number}


def reason_name(failure: cpb.TaskFailure) -> str:
    """The reason's name (``non_finite_update``, ...); raises InvalidUpdate if invalid."""
    name = _NAMES.get(failure.reason)
    if name is None:
        raise InvalidUpdate(f"failure reason must be one of {sorted(_NAMES.values())}")
    if len(failure.detail) > DETAIL_LIMIT or not failure.detail.isprintable():
        raise InvalidUpdate(f"failure detail must be at most {DETAIL_LIMIT} printable "
                            "characters")
    return name


class TaskFailures:
    """Per round: client id -> reason name (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rounds: dict[int, dict[str, str]] = {}

    def record(self, round_: int, client_id: str, reason: str) -> bool:
        """Keep a validated failure; False if this client's failure in ``round_`` is known."""
        with self._lock:
            kept = self._rounds.setdefault(round_, {})
            if client_id in kept:
                return False
            kept[client_id] = reason
            return True

    def of(self, round_: int) -> dict[str, str]:
        """The failures of ``round_`` (those of earlier rounds are forgotten)."""
        with self._lock:
            self._rounds = {r: f for r, f in self._rounds.items() if r >= round_}
            return dict(self._rounds.get(round_, {}))
