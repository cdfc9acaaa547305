"""Poisson sampling of a round's cohort from the known population.

Amplification by sampling, which makes DP-FedAvg affordable for large populations, holds
only if each client of the population takes part in a round independently with
probability q, and the adversary cannot predict who. So the draw uses the operating
system's CSPRNG (``secrets.SystemRandom``), includes every registered client (not only the
ones that happen to be waiting), and the accountant is given this q only in this mode
(``round.selection = "poisson"``); the default selection ("waiting": a uniform draw
among the clients currently long-polling) claims no amplification.
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
