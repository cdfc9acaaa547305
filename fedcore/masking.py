"""Keeping pruned weights pruned during local training (ALGORITHMS.md sections 1 and 5).

Pruned weights must stay exactly zero through the data gradient, momentum, weight decay
and the FedProx term; :class:`MaskEnforcer` is applied at each of those points by
:func:`fedcore.training.train_local`.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

from fedcore.params import check_named_arrays


class MaskEnforcer:
    """Keeps the pruned (False) coordinates of a model's parameters exactly zero.

    ``mask`` may cover a subset of the parameters; names must be trainable parameters and
    shapes must match. Values must be bool or 0/1. The enforcer holds references to the
    model's parameters, so it acts on the live model.
    """

    def __init__(self, model: nn.Module, mask: Mapping[str, np.ndarray]) -> None:
        params = dict(model.named_parameters())
        expected = {name: tuple(p.shape) for name, p in params.items()}
        arrays = check_named_arrays(expected, mask, what="mask", allow_missing=True)
        self._pruned: list[tuple[torch.Tensor, torch.Tensor]] = []
        for name, array in arrays.items():
            if array.dtype != np.bool_ and not np.isin(array, (0, 1)).all():
                raise ValueError(f"mask: tensor {name!r} must be boolean (or 0/1)")
            pruned = torch.from_numpy(~array.astype(bool)).to(params[name].device)
            self._pruned.append((params[name], pruned))

    def apply_to_weights(self) -> None:
        """Set pruned weights to 0 (``masked_fill`` so NaN/inf there become 0 as well)."""
        with torch.no_grad():
            for param, pruned in self._pruned:
                param.masked_fill_(pruned, 0.0)

    def apply_to_grads(self) -> None:
        """Zero the gradients of pruned weights (call after every term is accumulated)."""
        for param, pruned in self._pruned:
            if param.grad is not None:
                param.grad.masked_fill_(pruned, 0.0)

    def apply_to_optimizer_state(self, optimizer: torch.optim.Optimizer) -> None:
        """Zero per-parameter optimizer state (momentum, Adam moments) at pruned entries."""
        with torch.no_grad():
            for param, pruned in self._pruned:
                for value in optimizer.state.get(param, {}).values():
                    if isinstance(value, torch.Tensor) and value.shape == param.shape:
                        value.masked_fill_(pruned, 0.0)
