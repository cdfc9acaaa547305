"""Keeping pruned weights pruned during local training (docs/pruning.md, "The method").

Pruned weights must stay exactly zero through the data gradient, momentum, weight decay
and the FedProx term. :class:`MaskEnforcer` is a :class:`~fedcore.train_hooks.TrainHook`
that acts at each of those points: it zeroes pruned weights before the first step, their
grads after backward (decay and every loss term included), and the weights and optimizer
state again after each step, so neither momentum nor decay can revive them.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

from fedcore.params import check_named_arrays
from fedcore.train_hooks import TrainHook


class MaskEnforcer(TrainHook):
    """Keeps the pruned (False) coordinates of a model's parameters exactly zero.

    ``mask`` may cover a subset of the parameters; names must be trainable parameters and
    shapes must match. Values must be bool or 0/1. The enforcer holds references to the
    model's parameters, so it acts on the live model, and as a hook refuses any other.
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

    # -- TrainHook ----------------------------------------------------------------------
    def before_training(self, model: nn.Module) -> None:
        own = {id(p) for p in model.parameters()}
        if any(id(param) not in own for param, _ in self._pruned):
            raise ValueError("MaskEnforcer was built for a different model")
        self.apply_to_weights()

    def after_backward(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
        self.apply_to_grads()

    def after_step(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
        self.apply_to_weights()
        self.apply_to_optimizer_state(optimizer)

    # -- the individual operations ------------------------------------------------------

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


def mask_hooks(model: nn.Module, masks: Mapping[str, np.ndarray] | None) -> list[TrainHook]:
    """``[MaskEnforcer(model, masks)]``, or ``[]`` for dense training (``masks`` None)."""
    return [] if masks is None else [MaskEnforcer(model, masks)]
