"""Local training, evaluation and importance scores, with pruning masks enforced.

Contract:

- ``train_local`` runs ``config.epochs`` epochs of mini-batch SGD (momentum, coupled
  weight decay as in ``torch.optim.SGD``) on cross-entropy, shuffling with a
  ``torch.Generator`` seeded by ``config.seed``. The global torch RNG is forked and
  seeded too (dropout etc.), so one (model, data, config) gives one result and the
  caller's RNG state is untouched.
- FedProx: with ``proximal_mu > 0`` the loss gains ``mu/2 * ||w - w_global||^2`` over all
  trainable parameters; ``w_global`` is ``global_params`` (as pulled from the server,
  same names/shapes as :func:`fedcore.params.get_parameters`) or, if None, the model's
  weights when training starts.
- Masks (ALGORITHMS.md §1, §5): ``mask`` maps parameter names to bool arrays, True =
  kept. :class:`MaskEnforcer` zeroes pruned weights before the first step, and every
  step is ``grad = dLoss/dw (incl. prox) + weight_decay * w`` -> zero pruned grads ->
  SGD step (torch decay off, so nothing is added after masking) -> zero pruned weights
  -> zero pruned optimizer state. Hence pruned weights and momentum stay exactly 0 and
  cannot be revived by momentum, decay, the proximal term or the data gradient.
- Results report ``num_examples`` = samples per epoch (the FedAvg weight) and ``loss`` =
  mean data loss (without the proximal term) over the last epoch.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset

from fedcore._checks import check_int
from fedcore.importance import importance_scores
from fedcore.masking import MaskEnforcer
from fedcore.params import check_named_arrays, get_parameters

__all__ = [
    "EvalResult",
    "MaskEnforcer",
    "TrainConfig",
    "TrainResult",
    "evaluate",
    "importance_scores",
    "train_local",
]

ProgressFn = Callable[[int, int, float], None]
"""``progress(step, total_steps, batch_loss)`` after each step; raising aborts training."""


@dataclass(frozen=True)
class TrainConfig:
    """Local optimisation settings; W1 defaults (2 epochs, SGD lr 0.05, momentum 0.9)."""

    epochs: int = 2
    batch_size: int = 32
    learning_rate: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 0.0
    proximal_mu: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size"):
            check_int(name, getattr(self, name), low=1)
        check_int("seed", self.seed, low=0)
        if not (np.isfinite(self.learning_rate) and self.learning_rate > 0):
            raise ValueError(f"learning_rate must be finite and > 0, got {self.learning_rate!r}")
        if not 0.0 <= self.momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum!r}")
        for name in ("weight_decay", "proximal_mu"):
            value = getattr(self, name)
            if not (np.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be finite and >= 0, got {value!r}")


@dataclass(frozen=True)
class TrainResult:
    num_examples: int
    loss: float
    seconds: float
    steps: int


@dataclass(frozen=True)
class EvalResult:
    num_examples: int
    loss: float
    accuracy: float


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def _global_reference(
    model: nn.Module, global_params: Mapping[str, np.ndarray] | None
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(parameter, reference) pairs for the proximal term."""
    params = dict(model.named_parameters())
    if global_params is None:
        return [(p, p.detach().clone()) for p in params.values()]
    current = get_parameters(model)
    arrays = check_named_arrays({k: v.shape for k, v in current.items()}, global_params,
                                what="global_params")
    return [(p, torch.as_tensor(arrays[name], dtype=p.dtype, device=p.device))
            for name, p in params.items()]


def _step_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, config: TrainConfig,
               reference: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, float]:
    """Objective to differentiate (data loss + proximal term) and the data loss value."""
    data_loss = F.cross_entropy(model(x), y)
    loss = data_loss
    if config.proximal_mu > 0:
        prox = sum(((p - ref) ** 2).sum() for p, ref in reference)
        loss = loss + 0.5 * config.proximal_mu * prox
    return loss, float(data_loss.detach())


