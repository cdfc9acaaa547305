"""``TrimmedMean(beta)``: per coordinate, drop the ``beta`` fraction of largest and of
smallest values, average the rest (Yin et al. 2018).

With ``n`` updates, ``k = floor(beta * n)`` values are dropped at each end (at most
``(n - 1) // 2``, so at least one value remains); up to ``k`` adversarial clients cannot move
a coordinate outside the honest values' range. ``beta = 0`` is the unweighted mean. Buffered
(:mod:`fedserver.aggregators.buffered`): weights are ignored. Measurements: ``trimmed``
(``k``, per end).

>>> import numpy as np
>>> from fedserver.aggregators import Contribution, RoundSpec
>>> agg = TrimmedMean(beta=0.2, max_buffered=5)
>>> acc = agg.begin({}, RoundSpec(1, {"w": (1,)}))
>>> for i, v in enumerate([-50.0, 1.0, 2.0, 3.0, 900.0]):
...     acc.add(Contribution(f"c{i}", {"w": np.array([v])}))
>>> agg.finalize({}, acc).result["w"].tolist()
[2.0]
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from fedserver.aggregators.buffered import BufferedAggregator


class TrimmedMean(BufferedAggregator):
    name = "trimmed_mean"

    def __init__(self, *, beta: float, max_buffered: int) -> None:
        if not (math.isfinite(beta) and 0 <= beta < 0.5):
            raise ValueError(f"beta must be in [0, 0.5), got {beta!r}")
        super().__init__(max_buffered=max_buffered)
        self.beta = float(beta)

    def params(self) -> dict[str, Any]:
        return {"beta": self.beta}

    def combine(self, rows: np.ndarray, client_ids: list[str]
                ) -> tuple[np.ndarray, dict[str, Any]]:
        n = len(rows)
        k = min(math.floor(self.beta * n), (n - 1) // 2)
        kept = np.sort(rows, axis=0)[k:n - k]
        return kept.mean(axis=0), {"trimmed": k}
