"""Export: compact artifacts load back into torch; structured pruning shrinks the model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from fedcore.models import build_model
from fedcore.params import get_parameters
from fedcore.pb import tensor_pb2 as pb
from fedprune.cli import main
from fedprune.export import Artifact, count, export_run, read_artifact, shrunk, write_artifact
from fedprune.shrink import shrink_sequential
from fedserver.model_state import ModelState, save_model_state
from fedserver.server_optimizers import ServerSGD
from fedserver.store import RoundRecord, RunStore
from fedserver.transforms.optimizer_step import OptimizerStep


def pruned_mlp(column_sparsity: float = 0.5) -> dict[str, np.ndarray]:
    params = get_parameters(build_model("mlp"))
    rng = np.random.default_rng(0)
    for name in ("fc2.weight", "fc3.weight"):
        w = params[name]
        dead = rng.permutation(w.shape[1])[: int(w.shape[1] * column_sparsity)]
        w[:, dead] = 0
    params["fc1.weight"][:5] = 0  # five constant hidden units (bias only)
    return params


def make_state(tmp: Path, params: dict[str, np.ndarray]) -> Path:
    state = tmp / "state"
    store = RunStore(state / "fedprune.sqlite")
    store.ensure_run("run", {"training": {"model": "mlp"}})
    name = save_model_state(state, 1, ModelState(params, 1),
                            {"optimizer": OptimizerStep(ServerSGD())}, "run")
    store.record_round(RoundRecord(1, "completed", "", 1, "", 0, 1, 1, 1, 0, 0, {}, {}, []),
                       checkpoint=name)
    store.close()
    return state


def test_shrink_removes_dead_units_and_keeps_the_function() -> None:
    dense = Artifact("mlp", pruned_mlp()).to_torch()
    small = shrink_sequential(dense, input_shape=(64,))
    x = torch.randn(64, 64, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        np.testing.assert_allclose(small(x).numpy(), dense(x).numpy(), atol=1e-5)
    widths = [s.args["out_features"] for s in small.layer_specs if s.kind == "linear"]
    # 128 columns of fc2 survive; some of them were constant units, folded into fc2's bias.
    assert 120 <= widths[0] < 128 and widths[1:] == [128, 10]
    assert small.carry_specs == ()
    assert sum(p.numel() for p in small.parameters()) < 0.4 * sum(
        p.numel() for p in dense.parameters())


def pruned_cnn(channel_sparsity: float = 0.75) -> dict[str, np.ndarray]:
    """Output channels of both convolutions zeroed (their biases stay: constant maps)."""
    params = get_parameters(build_model("cnn"))
    rng = np.random.default_rng(1)
    for name in ("conv1.weight", "conv2.weight"):
        w = params[name]
        w[rng.permutation(w.shape[0])[: int(w.shape[0] * channel_sparsity)]] = 0
    return params


def test_shrink_removes_conv_channels_and_keeps_the_function(tmp_path: Path) -> None:
    artifact = Artifact("cnn", pruned_cnn())
    dense = artifact.to_torch()
    small = shrunk(artifact)
    convs = [s.args for s in small.specs if s.kind == "conv2d"]
    assert [(c["in_channels"], c["out_channels"]) for c in convs] == [(1, 4), (4, 8)]
    fc = next(s.args for s in small.specs if s.kind == "linear")
    assert fc["in_features"] == 8 * 16  # the flatten boundary lost the dead channels' blocks
    write_artifact(small, tmp_path / "cnn.fpm")
    loaded = read_artifact(tmp_path / "cnn.fpm").to_torch()
    x = torch.rand(32, 64, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        np.testing.assert_allclose(loaded(x).numpy(), dense(x).numpy(), atol=1e-5)
    assert count(small.params)["parameters"] < 0.45 * count(artifact.params)["parameters"]


def test_shrink_rejects_unsupported_models() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.BatchNorm1d(4),
                                torch.nn.Linear(4, 2))
    with pytest.raises(ValueError, match="buffers"):
        shrink_sequential(model, input_shape=(4,))
    with pytest.raises(ValueError, match="nn.Sequential"):
        shrink_sequential(torch.nn.Linear(3, 2), input_shape=(3,))


@pytest.mark.parametrize("values,atol", [("fp32", 0.0), ("int8", 0.05)])
def test_artifact_round_trip(tmp_path: Path, values: str, atol: float) -> None:
    artifact = Artifact("mlp", pruned_mlp())
    size = write_artifact(artifact, tmp_path / "m.fpm", values=values)
    dense_bytes = sum(a.nbytes for a in artifact.params.values())
    assert size < dense_bytes * (0.75 if values == "fp32" else 0.25)
    loaded = read_artifact(tmp_path / "m.fpm")
    for name, a in artifact.params.items():
        np.testing.assert_allclose(loaded.params[name], a, atol=atol)
        assert np.all(loaded.params[name][a == 0] == 0)  # pruned stays exactly zero


def test_shrunk_artifact_rebuilds_without_the_registry(tmp_path: Path) -> None:
    small = shrunk(Artifact("mlp", pruned_mlp()))
    write_artifact(small, tmp_path / "s.fpm")
    model = read_artifact(tmp_path / "s.fpm").to_torch()
    assert isinstance(model, torch.nn.Sequential) and model[0].out_features < 128


def test_export_run_and_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = make_state(tmp_path, pruned_mlp())
    result = export_run(state, tmp_path / "x.fpm", values="int8", shrink=True)
    assert result["exported"]["parameters"] < result["dense"]["parameters"]
    assert result["max_output_difference"] < 0.1
    assert result["artifact_bytes"] < result["dense_fp32_bytes"] / 8
    assert main(["export", str(tmp_path), "--out", str(tmp_path / "y.fpm")]) == 0
    assert '"artifact_bytes"' in capsys.readouterr().out
    assert main(["export", str(tmp_path / "nothing"), "--out", str(tmp_path / "z.fpm")]) == 2


def test_bad_artifact_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "bad.fpm").write_bytes(b"NOTFEDPR" + bytes(20))
    with pytest.raises(ValueError, match="not a fedprune artifact"):
        read_artifact(tmp_path / "bad.fpm")


def test_format_1_artifact_still_loads(tmp_path: Path) -> None:
    """Artifacts written before layer specs had names and args (linear/relu chains)."""
    import json
    import struct

    small = shrunk(Artifact("mlp", pruned_mlp()))
    write_artifact(small, tmp_path / "new.fpm")
    data = (tmp_path / "new.fpm").read_bytes()
    (size,) = struct.unpack("<I", data[8:12])
    header = json.loads(data[12:12 + size])
    old = {"format": 1, "model_name": "mlp", "specs": [
        {"kind": s.kind, "in_features": s.args.get("in_features", 0),
         "out_features": s.args.get("out_features", 0)} for s in small.specs]}
    renamed = {f"{i}.{k.split('.')[1]}": k for i, s in enumerate(small.specs)
               for k in small.params if k.split(".")[0] == s.name}
    assert header["format"] == 2 and len(renamed) == 6
    model = pb.Model.FromString(data[12 + size:])
    for tensor in model.tensors:  # format 1 named tensors by position
        tensor.name = next(new for new, old_name in renamed.items() if old_name == tensor.name)
    head = json.dumps(old).encode()
    (tmp_path / "old.fpm").write_bytes(data[:8] + struct.pack("<I", len(head)) + head
                                       + model.SerializeToString())
    x = torch.rand(8, 64, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        np.testing.assert_allclose(read_artifact(tmp_path / "old.fpm").to_torch()(x).numpy(),
                                   small.to_torch()(x).numpy(), atol=1e-6)
