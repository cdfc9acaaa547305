"""Training the physically reduced model and mapping its update back to the dense model.

Why: under structured pruning a client should pay for the model it trains, not for the
dense one (docs/pruning.md, "Reduced local training"). :class:`~fedcore.structure.StructurePlan`
says which rows, columns and channels remain; here the reduced model is built from the
pulled global weights, trained by the ordinary :func:`fedcore.training.train_local` loop
(same data order, seed and step), and its update is written back at the kept coordinates.

Invariant (tested against masked dense training): the returned delta equals, within float
rounding, the delta of masked dense training from the same weights, data and seed:

- kept coordinates (reduced tensors and carries): the reduced model computes the masked
  dense model's function, so their gradients, momentum and decay are the same; masked
  entries inside them are held at zero by a :class:`~fedcore.masking.MaskEnforcer` over
  the residual mask;
- pruned coordinates: ``-global`` (the weights end at exactly 0; the global model is
  already 0 there, so the delta is too);
- passive coordinates (unmasked weights of removed units, whose data gradient is exactly
  0 in the dense model): only coupled weight decay and the FedProx term act on them, the
  same linear recurrence for every element, so each ends at ``factor * w0``
  (:func:`passive_factor`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
from torch.utils.data import Dataset

from fedcore.masking import MaskEnforcer
from fedcore.params import get_parameters
from fedcore.proximal import ProximalTerm
from fedcore.structure import StructurePlan
from fedcore.train_hooks import TrainHook
from fedcore.training import TrainConfig, TrainResult, train_local

__all__ = ["passive_factor", "planned_steps", "train_reduced"]

Params = dict[str, np.ndarray]


def planned_steps(dataset: Dataset, config: TrainConfig) -> int:
    """Optimizer steps :func:`train_local` takes (batches are not dropped)."""
    return config.epochs * math.ceil(len(dataset) / config.batch_size)  # type: ignore[arg-type]


def passive_factor(steps: int, config: TrainConfig, proximal_mu: float = 0.0
                   ) -> tuple[float, float]:
    """``(factor after steps, smallest factor on the way)`` for a weight with zero data
    gradient under SGD with momentum, coupled weight decay and the FedProx term anchored
    at its start ``w0``: ``g = wd * w + mu * (w - w0)``, ``v = m * v + g``, ``w -= lr * v``,
    i.e. ``w_t = a_t * w0`` with the scalar ``a_t`` computed here (float64)."""
    a, v, low = 1.0, 0.0, 1.0
    if config.weight_decay == 0 and proximal_mu == 0:
        return a, low
    for _ in range(steps):
        v = config.momentum * v + config.weight_decay * a + proximal_mu * (a - 1.0)
        a -= config.learning_rate * v
        low = min(low, a)
    return a, low


def train_reduced(plan: StructurePlan, global_params: Mapping[str, np.ndarray],
                  dataset: Dataset, config: TrainConfig, *, proximal_mu: float = 0.0
                  ) -> tuple[Params, TrainResult]:
    """Train the reduced model of ``plan`` from ``global_params``; returns the dense-shaped
    delta (``local - global``) and the training result (see the module docstring)."""
    model = plan.build(global_params)
    hooks: list[TrainHook] = []
    if plan.residual:
        hooks.append(MaskEnforcer(model, plan.residual))
    if proximal_mu > 0:
        hooks.append(ProximalTerm(mu=proximal_mu, reference_params=get_parameters(model)))
    result = train_local(model, dataset, config, hooks=hooks)
    factor, _ = passive_factor(result.steps, config, proximal_mu)
    local = get_parameters(model)
    delta = {name: -np.asarray(a, dtype=np.float32) for name, a in global_params.items()}
    for name, passive in plan.passive.items():
        delta[name][passive] = (factor - 1.0) * np.asarray(global_params[name])[passive]
    for name, s in plan.slices.items():
        delta[s.source][np.ix_(*s.index)] = local[name] - s.take(global_params[s.source])
    return delta, result
