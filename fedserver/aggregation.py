"""Streaming weighted mean of client deltas: O(model) memory however many clients push.

Each accepted update is folded in as it arrives (``add``) and forgotten; the round's
result is ``sum_k w_k * delta_k / sum_k w_k``. Updates are validated (names, shapes,
finiteness) before they reach ``add``, so a rejected update never touches the sum.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

Params = Mapping[str, np.ndarray]


class WeightedMean:
    """Running weighted sum of named float arrays, in float64 to keep folding order-free."""

    def __init__(self, shapes: Mapping[str, tuple[int, ...]]) -> None:
        self._sums = {name: np.zeros(shape, dtype=np.float64) for name, shape in shapes.items()}
        self.total_weight = 0.0
        self.count = 0

    def add(self, values: Params, weight: float) -> None:
        if not (weight > 0 and np.isfinite(weight)):
            raise ValueError(f"aggregation weight must be finite and > 0, got {weight}")
        if set(values) != set(self._sums):
            raise ValueError("update tensors differ from the aggregate's tensors")
        for name, total in self._sums.items():
            total += weight * np.asarray(values[name], dtype=np.float64)
        self.total_weight += weight
        self.count += 1

    def result(self) -> dict[str, np.ndarray] | None:
        """The weighted mean as float32, or None when nothing was added."""
        if self.count == 0:
            return None
        return {name: (total / self.total_weight).astype(np.float32)
                for name, total in self._sums.items()}
