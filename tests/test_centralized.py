"""Centralized pruning baseline: learns, reaches the target sparsity, keeps pruned weights 0."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from fedcore import config as config_io
from fedcore.datasets import DataSpec, load_client_data
from fedprune.centralized import central_pruning_config, run_centralized, train_centralized
from fedserver.config import ServerConfig


def _config(*overrides: str) -> ServerConfig:
    return config_io.load(ServerConfig, overrides=["round.rounds=5", *overrides], environ={})


PRUNE = ("pruning.enabled=true", "pruning.schedule=step", "pruning.start_round=1",
         "pruning.end_round=3", "pruning.prune_every=1", "pruning.initial_sparsity=0.3")


# Structured (whole input columns) at 80% removes 80% of the 64 input pixels and cannot
# recover in 5 rounds, so it is checked at 50%.
@pytest.mark.parametrize(("granularity", "target"), [("unstructured", 0.8), ("structured", 0.5)])
def test_learns_reaches_target_and_keeps_pruned_weights_zero(granularity: str,
                                                             target: float) -> None:
    config = _config(*PRUNE, f"pruning.granularity={granularity}",
                     f"pruning.target_sparsity={target}")
    result = train_centralized(config)
    rows = result.rounds
    assert [r["round"] for r in rows] == [1, 2, 3, 4, 5]
    assert [r["phase"] for r in rows] == ["prune"] * 3 + ["finetune"] * 2
    # Accuracy improves over the run and ends well above chance (10 classes).
    assert rows[-1]["accuracy"] > rows[0]["accuracy"]
    assert rows[-1]["accuracy"] > rows[2]["accuracy"]  # fine-tuning recovers
    assert rows[-1]["accuracy"] > 0.9
    # Sparsity follows the step schedule and equals the target from end_round on.
    assert rows[0]["sparsity"] == pytest.approx(0.3, abs=0.01)
    assert rows[2]["sparsity"] == pytest.approx(target, abs=0.01)
    assert rows[-1]["sparsity"] == pytest.approx(target, abs=0.01)
    assert len({r["mask_id"] for r in rows[2:]}) == 1  # frozen during fine-tuning
    # Pruned weights are exactly zero in the final model; biases are never masked.
    masks = result.masks
    assert masks is not None and set(masks) == {"fc1.weight", "fc2.weight", "fc3.weight"}
    pruned = total = 0
    for name, mask in masks.items():
        assert not np.any(result.params[name][~mask])
        pruned += int((~mask).sum())
        total += mask.size
    assert pruned / total == pytest.approx(target, abs=0.01)
    if granularity == "structured":  # whole columns of the [out, in] weights
        for mask in masks.values():
            assert ((mask.all(axis=0)) | (~mask.any(axis=0))).all()


def test_dense_run_matches_federation_data_and_is_deterministic() -> None:
    config = _config("round.rounds=2")
    result = train_centralized(config)
    parts = [load_client_data(DataSpec(partition=i, num_partitions=10, alpha=0.5)).train
             for i in range(10)]
    assert result.train_examples == sum(len(p) for p in parts)
    assert result.masks is None
    assert all(r["sparsity"] == 0.0 and r["phase"] == "dense" for r in result.rounds)
    again = run_centralized(config)
    assert [r["accuracy"] for r in again] == [r["accuracy"] for r in result.rounds]


def test_client_scores_runs_with_server_mask_semantics() -> None:
    config = _config(*PRUNE, "pruning.target_sparsity=0.8", "pruning.scheme=client-scores",
                     "pruning.score_kind=saliency", "round.rounds=3")
    central = central_pruning_config(config.pruning)
    assert (central.scheme, central.score_kind) == ("server-mask", "magnitude")
    same = dataclasses.replace(config, pruning=central)

    def key(rows: list[dict]) -> list[tuple]:
        return [(r["mask_id"], r["accuracy"], r["sparsity"]) for r in rows]

    assert key(run_centralized(config)) == key(run_centralized(same))


def test_rejects_bad_rounds() -> None:
    with pytest.raises(ValueError, match="rounds"):
        run_centralized(_config(), rounds=0)
