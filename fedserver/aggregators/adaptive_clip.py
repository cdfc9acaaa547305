"""Adaptive clipping norm (Andrew et al., "Differentially private learning with adaptive
clipping", 2021): move the clip norm S geometrically toward a target quantile of the
clients' update norms, privately.

Each round every client contributes one bit ``b_k = 1[||delta_k|| <= S]`` (clipping did
not bite). The server adds Gaussian noise ``N(0, sigma_b^2)`` to their sum, divides by the
expected cohort size ``m`` and updates ``S <- S * exp(-eta * (b_mean - gamma))``: when more
than a fraction ``gamma`` of the updates fit under S, S shrinks, otherwise it grows, so S
converges to the ``gamma`` quantile of the norms. (Counting the *clipped* fraction instead
pushes S the wrong way.) The bit count is a second Gaussian query; to keep the total
privacy of the round at noise multiplier ``z``, the value sum uses
``z_delta = (z^-2 - (2 sigma_b)^-2)^(-1/2)`` (:meth:`value_noise_multiplier`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class AdaptiveClip:
    initial_norm: float = 0.1
    target_quantile: float = 0.5
    learning_rate: float = 0.2
    count_stddev: float = 0.5  # sigma_b; the paper's default is m / 20

    def __post_init__(self) -> None:
        if not (math.isfinite(self.initial_norm) and self.initial_norm > 0):
            raise ValueError(f"initial clip norm must be > 0, got {self.initial_norm!r}")
        if not 0 < self.target_quantile < 1:
            raise ValueError(f"target_quantile must be in (0, 1), got {self.target_quantile!r}")
        if not self.learning_rate > 0:
            raise ValueError(f"clip learning_rate must be > 0, got {self.learning_rate!r}")
        if not self.count_stddev > 0:
            raise ValueError(f"count_stddev must be > 0, got {self.count_stddev!r}")

    def value_noise_multiplier(self, z: float) -> float:
        """The noise multiplier left for the value sum when the round's total is ``z``."""
        if z == 0:
            return 0.0
        rest = z ** -2 - (2 * self.count_stddev) ** -2
        if rest <= 0:
            raise ValueError(f"noise multiplier {z} is too small for count_stddev "
                             f"{self.count_stddev}: need z < 2 * count_stddev")
        return rest ** -0.5

    def next_norm(self, norm: float, *, noised_unclipped: float, expected_clients: float) -> float:
        fraction = noised_unclipped / expected_clients
        return norm * math.exp(-self.learning_rate * (fraction - self.target_quantile))
