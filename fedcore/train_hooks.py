"""Extension points of local training: what a :class:`TrainHook` may do, and when.

:func:`fedcore.training.train_local` owns the loop (data order, RNG, optimizer); hooks
add to it without forking it, so masking (:class:`fedcore.masking.MaskEnforcer`), FedProx
(:class:`fedcore.proximal.ProximalTerm`) and any later regulariser or clipper compose in
one place instead of growing ``train_local``'s signature. Contract:

- Hooks run in list order at every point. Callers that combine hooks choose the order;
  the built-in ones commute (the proximal term only adds to the objective, the mask
  enforcer only zeroes), so their order does not change a bit of the result.
- ``before_training(model)``: once, after the RNG is seeded and before the first batch
  (the mask enforcer zeroes pruned weights here; the proximal term binds its reference).
- Each step is exactly::

      loss = data_loss + extra_loss_1 + extra_loss_2 + ...   (hooks returning None skipped)
      loss.backward()
      grad += weight_decay * w                               (coupled decay, if > 0)
      after_backward(model, optimizer) for each hook         (e.g. mask grads, clip)
      optimizer.step()                                       (torch's own decay is off)
      after_step(model, optimizer) for each hook             (e.g. re-zero weights, momentum)

  Decay is added *before* ``after_backward`` so a grad mask removes it too, and nothing
  is added to the grads after the hooks have seen them.
- ``extra_loss`` terms are differentiated but never reported: ``TrainResult.loss`` is the
  data loss alone, so runs with and without a regulariser report comparable losses.
- Hooks must not reseed or draw from the torch RNG outside of what their math needs, or
  they change the data order and dropout of everything after them.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["TrainHook"]


class TrainHook:
    """Base class of training hooks: every point is a no-op; override the ones you need."""

    def before_training(self, model: nn.Module) -> None:
        """Once, before the first step (after seeding)."""

    def extra_loss(self, model: nn.Module) -> torch.Tensor | None:
        """A scalar added to the objective of this step, or None for nothing."""
        return None

    def after_backward(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
        """After the grads (incl. coupled weight decay) are final, before the step."""

    def after_step(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
        """After ``optimizer.step()``."""
