"""How a client trains one task: reduced model, masked dense model, or dense model.

The task's ``client_training`` mode (``TrainInstructions.client_training``, from the
coordinator's ``pruning.client_training``) chooses, when the task carries a mask:

- ``"masked"``: the dense model with a :class:`~fedcore.masking.MaskEnforcer` (pruned
  weights, their gradients and optimizer state held at zero);
- ``"reduced"``: the physically reduced model of :mod:`fedcore.structure`, whenever the
  model's layout is one it can slice (even if the mask removes no unit);
- ``"auto"`` (also the empty string): reduced when every tensor's mask is made of whole
  structured groups (rows, columns, half rows, half columns, output channels:
  :func:`fedcompression.structured_granularity`) and removes at least one unit, else
  masked. Half-row groups remove a neuron only where both halves of its row are pruned;
  the other pruned halves stay masked inside the reduced model. An unstructured mask
  trains masked even when a few units happen to die.

An unknown mode (the field comes from the coordinator) trains masked, which is always a
valid update, and is reported as a fallback. Both give the same delta within float
rounding (:mod:`fedcore.reduced_training`). When a mode other than ``"masked"`` ends up
masked, the reason is logged and the update's metrics carry ``masked_fallback = 1``;
every masked task reports ``reduced_training`` (1 or 0) and, when reduced,
``reduced_size_fraction`` (reduced parameters / dense parameters).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from torch import nn
from torch.utils.data import Dataset

from fedcompression import structured_granularity
from fedcore.masking import mask_hooks
from fedcore.params import get_parameters, set_parameters
from fedcore.proximal import ProximalTerm
from fedcore.reduced_training import passive_factor, planned_steps, train_reduced
from fedcore.structure import StructurePlan, UnsupportedStructure, plan_structure
from fedcore.training import TrainConfig, TrainResult, train_local

__all__ = ["CLIENT_TRAINING_MODES", "LocalUpdate", "train_update"]

CLIENT_TRAINING_MODES = ("auto", "reduced", "masked")
log = logging.getLogger("fedcore.client_training")
Params = dict[str, np.ndarray]


@dataclass(frozen=True)
class LocalUpdate:
    delta: Params  # local - global, dense shapes, exactly 0 at pruned positions
    result: TrainResult
    metrics: dict[str, float]
    reduced: bool  # True: ``model`` was not trained in place (only the reduced copy was)


def _reduced_plan(model: nn.Module, global_params: Mapping[str, np.ndarray],
                  masks: Mapping[str, np.ndarray], dataset: Dataset, config: TrainConfig,
                  *, mode: str, proximal_mu: float) -> StructurePlan | str:
    """The plan to train, or why the task trains masked instead."""
    _, low = passive_factor(planned_steps(dataset, config), config, proximal_mu)
    try:  # inert units need their (<= 0) bias to keep its sign: see fedcore.structure
        plan = plan_structure(model, masks, input_shape=tuple(dataset[0][0].shape),
                              biases=global_params if low >= 0 else None)
    except UnsupportedStructure as exc:
        return f"model cannot be reduced: {exc}"
    if mode == "auto":
        unstructured = [n for n, m in masks.items() if structured_granularity(m) == "unstructured"]
        if unstructured:
            return f"the mask of {unstructured[0]!r} is not made of whole structured groups"
        if plan.removed_units == 0:
            return "the mask removes no whole row, column or channel"
    return plan


def train_update(model: nn.Module, global_params: Mapping[str, np.ndarray],
                 masks: Mapping[str, np.ndarray] | None, dataset: Dataset,
                 config: TrainConfig, *, mode: str = "auto", proximal_mu: float = 0.0
                 ) -> LocalUpdate:
    """Train one task from ``global_params`` (see the module docstring for ``mode``)."""
    mode = mode or "auto"
    plan: StructurePlan | str = "masked training requested"
    if mode not in CLIENT_TRAINING_MODES:  # e.g. from a newer coordinator: masked is always valid
        plan = f"unknown client_training {mode[:40]!r} (known: {CLIENT_TRAINING_MODES})"
    elif masks is not None and mode != "masked":
        plan = _reduced_plan(model, global_params, masks, dataset, config, mode=mode,
                             proximal_mu=proximal_mu)
    if isinstance(plan, StructurePlan):
        delta, result = train_reduced(plan, global_params, dataset, config,
                                      proximal_mu=proximal_mu)
        metrics = {"reduced_training": 1.0,
                   "reduced_size_fraction": plan.reduced_size / plan.dense_size}
        return LocalUpdate(delta, result, metrics, reduced=True)
    set_parameters(model, global_params)
    hooks = mask_hooks(model, masks)
    if proximal_mu > 0:
        hooks.append(ProximalTerm(mu=proximal_mu, reference_params=global_params))
    result = train_local(model, dataset, config, hooks=hooks)
    local = get_parameters(model)
    delta = {n: (local[n] - global_params[n]).astype(np.float32) for n in global_params}
    metrics = {} if masks is None else {"reduced_training": 0.0}
    if masks is not None and mode != "masked":
        level = logging.INFO if mode == "auto" else logging.WARNING
        log.log(level, "client_training=%s falls back to masked dense training: %s", mode, plan)
        metrics["masked_fallback"] = 1.0
    return LocalUpdate(delta, result, metrics, reduced=False)
