"""``MultiKrum(f, m)``: average the ``m`` updates closest to their neighbours (Blanchard et
al., "Machine learning with adversaries: Byzantine tolerant gradient descent", 2017).

Each update is scored by the sum of its squared L2 distances to its ``n - f - 2`` nearest
other updates; the ``m`` lowest scores are averaged (``m = 1`` is Krum). An outlier far from
every honest update scores high and is not selected, whatever its size, as long as
``n > 2f + 2`` (the guarantee's condition; a preset rule checks it against the cohort).
Below ``n = f + 3`` the neighbour count is clamped to 1 so small rounds still aggregate;
``m`` is clamped to ``n``, and ``m = 0`` means ``n - f``. Ties break by arrival order.
Buffered (:mod:`fedserver.aggregators.buffered`): weights are ignored. Measurements:
``selected`` (client ids), ``neighbours``.

>>> import numpy as np
>>> from fedserver.aggregators import Contribution, RoundSpec
>>> agg = MultiKrum(f=1, m=1, max_buffered=4)
>>> acc = agg.begin({}, RoundSpec(1, {"w": (1,)}))
>>> for i, v in enumerate([1.0, 1.1, 0.9, 50.0]):
...     acc.add(Contribution(f"c{i}", {"w": np.array([v])}))
>>> out = agg.finalize({}, acc)
>>> out.result["w"].tolist(), out.measurements["selected"]
([1.0], ['c0'])
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fedserver.aggregators.buffered import BufferedAggregator


def pairwise_squared_distances(rows: np.ndarray) -> np.ndarray:
    """``d[i, j] = ||rows[i] - rows[j]||^2`` via the Gram matrix (O(n^2) memory, not n^2 d)."""
    sq = np.einsum("ij,ij->i", rows, rows)
    d = sq[:, None] + sq[None, :] - 2.0 * (rows @ rows.T)
    np.fill_diagonal(d, 0.0)
    return np.maximum(d, 0.0)  # rounding can make an exact 0 slightly negative


class MultiKrum(BufferedAggregator):
    name = "multi_krum"

    def __init__(self, *, f: int, m: int = 0, max_buffered: int) -> None:
        if isinstance(f, bool) or not isinstance(f, int) or f < 0:
            raise ValueError(f"f must be an int >= 0, got {f!r}")
        if isinstance(m, bool) or not isinstance(m, int) or m < 0:
            raise ValueError(f"m must be an int >= 0 (0: n - f), got {m!r}")
        super().__init__(max_buffered=max_buffered)
        self.f, self.m = f, m

    def params(self) -> dict[str, Any]:
        return {"f": self.f, "m": self.m}

    def combine(self, rows: np.ndarray, client_ids: list[str]
                ) -> tuple[np.ndarray, dict[str, Any]]:
        n = len(rows)
        neighbours = max(1, min(n - self.f - 2, n - 1))
        m = min(self.m or max(1, n - self.f), n)
        if n == 1:
            return rows[0], {"selected": list(client_ids), "neighbours": 0}
        d = pairwise_squared_distances(rows)
        # each row's own 0 sorts first: skip it, sum the next `neighbours` distances
        scores = np.sort(d, axis=1)[:, 1:neighbours + 1].sum(axis=1)
        chosen = np.argsort(scores, kind="stable")[:m]
        return (rows[chosen].mean(axis=0),
                {"selected": [client_ids[i] for i in chosen], "neighbours": neighbours})
