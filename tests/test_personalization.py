"""Personalization: FedPer personal layers never leave a client, FedAvg + FT evaluation, and
the per-client personalized accuracies in the report (in-process and over real processes)."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from fedclient.local_work import LocalWorker
from fedclient.personal_layers import PersonalLayers
from fedcore import config as config_io
from fedcore.config import ConfigError
from fedcore.datasets import DataSpec, load_client_data
from fedcore.models import build_model
from fedcore.params import get_parameters
from fedprune.emulation import Emulation
from fedserver.config import ServerConfig
from fedserver.fairness import with_fairness, worst_clients_lines
from fedserver.transforms.personalization import resolve_personal_layers

MLP = get_parameters(build_model("mlp", seed=0))


def _config(**personalization: object) -> ServerConfig:
    return config_io.build(ServerConfig, {
        "round": {"rounds": 3, "clients_per_round": 4, "min_clients": 4,
                  "federated_eval_every": 1},
        "personalization": personalization})


def _clients(n: int = 4) -> list:
    return [load_client_data(DataSpec(partition=i, num_partitions=n, val_fraction=0.3))
            for i in range(n)]


def test_head_is_the_last_layer_and_bad_names_are_named() -> None:
    assert resolve_personal_layers(["head"], MLP) == ("fc3.weight", "fc3.bias")
    assert resolve_personal_layers(["fc1.bias", "head"], MLP) == ("fc1.bias", "fc3.weight",
                                                                  "fc3.bias")
    with pytest.raises(ValueError, match="'fc9.weight' is not a tensor"):
        resolve_personal_layers(["fc9.weight"], MLP)
    with pytest.raises(ValueError, match="nothing would be federated"):
        resolve_personal_layers(list(MLP), MLP)


def test_config_rules_name_both_keys() -> None:
    with pytest.raises(ConfigError, match="personalization.finetune_epochs and "
                                          "round.federated_eval_every"):
        config_io.build(ServerConfig, {"personalization": {"finetune_epochs": 1}})
    with pytest.raises(ConfigError, match="personalization.personal_layers and"):
        config_io.build(ServerConfig, {"personalization": {"personal_layers": ["head"]}})
    with pytest.raises(ConfigError, match="finetune_epochs: must be in 0..100"):
        _config(finetune_epochs=-1)


def test_personal_layers_stay_on_the_client_and_out_of_the_global_model() -> None:
    em = Emulation(_config(personal_layers=["head"]), _clients(), evaluator=None)
    initial = {n: v.copy() for n, v in em.runner.model.params.items()}
    em.run(3)
    model = em.runner.model.params
    for name in ("fc3.weight", "fc3.bias"):  # pinned: exactly the initial values
        assert np.array_equal(model[name], initial[name])
    assert not np.array_equal(model["fc1.weight"], initial["fc1.weight"])  # shared: trained
    # what a client pushes for its head is exactly zero; what it keeps is trained
    worker = em._clients[0].worker
    task = em._tasks.build(*_train_assignment(em, 4))
    outcome = worker.train(task, model, None)
    assert not np.any(outcome.delta["fc3.weight"]) and not np.any(outcome.delta["fc3.bias"])
    assert np.any(outcome.delta["fc1.weight"])
    kept = worker.personal.substituted(model, ["fc3.weight"])["fc3.weight"]
    assert not np.array_equal(kept, initial["fc3.weight"])
    # each client evaluates the global body with its own head: better than the global head
    ev = em.evaluate_clients(4)
    glob = np.mean([m["accuracy"] for m in ev.values()])
    mine = np.mean([m["personalized_accuracy"] for m in ev.values()])
    assert mine > glob + 0.05, (glob, mine)


def _train_assignment(em: Emulation, round: int) -> tuple:
    import time

    from fedserver.round_plan import PhaseKind
    from fedserver.round_state import Assignment

    instr = em.runner.open(round).instructions
    return (Assignment(PhaseKind.TRAIN, f"t/{round}", round, em.runner.model.version, "",
                       time.monotonic() + 60), instr)


def test_finetuned_evaluation_reports_both_accuracies() -> None:
    em = Emulation(_config(finetune_epochs=1), _clients(), evaluator=None)
    em.run(2)
    before = {n: v.copy() for n, v in em.runner.model.params.items()}
    ev = em.evaluate_clients(3)
    assert all({"accuracy", "personalized_accuracy", "personalized_loss"} <= set(m)
               for m in ev.values())
    assert all(0 <= m["personalized_accuracy"] <= 1 for m in ev.values())
    assert all(np.array_equal(before[n], v) for n, v in em.runner.model.params.items())


def test_personal_state_survives_a_restart_and_a_mismatch_is_not_used(tmp_path, caplog) -> None:
    path = tmp_path / "me.personal.npz"
    store = PersonalLayers(path=path)
    trained = {"fc3.weight": np.full((10, 32), 0.5, np.float32)}
    store.keep(trained, ["fc3.weight"])
    again = PersonalLayers(path=path)
    base = {"fc3.weight": np.zeros((10, 32), np.float32)}
    assert np.array_equal(again.substituted(base, ["fc3.weight"])["fc3.weight"],
                          trained["fc3.weight"])
    other = {"fc3.weight": np.zeros((10, 16), np.float32)}
    with caplog.at_level(logging.WARNING, logger="fedclient.personal"):
        out = again.substituted(other, ["fc3.weight"])
    assert out["fc3.weight"].shape == (10, 16) and "does not match" in caplog.text


def test_worker_without_personal_layers_is_unchanged() -> None:
    data = _clients(2)[0]
    em = Emulation(config_io.build(ServerConfig, {"round": {"clients_per_round": 2}}),
                   [data, data], evaluator=None)
    task = em._tasks.build(*_train_assignment(em, 1))
    a = LocalWorker(data).train(task, MLP, None)
    b = LocalWorker(data).train(task, MLP, None)
    assert all(np.array_equal(a.delta[n], b.delta[n]) for n in MLP)
    assert np.any(a.delta["fc3.weight"])


def test_fairness_of_personalized_models_is_reported_and_printed() -> None:
    report = {"rounds": [{"round": 2, "client_metrics": {
        "c0": {"federated_accuracy": 0.5, "federated_personalized_accuracy": 0.9},
        "c1": {"federated_accuracy": 0.7, "federated_personalized_accuracy": 0.8}}}],
        "totals": {}}
    out = with_fairness(report)
    assert out["totals"]["fairness"]["min"] == 0.5
    assert out["totals"]["fairness_personalized"]["min"] == 0.8
    glob, pers = worst_clients_lines(out)
    assert "federated accuracy" in glob and "personalized accuracy: min 0.8000" in pers


@pytest.mark.slow
def test_personalized_federation_over_real_processes(tmp_path) -> None:
    from fedprune.simulate import SimulationSpec, run_simulation

    server = config_io.load(ServerConfig, overrides=[
        "round.rounds=2", "round.clients_per_round=3", "training.local_epochs=1",
        "round.federated_eval_every=1", "personalization.personal_layers=head",
        "personalization.finetune_epochs=1"], environ={})
    report = run_simulation(SimulationSpec(out=tmp_path / "run", clients=3, server=server,
                                           progress=False, timeout_s=300))
    evaluated = [r for r in report["rounds"] if "fairness_personalized" in r]
    assert evaluated, "no round holds personalized fairness statistics"
    per_client = evaluated[-1]["client_metrics"]
    assert len(per_client) == 3
    assert all(0 <= m["federated_personalized_accuracy"] <= 1 for m in per_client.values())
    assert report["totals"]["fairness_personalized"]["clients"] == 3
    for i in range(3):  # each client kept its own head on its own disk
        with np.load(tmp_path / "run" / "clients" / f"client-{i}.personal.npz") as kept:
            assert set(kept.files) == {"fc3.weight", "fc3.bias"}
    assert (tmp_path / "run" / "report.png").stat().st_size > 0
