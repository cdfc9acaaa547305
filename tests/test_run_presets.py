"""Run presets of ``fedprune simulate`` and the dense-float32 comparison in the report."""

from __future__ import annotations

from pathlib import Path

import pytest

from fedcore import config as config_io
from fedcore.models import build_model
from fedcore.params import get_parameters
from fedprune.cli import bytes_summary, parser
from fedprune.run_presets import DEFAULT_PRESET, RUN_PRESETS
from fedserver.config import ServerConfig
from fedserver.round_report import DENSE_MODEL_BYTES, build_report, dense_model_bytes
from fedserver.store import RoundRecord, RunStore


def test_compact_is_the_default_and_fedavg_dense_is_the_coordinator_default() -> None:
    assert DEFAULT_PRESET == "compact"
    assert parser().parse_args(["simulate"]).preset == "compact"
    compact = config_io.load(ServerConfig, base=RUN_PRESETS["compact"].overrides, environ={})
    assert compact.pruning.enabled and compact.wire.uplink == "int4"
    assert compact.wire.downlink_delta and compact.wire.downlink == "clustered"
    dense = config_io.load(ServerConfig, base=RUN_PRESETS["fedavg-dense"].overrides, environ={})
    assert dense == ServerConfig()


def test_preset_keys_sit_under_the_config_file_and_set(tmp_path: Path) -> None:
    toml = tmp_path / "server.toml"
    toml.write_text("[wire]\nuplink = \"int8\"\n")
    config = config_io.load(ServerConfig, base=RUN_PRESETS["compact"].overrides, path=toml,
                            overrides=["pruning.target_sparsity=0.5"], environ={})
    assert config.wire.uplink == "int8"  # the file wins over the preset
    assert config.pruning.target_sparsity == 0.5  # --set wins over both
    assert config.wire.downlink_delta  # the rest of the preset stays


def test_an_unknown_preset_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as exc:
        parser().parse_args(["simulate", "--preset", "tiny"])
    assert exc.value.code == 2


def _record(round_: int, accepted: int, up: int, down: int) -> RoundRecord:
    return RoundRecord(round=round_, status="completed", reason="", version=round_, mask_id="",
                       started=float(round_), closed=round_ + 0.5, selected=accepted,
                       accepted=accepted, bytes_up=up, bytes_down=down, timings={},
                       metrics={"accuracy": 0.9}, clients=[])


def test_report_states_what_a_dense_float32_run_would_have_moved(tmp_path: Path) -> None:
    model = dense_model_bytes(get_parameters(build_model("mlp", seed=0)))
    assert 340_000 < model < 341_000  # 85,002 float32 values and the tensor headers
    store = RunStore(tmp_path / "run.sqlite")
    store.ensure_run("r", {})
    store.set_state(DENSE_MODEL_BYTES, model)
    for r in (1, 2, 3):
        store.record_round(_record(r, accepted=10, up=60_000, down=90_000))
    totals = build_report(store, finished=True)["totals"]
    assert totals["dense_fp32_bytes"] == 3 * 10 * 2 * model
    line = bytes_summary(totals)
    assert line.startswith("moved 0.45 MB (up 0.18, down 0.27)")
    assert f"dense float32 FedAvg: {3 * 10 * 2 * model / 1e6:.1f} MB" in line
    store.close()
