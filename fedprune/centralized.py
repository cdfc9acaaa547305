"""Centralized pruning baseline: the federation's model, schedule and sparsity, in one process.

ALGORITHMS.md §1 compares federated against centralized pruning. The baseline here trains
the same model (``config.training.model``, seed ``config.training.seed``) on the union of
the clients' training sets (``fedcore.datasets.union_train_set`` with the clients' own
``DataSpec``: the same Dirichlet partitions, so exactly the samples the federation trains
on — W1 clients train on their whole partition (``val_fraction`` 0), so the union is all
1437 training samples; with ``val_fraction > 0`` each client holds that share back for
federated evaluation, and so does the union) and prunes it with the same
``PruningController`` the coordinator uses, with **server-mask semantics on the central
weights**: after every "round" the controller scores the current weights and, on mask
steps, publishes a new mask; pruned weights are zeroed.

One *round* is ``config.training.local_epochs`` epochs of ``fedcore.training.train_local``
(SGD with the configured lr / momentum / batch size, seed ``training.seed + round`` like a
client's ``seed + round``) under the round's training mask — the same number of local
epochs a client runs per federated round. ``train_local`` builds a fresh optimizer per
call, so momentum restarts every round exactly as it does on every client. Refine rounds
train dense, then re-score (the controller's contract). After every round the model is
evaluated on the server's test set (``config.evaluation.test_set``; W1: the fixed 20%
digits split).

The client-scores scheme has no clients here: a configuration with
``scheme="client-scores"`` is run as ``server-mask`` with magnitude scores (one baseline per
granularity / sparsity / schedule, whatever the federated scheme).

>>> from fedserver.config import ServerConfig
>>> rows = run_centralized(ServerConfig(), rounds=1)
>>> sorted(rows[0])[:4], rows[0]["sparsity"]
(['accuracy', 'loss', 'mask_id', 'phase'], 0.0)
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from fedcore.datasets import DataSpec, load_test_set, union_train_set
from fedcore.models import build_model
from fedcore.params import get_parameters, set_parameters
from fedcore.training import TrainConfig, evaluate, train_local
from fedserver.config import ServerConfig
from fedserver.pruning.config import PruningConfig
from fedserver.pruning.factory import build_controller

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


def _zero_pruned(params: Params, masks: Mapping[str, np.ndarray] | None) -> Params:
    if not masks:
        return params
    return {n: (np.where(masks[n], p, 0).astype(np.float32) if n in masks else p)
            for n, p in params.items()}


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
    tc = config.training
    model = build_model(tc.model, seed=tc.seed)
    initial = get_parameters(model)
    pruning = central_pruning_config(config.pruning)
    controller = build_controller(pruning, initial)
    train = union_train_set(DataSpec(source=data_source, num_partitions=clients, alpha=alpha))
    test = load_test_set(config.evaluation.test_set)
    records: list[dict[str, Any]] = []
    for t in range(1, total + 1):
        phase = controller.phase(t) if controller else "dense"
        train_mask_id, train_masks = (controller.mask_for_training(t) if controller
                                      else ("", None))
        start = time.perf_counter()
        result = train_local(model, train, TrainConfig(
            epochs=tc.local_epochs, batch_size=tc.batch_size, learning_rate=tc.learning_rate,
            momentum=tc.momentum, weight_decay=tc.weight_decay, seed=tc.seed + t),
            mask=train_masks)
        params = get_parameters(model)
        masks = None
        if controller is not None:
            controller.update_after_aggregation(t, params, None)
            _, masks = controller.current()
            params = _zero_pruned(params, masks)
            set_parameters(model, params)
        ev = evaluate(model, test, batch_size=config.evaluation.batch_size)
        record = {
            "round": t, "phase": phase, "train_mask_id": train_mask_id,
            "mask_id": controller.current()[0] if controller else "",
            "sparsity": controller.achieved_sparsity(masks) if controller else 0.0,
            "accuracy": ev.accuracy, "loss": ev.loss, "train_loss": result.loss,
            "seconds": time.perf_counter() - start,
        }
        records.append(record)
        if on_round is not None:
            on_round(record)
    final = get_parameters(model)
    return CentralizedResult(records, final, masks if controller else None, len(train))


def run_centralized(config: ServerConfig, *, clients: int = 10, alpha: float | None = 0.5,
                    data_source: str = "digits", rounds: int | None = None,
                    on_round: RoundFn | None = None) -> list[dict[str, Any]]:
    """Per-round records (``round``, ``phase``, ``accuracy``, ``loss``, ``sparsity`` = pruned
    fraction of the prunable weights after the round, ``mask_id``, ``train_loss``,
    ``seconds``); see :func:`train_centralized`."""
    return train_centralized(config, clients=clients, alpha=alpha, data_source=data_source,
                             rounds=rounds, on_round=on_round).rounds
