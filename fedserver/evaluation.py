"""Server-side evaluation of the global model on a held-out set (torch on the coordinator).

``evaluation.test_set`` names the set: ``digits`` (W1's fixed 20% split), ``synthetic``
(fresh samples of the same blobs the ``synthetic`` client source draws from, seed 0), or a
path to the user's own ``.npz`` (arrays ``X``, ``y``) or ``.csv`` (features, label last)
file, read and validated by :mod:`fedcore.datafiles`. The set is loaded and checked
against the model (feature count, label range: :func:`fedcore.data_fit.check_data_fits`)
when the evaluator is built, before the coordinator writes anything, so a wrong path or a
file for another model is one error naming ``evaluation.test_set``, not a crash at the
first round close.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from fedcore.data_fit import check_data_fits
from fedcore.datasets import load_test_set
from fedcore.models import build_model
from fedcore.params import set_parameters
from fedcore.training import evaluate
from fedserver.config import test_set_source


class ServerEvaluator:
    """Keeps one model instance and the test set loaded; evaluation is a few ms for W1.

    Raises ValueError (a :class:`fedcore.data_fit.DataModelMismatch` when the set does not
    fit the model) naming the test set; the caller adds the config key."""

    def __init__(self, *, model_name: str, test_set: str, batch_size: int = 256) -> None:
        self._model = build_model(model_name)
        source, path = test_set_source(test_set)
        self._data = load_test_set(source, path=path)
        check_data_fits(self._model, self._data, data=f"test set {test_set!r}",
                        model_name=model_name)
        self._batch_size = batch_size

    def __call__(self, params: Mapping[str, np.ndarray]) -> dict[str, float]:
        set_parameters(self._model, params)
        result = evaluate(self._model, self._data, batch_size=self._batch_size)
        return {"accuracy": float(result.accuracy), "loss": float(result.loss)}
