"""The mistakes a new user makes are one line naming the key or file, a non-zero exit, no
traceback, and nothing written (``fedserver``, ``fedclient``, ``fedprune``)."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

import fedclient.cli as client_cli
import fedserver.cli as server_cli
from fedclient.config import ClientConfig
from fedclient.daemon import EXIT_DATA
from fedclient.local_work import LocalWorker
from fedcore.datasets import ClientData, DataSpec, load_client_data
from fedprune import cli as fedprune_cli
from fedprune.simulate import (
    SimulationSpec,
    client_configs,
    matching_test_set,
    server_config_for,
    simulation_server_config,
)
from fedserver.config import ServerConfig
from tests.helpers import (
    TOKEN,
    RawClient,
    running_server,
    server_config,
    update_for,
    write_config,
    zero_delta,
)


def write_csv(path: Path, *, features: int, rows: int = 40, classes: int = 3) -> Path:
    rng = np.random.default_rng(0)
    table = np.column_stack([rng.normal(size=(rows, features)), np.arange(rows) % classes])
    np.savetxt(path, table, delimiter=",", fmt="%.5f")
    return path


def fedserver_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                    capsys: pytest.CaptureFixture[str], *overrides: str) -> str:
    """Run ``fedserver`` (in-process) expecting a refusal; its one stderr line."""
    monkeypatch.setattr(server_cli, "configure_logging", lambda *a, **k: None)
    state = tmp_path / "state"
    argv = [f"--state-dir={state}", "--port=0", "--rounds=1"]
    for item in overrides:
        argv += ["--set", item]
    assert server_cli.main(argv) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert not (state / "fedprune.sqlite").exists()  # no run recorded with the bad config
    return line


@pytest.mark.parametrize(("overrides", "expected"), [
    (("evaluation.test_set=nosuch",), "test_set: must be digits or synthetic, a path to a "
                                      ".npz or .csv file"),
    (("evaluation.test_set={tmp}/missing.npz",), "evaluation.test_set: npz file "
                                                "'{tmp}/missing.npz' does not exist"),
    (("evaluation.test_set={tmp}/ten.csv",), "evaluation.test_set: test set '{tmp}/ten.csv' "
                                            "has examples of shape (10,), which model 'mlp' "
                                            "cannot take"),
    (("training.model=nosuch.models:build",), "training.model: entry point "
                                              "'nosuch.models:build': module 'nosuch.models'"),
    (("training.model=resnet",), "training.model: unknown model 'resnet'"),
    (("pruning.enabled=true", "pruning.exclude=fc9.weight"),
     "pruning.exclude names ['fc9.weight'], which are not prunable weights"),
    (("training.learning_rate=inf",), "'training.learning_rate': expected a finite number"),
    (("training.learning_rate=nan",), "'training.learning_rate': expected a finite number"),
    (("training.learning_rate=1e9",), "learning_rate: must be a finite number in (0, 10]"),
    (("round.deadline_s=inf",), "'round.deadline_s': expected a finite number"),
])
def test_fedserver_refuses_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str],
                                       overrides: tuple[str, ...], expected: str) -> None:
    write_csv(tmp_path / "ten.csv", features=10)
    line = fedserver_error(tmp_path, monkeypatch, capsys,
                           *(o.format(tmp=tmp_path) for o in overrides))
    assert line.startswith("fedserver: ")
    assert expected.format(tmp=tmp_path) in line


def test_server_evaluates_on_the_users_own_csv_and_npz(tmp_path: Path) -> None:
    """``evaluation.test_set`` may be the user's own file; the round's accuracy is on it."""
    csv = write_csv(tmp_path / "own.csv", features=64, classes=10)
    X, y = np.loadtxt(csv, delimiter=",")[:, :-1], np.arange(40) % 10
    np.savez(tmp_path / "own.npz", X=X, y=y)
    for path in (csv, tmp_path / "own.npz"):
        config = server_config(tmp_path / f"state-{path.suffix[1:]}", "round.rounds=1",
                               f"evaluation.test_set={path}")
        with running_server(config) as server:
            metrics = server.coordinator.program.transforms[-1].evaluator(
                server.coordinator.model.params)
        assert set(metrics) == {"accuracy", "loss"}
        assert metrics["accuracy"] in {k / 40 for k in range(41)}  # 40 rows of this file


def test_fedprune_report_of_a_missing_or_foreign_file(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert fedprune_cli.main(["report", str(tmp_path / "none.json")]) == 2
    assert capsys.readouterr().err.strip() == (
        f"fedprune report: {tmp_path / 'none.json'} does not exist (give a report.json or a "
        f"run folder holding one)")
    (tmp_path / "other.json").write_text('{"a": 1}')
    assert fedprune_cli.main(["report", str(tmp_path / "other.json")]) == 2
    assert "it is not a fedprune report" in capsys.readouterr().err


def test_simulate_refuses_federated_evaluation_without_held_out_data(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    assert fedprune_cli.main(["simulate", "--out", str(out), "--clients", "2",
                              "--set", "round.federated_eval_every=2"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line == ("fedprune simulate: round.federated_eval_every=2 evaluates on the "
                    "clients' held-out data, but --val-fraction is 0 (no client holds any "
                    "out): pass e.g. --val-fraction 0.2")
    assert not out.exists()


def test_simulate_on_synthetic_data_evaluates_on_synthetic_data() -> None:
    assert matching_test_set(ServerConfig(), data_source="synthetic"
                             ).evaluation.test_set == "synthetic"
    assert matching_test_set(ServerConfig(), data_source="digits"
                             ).evaluation.test_set == "digits"


def test_simulate_with_one_client_runs(tmp_path: Path) -> None:
    """``--clients 1`` is its own quorum (min_clients 1): its config loads, its one client
    holds the whole training set, and a round completes with it over real gRPC."""
    config = simulation_server_config(path=None, overrides=["evaluation.test_set="],
                                      clients=1, data_source="digits", val_fraction=0.0)
    assert (config.round.clients_per_round, config.round.min_clients) == (1, 1)
    spec = SimulationSpec(out=tmp_path, clients=1, server=config)
    (client,) = client_configs(spec, port=1, token=TOKEN)
    assert len(load_client_data(client.data).train) == 1437
    local = dataclasses.replace(server_config_for(1, config, tmp_path),
                                auth=dataclasses.replace(config.auth, shared_token=TOKEN))
    with running_server(local) as server:
        raw = RawClient(server.port)
        try:
            task = raw.round()
            assert raw.push_payload(*update_for(task, zero_delta(raw.pull(task)))).accepted
        finally:
            raw.close()
        assert server.coordinator.model.version == 1


def test_client_whose_data_does_not_fit_the_model_exits_in_one_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """Selected, ``fedclient`` refuses before training (exit 2, one ERROR line naming the
    file and the model) instead of crashing inside a step or retrying every round."""
    csv = write_csv(tmp_path / "ten.csv", features=10)
    config = server_config(tmp_path / "state", "evaluation.test_set=", "round.rounds=1")
    monkeypatch.setattr(client_cli, "configure_logging", lambda *a, **k: None)
    monkeypatch.setattr("signal.signal", lambda *a: None)
    with running_server(config) as server, caplog.at_level(logging.INFO):
        client = write_config(tmp_path / "client.toml", ClientConfig(
            server=f"127.0.0.1:{server.port}", client_id="c1", token=TOKEN,
            data=DataSpec(source="csv", path=str(csv))))
        assert client_cli.main(["--config", str(client)]) == EXIT_DATA == 2
        assert server.coordinator.model.version == 0  # nothing was pushed
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, errors
    assert f"data.path '{csv}' has examples of shape (10,), which model 'mlp' cannot " \
           f"take" in errors[0]
    assert "\n" not in errors[0]


def test_client_without_held_out_data_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    x, y = torch.randn(20, 64), torch.arange(20) % 10
    data = ClientData(TensorDataset(x, y), TensorDataset(x[:0], y[:0]), 64, 10)
    worker = LocalWorker(data)
    from fedcore.params import get_parameters
    from fedcore.pb import coordinator_pb2 as cpb

    task = cpb.Task(model_name="mlp")
    params = get_parameters(worker.model("mlp"))
    with caplog.at_level(logging.WARNING, logger="fedclient"):
        for _ in range(3):
            _, metrics = worker.evaluate(task, params)
    assert metrics["evaluated_on_train"] == 1.0
    warnings = [r for r in caplog.records if "data.val_fraction is 0" in r.getMessage()]
    assert len(warnings) == 1
