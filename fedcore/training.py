"""Local training, evaluation and importance scores, with pruning masks enforced.

Contract:

- ``train_local`` runs ``config.epochs`` epochs of mini-batch SGD (momentum, coupled
  weight decay as in ``torch.optim.SGD``) on cross-entropy, shuffling with a
  ``torch.Generator`` seeded by ``config.seed``. The global torch RNG is forked and
  seeded too (dropout etc.), so one (model, data, config) gives one result and the
  caller's RNG state is untouched.
- Everything beyond plain SGD -- pruning masks, the FedProx term, clipping -- comes in
  as ``hooks`` (:mod:`fedcore.train_hooks` defines when each runs). Every step is
  ``grad = d(data loss + extra losses)/dw + weight_decay * w`` -> ``after_backward``
  hooks -> SGD step (torch decay off, so nothing is added after the hooks) ->
  ``after_step`` hooks. With :class:`MaskEnforcer` (docs/pruning.md, "The method") that is: zero
  pruned grads, step, zero pruned weights and optimizer state, so pruned weights and
  momentum stay exactly 0 whatever the other terms do.
- Results report ``num_examples`` = samples per epoch (the FedAvg weight) and ``loss`` =
  mean data loss (without any hook's extra loss) over the last epoch.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset

from fedcore._checks import check_int
from fedcore.importance import importance_scores
from fedcore.masking import MaskEnforcer, mask_hooks
from fedcore.proximal import ProximalTerm
from fedcore.train_hooks import TrainHook

__all__ = [
    "EvalResult",
    "MaskEnforcer",
    "ProximalTerm",
    "TrainConfig",
    "TrainHook",
    "TrainResult",
    "evaluate",
    "importance_scores",
    "mask_hooks",
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
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size"):
            check_int(name, getattr(self, name), low=1)
        check_int("seed", self.seed, low=0)
        if not (np.isfinite(self.learning_rate) and self.learning_rate > 0):
            raise ValueError(f"learning_rate must be finite and > 0, got {self.learning_rate!r}")
        if not 0.0 <= self.momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum!r}")
        if not (np.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise ValueError(f"weight_decay must be finite and >= 0, got {self.weight_decay!r}")


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


def _step_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
               hooks: Sequence[TrainHook]) -> tuple[torch.Tensor, float]:
    """Objective to differentiate (data loss + hooks' extra losses) and the data loss value."""
    data_loss = F.cross_entropy(model(x), y)
    loss = data_loss
    for hook in hooks:
        extra = hook.extra_loss(model)
        if extra is not None:
            loss = loss + extra
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
    hooks: Sequence[TrainHook],
) -> float:
    """One step in the order :mod:`fedcore.train_hooks` prescribes; returns the data loss."""
    device = _device(model)
    x, y = batch[0].to(device), batch[1].to(device)
    optimizer.zero_grad(set_to_none=True)
    loss, data_loss = _step_loss(model, x, y, hooks)
    loss.backward()
    if config.weight_decay > 0:  # coupled decay added *before* hooks see (and mask) grads
        with torch.no_grad():
            for group in optimizer.param_groups:
                for p in group["params"]:
                    if p.grad is not None:
                        p.grad.add_(p, alpha=config.weight_decay)
    for hook in hooks:
        hook.after_backward(model, optimizer)
    optimizer.step()
    for hook in hooks:
        hook.after_step(model, optimizer)
    return data_loss


def _run_epochs(
    model: nn.Module,
    loader: DataLoader,
    *,
    config: TrainConfig,
    optimizer: torch.optim.Optimizer,
    hooks: Sequence[TrainHook],
    progress: ProgressFn | None,
) -> tuple[int, float]:
    """All epochs; returns (steps, mean data loss over the last epoch)."""
    steps, total = 0, config.epochs * len(loader)
    loss_sum, seen = 0.0, 0
    for _ in range(config.epochs):
        loss_sum, seen = 0.0, 0
        for batch in loader:
            data_loss = _sgd_step(model, batch, config=config, optimizer=optimizer,
                                  hooks=hooks)
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
    hooks: Sequence[TrainHook] = (),
    progress: ProgressFn | None = None,
) -> TrainResult:
    """Train ``model`` in place on ``dataset`` (see the module doc for the exact step).

    ``hooks`` act in list order at each point of :mod:`fedcore.train_hooks`; e.g.
    ``[MaskEnforcer(model, masks), ProximalTerm(mu=0.01, reference_params=global_params)]``.
    """
    if not isinstance(config, TrainConfig):
        raise ValueError(f"config must be a TrainConfig, got {type(config).__name__}")
    if len(dataset) == 0:  # type: ignore[arg-type]
        raise ValueError("dataset is empty")
    hooks = tuple(hooks)
    bad = [type(h).__name__ for h in hooks if not isinstance(h, TrainHook)]
    if bad:
        raise ValueError(f"hooks must be TrainHook instances, got {bad}")
    optimizer = _make_optimizer(model, config)
    loader = DataLoader(dataset, batch_size=config.batch_size, shuffle=True,
                        generator=torch.Generator().manual_seed(config.seed))
    start, was_training = time.perf_counter(), model.training
    model.train()
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            for hook in hooks:
                hook.before_training(model)
            steps, loss = _run_epochs(model, loader, config=config, optimizer=optimizer,
                                      hooks=hooks, progress=progress)
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


