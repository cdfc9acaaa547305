"""Failed authentication, rate-limited per peer.

Why: every token check costs a hash and, when it fails, a status and a log line; a peer
guessing tokens (or replaying a stolen id with a bad token) should not get unlimited
tries, nor make the coordinator work for each. Invariants: after ``max_failures`` failed
authentications within ``window_s``, every call from that peer is refused at once —
RESOURCE_EXHAUSTED with the rejection reason ``auth_throttled`` — *before* its metadata
or token is looked at, until the window ends; successful calls neither count nor reset
the window. A peer is its verified certificate name when it presented one (mTLS), else
its network address without the port (a new connection does not start afresh). The
table holds at most ``max_peers`` peers, the least recently failing forgotten first.

What it does not do: peers behind one address (NAT) share a budget, so an attacker there
can get an honest neighbour throttled for a window (the neighbour retries with backoff);
an attacker controlling many addresses gets ``max_failures`` tries from each.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from fedcore.rejections import AUTH_THROTTLED
from fedserver.auth import PeerAuth, certificate_identity
from fedserver.throttling import Throttled, WindowCounter


def peer_key(address: str, peer: PeerAuth | None = None) -> str:
    """``"cert:<name>"`` for a verified client certificate, else the address without its
    port (``ipv4:10.0.0.7``, ``ipv6:[::1]``); grpc's ``context.peer()`` is the address."""
    certified = certificate_identity(peer or {})
    if certified:
        return f"cert:{certified}"
    kind, _, rest = address.partition(":")
    if kind in ("ipv4", "ipv6") and rest.count(":") >= 1:
        rest = rest.rsplit(":", 1)[0]
    return f"{kind}:{rest}" if rest else kind


class FailedAuthLimiter:
    def __init__(self, *, max_failures: int, window_s: float, max_peers: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if max_failures < 1:
            raise ValueError(f"max_failures must be >= 1, got {max_failures!r}")
        self._max_failures = max_failures
        self._failures = WindowCounter(window_s=window_s, max_keys=max_peers, clock=clock)

    def check(self, peer: str) -> None:
        """Raise :class:`~fedserver.throttling.Throttled` if ``peer`` used up its tries."""
        failures, left = self._failures.count(peer)
        if failures >= self._max_failures:
            raise Throttled(AUTH_THROTTLED,
                            f"too many failed authentications from this peer; retry in "
                            f"{left:.0f} s", retry_after_s=left)

    def record_failure(self, peer: str) -> None:
        self._failures.add(peer)

    @property
    def tracked_peers(self) -> int:
        return len(self._failures)
