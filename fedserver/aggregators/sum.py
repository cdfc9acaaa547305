"""``Sum``: the plain streaming sum of every contribution's values (weights ignored).

The building block of the means: ``WeightedMean`` hands it weight-scaled values, and a
secure or private sum can replace it without the mean noticing. Sums run in float64 so the
result does not depend on the order contributions arrive in (up to float64 rounding).
Stateless: ``initialize`` returns ``{}``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fedserver.aggregators.base import (
    Contribution,
    Output,
    RoundSpec,
    Shapes,
    State,
    checked_values,
    same_kind,
)


class SumAccumulator:
    def __init__(self, shapes: Shapes) -> None:
        self.shapes = {n: tuple(s) for n, s in shapes.items()}
        self.totals = {n: np.zeros(s, dtype=np.float64) for n, s in self.shapes.items()}
        self.count = 0

    def add(self, contribution: Contribution) -> None:
        values = checked_values(contribution.values, self.shapes)  # validate all, then fold
        for name, arr in values.items():
            self.totals[name] += arr
        self.count += 1

    def merge(self, other: SumAccumulator) -> None:  # type: ignore[override]
        same_kind(self, other)
        if other.shapes != self.shapes:  # would broadcast silently, or fold half and fail
            raise TypeError(f"cannot merge a sum of shapes {other.shapes} into one of "
                            f"{self.shapes}")
        for name, arr in other.totals.items():
            self.totals[name] += arr
        self.count += other.count


class Sum:
    max_buffered = None

    def initialize(self, shapes: Shapes) -> State:
        return {}

    def begin(self, state: State, spec: RoundSpec) -> SumAccumulator:
        return SumAccumulator(spec.shapes)

    def finalize(self, state: State, acc: SumAccumulator) -> Output:  # type: ignore[override]
        result = None if acc.count == 0 else {n: t.copy() for n, t in acc.totals.items()}
        return Output(state, result, {"count": acc.count})

    def get_config(self) -> dict[str, Any]:
        return {"name": "sum"}
