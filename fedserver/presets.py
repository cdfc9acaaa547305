"""Presets: the one place that fixes wrapper order and default numbers of a round program.

``aggregation.preset`` names one. A preset says which server optimizer moves the model
(with its default learning rate), how the aggregator is composed (wrappers outermost
first), and which client-objective transforms run. :func:`build_program` adds the
transforms every program shares, in the fixed order

    optimizer step -> client objective -> pruning step -> server evaluation

| preset     | aggregator                | optimizer (default lr) | clients told           |
|------------|---------------------------|------------------------|------------------------|
| fedavg     | WeightedMean              | SGD (1.0)              | -                      |
| fedprox    | WeightedMean              | SGD (1.0)              | proximal_mu            |
| fedadam    | WeightedMean              | Adam (0.01)            | -                      |
| fedyogi    | WeightedMean              | Yogi (0.01)            | -                      |
| robust_fedavg | NormBound(WeightedMean, max_norm 1.0) | SGD (1.0)  | -                      |

Adding an aggregator wrapper: one module under ``fedserver/aggregators``, one entry here,
one config table, its contract tests. Impossible combinations are :data:`RULES`, each
naming both keys.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from fedcore.model_codec import Encoding
from fedserver.aggregators.base import Aggregator
from fedserver.aggregators.mean import WeightedMean
from fedserver.aggregators.norm_bound import NormBound
from fedserver.aggregators.weighting import Weighting
from fedserver.round_program import RoundProgram
from fedserver.server_optimizers import ServerAdam, ServerOptimizer, ServerSGD, ServerYogi
from fedserver.transforms.base import ModelTransform
from fedserver.transforms.client_objective import ProximalObjective
from fedserver.transforms.evaluation_step import EvaluationStep, Evaluator
from fedserver.transforms.optimizer_step import OptimizerStep
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


def _no_client_objective(s: StrategyConfig) -> tuple[ModelTransform, ...]:
    return ()


def _proximal(s: StrategyConfig) -> tuple[ModelTransform, ...]:
    return (ProximalObjective(mu=s.proximal_mu),)


@dataclass(frozen=True)
class Preset:
    optimizer: Callable[[StrategyConfig], ServerOptimizer]
    aggregator: Callable[[ServerConfig], Aggregator] = _mean
    client_objective: Callable[[StrategyConfig], tuple[ModelTransform, ...]] = \
        _no_client_objective


PRESETS: Mapping[str, Preset] = {
    "fedavg": Preset(_sgd),
    "fedprox": Preset(_sgd, client_objective=_proximal),
    "fedadam": Preset(_adaptive(ServerAdam)),
    "fedyogi": Preset(_adaptive(ServerYogi)),
    "robust_fedavg": Preset(_sgd, aggregator=_norm_bounded_mean),
}


@dataclass(frozen=True)
class Rule:
    """An impossible combination of two keys."""

    keys: tuple[str, str]
    broken: Callable[[ServerConfig], bool]
    why: str


RULES: tuple[Rule, ...] = (
    Rule(("aggregation.preset", "strategy.proximal_mu"),
         lambda c: c.aggregation.preset == "fedprox" and c.strategy.proximal_mu == 0,
         "fedprox needs proximal_mu > 0 (with 0 it is fedavg)"),
    Rule(("aggregation.norm_bound.max_norm", "aggregation.preset"),
         lambda c: c.aggregation.norm_bound.max_norm > 0
         and c.aggregation.preset != "robust_fedavg",
         "a norm bound is applied only by the robust_fedavg preset"),
)


def check_combination(config: ServerConfig) -> None:
    for rule in RULES:
        if rule.broken(config):
            a, b = rule.keys
            raise ValueError(f"{a} and {b} cannot be combined like this: {rule.why}")


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
    if evaluator is not None:
        transforms.append(EvaluationStep(evaluator, label=config.evaluation.test_set))
    wire, agg = config.wire, config.aggregation
    return RoundProgram(
        name=config.aggregation.preset, aggregator=preset.aggregator(config),
        transforms=tuple(transforms), weighting=Weighting(agg.weighting, agg.weight_cap),
        encoding=Encoding(wire.uplink, wire.clusters, wire.zstd))
