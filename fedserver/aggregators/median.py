"""``Median``: the coordinate-wise median of the round's updates (Yin et al. 2018).

Each coordinate of the result is the median of that coordinate over the clients (the mean
of the two middle values for an even count), so fewer than half of the clients cannot drag
any coordinate outside the honest values' range, however large their updates. Buffered
(:mod:`fedserver.aggregators.buffered`): weights are ignored, one client one vote.

>>> import numpy as np
>>> from fedserver.aggregators import Contribution, RoundSpec
>>> agg = Median(max_buffered=3)
>>> acc = agg.begin({}, RoundSpec(1, {"w": (1,)}))
>>> for i, v in enumerate([1.0, 2.0, 100.0]):
...     acc.add(Contribution(f"c{i}", {"w": np.array([v])}))
>>> agg.finalize({}, acc).result["w"].tolist()
[2.0]
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fedserver.aggregators.buffered import BufferedAggregator


class Median(BufferedAggregator):
    name = "median"

    def combine(self, rows: np.ndarray, client_ids: list[str]
                ) -> tuple[np.ndarray, dict[str, Any]]:
        return np.median(rows, axis=0), {}
