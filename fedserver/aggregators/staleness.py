"""``StalenessWeighted``: scale each contribution by a decreasing function of its staleness.

Asynchronous aggregation (FedBuff, Nguyen et al., "Federated Learning with Buffered
Asynchronous Aggregation", AISTATS 2022) folds updates trained on older models: an update
computed on version ``v`` and folded when the model is at version ``V`` has staleness
``s = V - v``. Scaling its delta by ``w(s)`` (``polynomial``: ``(1 + s)^-a``, ``a = 0.5``
gives the paper's ``1 / sqrt(1 + s)``; ``constant``: 1) keeps old, partly-obsolete
directions from pulling the model back. The values are scaled, not the weight: under
``WeightedMean`` the result is ``sum(n_i w(s_i) delta_i) / sum(n_i)``, the paper's
unnormalized form, so a buffer of stale updates moves the model less than a fresh one.

The staleness is the scalar ``staleness`` the scheduler reports with the contribution
(``Contribution.reports``); a contribution without one is fresh (s = 0). A negative or
non-finite staleness is rejected. Streaming: memory is the inner aggregator's.
Measurements: ``mean_scale`` and ``min_scale`` of the contributions folded (each client's
staleness is in the round record's client metrics), and the inner aggregator's under
``inner``.

>>> import numpy as np
>>> from fedserver.aggregators import Contribution, RoundSpec, Sum
>>> agg = StalenessWeighted(Sum(), weighting="polynomial", exponent=0.5)
>>> acc = agg.begin(agg.initialize({"w": (1,)}), RoundSpec(1, {"w": (1,)}))
>>> acc.add(Contribution("a", {"w": np.array([2.0])}, reports={"staleness": 3.0}))
>>> agg.finalize({"inner": {}}, acc).result["w"].tolist()
[1.0]
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from fedserver.aggregators import base
from fedserver.aggregators.scaling import ScalingAccumulator

STALENESS_WEIGHTINGS: Mapping[str, Callable[[float, float], float]] = {
    "constant": lambda staleness, exponent: 1.0,
    "polynomial": lambda staleness, exponent: (1.0 + staleness) ** -exponent,
}


class StalenessWeighted:
    def __init__(self, inner: base.Aggregator, *, weighting: str, exponent: float) -> None:
        if weighting not in STALENESS_WEIGHTINGS:
            raise ValueError(f"weighting must be one of {sorted(STALENESS_WEIGHTINGS)}, "
                             f"got {weighting!r}")
        if not (math.isfinite(exponent) and exponent >= 0):
            raise ValueError(f"exponent must be finite and >= 0, got {exponent!r}")
        self.inner, self.weighting, self.exponent = inner, weighting, float(exponent)
        self.max_buffered = inner.max_buffered

    def scale(self, staleness: float) -> float:
        return STALENESS_WEIGHTINGS[self.weighting](staleness, self.exponent)

    def initialize(self, shapes: base.Shapes) -> base.State:
        return {"inner": self.inner.initialize(shapes)}

    def _factor(self, values: base.Arrays, contribution: base.Contribution) -> float:
        staleness = float(contribution.reports.get("staleness", 0.0))
        if not (math.isfinite(staleness) and staleness >= 0):
            raise base.RejectedContribution(f"staleness must be finite and >= 0, got {staleness}")
        return self.scale(staleness)

    def begin(self, state: base.State, spec: base.RoundSpec) -> ScalingAccumulator:
        return ScalingAccumulator(self.inner.begin(state["inner"], spec), shapes=spec.shapes,
                                  config=f"{self.weighting} staleness weights ^{self.exponent}",
                                  factor=self._factor)

    def finalize(self, state: base.State, acc: ScalingAccumulator) -> base.Output:  # type: ignore[override]
        inner = self.inner.finalize(state["inner"], acc.inner)
        return base.Output({"inner": inner.state}, inner.result,
                      {"mean_scale": sum(acc.factors) / max(1, len(acc.factors)),
                       "min_scale": min(acc.factors, default=1.0),
                       "inner": inner.measurements})

    def get_config(self) -> dict[str, Any]:
        return {"name": "staleness_weighted", "weighting": self.weighting,
                "exponent": self.exponent, "inner": self.inner.get_config()}
