"""What a client does with a task once it holds the global model: train or evaluate.

Kept apart from the RPC loop (``fedclient.daemon``) so it is plain torch + numpy. The
update is ``local - global`` per tensor; under a mask it is exactly zero at pruned
positions (masked training guarantees it, and the encoder sends only kept positions).
The task decides how it is trained (:func:`fedcore.client_training.train_update`): under a
mask, the physically reduced model or the dense model with a mask enforcer, as the task's
``client_training`` says; a FedProx term anchored at the pulled global model when
``proximal_mu > 0``.

EVALUATE tasks score the global model on the client's held-out split (``data.val``), which
exists only when ``data.val_fraction > 0``. With no hold-out (the default, W1: clients
train on their whole partition) the client evaluates on its training partition instead and
adds ``"evaluated_on_train": 1.0`` to the returned metrics.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from fedclient.attack import claimed_examples, poisoned_delta, training_data
from fedclient.config import AttackConfig
from fedclient.personal_layers import PersonalLayers
from fedcompression import group_scores
from fedcore.client_training import train_update
from fedcore.data_fit import check_data_fits
from fedcore.datasets import ClientData
from fedcore.masking import mask_hooks
from fedcore.models import ModelNotAllowed, build_model, check_allowed
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

__all__ = ["LocalWorker", "ModelNotAllowed", "NonFiniteUpdate", "TrainOutcome"]

Params = dict[str, np.ndarray]
log = logging.getLogger("fedclient")


@dataclass(frozen=True)
class TrainOutcome:
    delta: Params
    scores: Params | None
    num_examples: int
    metrics: dict[str, float]
    weights: Params = field(default_factory=dict)  # FedCompress: clustered local weights
    representation: Params | None = None  # FedCompress: representation summary tensors


def _train_config(t: cpb.TrainInstructions, *, seed: int, epochs: int = 0) -> TrainConfig:
    return TrainConfig(epochs=epochs or t.local_epochs, batch_size=t.batch_size,
                       learning_rate=t.learning_rate, momentum=t.momentum,
                       weight_decay=t.weight_decay, seed=seed)


class NonFiniteUpdate(ValueError):
    """Local training produced a non-finite update (diverged); it must not be pushed."""


def _check_finite(delta: Params, loss: float) -> None:
    bad = [name for name, d in delta.items() if not np.all(np.isfinite(d))]
    if not np.isfinite(loss):
        bad.append("train_loss")
    if bad:
        raise NonFiniteUpdate(f"local update is not finite in {len(bad)} part(s), first "
                              f"{clip(bad[0], 60)!r} (train loss {loss:g}); nothing was pushed")


def _train_hooks(model: torch.nn.Module, t: cpb.TrainInstructions, reference: Params,
                 masks: Mapping[str, np.ndarray] | None) -> list[TrainHook]:
    """Masked-dense training's hooks: the mask enforcer (if masked), then FedProx."""
    hooks = mask_hooks(model, masks)
    if t.proximal_mu > 0:
        hooks.append(ProximalTerm(mu=t.proximal_mu, reference_params=reference))
    return hooks


def _train_phases(model: torch.nn.Module, train: object, config: TrainConfig,
                  hooks: list[TrainHook], clustering: WeightClustering, *,
                  cluster_epochs: int) -> TrainResult:
    """FedCompress's two phases: ``epochs - cluster_epochs`` normal epochs, then
    ``cluster_epochs`` (at least 1) with weights clustered (the hook runs last, after the
    mask enforcer and FedProx). Total epochs stay ``epochs``."""
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


