"""``NormBound``: scale each contribution to an L2 norm of at most ``max_norm``, then delegate.

A defence against model poisoning on its own (Sun et al., "Can you really backdoor federated
learning?", 2019): one client can move the mean by at most ``max_norm * w / sum(w)``,
however large the delta it sends. The norm is global over all of a contribution's tensors;
an all-zero update is passed through unchanged (no division by zero). Streaming: memory is
the inner aggregator's. Measurements: ``clipped`` (contributions scaled down), and the
inner aggregator's under ``inner``.

>>> import numpy as np
>>> from fedserver.aggregators import Contribution, RoundSpec, Sum
>>> agg = NormBound(Sum(), max_norm=1.0)
>>> acc = agg.begin(agg.initialize({"w": (2,)}), RoundSpec(1, {"w": (2,)}))
>>> acc.add(Contribution("a", {"w": np.array([3.0, 4.0])}))
>>> agg.finalize({"inner": {}}, acc).result["w"].round(12).tolist()
[0.6, 0.8]
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

from fedcore.norms import clip_scale, global_l2_norm
from fedserver.aggregators.base import (
    Accumulator,
    Aggregator,
    Contribution,
    Output,
    RoundSpec,
    Shapes,
    State,
    checked_values,
    same_kind,
)


class NormBoundAccumulator:
    def __init__(self, inner: Accumulator, *, shapes: Shapes, max_norm: float) -> None:
        self.inner, self._shapes, self._max_norm = inner, shapes, max_norm
        self.clipped = 0

    @property
    def count(self) -> int:
        return self.inner.count

    def add(self, contribution: Contribution) -> None:
        values = checked_values(contribution.values, self._shapes)
        scale = clip_scale(global_l2_norm(values), self._max_norm)
        self.inner.add(replace(contribution, values={n: v * scale for n, v in values.items()}))
        self.clipped += scale < 1.0

    def merge(self, other: NormBoundAccumulator) -> None:  # type: ignore[override]
        same_kind(self, other)
        if other._max_norm != self._max_norm:
            raise TypeError(f"cannot merge a norm bound of {other._max_norm} into one of "
                            f"{self._max_norm}")
        self.inner.merge(other.inner)
        self.clipped += other.clipped


class NormBound:
    def __init__(self, inner: Aggregator, *, max_norm: float) -> None:
        if not (math.isfinite(max_norm) and max_norm > 0):
            raise ValueError(f"max_norm must be finite and > 0, got {max_norm!r}")
        self.inner, self.max_norm = inner, float(max_norm)
        self.max_buffered = inner.max_buffered

    def initialize(self, shapes: Shapes) -> State:
        return {"inner": self.inner.initialize(shapes)}

    def begin(self, state: State, spec: RoundSpec) -> NormBoundAccumulator:
        return NormBoundAccumulator(self.inner.begin(state["inner"], spec), shapes=spec.shapes,
                                    max_norm=self.max_norm)

    def finalize(self, state: State, acc: NormBoundAccumulator) -> Output:  # type: ignore[override]
        inner = self.inner.finalize(state["inner"], acc.inner)
        return Output({"inner": inner.state}, inner.result,
                      {"clipped": acc.clipped, "max_norm": self.max_norm,
                       "inner": inner.measurements})

    def get_config(self) -> dict[str, Any]:
        return {"name": "norm_bound", "max_norm": self.max_norm,
                "inner": self.inner.get_config()}
