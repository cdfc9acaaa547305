"""Client weighting: the bounded aggregation weight of a client's claimed example count.

A client *claims* its example count; nothing proves it. Weighting by the raw claim lets one
client that claims 2**40 examples replace the global model with its own delta. The round
runner therefore turns every claim into a weight here, before any aggregator sees it:

* ``examples``: ``min(n, cap)`` (FedAvg's weighting; use when data sizes differ and clients
  are trusted to report them);
* ``sqrt``: ``sqrt(min(n, cap))`` (dampens large clients; a compromise for heavy-tailed
  sizes);
* ``uniform``: 1 for everyone (one client, one vote; use when claims cannot be trusted or
  every client should be served equally).

``cap`` is ``cap_multiple`` times the *reference* count: the median of the example counts
the population declared at check-in (a median, so one liar cannot move it). ``cap_multiple
= 0`` disables the cap. With the default 4 an honest W1 client (69-275 examples, median
about 140) is never capped.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

WEIGHTINGS: dict[str, Callable[[float], float]] = {
    "examples": lambda n: n,
    "sqrt": math.sqrt,
    "uniform": lambda n: 1.0,
}


@dataclass(frozen=True)
class Weighting:
    kind: str = "examples"
    cap_multiple: float = 4.0

    def __post_init__(self) -> None:
        if self.kind not in WEIGHTINGS:
            raise ValueError(f"weighting: must be one of {sorted(WEIGHTINGS)}, got {self.kind!r}")
        if not (math.isfinite(self.cap_multiple) and self.cap_multiple >= 0):
            raise ValueError(f"weight_cap: must be finite and >= 0, got {self.cap_multiple!r}")

    def cap(self, reference_examples: float) -> float:
        """The largest example count a claim is credited with (inf: no cap)."""
        if self.cap_multiple == 0 or reference_examples <= 0:
            return math.inf
        return self.cap_multiple * reference_examples

    def weight(self, claimed: int, *, cap: float) -> float:
        if claimed < 1:
            raise ValueError(f"claimed example count must be >= 1, got {claimed}")
        return float(WEIGHTINGS[self.kind](min(float(claimed), cap)))


def reference_examples(declared: Iterable[int]) -> float:
    """Median of the declared example counts (0.0 when nobody declared one)."""
    counts = [c for c in declared if c > 0]
    return float(np.median(counts)) if counts else 0.0
