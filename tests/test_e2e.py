"""End to end with real processes: `fedprune simulate` runs a coordinator and 3 client daemons."""

from __future__ import annotations

from pathlib import Path

import pytest

from fedcore import config as config_io
from fedprune.simulate import SimulationSpec, run_simulation
from fedserver.config import ServerConfig

pytestmark = pytest.mark.slow


def test_simulation_trains_and_writes_report(tmp_path: Path) -> None:
    server = config_io.load(ServerConfig, overrides=[
        "round.rounds=3", "round.clients_per_round=3", "round.federated_eval_every=1"],
        environ={})
    out = tmp_path / "run"
    report = run_simulation(SimulationSpec(out=out, clients=3, server=server, progress=False,
                                           timeout_s=300))
    assert report["finished"]
    rounds = report["rounds"]
    assert [r["status"] for r in rounds] == ["completed"] * 3
    acc = [r["metrics"]["accuracy"] for r in rounds]
    assert acc[-1] > acc[0] and acc[-1] > 0.6, acc
    for r in rounds:
        assert r["accepted"] == 3 and len(r["clients"]) == 3
        assert r["bytes_up"] > 3 * 300_000 * 0.8
        # Each round's model reaches the clients once: round 1's is the seeded initial model
        # they build themselves, later ones come with the federated evaluation that opens
        # the round; the TRAIN tasks that follow need no model bytes (clients hold it).
        assert r["bytes_down"] < 10_000
        assert r["metrics"]["eval_bytes_down"] > 3 * 300_000 * 0.8
        assert set(r["timings"]) >= {"wall", "training", "transfer", "aggregation", "waiting"}
        assert r["metrics"]["federated_eval_clients"] == 3
        assert 0 <= r["metrics"]["federated_accuracy"] <= 1
        assert r["metrics"]["federated_evaluated_on_train"] == 1.0  # W1: no local hold-out
        per_client = r["client_metrics"]  # the ground for fairness reports
        assert sorted(per_client) == sorted(r["clients"])
        for m in per_client.values():
            assert {"train_loss", "num_examples", "weight", "federated_accuracy"} <= set(m)
    assert (out / "report.json").exists()
    png = (out / "report.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    totals = report["totals"]
    assert totals["bytes_up"] == sum(r["bytes_up"] for r in rounds)


@pytest.mark.parametrize("overrides", [
    ("aggregation.preset=fedprox", "strategy.proximal_mu=0.05", "wire.uplink=int8",
     "wire.downlink=fp16"),
    ("aggregation.preset=fedyogi", "wire.uplink=clustered", "wire.clusters=32",
     "wire.downlink=bf16"),
])
def test_strategies_and_codecs_end_to_end(tmp_path: Path, overrides: tuple[str, ...]) -> None:
    server = config_io.load(ServerConfig, overrides=[
        "round.rounds=4", "round.clients_per_round=2", *overrides], environ={})
    report = run_simulation(SimulationSpec(out=tmp_path / "run", clients=2, server=server,
                                           progress=False, timeout_s=300))
    rounds = report["rounds"]
    assert [r["status"] for r in rounds] == ["completed"] * 4
    assert rounds[-1]["metrics"]["accuracy"] > 0.5
    # Compressed uplink: well under the ~340 KB of a dense float32 update per client.
    assert max(r["bytes_up"] for r in rounds) < 2 * 200_000
