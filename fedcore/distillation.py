"""Knowledge distillation on unlabeled inputs (FedCompress's server step), torch only.

``distill(student, teacher, inputs, config, hooks)`` trains ``student`` in place to match
``teacher`` on ``inputs`` with the temperature-softened KL divergence
``KL(softmax(t / T) || softmax(s / T))`` (batch mean, no ``T^2`` factor, as the reference
code), Adam, shuffled by a ``torch.Generator`` seeded by ``config.seed``. Hooks follow
the :mod:`fedcore.train_hooks` contract (``before_training``, ``after_backward``,
``after_step``), so the mask enforcer and :class:`fedcore.weight_clustering.WeightClustering`
make the student a clustered, pruned copy. The teacher is never modified.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from fedcore.train_hooks import TrainHook


@dataclass(frozen=True, kw_only=True)
class DistillConfig:
    epochs: int = 10
    batch_size: int = 256
    learning_rate: float = 1e-4
    temperature: float = 2.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.epochs < 0 or self.batch_size < 1:
            raise ValueError("epochs must be >= 0 and batch_size >= 1")
        if not (np.isfinite(self.learning_rate) and self.learning_rate > 0):
            raise ValueError("learning_rate must be finite and > 0")
        if not (np.isfinite(self.temperature) and self.temperature > 0):
            raise ValueError("temperature must be finite and > 0")


@dataclass(frozen=True)
class DistillResult:
    kl: float  # mean KL over the inputs after distillation
    agreement: float  # fraction of inputs where student and teacher agree on the top class
    steps: int


def soft_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
            temperature: float) -> torch.Tensor:
    """``KL(softmax(t/T) || softmax(s/T))``, mean over the batch."""
    target = F.softmax(teacher_logits / temperature, dim=1)
    return F.kl_div(F.log_softmax(student_logits / temperature, dim=1), target,
                    reduction="batchmean")


def agreement(student: nn.Module, teacher: nn.Module, inputs: torch.Tensor,
              temperature: float = 1.0) -> tuple[float, float]:
    """(top-1 agreement, mean soft KL) of ``student`` with ``teacher`` on ``inputs``."""
    with torch.no_grad():
        s, t = student(inputs), teacher(inputs)
    same = float((s.argmax(dim=1) == t.argmax(dim=1)).float().mean())
    return same, float(soft_kl(s, t, temperature))


def distill(student: nn.Module, teacher: nn.Module, inputs: np.ndarray, config: DistillConfig,
            *, hooks: Sequence[TrainHook] = ()) -> DistillResult:
    x = torch.as_tensor(np.ascontiguousarray(inputs, dtype=np.float32))
    if x.ndim < 2 or len(x) == 0:
        raise ValueError("inputs must be a non-empty batch of examples")
    teacher.eval()
    was_training = student.training
    steps = 0
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        with torch.no_grad():
            targets = teacher(x)
        for hook in hooks:
            hook.before_training(student)
        optimizer = torch.optim.Adam([p for p in student.parameters() if p.requires_grad],
                                     lr=config.learning_rate)
        gen = torch.Generator().manual_seed(config.seed)
        student.train()
        try:
            for _ in range(config.epochs):
                order = torch.randperm(len(x), generator=gen)
                for start in range(0, len(x), config.batch_size):
                    idx = order[start:start + config.batch_size]
                    optimizer.zero_grad(set_to_none=True)
                    soft_kl(student(x[idx]), targets[idx], config.temperature).backward()
                    for hook in hooks:
                        hook.after_backward(student, optimizer)
                    optimizer.step()
                    for hook in hooks:
                        hook.after_step(student, optimizer)
                    steps += 1
        finally:
            student.train(was_training)
    student.eval()
    same, kl = agreement(student, teacher, x, config.temperature)
    student.train(was_training)
    return DistillResult(kl=kl, agreement=same, steps=steps)
