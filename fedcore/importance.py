"""Per-weight importance scores computed on a client's own data (client-scores pruning)."""

from __future__ import annotations

import functools

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset

from fedcore._checks import check_int
from fedcore.params import prunable_names


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def _magnitude(model: nn.Module, dataset: Dataset, *, batch_size: int,
               max_batches: int) -> list[torch.Tensor]:
    params = dict(model.named_parameters())
    return [params[name].detach().abs() for name in prunable_names(model)]


def _gradient_scores(model: nn.Module, dataset: Dataset, *, batch_size: int, max_batches: int,
                     weighted: bool) -> list[torch.Tensor]:
    """Mean over the first ``max_batches`` batches of ``|w * g|`` (weighted) or ``|g|``.

    Per-batch absolute values are summed so opposite-signed batch gradients do not cancel.
    Batches come in dataset order, so two clients' scores are reproducible.
    """
    params = dict(model.named_parameters())
    weights = [params[name] for name in prunable_names(model)]
    scores = [torch.zeros_like(w) for w in weights]
    device, batches = _device(model), 0
    for x, y in DataLoader(dataset, batch_size=batch_size):
        if batches == max_batches:
            break
        loss = F.cross_entropy(model(x.to(device)), y.to(device))
        # autograd.grad (not backward) leaves the caller's .grad fields untouched.
        grads = torch.autograd.grad(loss, weights, allow_unused=True)
        for score, w, g in zip(scores, weights, grads):
            if g is not None:
                score += (w.detach() * g).abs() if weighted else g.abs()
        batches += 1
    return [score / batches for score in scores]


_SCORERS = {
    "magnitude": _magnitude,
    "saliency": functools.partial(_gradient_scores, weighted=True),
    "gradient": functools.partial(_gradient_scores, weighted=False),
}


def importance_scores(
    model: nn.Module, dataset: Dataset, *, kind: str = "magnitude", batch_size: int = 64,
    max_batches: int = 8,
) -> dict[str, np.ndarray]:
    """Per-weight importance of every prunable tensor: finite float32, same shapes.

    ``magnitude`` = |w|; ``saliency`` = |w * dL/dw| (client-driven pruning scores);
    ``gradient`` = |dL/dw|, which is non-zero at pruned (zero) weights and so can serve
    as a regrowth score when a mask is refined. The model is not modified.
    """
    if kind not in _SCORERS:
        raise ValueError(f"kind must be one of {sorted(_SCORERS)}, got {kind!r}")
    check_int("batch_size", batch_size, low=1)
    check_int("max_batches", max_batches, low=1)
    if kind != "magnitude" and len(dataset) == 0:  # type: ignore[arg-type]
        raise ValueError("dataset is empty")
    was_training = model.training
    model.eval()  # deterministic scores: no dropout, frozen norm statistics
    try:
        scores = _SCORERS[kind](model, dataset, batch_size=batch_size, max_batches=max_batches)
    finally:
        model.train(was_training)
    names = prunable_names(model)
    result = {n: s.detach().cpu().numpy().astype(np.float32) for n, s in zip(names, scores)}
    for name, array in result.items():
        if not np.isfinite(array).all():
            raise ValueError(f"importance scores of {name!r} are not finite (diverged model?)")
    return result
