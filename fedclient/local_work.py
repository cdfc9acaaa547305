"""What a client does with a task once it holds the global model: train or evaluate.

Kept apart from the RPC loop (``fedclient.daemon``) so it is plain torch + numpy. The
update is ``local - global`` per tensor; under a mask it is exactly zero at pruned
positions (masked training guarantees it, and the encoder sends only kept positions).
The task decides the training hooks: a mask enforcer when the task has masks, a FedProx
:class:`ProximalTerm` anchored at the pulled global model when ``proximal_mu > 0``.

EVALUATE tasks score the global model on the client's held-out split (``data.val``), which
exists only when ``data.val_fraction > 0``. With no hold-out (the default, W1: clients
train on their whole partition) the client evaluates on its training partition instead and
adds ``"evaluated_on_train": 1.0`` to the returned metrics.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from fedclient.attack import claimed_examples, poisoned_delta, training_data
from fedclient.config import AttackConfig
from fedcompression import group_scores
from fedcore.datasets import ClientData
from fedcore.masking import mask_hooks
from fedcore.models import build_model
from fedcore.norms import clip_to_norm
from fedcore.params import get_parameters, set_parameters
from fedcore.pb import coordinator_pb2 as cpb
from fedcore.proximal import ProximalTerm
from fedcore.representation import summarize
from fedcore.secure_noise import SecureGaussian
from fedcore.text import clip
from fedcore.train_hooks import TrainHook
from fedcore.training import (
    TrainConfig,
    TrainResult,
    evaluate,
    importance_scores,
    train_local,
)
from fedcore.weight_clustering import WeightClustering

Params = dict[str, np.ndarray]


@dataclass(frozen=True)
class TrainOutcome:
    delta: Params
    scores: Params | None
    num_examples: int
    metrics: dict[str, float]
    weights: Params = field(default_factory=dict)  # FedCompress: clustered local weights
    representation: Params | None = None  # FedCompress: representation summary tensors


def _train_hooks(model: torch.nn.Module, t: cpb.TrainInstructions, global_params: Params,
                 masks: Mapping[str, np.ndarray] | None) -> list[TrainHook]:
    """The task's hooks: the mask enforcer (if masked), then FedProx (if ``proximal_mu > 0``)."""
    hooks = mask_hooks(model, masks)
    if t.proximal_mu > 0:
        hooks.append(ProximalTerm(mu=t.proximal_mu, reference_params=global_params))
    return hooks


def _train_phases(model: torch.nn.Module, train: object, config: TrainConfig,
                  hooks: list[TrainHook], clustering: WeightClustering | None, *,
                  cluster_epochs: int) -> TrainResult:
    """Plain local training, or FedCompress's two phases: ``epochs - cluster_epochs``
    normal epochs, then ``cluster_epochs`` (at least 1) with weights clustered (the hook
    runs last, after the mask enforcer and FedProx). Total epochs stay ``epochs``."""
    if clustering is None:
        return train_local(model, train, config, hooks=hooks)  # type: ignore[arg-type]
    clustered = min(max(cluster_epochs, 1), config.epochs)
    steps, seconds = 0, 0.0
    if config.epochs > clustered:
        first = train_local(model, train, replace(config, epochs=config.epochs - clustered),  # type: ignore[arg-type]
                            hooks=hooks)
        steps, seconds = first.steps, first.seconds
    last = train_local(model, train,  # type: ignore[arg-type]
                       replace(config, epochs=clustered, seed=config.seed + (1 << 20)),
                       hooks=[*hooks, clustering])
    return replace(last, steps=steps + last.steps, seconds=seconds + last.seconds)


class ModelNotAllowed(ValueError):
    """A task named an entry point this client's operator did not allow."""


