"""The accumulator of wrappers that scale each contribution by one factor, then delegate.

``NormBound`` (factor: the clip to ``max_norm``) and ``StalenessWeighted`` (factor: the
staleness weight) differ only in how the factor is found. Invariant: a contribution is
validated and its factor computed (which may reject it) before anything is folded, and
two accumulators merge only if their wrappers are configured alike.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from fedserver.aggregators.base import Accumulator, Arrays, Contribution, Shapes, checked_values
from fedserver.aggregators.base import same_kind as _same_kind


class ScalingAccumulator:
    def __init__(self, inner: Accumulator, *, shapes: Shapes, config: Any,
                 factor: Callable[[Arrays, Contribution], float]) -> None:
        """``factor(values, contribution)``: the scale of a validated contribution (it may
        raise ``RejectedContribution``); ``config``: what merging compares."""
        self.inner, self._shapes, self._config, self._factor = inner, shapes, config, factor
        self.factors: list[float] = []

    @property
    def count(self) -> int:
        return self.inner.count

    def add(self, contribution: Contribution) -> None:
        values = checked_values(contribution.values, self._shapes)
        factor = self._factor(values, contribution)
        self.inner.add(replace(contribution, values={n: v * factor for n, v in values.items()}))
        self.factors.append(factor)

    def merge(self, other: ScalingAccumulator) -> None:  # type: ignore[override]
        _same_kind(self, other)
        if other._config != self._config:
            raise TypeError(f"cannot merge an accumulator of {other._config} into one of "
                            f"{self._config}")
        self.inner.merge(other.inner)
        self.factors += other.factors
