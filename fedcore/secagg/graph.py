"""Who shares with whom: the complete graph (SecAgg) or a sparse random graph (SecAgg+).

SecAgg+ (Bell et al. 2020) replaces the complete graph by a random k-regular graph: each
client exchanges pairwise masks and secret shares only with its ``k`` neighbours, so its
work and traffic grow with ``k ~ log n`` instead of ``n``. The graph here is the Harary
graph H(k, n) on a random ordering of the clients, as in Bell et al.: order the clients by
a random permutation (the coordinator draws it from ``secrets``; it is public), then join
each to the ``k/2`` clients after it and the ``k/2`` before it on the cycle. The relation
is symmetric (u in N(v) iff v in N(u)), which both the masks (they must cancel) and the
shares (a dropped client's neighbours hold its key shares) rely on.

``degree = 0``, or ``degree >= n - 1``, is the complete graph.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence


def neighbours(clients: Sequence[str], *, degree: int,
               order: Sequence[str] | None = None) -> dict[str, frozenset[str]]:
    """Each client's neighbours (itself excluded). ``order`` fixes the permutation (tests);
    by default it is drawn from :mod:`secrets`."""
    ids = sorted(set(clients))
    if len(ids) != len(clients):
        raise ValueError("client ids must be unique")
    if degree < 0 or degree % 2:
        raise ValueError(f"degree must be an even number >= 0, got {degree}")
    if degree == 0 or degree >= len(ids) - 1:
        everyone = frozenset(ids)
        return {c: everyone - {c} for c in ids}
    if order is None:
        ring = list(ids)
        secrets.SystemRandom().shuffle(ring)
    else:
        ring = list(order)
        if sorted(ring) != ids:
            raise ValueError("order must be a permutation of the clients")
    n, half = len(ring), degree // 2
    return {ring[i]: frozenset(ring[(i + d) % n] for d in range(-half, half + 1) if d)
            for i in range(n)}
