"""``WeightedMean`` and ``UnweightedMean``: a value sum divided by a weight sum.

``WeightedMean(value_sum, weight_sum)`` feeds ``weight * values`` to ``value_sum`` and the
scalar weight to ``weight_sum`` (both ``Sum()`` by default), and returns
``value_sum / weight_sum`` as float32. ``UnweightedMean`` is the same with every weight 1
(one client, one vote). Either inner sum may be replaced (a secure sum, a noised sum): the
mean only divides. The weight a contribution carries was bounded by the round runner's
client weighting (:mod:`fedserver.aggregators.weighting`).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from fedserver.aggregators.base import (
    Accumulator,
    Aggregator,
    Contribution,
    Output,
    RoundSpec,
    Shapes,
    State,
    checked_values,
    checked_weight,
    same_kind,
)
from fedserver.aggregators.sum import Sum

_WEIGHT = {"weight": ()}


class MeanAccumulator:
    def __init__(self, values: Accumulator, weights: Accumulator, *, shapes: Shapes,
                 weighted: bool) -> None:
        self.values, self.weights = values, weights
        self._shapes, self._weighted = shapes, weighted

    @property
    def count(self) -> int:
        return self.values.count

    def add(self, contribution: Contribution) -> None:
        weight = checked_weight(contribution.weight) if self._weighted else 1.0
        values = checked_values(contribution.values, self._shapes)
        scaled = replace(contribution, values={n: weight * v for n, v in values.items()})
        self.values.add(scaled)
        self.weights.add(Contribution(contribution.client_id, {"weight": np.float64(weight)}))

    def merge(self, other: MeanAccumulator) -> None:  # type: ignore[override]
        same_kind(self, other)
        if other._weighted != self._weighted:
            raise TypeError("cannot merge a weighted and an unweighted mean")
        self.values.merge(other.values)
        self.weights.merge(other.weights)


class _Mean:
    weighted = True

    def __init__(self, value_sum: Aggregator | None = None,
                 weight_sum: Aggregator | None = None) -> None:
        self.value_sum = value_sum if value_sum is not None else Sum()
        self.weight_sum = weight_sum if weight_sum is not None else Sum()
        self.max_buffered = self.value_sum.max_buffered

    def initialize(self, shapes: Shapes) -> State:
        return {"value_sum": self.value_sum.initialize(shapes),
                "weight_sum": self.weight_sum.initialize(_WEIGHT)}

    def begin(self, state: State, spec: RoundSpec) -> MeanAccumulator:
        return MeanAccumulator(
            self.value_sum.begin(state["value_sum"], spec),
            self.weight_sum.begin(state["weight_sum"], RoundSpec(spec.round, _WEIGHT)),
            shapes=spec.shapes, weighted=self.weighted)

    def finalize(self, state: State, acc: MeanAccumulator) -> Output:  # type: ignore[override]
        values = self.value_sum.finalize(state["value_sum"], acc.values)
        weights = self.weight_sum.finalize(state["weight_sum"], acc.weights)
        total = float(weights.result["weight"]) if weights.result is not None else 0.0
        result = None
        if values.result is not None and total > 0:
            result = {n: (v / total).astype(np.float32) for n, v in values.result.items()}
        return Output({"value_sum": values.state, "weight_sum": weights.state}, result,
                      {"total_weight": total, "value_sum": values.measurements,
                       "weight_sum": weights.measurements})

    def get_config(self) -> dict[str, Any]:
        return {"name": type(self).__name__, "value_sum": self.value_sum.get_config(),
                "weight_sum": self.weight_sum.get_config()}


class WeightedMean(_Mean):
    """``sum_k w_k x_k / sum_k w_k``."""


class UnweightedMean(_Mean):
    """``sum_k x_k / K``: every contribution counts once, whatever weight it carries."""

    weighted = False


class FixedDenominatorMean:
    """``value_sum / denominator``: the mean over the *expected* cohort size.

    DP needs it: dividing by the number of clients that showed up would make the result
    depend on one client's presence beyond its clipped contribution. Weights are not used.
    """

    def __init__(self, value_sum: Aggregator, *, denominator: float) -> None:
        if not (np.isfinite(denominator) and denominator > 0):
            raise ValueError(f"denominator must be finite and > 0, got {denominator!r}")
        self.value_sum, self.denominator = value_sum, float(denominator)
        self.max_buffered = value_sum.max_buffered

    def initialize(self, shapes: Shapes) -> State:
        return {"value_sum": self.value_sum.initialize(shapes)}

    def begin(self, state: State, spec: RoundSpec) -> Accumulator:
        return self.value_sum.begin(state["value_sum"], spec)

    def finalize(self, state: State, acc: Accumulator) -> Output:
        values = self.value_sum.finalize(state["value_sum"], acc)
        result = None if values.result is None else {
            n: (v / self.denominator).astype(np.float32) for n, v in values.result.items()}
        return Output({"value_sum": values.state}, result,
                      {"denominator": self.denominator, "value_sum": values.measurements})

    def get_config(self) -> dict[str, Any]:
        return {"name": "FixedDenominatorMean", "denominator": self.denominator,
                "value_sum": self.value_sum.get_config()}
