"""Input checks shared by the pruning modules: one wording, one place.

Every check reads its input completely before the caller changes any state and raises a
``ValueError`` that names the tensor or argument at fault. Checked arrays are returned as
``float64`` (a view when no conversion is needed; never written to).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

Shapes = Mapping[str, tuple[int, ...]]


def checked_round(round: int) -> int:
    """A 1-based round number."""
    if isinstance(round, bool) or not isinstance(round, int) or round < 1:
        raise ValueError(f"round must be an integer >= 1, got {round!r}")
    return round


def checked_weight(weight: float) -> float:
    """A client weight (e.g. its example count): finite and > 0."""
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not (
        math.isfinite(weight) and weight > 0
    ):
        raise ValueError(f"weight must be a finite number > 0, got {weight!r}")
    return float(weight)


def _checked_array(name: str, value: object, shape: tuple[int, ...], what: str) -> np.ndarray:
    arr = np.asarray(value)
    if arr.shape != tuple(shape):
        raise ValueError(f"tensor {name!r}: {what} shape {arr.shape} != expected {tuple(shape)}")
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"tensor {name!r}: {what} must be real numbers, got dtype {arr.dtype}")
    arr = arr.astype(np.float64, copy=False)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"tensor {name!r}: {what} must be finite")
    return arr


def checked_scores(scores: Mapping[str, object], shapes: Shapes) -> dict[str, np.ndarray]:
    """Exactly the tensors of ``shapes``, each of its shape, finite and ``>= 0``."""
    for name in shapes:
        if name not in scores:
            raise ValueError(f"tensor {name!r}: missing from the scores")
    out = {}
    for name, value in scores.items():
        if name not in shapes:
            raise ValueError(f"tensor {name!r}: scores given for a tensor that is not pruned")
        arr = _checked_array(name, value, shapes[name], "scores")
        if np.any(arr < 0):
            raise ValueError(f"tensor {name!r}: scores must be >= 0")
        out[name] = arr
    return out


def checked_params(params: Mapping[str, object], shapes: Shapes) -> dict[str, np.ndarray]:
    """The tensors of ``shapes`` taken from ``params`` (other entries are ignored)."""
    out = {}
    for name, shape in shapes.items():
        if name not in params:
            raise ValueError(f"tensor {name!r}: missing from the global parameters")
        out[name] = _checked_array(name, params[name], shape, "parameter")
    return out
