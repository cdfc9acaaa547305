"""How a coordinator tells a client *why* a result was refused, beyond the status code.

A status code alone is ambiguous: ``DEADLINE_EXCEEDED`` is both the coordinator refusing a
push that arrived after its step closed (final: the task is over, a retry is refused
again) and the client's own call timing out (transient: the same bytes may be retried). So
every refusal of a result carries the trailing metadata ``REJECTION_KEY`` with the reason's
name in lower case (``late``, ``stale_version``, ...); its absence means the status did not
come from a refusal. Calls refused by a limit in front of the coordinator carry it too, with
RESOURCE_EXHAUSTED: ``registration_capped`` (a new client id beyond the per-window cap),
``auth_throttled`` (too many failed authentications from this peer) and
``too_many_calls`` (this client id already holds its calls in progress); a client backs
off on them like on any refusal.
"""

from __future__ import annotations

from collections.abc import Iterable

REJECTION_KEY = "fedprune-rejection"
LATE = "late"
REGISTRATION_CAPPED = "registration_capped"
AUTH_THROTTLED = "auth_throttled"
TOO_MANY_CALLS = "too_many_calls"


def rejection_of(trailing_metadata: Iterable[tuple[str, object]] | None) -> str | None:
    """The refusal reason in a call's trailing metadata, or None."""
    for key, value in trailing_metadata or ():
        if key == REJECTION_KEY:
            return value.decode() if isinstance(value, bytes) else str(value)
    return None
