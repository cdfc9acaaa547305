"""Strategies: one small object per federated algorithm, composed from parts.

A strategy is (server optimizer, client instructions). Aggregation is always the streaming
weighted mean (``fedserver.aggregation``); what differs between FedAvg, FedProx, FedAdam
and FedYogi is how the mean delta moves the global model and what clients are told. Named
presets keep every default number in one place.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fedserver.server_optimizers import ServerAdam, ServerSGD, ServerYogi

if TYPE_CHECKING:
    from fedserver.config import StrategyConfig

ServerOptimizer = ServerSGD | ServerAdam


@dataclass
class Strategy:
    name: str
    optimizer: ServerOptimizer
    proximal_mu: float = 0.0  # sent to clients (FedProx)


def _fedavg(cfg: StrategyConfig) -> Strategy:
    return Strategy("fedavg", ServerSGD(learning_rate=cfg.server_learning_rate or 1.0))


def _fedprox(cfg: StrategyConfig) -> Strategy:
    return Strategy("fedprox", ServerSGD(learning_rate=cfg.server_learning_rate or 1.0),
                    proximal_mu=cfg.proximal_mu)


def _adaptive(cls: type[ServerAdam], name: str) -> Callable[[StrategyConfig], Strategy]:
    def make(cfg: StrategyConfig) -> Strategy:
        return Strategy(name, cls(learning_rate=cfg.server_learning_rate or 0.01,
                                  beta1=cfg.beta1, beta2=cfg.beta2, tau=cfg.tau))
    return make


STRATEGY_PRESETS: dict[str, Callable[[StrategyConfig], Strategy]] = {
    "fedavg": _fedavg,
    "fedprox": _fedprox,
    "fedadam": _adaptive(ServerAdam, "fedadam"),
    "fedyogi": _adaptive(ServerYogi, "fedyogi"),
}


def build_strategy(cfg: StrategyConfig) -> Strategy:
    return STRATEGY_PRESETS[cfg.name](cfg)
