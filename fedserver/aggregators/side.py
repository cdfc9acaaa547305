"""Side aggregators: fold a named extra tensor group of each update (e.g. pruning scores).

An update may carry, next to its delta, extra tensors a model transform asked for (the
client-scores pruning scheme asks for per-group importance scores). ``SideAggregator``
adapts a pruning ``ScoreCombiner`` (``add(scores, weight)`` / ``result()``) to the
aggregator contract over ``contribution.extras[key]``, so the round runner folds it like
any other aggregator and the pruning code keeps its own combiners. Stateless across rounds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fedserver.aggregators.base import (
    Contribution,
    Output,
    RejectedContribution,
    RoundSpec,
    Shapes,
    State,
    checked_weight,
    same_kind,
)
from fedserver.pruning.combine import ScoreCombiner


class SideAccumulator:
    def __init__(self, key: str, combiner: ScoreCombiner) -> None:
        self.key, self.combiner, self.count = key, combiner, 0

    def add(self, contribution: Contribution) -> None:
        if self.key not in contribution.extras:
            raise RejectedContribution(f"this round needs the update's {self.key!r} tensors")
        try:  # combiners validate everything before they fold
            self.combiner.add(contribution.extras[self.key], checked_weight(contribution.weight))
        except ValueError as exc:
            raise RejectedContribution(f"{self.key}: {exc}") from None
        self.count += 1

    def merge(self, other: SideAccumulator) -> None:  # type: ignore[override]
        same_kind(self, other)
        self.combiner.merge(other.combiner)
        self.count += other.count


class SideAggregator:
    max_buffered = None

    def __init__(self, *, key: str, shapes: Shapes, make_combiner: Callable[[], ScoreCombiner],
                 name: str) -> None:
        self.key, self.shapes, self._make, self._name = key, dict(shapes), make_combiner, name

    def initialize(self, shapes: Shapes) -> State:
        return {}

    def begin(self, state: State, spec: RoundSpec) -> SideAccumulator:
        return SideAccumulator(self.key, self._make())

    def finalize(self, state: State, acc: SideAccumulator) -> Output:  # type: ignore[override]
        result = acc.combiner.result() if acc.count else None
        return Output(state, result, {"count": acc.count})

    def get_config(self) -> dict[str, Any]:
        return {"name": "side", "key": self.key, "combiner": self._name}
