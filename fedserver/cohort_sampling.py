"""Population-level sampling of a round's cohort: Poisson, or uniform without replacement.

Amplification by sampling, which makes DP-FedAvg affordable for large populations, holds
only if each client of the population takes part in a round independently with
probability q, and the adversary cannot predict who. So the draw uses the operating
system's CSPRNG (``secrets.SystemRandom``), includes every registered client (not only the
ones that happen to be waiting), and the accountant is given this q only in this mode
(``round.selection = "poisson"``). ``round.selection = "uniform"`` draws a fixed-size
cohort uniformly without replacement from the same population (same CSPRNG), for a
cohort of known size that does not depend on who happens to be connected; the accountant
claims no amplification for it (q = 1, conservative). The default selection ("waiting":
a uniform draw among the clients currently long-polling) claims none either.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable


def poisson_cohort(population: Iterable[str], rate: float, *,
                   rng: secrets.SystemRandom | None = None) -> frozenset[str]:
    if not 0 < rate <= 1:
        raise ValueError(f"sampling rate must be in (0, 1], got {rate!r}")
    draw = rng or secrets.SystemRandom()
    return frozenset(c for c in sorted(population) if draw.random() < rate)


def uniform_cohort(population: Iterable[str], size: int, *,
                   rng: secrets.SystemRandom | None = None) -> frozenset[str]:
    members = sorted(population)
    if not 0 <= size <= len(members):
        raise ValueError(f"cohort size must be in 0..{len(members)} (the population), got {size}")
    return frozenset((rng or secrets.SystemRandom()).sample(members, size))