class LocalWorker:
    """Holds the client's data and one model instance per model name.

    Invariant: the coordinator cannot make this client import code. A task's model name is
    built only if it is a registry name (no import) or one of ``allowed_models``, the entry
    points the client's own operator configured; anything else raises
    :class:`ModelNotAllowed` before :mod:`importlib` is touched."""

    def __init__(self, data: ClientData, *, seed: int = 0,
                 allowed_models: tuple[str, ...] = (),
                 attack: AttackConfig | None = None) -> None:
        self.data = data
        self.attack = attack or AttackConfig()  # honest unless an experiment says otherwise
        self._seed = seed
        self._allowed = frozenset(allowed_models)
        self._models: dict[str, torch.nn.Module] = {}

    @property
    def seed(self) -> int:
        return self._seed

    def model(self, name: str) -> torch.nn.Module:
        if ":" in name and name not in self._allowed:
            raise ModelNotAllowed(
                f"refusing model {clip(name)!r} named by the coordinator: entry points must "
                "be listed in this client's allowed_models (nothing was imported)")
        if name not in self._models:
            self._models[name] = build_model(name, seed=self._seed)
        return self._models[name]

    def shapes(self, name: str) -> dict[str, tuple[int, ...]]:
        return {k: tuple(v.shape) for k, v in get_parameters(self.model(name)).items()}

    def train(self, task: cpb.Task, global_params: Params,
              masks: Mapping[str, np.ndarray] | None) -> TrainOutcome:
        model = self.model(task.model_name)
        set_parameters(model, global_params)
        t = task.train
        config = TrainConfig(epochs=t.local_epochs, batch_size=t.batch_size,
                             learning_rate=t.learning_rate, momentum=t.momentum,
                             weight_decay=t.weight_decay, seed=self._seed + int(task.round))
        start = time.perf_counter()
        train = training_data(self.attack, self.data.train, num_classes=self.data.num_classes)
        hooks = _train_hooks(model, t, global_params, masks)
        clustering = (WeightClustering(clusters=t.clusters, masks=masks, seed=config.seed,
                                       centroid_learning_rate=t.centroid_learning_rate)
                      if t.clusters > 0 else None)
        result = _train_phases(model, train, config, hooks, clustering,
                               cluster_epochs=t.cluster_epochs)
        local = get_parameters(model)
        delta = poisoned_delta(self.attack, {n: (local[n] - global_params[n]).astype(np.float32)
                                             for n in global_params})
        scores = self._scores(model, t) if t.compute_scores else None
        metrics = {"train_loss": float(result.loss),
                   "train_seconds": time.perf_counter() - start}
        if t.clip_norm > 0:  # DP: clip before the (possibly lossy) encoding
            delta, fitted = clip_to_norm(delta, t.clip_norm)
            metrics["dp_unclipped"] = float(fitted)
        if t.noise_stddev > 0:  # distributed DP: this client's share of the noise
            noise = SecureGaussian()
            delta = {n: (d + noise.normal(d.shape, stddev=t.noise_stddev)).astype(np.float32)
                     for n, d in delta.items()}
            metrics["dp_noised"] = 1.0
        weights = {n: local[n] for n in clustering.names} if clustering is not None else {}
        representation = None
        if t.report_representation:
            on_train = len(self.data.val) == 0
            representation = summarize(
                model, self.data.train if on_train else self.data.val,
                dim=t.representation_dim, seed=t.representation_seed).as_tensors()
        return TrainOutcome(delta, scores, claimed_examples(self.attack, result.num_examples),
                            metrics, weights, representation)

    def _scores(self, model: torch.nn.Module, t: cpb.TrainInstructions) -> Params:
        """Grouped importance scores of the requested tensors, in model order."""
        element = importance_scores(model, self.data.train, kind=t.score_kind or "magnitude")
        unknown = set(t.score_granularity) - set(element)
        if unknown:
            raise ValueError(f"cannot score tensors {sorted(unknown)}: not prunable weights")
        return {name: group_scores(element[name], t.score_granularity[name]).astype(np.float32)
                for name in element if name in t.score_granularity}

    def evaluate(self, task: cpb.Task, global_params: Params) -> tuple[int, dict[str, float]]:
        model = self.model(task.model_name)
        set_parameters(model, global_params)
        on_train = len(self.data.val) == 0  # no hold-out (val_fraction 0): see module doc
        dataset = self.data.train if on_train else self.data.val
        result = evaluate(model, dataset, batch_size=task.evaluate.batch_size or 256)
        metrics = {"loss": float(result.loss), "accuracy": float(result.accuracy)}
        if on_train:
            metrics["evaluated_on_train"] = 1.0
        return result.num_examples, metrics
