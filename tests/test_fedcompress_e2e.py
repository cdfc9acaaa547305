"""FedCompress end to end: the preset over real gRPC between real processes, then export."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fedcore import config as config_io
from fedprune.export import export_run
from fedprune.simulate import SimulationSpec, run_simulation
from fedserver.checkpoint import read_checkpoint
from fedserver.config import ServerConfig

WEIGHTS = ("fc1.weight", "fc2.weight", "fc3.weight")


def test_fedcompress_preset_with_pruning_over_grpc(tmp_path: Path) -> None:
    """2 client processes, 2 rounds: every broadcast and checkpoint is clustered at k, the
    pruned weights stay zero, both links carry codebooks + indices, and the exported
    artifact is clustered and smaller than the dense model."""
    server = config_io.load(ServerConfig, overrides=[
        "round.clients_per_round=2", "round.min_clients=2", "round.rounds=2",
        "aggregation.preset=fedcompress", "fedcompress.clusters_min=4",
        "fedcompress.clusters_max=6", "fedcompress.distill_examples=256",
        "fedcompress.distill_epochs=2", "fedcompress.representation_dim=8",
        "wire.uplink=fp16", "wire.downlink=fp16", "pruning.enabled=true",
        "pruning.schedule=one-shot", "pruning.start_round=1", "pruning.end_round=1",
        "pruning.target_sparsity=0.5"], environ={})
    out = tmp_path / "run"
    report = run_simulation(SimulationSpec(out=out, clients=2, server=server, progress=False,
                                           timeout_s=300))
    assert report["finished"] and report["totals"]["rounds_failed"] == 0
    rounds = report["rounds"]
    for r in rounds:
        m = r["metrics"]
        assert m["clusters"] == 4 and 0 <= m["client_accuracy"] <= 1
        assert m["representation_score"] > 1 and "distill_agreement" in m
    ckpt = read_checkpoint(sorted((out / "state" / "checkpoints").glob("round-*.npz"))[-1])
    params, masks = ckpt.group("param"), ckpt.group("mask")
    for name in WEIGHTS:
        kept = params[name][masks[name].astype(bool)]
        assert len(np.unique(kept)) <= 4, name  # the broadcast is clustered at k
        assert not np.any(params[name][~masks[name].astype(bool)])
    dense = sum(a.nbytes for a in params.values())
    # 2 clients x (codebooks + 2-bit indices of half the weights + fp16 biases) per round
    assert rounds[-1]["bytes_up"] < 2 * dense / 16, rounds[-1]["bytes_up"]
    # down: the same, plus round 2's new mask (at most 1 bit per weight, sent once)
    assert rounds[-1]["bytes_down"] < 2 * dense * 3 / 32, (rounds[-1]["bytes_up"],
                                                           rounds[-1]["bytes_down"])
    info = export_run(out / "state", tmp_path / "model.fpm", values="clustered", clusters=4)
    assert info["max_distinct"] <= 4 + 1  # k centroids + the pruned zeros
    assert info["model_compression_ratio"] > 8 and info["max_output_difference"] < 1e-5
