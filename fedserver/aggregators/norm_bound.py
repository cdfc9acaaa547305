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
from typing import Any

from fedcore.norms import clip_scale, global_l2_norm
from fedserver.aggregators.base import Aggregator, Arrays, Contribution, Output, RoundSpec, Shapes, State
from fedserver.aggregators.scaling import ScalingAccumulator


class NormBound:
    def __init__(self, inner: Aggregator, *, max_norm: float) -> None:
        if not (math.isfinite(max_norm) and max_norm > 0):
            raise ValueError(f"max_norm must be finite and > 0, got {max_norm!r}")
        self.inner, self.max_norm = inner, float(max_norm)
        self.max_buffered = inner.max_buffered

    def initialize(self, shapes: Shapes) -> State:
        return {"inner": self.inner.initialize(shapes)}

    def _clip(self, values: Arrays, contribution: Contribution) -> float:
        return clip_scale(global_l2_norm(values), self.max_norm)

    def begin(self, state: State, spec: RoundSpec) -> ScalingAccumulator:
        return ScalingAccumulator(self.inner.begin(state["inner"], spec), shapes=spec.shapes,
                                  config=f"a norm bound of {self.max_norm}", factor=self._clip)

    def finalize(self, state: State, acc: ScalingAccumulator) -> Output:  # type: ignore[override]
        inner = self.inner.finalize(state["inner"], acc.inner)
        clipped = sum(f < 1.0 for f in acc.factors)
        return Output({"inner": inner.state}, inner.result,
                      {"clipped": clipped, "max_norm": self.max_norm,
                       "inner": inner.measurements})

    def get_config(self) -> dict[str, Any]:
        return {"name": "norm_bound", "max_norm": self.max_norm,
                "inner": self.inner.get_config()}
