"""Server-side evaluation of the new global model on a held-out set (last transform).

The evaluator is any callable ``params -> {metric: value}`` (W1:
:class:`fedserver.evaluation.ServerEvaluator` on the fixed 20% digits split). Its metrics
become the round's metrics (``accuracy``, ``loss``). A non-finite metric is reported, not
raised, so one bad model cannot take the coordinator down.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from fedserver.model_state import ModelState
from fedserver.transforms.base import RoundResult, StatelessTransform

Evaluator = Callable[[Mapping[str, np.ndarray]], dict[str, float]]


class EvaluationStep(StatelessTransform):
    name = "evaluation"

    def __init__(self, evaluator: Evaluator, *, label: str = "") -> None:
        self.evaluator = evaluator
        self.label = label

    def apply(self, round: int, model: ModelState,
              result: RoundResult) -> tuple[ModelState, dict[str, Any]]:
        metrics = {k: float(v) for k, v in self.evaluator(model.params).items()}
        return model, {"metrics": metrics,
                       "finite": all(math.isfinite(v) for v in metrics.values())}

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "test_set": self.label}
