"""Server-side evaluation of the global model on a held-out set (torch on the coordinator)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from fedcore.datasets import load_test_set
from fedcore.models import build_model
from fedcore.params import set_parameters
from fedcore.training import evaluate


class ServerEvaluator:
    """Keeps one model instance and the test set loaded; evaluation is a few ms for W1."""

    def __init__(self, *, model_name: str, test_set: str, batch_size: int = 256) -> None:
        self._model = build_model(model_name)
        self._data = load_test_set(test_set)
        self._batch_size = batch_size

    def __call__(self, params: Mapping[str, np.ndarray]) -> dict[str, float]:
        set_parameters(self._model, params)
        result = evaluate(self._model, self._data, batch_size=self._batch_size)
        return {"accuracy": float(result.accuracy), "loss": float(result.loss)}
