"""Centralized pruning baseline: the federation's model, schedule and sparsity, in one process.

Federated pruning is judged against pruning the same model centrally (docs/pruning.md). The
baseline is the in-process emulation (:mod:`fedprune.emulation`) with **one client that
holds the union of the federation's training sets** (``fedcore.datasets.union_train_set``
with the clients' own ``DataSpec``: exactly the samples the federation trains on), so it
runs the same round runner, program and client training code as the federation: one
*round* is ``training.local_epochs`` local epochs (a fresh optimizer per round, seed
``training.seed + round``) under the round's training mask, then the server step. Pruning
runs with **server-mask semantics on the central weights**: the controller scores the
current weights and, on mask steps, publishes a new mask. After every round the model is
evaluated on the server's test set (``evaluation.test_set``; W1: the fixed 20% digits split).

The client-scores scheme has no clients to ask: a configuration with
``scheme="client-scores"`` runs as ``server-mask`` with magnitude scores.

>>> from fedserver.config import ServerConfig
>>> rows = run_centralized(ServerConfig(), rounds=1)
>>> rows[0]["phase"], rows[0]["sparsity"], 0.0 < rows[0]["accuracy"] <= 1.0
('dense', 0.0, True)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import TensorDataset

from fedcore.datasets import ClientData, DataSpec, union_train_set
from fedprune.emulation import Emulation
from fedserver.config import ServerConfig
from fedserver.evaluation import ServerEvaluator
from fedserver.pruning.config import PruningConfig
from fedserver.transforms.pruning_step import PruningStep

__all__ = ["CentralizedResult", "central_pruning_config", "run_centralized",
           "train_centralized"]

Params = dict[str, np.ndarray]
RoundFn = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class CentralizedResult:
    """Per-round records plus the final weights and mask (``None`` = dense)."""

    rounds: list[dict[str, Any]]
    params: Params
    masks: dict[str, np.ndarray] | None
    train_examples: int


def central_pruning_config(pruning: PruningConfig) -> PruningConfig:
    """``pruning`` with server-mask semantics (client-scores has no clients to ask)."""
    if pruning.scheme == "server-mask":
        return pruning
    return dataclasses.replace(pruning, scheme="server-mask", score_kind="magnitude")


def train_centralized(config: ServerConfig, *, clients: int = 10, alpha: float | None = 0.5,
                      data_source: str = "digits", rounds: int | None = None,
                      on_round: RoundFn | None = None) -> CentralizedResult:
    """Train and prune centrally for ``rounds`` (default ``config.round.rounds``) rounds.

    ``clients`` / ``alpha`` / ``data_source`` name the federation whose union of training
    sets is used (W1: 10 clients, Dirichlet 0.5, digits). ``on_round`` gets each record as
    soon as the round is evaluated.
    """
    total = config.round.rounds if rounds is None else rounds
    if isinstance(total, bool) or not isinstance(total, int) or total < 1:
        raise ValueError(f"rounds must be an int >= 1, got {rounds!r}")
    if not config.evaluation.test_set:
        raise ValueError("evaluation.test_set is empty: the baseline needs a test set")
    central = dataclasses.replace(config, pruning=central_pruning_config(config.pruning))
    spec = DataSpec(source=data_source, num_partitions=clients, alpha=alpha)
    union = union_train_set(spec)
    data = ClientData(union, TensorDataset(torch.empty(0, 1), torch.empty(0)),
                      num_features=0, num_classes=0)
    evaluator = ServerEvaluator(model_name=config.training.model,
                                test_set=config.evaluation.test_set,
                                batch_size=config.evaluation.batch_size)
    emulation = Emulation(central, [data], evaluator=evaluator, client_seed=config.training.seed)
    pruning = next((t for t in emulation.program.transforms if isinstance(t, PruningStep)), None)
    records: list[dict[str, Any]] = []
    for t in range(1, total + 1):
        record = emulation.run_round(t)
        record["phase"] = pruning.controller.phase(t) if pruning else "dense"
        records.append(record)
        if on_round is not None:
            on_round(record)
    model = emulation.runner.model
    return CentralizedResult(records, model.params, model.masks, len(union))


def run_centralized(config: ServerConfig, *, clients: int = 10, alpha: float | None = 0.5,
                    data_source: str = "digits", rounds: int | None = None,
                    on_round: RoundFn | None = None) -> list[dict[str, Any]]:
    """Per-round records (``round``, ``phase``, ``accuracy``, ``loss``, ``sparsity`` = pruned
    fraction of the prunable weights after the round, ``mask_id``, ``train_loss``,
    ``seconds``); see :func:`train_centralized`."""
    return train_centralized(config, clients=clients, alpha=alpha, data_source=data_source,
                             rounds=rounds, on_round=on_round).rounds
