"""Weight clustering during training (FedCompress, docs/fedcompress.md): a train hook.

:class:`WeightClustering` makes every *clustered* tensor of a model share at most ``k``
values while it trains, as the reference implementation of FedCompress does:

- **which tensors**: :func:`clustered_names` -- weight tensors only (floating, ``ndim >=
  2``: linear and conv weights; never biases, normalisation statistics or integer
  buffers), and only when the tensor has at least ``k`` kept (unpruned) elements. The rule
  depends on names, shapes, the mask and ``k`` alone, so the coordinator and every client
  agree on it without being told.
- **codebook**: per tensor, ``k`` centroids initialised from the tensor's current kept
  weights by k-means++-seeded 1-D k-means (:func:`fedcompression.kmeans.kmeans_1d`,
  deterministic for a seed). Pruned positions are not in the codebook and stay exactly 0.
- **forward**: hard weight sharing -- each weight is replaced by its nearest centroid (the
  parameter tensor the model reads holds the tied values).
- **backward**: the latent (untied) weights get the straight-through gradient: the task's
  optimizer steps the parameter with the gradient of the tied weights, and the hook moves
  the latent weights by exactly that step (momentum included). Centroids get the summed
  gradient of their members and their own Adam optimizer (the sum over thousands of
  members would make a plain SGD step explode). Latent weights may change cluster: the
  assignment is recomputed after every step.

Invariant after every step and at the end: every clustered tensor holds at most ``k``
distinct values at kept positions and exactly 0 at pruned ones; other tensors are left to
the optimizer. Use after the mask enforcer in a hook list (it zeroes pruned gradients
first).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from fedcompression.kmeans import kmeans_1d
from fedcore.train_hooks import TrainHook

Masks = Mapping[str, np.ndarray]


def clustered_names(shapes: Mapping[str, tuple[int, ...]], *, clusters: int,
                    masks: Masks | None = None) -> list[str]:
    """The tensors clustered at ``clusters`` centroids, in model order.

    >>> clustered_names({"fc.weight": (4, 4), "fc.bias": (4,)}, clusters=8)
    ['fc.weight']
    >>> clustered_names({"fc.weight": (2, 3)}, clusters=8)  # fewer than k elements
    []
    """
    if clusters < 1:
        return []
    out = []
    for name, shape in shapes.items():
        if len(shape) < 2:
            continue
        mask = masks.get(name) if masks else None
        kept = int(np.count_nonzero(mask)) if mask is not None else int(np.prod(shape))
        if kept >= clusters:
            out.append(name)
    return out


def tensor_seed(seed: int, name: str) -> int:
    """A per-tensor k-means seed: the first 8 bytes of SHA-256(seed, name)."""
    digest = hashlib.sha256(f"{int(seed)}\0{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def initial_codebook(values: np.ndarray, clusters: int, *, seed: int) -> np.ndarray:
    """k-means++-seeded k-means codebook (ascending float32) of ``values``."""
    codebook, _ = kmeans_1d(np.asarray(values, dtype=np.float32).ravel(), clusters, seed=seed)
    return codebook


@dataclass
class _Clustered:
    param: nn.Parameter
    latent: torch.Tensor
    centroids: torch.Tensor  # ascending, at most k
    kept: torch.Tensor | None  # bool, None = every element
    tied: torch.Tensor  # the values last written into ``param``
    labels: torch.Tensor  # int64 centroid index of every element


class WeightClustering(TrainHook):
    """Hard weight sharing with straight-through gradients (see the module doc)."""

    def __init__(self, *, clusters: int, masks: Masks | None = None, seed: int = 0,
                 centroid_learning_rate: float = 1e-3) -> None:
        if isinstance(clusters, bool) or not isinstance(clusters, int) or not 1 <= clusters <= 256:
            raise ValueError(f"clusters must be an int in 1..256, got {clusters!r}")
        if not (np.isfinite(centroid_learning_rate) and centroid_learning_rate >= 0):
            raise ValueError("centroid_learning_rate must be finite and >= 0, got "
                             f"{centroid_learning_rate!r}")
        self.clusters = clusters
        self.masks = dict(masks) if masks else None
        self.seed = int(seed)
        self.centroid_learning_rate = float(centroid_learning_rate)
        self._tensors: dict[str, _Clustered] = {}
        self._optimizer: torch.optim.Optimizer | None = None
        self._pending: dict[str, torch.Tensor] = {}

    @property
    def names(self) -> list[str]:
        return list(self._tensors)

    def codebooks(self) -> dict[str, np.ndarray]:
        """Current centroids of every clustered tensor (ascending float32)."""
        return {n: t.centroids.detach().cpu().numpy().astype(np.float32)
                for n, t in self._tensors.items()}

    # -- TrainHook ----------------------------------------------------------------------
    def before_training(self, model: nn.Module) -> None:
        params = dict(model.named_parameters())
        shapes = {n: tuple(p.shape) for n, p in params.items()}
        self._tensors = {}
        for name in clustered_names(shapes, clusters=self.clusters, masks=self.masks):
            param = params[name]
            kept = None
            if self.masks and name in self.masks:
                kept = torch.from_numpy(np.asarray(self.masks[name], dtype=bool)).to(param.device)
            latent = param.detach().clone()
            values = latent[kept] if kept is not None else latent.reshape(-1)
            codebook = initial_codebook(values.cpu().numpy(), self.clusters,
                                        seed=tensor_seed(self.seed, name))
            centroids = torch.from_numpy(codebook).to(param.device, param.dtype)
            self._tensors[name] = _Clustered(param, latent, centroids, kept, latent.clone(),
                                             torch.zeros(latent.shape, dtype=torch.int64))
            self._tie(self._tensors[name])
        centroid_params = [t.centroids.requires_grad_(False) for t in self._tensors.values()]
        self._optimizer = (torch.optim.Adam(centroid_params, lr=self.centroid_learning_rate)
                           if centroid_params and self.centroid_learning_rate > 0 else None)

    def after_backward(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
        """Summed member gradient per centroid (pruned gradients are already zero)."""
        self._pending = {}
        for name, t in self._tensors.items():
            if t.param.grad is None:
                continue
            grad = t.param.grad.detach()
            if t.kept is not None:
                grad = torch.where(t.kept, grad, torch.zeros_like(grad))
            summed = torch.zeros_like(t.centroids)
            summed.index_add_(0, t.labels.reshape(-1), grad.reshape(-1))
            self._pending[name] = summed

    def after_step(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
        with torch.no_grad():
            for t in self._tensors.values():  # straight-through: the latent takes the step
                t.latent.add_(t.param.detach() - t.tied)
                if t.kept is not None:
                    t.latent.masked_fill_(~t.kept, 0.0)
            self._step_centroids()
            for t in self._tensors.values():
                self._tie(t)

    # -- the individual operations ------------------------------------------------------
    def _step_centroids(self) -> None:
        if self._optimizer is None or not self._pending:
            return
        for name, t in self._tensors.items():
            t.centroids.grad = self._pending.get(name, torch.zeros_like(t.centroids))
        self._optimizer.step()
        for t in self._tensors.values():
            t.centroids.grad = None
            order = torch.argsort(t.centroids)
            if not bool(torch.all(order[1:] > order[:-1])):  # keep ascending (and the moments)
                t.centroids.copy_(t.centroids[order])
                for value in self._optimizer.state.get(t.centroids, {}).values():
                    if isinstance(value, torch.Tensor) and value.shape == t.centroids.shape:
                        value.copy_(value[order])

    @staticmethod
    def _tie(t: _Clustered) -> None:
        """Write the nearest centroid of every latent weight into the parameter."""
        with torch.no_grad():
            c = t.centroids
            mids = (c[1:] + c[:-1]) / 2
            t.labels = torch.bucketize(t.latent, mids)
            tied = c[t.labels]
            if t.kept is not None:
                tied = torch.where(t.kept, tied, torch.zeros_like(tied))
            t.param.copy_(tied)
            t.tied = tied
