"""Model <-> named numpy arrays: the form in which weights travel and get aggregated.

Contract:

- The *parameters* of a model are its floating-point ``state_dict`` entries, in
  ``state_dict`` order, as float32 numpy copies (never views of live tensors, so the
  caller can mutate them freely). Integer buffers (e.g. BatchNorm's
  ``num_batches_tracked``) are skipped: they are not averaged and never cross the wire.
- ``set_parameters`` is all-or-nothing: every name, shape and value is checked before
  any tensor is written, and a bad input raises ``ValueError`` naming the tensor.
- *Prunable* tensors are floating entries with ``ndim >= 2`` (linear and conv weights).
  Biases and normalisation statistics are 1-D and therefore never pruned. The rule
  depends only on names and shapes, so a coordinator holding a dict of arrays and a
  client holding the module agree on it.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

__all__ = ["check_named_arrays", "get_parameters", "prunable_names", "set_parameters"]


def _floating_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v for k, v in model.state_dict().items() if torch.is_floating_point(v)}


def get_parameters(model: nn.Module) -> dict[str, np.ndarray]:
    """Float32 copies of the model's floating state, in ``state_dict`` order."""
    return {
        name: tensor.detach().to(device="cpu", dtype=torch.float32).numpy().copy()
        for name, tensor in _floating_state(model).items()
    }


def check_named_arrays(
    expected: Mapping[str, tuple[int, ...]],
    given: Mapping[str, np.ndarray],
    *,
    what: str,
    allow_missing: bool = False,
) -> dict[str, np.ndarray]:
    """Validate ``given`` against ``expected`` shapes; return them as numpy arrays.

    Unexpected names always fail; missing names fail unless ``allow_missing``. Numeric
    arrays must be finite. ``what`` names the mapping in error messages.
    """
    if not isinstance(given, Mapping):
        raise ValueError(f"{what} must be a mapping of name -> array, got {type(given).__name__}")
    unexpected = [name for name in given if name not in expected]
    if unexpected:
        raise ValueError(f"{what}: unexpected tensor(s) {unexpected}")
    missing = [name for name in expected if name not in given]
    if missing and not allow_missing:
        raise ValueError(f"{what}: missing tensor(s) {missing}")
    arrays = {}
    for name in (n for n in expected if n in given):
        array = np.asarray(given[name])
        if array.shape != tuple(expected[name]):
            raise ValueError(
                f"{what}: tensor {name!r} has shape {array.shape}, expected {tuple(expected[name])}"
            )
        if array.dtype.kind not in "biuf":
            raise ValueError(f"{what}: tensor {name!r} has non-numeric dtype {array.dtype}")
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            raise ValueError(f"{what}: tensor {name!r} contains NaN or infinity")
        arrays[name] = array
    return arrays


def set_parameters(model: nn.Module, params: Mapping[str, np.ndarray]) -> None:
    """Copy ``params`` into the model's floating state (exact names, shapes; finite)."""
    state = _floating_state(model)
    expected = {name: tuple(t.shape) for name, t in state.items()}
    arrays = check_named_arrays(expected, params, what="params")
    with torch.no_grad():
        for name, array in arrays.items():
            state[name].copy_(torch.as_tensor(np.ascontiguousarray(array)))


def prunable_names(model_or_params: nn.Module | Mapping[str, np.ndarray]) -> list[str]:
    """Names of the tensors pruning may touch: floating tensors with ``ndim >= 2``.

    >>> prunable_names({"fc.weight": np.zeros((2, 3)), "fc.bias": np.zeros(2)})
    ['fc.weight']
    """
    if isinstance(model_or_params, nn.Module):
        shapes = {name: tuple(t.shape) for name, t in _floating_state(model_or_params).items()}
    elif isinstance(model_or_params, Mapping):
        shapes = {name: np.shape(value) for name, value in model_or_params.items()}
    else:
        raise ValueError(
            "model_or_params must be an nn.Module or a mapping, "
            f"got {type(model_or_params).__name__}"
        )
    return [name for name, shape in shapes.items() if len(shape) >= 2]
