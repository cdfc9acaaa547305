"""Presets: the one place that fixes wrapper order and default numbers of a round program.

``aggregation.preset`` names one. A preset says which server optimizer moves the model
(with its default learning rate), how the aggregator is composed (wrappers outermost
first), and which client-objective transforms run. :func:`build_program` adds the
transforms every program shares, in the fixed order

    optimizer step -> client objective -> pruning step -> compression (FedCompress:
    adaptive k, distillation) -> personalization -> server evaluation -> accounting

| preset        | aggregator                              | optimizer (lr) | clients told        |
|---------------|-----------------------------------------|----------------|---------------------|
| fedavg        | WeightedMean                            | SGD (1.0)      | -                   |
| fedprox       | WeightedMean                            | SGD (1.0)      | proximal_mu         |
| fedadam       | WeightedMean                            | Adam (0.01)    | -                   |
| fedyogi       | WeightedMean                            | Yogi (0.01)    | -                   |
| robust_fedavg | NormBound(WeightedMean, max_norm 1.0)   | SGD (1.0)      | -                   |
| robust_median | Median (buffered)                       | SGD (1.0)      | -                   |
| robust_trimmed_mean | TrimmedMean(beta 0.2) (buffered)  | SGD (1.0)      | -                   |
| robust_krum   | MultiKrum(f 1, m n - f) (buffered)      | SGD (1.0)      | -                   |
| dp_fedavg     | FixedDenominatorMean(DPSum) (central)   | SGD (1.0)      | clip_norm           |
|               | or (DistributedDPSum) (distributed)     |                | clip_norm, noise    |
| q_ffl         | QFair(WeightedMean, q, L = 1 / lr)      | SGD (1.0)      | report initial_loss |
| fedcompress   | WeightedMean + AdaptiveClusters,        | SGD (1.0)      | clusters, summary   |
|               | Distillation transforms                 |                |                     |

With ``[secagg] enabled`` the round runs secure aggregation's four phases
(:mod:`fedserver.secure_aggregation`) and the value sum is a ``SecureSum``:
fedavg/fedprox/fedadam/fedyogi use ``UnweightedMean(SecureSum)`` (the coordinator cannot
weight updates it never sees: one client, one vote), dp_fedavg with ``dp.mode =
"distributed"`` uses ``FixedDenominatorMean(DistributedDPSum(SecureSum))``. Other presets
need individual updates and are refused (:data:`RULES`).

``dp_fedavg`` also appends the privacy-accounting transform. The buffered (robust_median,
robust_trimmed_mean, robust_krum) presets hold up to one update per cohort member
(``ceil(clients_per_round * (1 + over_selection))``); a rule refuses a cohort whose buffer
would exceed ``aggregation.max_buffer_bytes``.

Under ``[schedule] mode = "fedbuff"`` the preset's aggregator is wrapped outermost in
``StalenessWeighted`` (``schedule.staleness_weighting``, ``staleness_exponent``); FedBuff
runs only streaming, non-DP presets without pruning or federated evaluation (rules below).

Adding an aggregator wrapper: one module under ``fedserver/aggregators``, one entry here,
one config table, its contract tests. Impossible combinations are :data:`RULES`, each
naming both keys.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

from fedcore.distillation import DistillConfig
from fedcore.model_codec import Encoding
from fedcore.models import build_model
from fedcore.secure_noise import SecureGaussian
from fedcore.unlabeled import load_unlabeled
from fedserver.aggregators.adaptive_clip import AdaptiveClip
from fedserver.aggregators.base import Aggregator
from fedserver.aggregators.buffered import buffer_bytes
from fedserver.aggregators.distributed_dp_sum import DistributedDPSum
from fedserver.aggregators.dp_sum import DPSum
from fedserver.aggregators.krum import MultiKrum
from fedserver.aggregators.mean import FixedDenominatorMean, UnweightedMean, WeightedMean
from fedserver.aggregators.median import Median
from fedserver.aggregators.norm_bound import NormBound
from fedserver.aggregators.q_fair import QFair
from fedserver.aggregators.secure_sum import MAX_EXACT_RING_BITS, SecureSum
from fedserver.aggregators.staleness import StalenessWeighted
from fedserver.aggregators.trimmed_mean import TrimmedMean
from fedserver.aggregators.weighting import Weighting
from fedserver.cluster_schedule import ClusterSchedule, PlateauRule
from fedserver.config import FedCompressConfig
from fedserver.privacy.accountant import PrivacyAccountant
from fedserver.round_program import RoundProgram
from fedserver.secure_aggregation import SecAggProtocol, encoding_for, threshold_count
from fedserver.server_optimizers import ServerAdam, ServerOptimizer, ServerSGD, ServerYogi
from fedserver.transforms.adaptive_clusters import AdaptiveClusters
from fedserver.transforms.base import ModelTransform
from fedserver.transforms.client_objective import InitialLossReport, ProximalObjective
from fedserver.transforms.distillation import Distillation
from fedserver.transforms.evaluation_step import EvaluationStep, Evaluator
from fedserver.transforms.optimizer_step import OptimizerStep
from fedserver.transforms.personalization import Personalization
from fedserver.transforms.privacy_accounting import PrivacyAccounting
from fedserver.transforms.pruning_step import PruningStep

if TYPE_CHECKING:
    from fedserver.config import ServerConfig, StrategyConfig


def _sgd(s: StrategyConfig) -> ServerOptimizer:
    return ServerSGD(learning_rate=s.server_learning_rate or 1.0)


def _adaptive(cls: type[ServerAdam]) -> Callable[[StrategyConfig], ServerOptimizer]:
    def make(s: StrategyConfig) -> ServerOptimizer:
        return cls(learning_rate=s.server_learning_rate or 0.01, beta1=s.beta1, beta2=s.beta2,
                   tau=s.tau)
    return make


def _mean(config: ServerConfig) -> Aggregator:
    return WeightedMean()


def _norm_bounded_mean(config: ServerConfig) -> Aggregator:
    return NormBound(WeightedMean(), max_norm=config.aggregation.norm_bound.max_norm or 1.0)


def _cohort(config: ServerConfig) -> int:
    """The most updates one round can bring: every selected client (over-selection too)."""
    r = config.round
    return math.ceil(r.clients_per_round * (1 + r.over_selection))


def _q_fair_mean(config: ServerConfig) -> Aggregator:
    """q-FedAvg's step. The paper takes L = 1 / the client learning rate for plain SGD; with
    momentum the effective step is lr / (1 - momentum), hence the default L."""
    t, s = config.training, config.strategy
    return QFair(WeightedMean(), q=s.qffl_q,
                 lipschitz=s.qffl_lipschitz or (1.0 - t.momentum) / t.learning_rate)


def _median(config: ServerConfig) -> Aggregator:
    return Median(max_buffered=_cohort(config))


def _trimmed_mean(config: ServerConfig) -> Aggregator:
    return TrimmedMean(beta=config.aggregation.trimmed_mean.beta, max_buffered=_cohort(config))


def _krum(config: ServerConfig) -> Aggregator:
    krum = config.aggregation.krum
    return MultiKrum(f=krum.f, m=krum.m, max_buffered=_cohort(config))


BUFFERED = ("robust_median", "robust_trimmed_mean", "robust_krum")


@lru_cache(maxsize=16)
def model_size(name: str) -> int:
    """The number of float values of model ``name`` (built once per name and process)."""
    from fedcore.models import build_model
    from fedcore.params import get_parameters

    return sum(a.size for a in get_parameters(build_model(name, seed=0)).values())


def _buffer_too_large(config: ServerConfig) -> bool:
    return config.aggregation.preset in BUFFERED and buffer_bytes(
        rows=_cohort(config), model_size=model_size(config.training.model)
    ) > config.aggregation.max_buffer_bytes


def _buffer_why(config: ServerConfig) -> str:
    size = model_size(config.training.model)
    return (f"{config.aggregation.preset} buffers every update of a round: cohort "
            f"ceil(clients_per_round * (1 + over_selection)) = {_cohort(config)} x "
            f"{size} values x 4 bytes = {buffer_bytes(rows=_cohort(config), model_size=size)} "
            f"bytes > max_buffer_bytes = {config.aggregation.max_buffer_bytes}; lower the "
            f"cohort, raise the cap, or use a streaming preset (robust_fedavg)")


def _expected_clients(config: ServerConfig) -> float:
    r = config.round
    if config.dp.expected_clients:
        return config.dp.expected_clients
    return r.sampling_rate * r.population if r.selection == "poisson" else r.clients_per_round


def _sampling_rate(config: ServerConfig) -> float:
    """q for the accountant: only a Poisson-sampled cohort is amplified."""
    r = config.round
    return r.sampling_rate if r.selection == "poisson" else 1.0


def _dp_mean(config: ServerConfig) -> Aggregator:
    dp, expected = config.dp, _expected_clients(config)
    if dp.mode == "distributed":
        return FixedDenominatorMean(DistributedDPSum(
            clip_norm=dp.clip_norm, noise_multiplier=dp.noise_multiplier,
            expected_clients=expected), denominator=expected)
    clip: float | AdaptiveClip = dp.clip_norm
    if dp.adaptive:
        clip = AdaptiveClip(initial_norm=dp.clip_norm, target_quantile=dp.target_quantile,
                            learning_rate=dp.clip_learning_rate,
                            count_stddev=dp.count_stddev or expected / 20)
    noise = SecureGaussian(testing_seed=dp.testing_seed if dp.testing_seed >= 0 else None)
    return FixedDenominatorMean(DPSum(clip=clip, noise_multiplier=dp.noise_multiplier,
                                      expected_clients=expected, noise=noise),
                                denominator=expected)


def _no_accounting(config: ServerConfig) -> tuple[ModelTransform, ...]:
    return ()


def _accounting(config: ServerConfig) -> tuple[ModelTransform, ...]:
    dp = config.dp
    return (PrivacyAccounting(PrivacyAccountant(delta=dp.delta, q=_sampling_rate(config)),
                              noise_multiplier=dp.noise_multiplier,
                              target_epsilon=dp.target_epsilon),)


def _no_client_objective(s: StrategyConfig) -> tuple[ModelTransform, ...]:
    return ()


def _proximal(s: StrategyConfig) -> tuple[ModelTransform, ...]:
    return (ProximalObjective(mu=s.proximal_mu),)


def _initial_loss(s: StrategyConfig) -> tuple[ModelTransform, ...]:
    return (InitialLossReport(),)


def fedcompress_transforms(config: ServerConfig) -> tuple[ModelTransform, ...]:
    """Adaptive k, then (unless ``fedcompress.distill = false``) distillation; both share
    one :class:`ClusterSchedule`, so the student is clustered at the k clients use next."""
    f = config.fedcompress
    schedule = ClusterSchedule(PlateauRule(
        k_min=f.clusters_min, k_max=f.clusters_max, step=f.cluster_step, window=f.window,
        patience=f.patience, warmup_rounds=f.warmup_rounds, limit=f.limit,
        base=f.threshold_base))
    shape = model_shape(config.training.model)
    dim = f.representation_dim if 0 < f.representation_dim < shape.embedding else \
        shape.embedding
    out: list[ModelTransform] = [AdaptiveClusters(
        schedule, representation_dim=dim, cluster_epochs=f.cluster_epochs,
        centroid_learning_rate=f.centroid_learning_rate, seed=f.seed)]
    if f.distill:
        inputs = distillation_inputs(config)
        out.append(Distillation(
            schedule, build=lambda: build_model(config.training.model, seed=0), inputs=inputs,
            config=DistillConfig(epochs=f.distill_epochs, batch_size=f.distill_batch_size,
                                 learning_rate=f.distill_learning_rate,
                                 temperature=f.temperature, seed=f.seed),
            source=f.distill_data, centroid_learning_rate=f.centroid_learning_rate))
    return tuple(out)


@dataclass(frozen=True)
class ModelShape:
    features: int  # input width of the first nn.Linear (0: the model starts otherwise)
    embedding: int  # input width of the last nn.Linear (the representation summarised)


@lru_cache(maxsize=16)
def model_shape(name: str) -> ModelShape:
    from torch import nn

    linears = [m for m in build_model(name, seed=0).modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f"training.model: FedCompress needs a model with an nn.Linear "
                         f"head, {name!r} has none")
    return ModelShape(features=int(linears[0].in_features),
                      embedding=int(linears[-1].in_features))


def distillation_inputs(config: ServerConfig) -> np.ndarray:
    """The unlabeled set; one line naming ``fedcompress.distill_data`` when unusable."""
    f = config.fedcompress
    try:
        return load_unlabeled(f.distill_data, features=model_shape(config.training.model).features,
                              examples=f.distill_examples, seed=f.seed)
    except ValueError as exc:
        raise ValueError(f"fedcompress.distill_data: {exc}") from None


def _no_compression(config: ServerConfig) -> tuple[ModelTransform, ...]:
    return ()


@dataclass(frozen=True)
class Preset:
    optimizer: Callable[[StrategyConfig], ServerOptimizer]
    aggregator: Callable[[ServerConfig], Aggregator] = _mean
    client_objective: Callable[[StrategyConfig], tuple[ModelTransform, ...]] = \
        _no_client_objective
    accounting: Callable[[ServerConfig], tuple[ModelTransform, ...]] = _no_accounting
    # model compression after the pruning step (FedCompress)
    compression: Callable[[ServerConfig], tuple[ModelTransform, ...]] = _no_compression


PRESETS: Mapping[str, Preset] = {
    "fedavg": Preset(_sgd),
    "fedprox": Preset(_sgd, client_objective=_proximal),
    "fedadam": Preset(_adaptive(ServerAdam)),
    "fedyogi": Preset(_adaptive(ServerYogi)),
    "robust_fedavg": Preset(_sgd, aggregator=_norm_bounded_mean),
    "robust_median": Preset(_sgd, aggregator=_median),
    "robust_trimmed_mean": Preset(_sgd, aggregator=_trimmed_mean),
    "robust_krum": Preset(_sgd, aggregator=_krum),
    "dp_fedavg": Preset(_sgd, aggregator=_dp_mean, accounting=_accounting),
    "q_ffl": Preset(_sgd, aggregator=_q_fair_mean, client_objective=_initial_loss),
    "fedcompress": Preset(_sgd, compression=fedcompress_transforms),
}


def _secure_mean(config: ServerConfig, secure: SecureSum) -> Aggregator:
    return UnweightedMean(value_sum=secure)


def _secure_dp_mean(config: ServerConfig, secure: SecureSum) -> Aggregator:
    dp, expected = config.dp, _expected_clients(config)
    return FixedDenominatorMean(DistributedDPSum(
        clip_norm=dp.clip_norm, noise_multiplier=dp.noise_multiplier,
        expected_clients=expected, inner=secure), denominator=expected)


# presets that need only the sum of the updates, and their aggregator over a SecureSum
SECURE_AGGREGATORS: Mapping[str, Callable[[ServerConfig, SecureSum], Aggregator]] = {
    "fedavg": _secure_mean, "fedprox": _secure_mean, "fedadam": _secure_mean,
    "fedyogi": _secure_mean, "dp_fedavg": _secure_dp_mean,
}


def _secagg_ring_bits(config: ServerConfig) -> int:
    return encoding_for(config.secagg, config.round).ring_bits


def _secagg_group(config: ServerConfig) -> int:
    k, n = config.secagg.neighbours, config.round.clients_per_round
    return k + 1 if k and k < n - 1 else n


@dataclass(frozen=True)
class Rule:
    """An impossible combination of two keys. ``why`` may be a function of the config when
    the message must quote the numbers that broke the rule."""

    keys: tuple[str, str]
    broken: Callable[[ServerConfig], bool]
    why: str | Callable[[ServerConfig], str]


def _fedbuff(c: ServerConfig) -> bool:
    return c.schedule.mode == "fedbuff"


def _schedule_aggregator(config: ServerConfig, inner: Aggregator) -> Aggregator:
    """FedBuff scales each folded update by its staleness (see the module doc)."""
    if not _fedbuff(config):
        return inner
    s = config.schedule
    return StalenessWeighted(inner, weighting=s.staleness_weighting,
                             exponent=s.staleness_exponent)


RULES: tuple[Rule, ...] = (
    Rule(("fedcompress", "aggregation.preset"),
         lambda c: c.aggregation.preset != "fedcompress"
         and c.fedcompress != FedCompressConfig(),
         "the [fedcompress] keys are read only by aggregation.preset = 'fedcompress'"),
    Rule(("fedcompress.cluster_epochs", "training.local_epochs"),
         lambda c: c.aggregation.preset == "fedcompress"
         and c.fedcompress.cluster_epochs > c.training.local_epochs,
         "the clustered epochs are the last of the local epochs: need cluster_epochs <= "
         "local_epochs"),
    Rule(("aggregation.preset", "strategy.proximal_mu"),
         lambda c: c.aggregation.preset == "fedprox" and c.strategy.proximal_mu == 0,
         "fedprox needs proximal_mu > 0 (with 0 it is fedavg)"),
    Rule(("aggregation.norm_bound.max_norm", "aggregation.preset"),
         lambda c: c.aggregation.norm_bound.max_norm > 0
         and c.aggregation.preset != "robust_fedavg",
         "a norm bound is applied only by the robust_fedavg preset"),
    Rule(("aggregation.preset", "aggregation.weighting"),
         lambda c: c.aggregation.preset == "dp_fedavg" and c.aggregation.weighting != "uniform",
         "DP needs a bounded contribution per client: set aggregation.weighting = 'uniform'"),
    Rule(("aggregation.preset", "pruning.scheme"),
         lambda c: c.aggregation.preset == "dp_fedavg" and c.pruning.enabled
         and c.pruning.scheme == "client-scores",
         "client importance scores are not privatized; use pruning.scheme = 'server-mask' "
         "(masks from the noised model are post-processing)"),
    Rule(("dp.mode", "dp.adaptive"),
         lambda c: c.aggregation.preset == "dp_fedavg" and c.dp.mode == "distributed"
         and c.dp.adaptive,
         "adaptive clipping needs the server to see the clipped bits of un-noised updates; "
         "distributed DP uses a fixed clip_norm"),
    Rule(("dp.noise_multiplier", "dp.count_stddev"),
         lambda c: c.aggregation.preset == "dp_fedavg" and c.dp.adaptive
         and c.dp.noise_multiplier >= 2 * (c.dp.count_stddev or _expected_clients(c) / 20),
         "adaptive clipping spends part of the noise on the count: need noise_multiplier < "
         "2 * count_stddev (count_stddev defaults to expected_clients / 20)"),
    Rule(("aggregation.preset", "secagg.enabled"),
         lambda c: c.secagg.enabled and c.aggregation.preset not in SECURE_AGGREGATORS,
         lambda c: f"{c.aggregation.preset} needs individual updates, which secure aggregation "
                   f"hides; use one of {sorted(SECURE_AGGREGATORS)}"),
    Rule(("dp.mode", "secagg.enabled"),
         lambda c: c.secagg.enabled and c.aggregation.preset == "dp_fedavg"
         and c.dp.mode != "distributed",
         "central DP clips each update on the coordinator, which sees only masked inputs: "
         "use dp.mode = 'distributed' (clients clip and noise before masking)"),
    Rule(("pruning.scheme", "secagg.enabled"),
         lambda c: c.secagg.enabled and c.pruning.enabled and c.pruning.scheme == "client-scores",
         "client importance scores would travel unmasked; use pruning.scheme = 'server-mask'"),
    Rule(("round.selection", "secagg.enabled"),
         lambda c: c.secagg.enabled and c.round.selection == "poisson",
         "secure aggregation selects its cohort from waiting clients (poisson: not built)"),
    Rule(("secagg.threshold", "round.clients_per_round"),
         lambda c: c.secagg.enabled and not 2 <= threshold_count(c.secagg, c.round)
         <= _secagg_group(c),
         lambda c: f"the threshold is {threshold_count(c.secagg, c.round)} shares of a share "
                   f"group of {_secagg_group(c)} (cohort, or secagg.neighbours + 1); it must "
                   f"be in 2..group"),
    Rule(("secagg.value_bits", "round.clients_per_round"),
         lambda c: c.secagg.enabled and _secagg_ring_bits(c) > MAX_EXACT_RING_BITS,
         lambda c: f"value_bits + ceil(log2(cohort)) = {_secagg_ring_bits(c)} ring bits > "
                   f"{MAX_EXACT_RING_BITS}"),
    Rule(("round.clients_per_round", "aggregation.max_buffer_bytes"), _buffer_too_large,
         _buffer_why),
    Rule(("schedule.mode", "aggregation.preset"),
         lambda c: _fedbuff(c) and (c.aggregation.preset in BUFFERED
                                    or c.aggregation.preset == "dp_fedavg"),
         "fedbuff folds updates of several model versions into a streaming buffer: the "
         "buffered robust presets and DP accounting of asynchronous releases are not "
         "supported; use fedavg, fedprox, fedadam, fedyogi or robust_fedavg"),
    Rule(("schedule.mode", "pruning.enabled"), lambda c: _fedbuff(c) and c.pruning.enabled,
         "a mask change would strand every update in flight; prune under mode = 'sync'"),
    Rule(("schedule.mode", "round.federated_eval_every"),
         lambda c: _fedbuff(c) and c.round.federated_eval_every > 0,
         "fedbuff has no rounds to put an evaluation phase in; evaluate on the server"),
    Rule(("schedule.mode", "round.selection"),
         lambda c: _fedbuff(c) and c.round.selection != "waiting",
         "fedbuff trains every client that checks in; there is no cohort to sample"),
    Rule(("aggregation.krum.f", "round.clients_per_round"),
         lambda c: c.aggregation.preset == "robust_krum"
         and c.round.clients_per_round <= 2 * c.aggregation.krum.f + 2,
         "Krum tolerates f adversarial clients only among n > 2f + 2 updates"),
    Rule(("aggregation.preset", "wire.downlink_delta"),
         lambda c: c.aggregation.preset == "fedcompress" and c.wire.downlink_delta,
         "FedCompress clients send clustered weights, which the coordinator turns into a "
         "delta against the exact model it broadcast; model deltas on the downlink would "
         "leave clients on a reconstruction of it: set wire.downlink_delta = false"),
    Rule(("aggregation.preset", "personalization.personal_layers"),
         lambda c: c.aggregation.preset == "fedcompress" and bool(c.personalization.personal_layers),
         "FedCompress sends the clustered weights themselves, which would carry the personal "
         "layers off the client"),
    Rule(("personalization.finetune_epochs", "round.federated_eval_every"),
         lambda c: c.personalization.finetune_epochs > 0 and c.round.federated_eval_every == 0,
         "fine-tuned models exist only in federated evaluation: set federated_eval_every > 0"),
    Rule(("personalization.personal_layers", "round.federated_eval_every"),
         lambda c: bool(c.personalization.personal_layers) and c.round.federated_eval_every == 0,
         "the global model has no trained personal layers, so only federated evaluation "
         "(each client with its own layers) measures it: set federated_eval_every > 0"),
)


def check_combination(config: ServerConfig) -> None:
    for rule in RULES:
        if rule.broken(config):
            a, b = rule.keys
            why = rule.why if isinstance(rule.why, str) else rule.why(config)
            raise ValueError(f"{a} and {b} cannot be combined like this: {why}")


def build_program(config: ServerConfig, *, initial: Mapping[str, np.ndarray],
                  evaluator: Evaluator | None) -> RoundProgram:
    """The round program of ``config`` for a model whose initial weights are ``initial``."""
    from fedserver.pruning.factory import build_controller

    preset = PRESETS[config.aggregation.preset]
    transforms: list[ModelTransform] = [OptimizerStep(preset.optimizer(config.strategy))]
    transforms += preset.client_objective(config.strategy)
    controller = build_controller(config.pruning, initial)
    if controller is not None:
        transforms.append(PruningStep(controller))
    # after pruning: the mask is scored on the (unclustered) aggregate -- magnitudes of a
    # clustered model tie by whole clusters -- and the student is distilled under it
    transforms += preset.compression(config)
    if config.personalization.enabled:
        transforms.append(Personalization(
            personal_layers=config.personalization.personal_layers,
            finetune_epochs=config.personalization.finetune_epochs, initial=initial))
    if evaluator is not None:
        transforms.append(EvaluationStep(evaluator, label=config.evaluation.test_set))
    transforms += preset.accounting(config)
    wire, agg = config.wire, config.aggregation
    aggregator, protocol = preset.aggregator(config), None
    if config.secagg.enabled:
        protocol = SecAggProtocol(config=config.secagg, round_config=config.round,
                                  shapes={n: tuple(a.shape) for n, a in initial.items()})
        secure = SecureSum(encoding=protocol.encoding, unmasker=protocol)
        aggregator = SECURE_AGGREGATORS[config.aggregation.preset](config, secure)
    return RoundProgram(
        name=config.aggregation.preset,
        aggregator=_schedule_aggregator(config, aggregator),
        transforms=tuple(transforms), weighting=Weighting(agg.weighting, agg.weight_cap),
        encoding=Encoding(wire.uplink, wire.clusters, wire.zstd), protocol=protocol)
