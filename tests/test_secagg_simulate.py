"""``fedprune simulate`` with secure aggregation, pruning and distributed DP, a client
SIGKILLed mid-protocol: the federation completes and every round is accounted.

The client dies on SHARE_KEYS (after advertising its keys): a death costs the phase's
deadline, and the step deadline can be short while training's stays long for a loaded
machine. Deaths at every phase, with exact sums, are in ``test_secagg_processes.py``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def test_simulate_secure_aggregation_with_pruning_dp_and_a_client_killed(tmp_path: Path) -> None:
    out = tmp_path / "run"
    sets = ["secagg.enabled=true", "secagg.threshold=2", "secagg.clip_range=0.5",
            "secagg.step_deadline_s=10", "aggregation.preset=dp_fedavg",
            "aggregation.weighting=uniform", "dp.mode=distributed", "dp.noise_multiplier=0.3",
            "dp.clip_norm=1.0", "pruning.enabled=true", "pruning.target_sparsity=0.5",
            "pruning.start_round=1", "pruning.end_round=2", "round.deadline_s=120",
            "round.selection_timeout_s=30", "training.local_epochs=1"]
    cmd = [sys.executable, "-m", "fedprune", "simulate", "--preset", "fedavg-dense",
           "--clients", "3", "--rounds", "2",
           "--out", str(out), "--no-progress", "--timeout", "240", "--kill-at", "share_keys",
           "--kill-fraction", "0.3", "--kill-round", "2"]
    for s in sets:
        cmd += ["--set", s]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    rounds = report["rounds"]
    assert [r["status"] for r in rounds] == ["completed"] * 2, rounds
    assert [len(r["client_metrics"]) for r in rounds] == [3, 2]  # client-2 died after advertising
    assert "-0.500-" in rounds[1]["mask_id"]  # round 2 ran 50 % pruned
    for r in rounds:
        assert r["metrics"]["epsilon"] > 0  # the accountant counted the clients' noise
        assert all(m["dp_noised"] == 1.0 for m in r["client_metrics"].values())
        assert r["measurements"]["aggregator"]["value_sum"]["inner"]["sum_sha256"]
    log = (out / "logs" / "client-2.log").read_text()
    assert "fault injection: SIGKILL" in log
    assert rounds[-1]["version"] == 2
