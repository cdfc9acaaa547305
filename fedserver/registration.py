"""Sybil resistance in shared-token mode: a cap on new client ids per time window.

Why: with one token for every client (``auth.shared_token``), any holder may claim any
client id, so an attacker can invent ids faster than honest clients join and crowd the
population that rounds are drawn from. Per-client tokens (``auth.tokens``) and client
certificates (mTLS) bound the ids to what the operator issued; a shared token does not,
so the coordinator says so loudly at start-up (:func:`shared_token_warning`) and admits
at most ``auth.max_new_clients`` ids it has never seen per ``auth.new_client_window_s``
(:class:`NewClientCap`). Ids already registered (in this run's store, or seen since the
start) are never refused. Invariant: a refused registration records nothing — the id
is not registered, not counted against the window, and gets RESOURCE_EXHAUSTED with the
rejection reason ``registration_capped`` and the time until the window reopens.

What it does not do: it bounds how fast a token holder can add ids, not how many it holds
after many windows; rounds draw their cohort from the registered population
(``round.selection``), so a cap slows crowding but only per-client credentials stop it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from fedcore.rejections import REGISTRATION_CAPPED
from fedserver.config import AuthConfig
from fedserver.throttling import Throttled, WindowCounter

_NEW = ""  # the one key of the window: new ids of any name count together


class NewClientCap:
    """At most ``max_new`` new client ids per ``window_s`` (0: no cap)."""

    def __init__(self, *, max_new: int, window_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if max_new < 0:
            raise ValueError(f"max_new must be >= 0, got {max_new!r}")
        self._max_new = max_new
        self._window_s = window_s
        self._window = WindowCounter(window_s=window_s, max_keys=1, clock=clock)
        self._lock = threading.Lock()
        self._admitted: set[str] = set()  # this window's new ids (at most max_new)

    def admit(self, client_id: str, *, known: bool) -> None:
        """Return if ``client_id`` may register (counting it once per window when new);
        else raise :class:`~fedserver.throttling.Throttled`."""
        if known or not self._max_new:
            return
        with self._lock:
            self._admit_locked(client_id)

    def _admit_locked(self, client_id: str) -> None:
        admitted, left = self._window.count(_NEW)
        if not admitted:
            self._admitted.clear()
        if client_id in self._admitted:  # admitted, not registered yet (a call in flight)
            return
        if admitted >= self._max_new:
            raise Throttled(REGISTRATION_CAPPED,
                            f"new client ids are capped at {self._max_new} per "
                            f"{self._window_s:g} s (auth.max_new_clients); retry in "
                            f"{left:.0f} s", retry_after_s=left)
        self._window.add(_NEW)
        self._admitted.add(client_id)


def shared_token_warning(auth: AuthConfig) -> str | None:
    """The start-up warning for a coordinator that admits clients by a shared token."""
    if not auth.shared_token:
        return None
    cap = (f"at most {auth.max_new_clients} new client ids per {auth.new_client_window_s:g} s"
           if auth.max_new_clients else "no cap on new client ids (auth.max_new_clients = 0)")
    return ("SHARED TOKEN: client identities are NOT authenticated — anyone holding "
            "auth.shared_token can claim any client id (its rounds, its tasks) and invent new "
            f"ids; {cap}. Use per-client tokens (auth.tokens) or client certificates "
            "(tls.client_ca) beyond a trusted network.")