class LocalWorker:
    """Holds the client's data and one model instance per model name.

    A model is built on the first task naming it and checked against the data then
    (:func:`fedcore.data_fit.check_data_fits`): a mismatch raises
    :class:`fedcore.data_fit.DataModelMismatch`, which no retry can fix.

    Invariant: the coordinator cannot make this client import code. A task's model name is
    built only if it is a registry name (no import) or one of ``allowed_models``, the entry
    points the client's own operator configured; anything else raises
    :class:`~fedcore.models.ModelNotAllowed` before :mod:`importlib` is touched."""

    def __init__(self, data: ClientData, *, seed: int = 0,
                 allowed_models: tuple[str, ...] = (),
                 attack: AttackConfig | None = None,
                 personal: PersonalLayers | None = None,
                 data_label: str = "the local data") -> None:
        self.data = data
        self.personal = personal or PersonalLayers()
        self._data_label = data_label  # names the data in errors, e.g. "data.path 'x.csv'"
        self.attack = attack or AttackConfig()  # honest unless an experiment says otherwise
        self._seed = seed
        self._allowed = frozenset(allowed_models)
        self._models: dict[str, torch.nn.Module] = {}
        self._warned_no_holdout = False  # the val_fraction = 0 warning is logged once

    @property
    def seed(self) -> int:
        return self._seed

    def model(self, name: str) -> torch.nn.Module:
        check_allowed(name, self._allowed, named_by="the coordinator",
                      key="this client's allowed_models")
        if name not in self._models:
            model = build_model(name, seed=self._seed)
            # before any training: data for another model is a setup error, not a crash
            check_data_fits(model, self.data.train, data=self._data_label, model_name=name)
            self._models[name] = model
        return self._models[name]

    def shapes(self, name: str) -> dict[str, tuple[int, ...]]:
        return {k: tuple(v.shape) for k, v in get_parameters(self.model(name)).items()}

    def train(self, task: cpb.Task, global_params: Params,
              masks: Mapping[str, np.ndarray] | None) -> TrainOutcome:
        """Train from the global model (with this client's personal layers substituted) and
        return the delta of the shared tensors; personal tensors get an exact-zero delta."""
        model = self.model(task.model_name)
        t = task.train
        personal = list(t.personal_layers)
        start_params = self.personal.substituted(global_params, personal)
        set_parameters(model, start_params)
        start = time.perf_counter()
        train = training_data(self.attack, self.data.train, num_classes=self.data.num_classes)
        before = (evaluate(model, train, batch_size=256).loss if t.report_initial_loss
                  else None)  # q-FFL: the pulled model's loss here
        config = _train_config(t, seed=self._seed + int(task.round))
        clustering = (WeightClustering(clusters=t.clusters, masks=masks, seed=config.seed,
                                       centroid_learning_rate=t.centroid_learning_rate)
                      if t.clusters > 0 else None)
        extra: dict[str, float] = {}
        if clustering is not None:  # FedCompress trains the dense model, masked
            set_parameters(model, start_params)
            result = _train_phases(model, train, config,
                                   _train_hooks(model, t, start_params, masks), clustering,
                                   cluster_epochs=t.cluster_epochs)
            trained = get_parameters(model)
        else:  # reduced under a structured mask, else masked or dense
            update = train_update(model, start_params, masks, train, config,
                                  mode=t.client_training, proximal_mu=t.proximal_mu)
            result, extra = update.result, update.metrics
            trained = {n: start_params[n] + update.delta[n] for n in start_params}
            if (t.compute_scores or t.report_representation) and update.reduced:
                set_parameters(model, trained)  # scores and summaries read the dense model
        self.personal.keep(trained, personal)
        delta = self.personal.shared_delta(
            {n: (trained[n] - global_params[n]).astype(np.float32) for n in global_params},
            personal)
        delta = poisoned_delta(self.attack, delta)
        scores = self._scores(model, t) if t.compute_scores else None
        metrics = {"train_loss": float(result.loss),
                   "train_seconds": time.perf_counter() - start, **extra}
        if before is not None:
            metrics["initial_loss"] = float(before)
        if t.clip_norm > 0:  # DP: clip before the (possibly lossy) encoding
            delta, fitted = clip_to_norm(delta, t.clip_norm)
            metrics["dp_unclipped"] = float(fitted)
        if t.noise_stddev > 0:  # distributed DP: this client's share of the noise
            noise = SecureGaussian()
            delta = {n: (d + noise.normal(d.shape, stddev=t.noise_stddev)).astype(np.float32)
                     for n, d in delta.items()}
            metrics["dp_noised"] = 1.0
        _check_finite(delta, float(result.loss))
        weights = {n: trained[n] for n in clustering.names} if clustering is not None else {}
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
        """The global model's loss and accuracy and, when the task asks for it, those of
        this client's personalized model (personal layers substituted, then fine-tuned)."""
        model = self.model(task.model_name)
        on_train = len(self.data.val) == 0  # no hold-out (val_fraction 0): see module doc
        if on_train and not self._warned_no_holdout:
            self._warned_no_holdout = True
            log.warning("federated evaluation asked, but data.val_fraction is 0: evaluating on "
                        "the training data (reported as evaluated_on_train; set "
                        "data.val_fraction, e.g. 0.2, for a held-out score)")
        dataset = self.data.train if on_train else self.data.val
        batch_size = task.evaluate.batch_size or 256
        set_parameters(model, global_params)
        result = evaluate(model, dataset, batch_size=batch_size)
        metrics = {"loss": float(result.loss), "accuracy": float(result.accuracy)}
        ev = task.evaluate
        if ev.personal_layers or ev.finetune_epochs:
            set_parameters(model, self.personal.substituted(global_params, ev.personal_layers))
            if ev.finetune_epochs:  # a throwaway copy: the next task loads fresh weights
                train_local(model, self.data.train,
                            _train_config(task.train, seed=self._seed, epochs=ev.finetune_epochs))
            mine = evaluate(model, dataset, batch_size=batch_size)
            metrics.update(personalized_loss=float(mine.loss),
                           personalized_accuracy=float(mine.accuracy))
        if on_train:
            metrics["evaluated_on_train"] = 1.0
        return result.num_examples, metrics