def _make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """SGD without torch's own weight decay: :func:`_sgd_step` adds decay before masking."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    return torch.optim.SGD(trainable, lr=config.learning_rate, momentum=config.momentum)


def _sgd_step(
    model: nn.Module,
    batch: tuple[torch.Tensor, torch.Tensor],
    *,
    config: TrainConfig,
    optimizer: torch.optim.Optimizer,
    enforcer: MaskEnforcer | None,
    reference: list[tuple[torch.Tensor, torch.Tensor]],
) -> float:
    """One masked step in the order the module doc prescribes; returns the data loss."""
    device = _device(model)
    x, y = batch[0].to(device), batch[1].to(device)
    optimizer.zero_grad(set_to_none=True)
    loss, data_loss = _step_loss(model, x, y, config, reference)
    loss.backward()
    if config.weight_decay > 0:  # coupled decay added *before* the grads are masked
        with torch.no_grad():
            for group in optimizer.param_groups:
                for p in group["params"]:
                    if p.grad is not None:
                        p.grad.add_(p, alpha=config.weight_decay)
    if enforcer is not None:
        enforcer.apply_to_grads()
    optimizer.step()
    if enforcer is not None:
        enforcer.apply_to_weights()
        enforcer.apply_to_optimizer_state(optimizer)
    return data_loss


def _run_epochs(
    model: nn.Module,
    loader: DataLoader,
    *,
    config: TrainConfig,
    optimizer: torch.optim.Optimizer,
    enforcer: MaskEnforcer | None,
    reference: list[tuple[torch.Tensor, torch.Tensor]],
    progress: ProgressFn | None,
) -> tuple[int, float]:
    """All epochs; returns (steps, mean data loss over the last epoch)."""
    steps, total = 0, config.epochs * len(loader)
    loss_sum, seen = 0.0, 0
    for _ in range(config.epochs):
        loss_sum, seen = 0.0, 0
        for batch in loader:
            data_loss = _sgd_step(model, batch, config=config, optimizer=optimizer,
                                  enforcer=enforcer, reference=reference)
            steps += 1
            loss_sum, seen = loss_sum + data_loss * len(batch[1]), seen + len(batch[1])
            if progress is not None:
                progress(steps, total, data_loss)
    return steps, loss_sum / seen


def train_local(
    model: nn.Module,
    dataset: Dataset,
    config: TrainConfig,
    *,
    mask: Mapping[str, np.ndarray] | None = None,
    global_params: Mapping[str, np.ndarray] | None = None,
    progress: ProgressFn | None = None,
) -> TrainResult:
    """Train ``model`` in place on ``dataset`` (see the module doc for the exact step)."""
    if not isinstance(config, TrainConfig):
        raise ValueError(f"config must be a TrainConfig, got {type(config).__name__}")
    if len(dataset) == 0:  # type: ignore[arg-type]
        raise ValueError("dataset is empty")
    enforcer = MaskEnforcer(model, mask) if mask is not None else None
    reference = _global_reference(model, global_params) if config.proximal_mu > 0 else []
    optimizer = _make_optimizer(model, config)
    loader = DataLoader(dataset, batch_size=config.batch_size, shuffle=True,
                        generator=torch.Generator().manual_seed(config.seed))
    start, was_training = time.perf_counter(), model.training
    model.train()
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            if enforcer is not None:
                enforcer.apply_to_weights()
            steps, loss = _run_epochs(model, loader, config=config, optimizer=optimizer,
                                      enforcer=enforcer, reference=reference, progress=progress)
    finally:
        model.train(was_training)
    return TrainResult(num_examples=len(dataset), loss=loss,  # type: ignore[arg-type]
                       seconds=time.perf_counter() - start, steps=steps)


def evaluate(model: nn.Module, dataset: Dataset, *, batch_size: int = 256) -> EvalResult:
    """Mean cross-entropy and accuracy of ``model`` on ``dataset`` (eval mode, no grad)."""
    check_int("batch_size", batch_size, low=1)
    if len(dataset) == 0:  # type: ignore[arg-type]
        raise ValueError("dataset is empty")
    device, was_training = _device(model), model.training
    loss_sum, correct, seen = 0.0, 0, 0
    model.eval()
    try:
        with torch.no_grad():
            for x, y in DataLoader(dataset, batch_size=batch_size):
                x, y = x.to(device), y.to(device)
                logits = model(x)
                loss_sum += float(F.cross_entropy(logits, y, reduction="sum"))
                correct += int((logits.argmax(dim=1) == y).sum())
                seen += len(y)
    finally:
        model.train(was_training)
    return EvalResult(num_examples=seen, loss=loss_sum / seen, accuracy=correct / seen)


