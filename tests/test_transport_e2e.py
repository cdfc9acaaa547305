"""End to end over real processes behind the byte-counting relay: the compact run preset
with pruning steps every round and downlink deltas.

What it proves on the wire (not from the coordinator's own count): round 1 downloads no
model (seeded initialisation), no task needs a PullModel call (payloads ride in the task),
masks after the first travel as deltas, every byte the relay saw is in one category, and
the report states the dense float32 bytes next to the bytes moved.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from fedcore import config as config_io
from fedcore.pb import coordinator_pb2 as cpb
from fedprune.cli import bytes_summary
from fedprune.run_presets import RUN_PRESETS
from fedprune.simulate import SimulationSpec, run_simulation
from fedprune.wiretap import WireTap, analyse, frames
from fedserver.config import ServerConfig

pytest.importorskip("hpack")
pytestmark = pytest.mark.slow


def test_compact_preset_over_real_grpc_moves_no_model_in_round_one(tmp_path: Path) -> None:
    server = config_io.load(ServerConfig, base=RUN_PRESETS["compact"].overrides, overrides=[
        "round.rounds=4", "round.clients_per_round=2", "round.min_clients=2",
        "pruning.end_round=3", "pruning.prune_every=1", "wire.downlink_delta=true"],
        environ={})
    taps: list[WireTap] = []

    def relay(port: int) -> int:
        taps.append(WireTap(port))
        return taps[-1].port

    report = run_simulation(SimulationSpec(out=tmp_path / "run", clients=2, server=server,
                                           progress=False, timeout_s=300, relay=relay))
    taps[0].close()
    time.sleep(0.3)
    rounds = report["rounds"]
    assert [r["status"] for r in rounds] == ["completed"] * 4
    assert rounds[0]["bytes_down"] < 3_000, "round 1: tasks and acks only, no model"
    assert rounds[1]["bytes_down"] > 10_000  # round 2: the first mask and a model delta
    connections = [(bytes(u), bytes(d)) for u, d in taps[0].connections]
    breakdown = analyse(connections)  # asserts that the categories add up to every byte
    assert breakdown.calls["PullModel"] == 0 and breakdown.calls["PushUpdate"] == 8
    assert breakdown.bytes["down", "masks"] > 0
    forms, mask_kinds = _payload_forms(connections)
    assert cpb.MODEL_FORM_DELTA in forms and "mask_delta" in mask_kinds and "mask" in mask_kinds
    totals = report["totals"]
    assert totals["dense_fp32_bytes"] == 2 * 8 * 340_259  # 8 updates, one dense model each way
    assert sum(breakdown.total.values()) >= totals["bytes_up"] + totals["bytes_down"]
    assert "dense float32 FedAvg: 5.4 MB" in bytes_summary(totals)


def _payload_forms(connections: list[tuple[bytes, bytes]]) -> tuple[set[int], set[str]]:
    """Model forms and mask fields of every inline payload the coordinator sent."""
    forms: set[int] = set()
    masks: set[str] = set()
    for _, down in connections:
        for ftype, _, _, payload in frames(down, client_side=False):
            if ftype != 0 or len(payload) < 5:
                continue
            try:
                task = cpb.Task.FromString(payload[5:])
            except Exception:  # another message type (PushAck): not a task
                continue
            if task.HasField("model_payload"):
                forms.add(task.model_payload.form)
                masks.update(f for f in ("mask", "mask_delta") if task.model_payload.HasField(f))
    return forms, masks
