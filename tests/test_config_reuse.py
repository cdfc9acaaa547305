"""A state folder whose run was started with another config is refused, naming the keys."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from fedcore import config as config_io
from fedcore.secrets import redacted
from fedserver.run_config import config_drift, defaults
from fedserver.state_dir import StartMode, StateError, open_run_store
from fedserver.store import STORE_NAME, RunStore
from tests.helpers import server_config, write_config

BASE = ("evaluation.test_set=", "round.rounds=2")


def stored(config: object) -> dict:
    return config_io.to_dict(redacted(config))


def started_run(state: Path, *overrides: str) -> None:
    """The state folder of a run started (and recorded) with ``overrides``."""
    store = open_run_store(state, mode=StartMode(),
                           config=stored(server_config(state, *BASE, *overrides)), run_id="r1")
    store.close()


def test_drift_ignores_operational_keys_and_names_run_defining_ones(tmp_path: Path) -> None:
    a = stored(server_config(tmp_path, *BASE))
    b = stored(server_config(tmp_path / "elsewhere", *BASE, "round.rounds=9",
                             "network.port=1234", "log_level=DEBUG", "auth.shared_token=x",
                             "round.deadline_s=99", "training.learning_rate=0.1",
                             "pruning.exclude=fc1.weight"))
    assert config_drift(a, b, defaults()) == {
        "pruning.exclude": ([], ["fc1.weight"]),
        "training.learning_rate": (0.05, 0.1)}
    # a key the stored run does not know yet counts as its default
    del a["training"]["momentum"]
    assert config_drift(a, stored(server_config(tmp_path, *BASE)), defaults()) == {}


def test_fedserver_refuses_a_changed_config_in_one_line(tmp_path: Path) -> None:
    state = tmp_path / "state"
    started_run(state)
    before = (state / STORE_NAME).read_bytes()
    config = write_config(tmp_path / "server.toml",
                          server_config(state, *BASE, "training.learning_rate=0.1",
                                        "round.clients_per_round=2"))
    proc = subprocess.run([sys.executable, "-m", "fedserver", "--config", str(config)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith(f"fedserver: error: {state / STORE_NAME} holds run r1, started "
                           f"with a different config (")
    assert "round.clients_per_round 1 -> 2" in line
    assert "training.learning_rate 0.05 -> 0.1" in line
    assert "--accept-config-change" in line and "--new-run" in line
    assert (state / STORE_NAME).read_bytes() == before  # nothing written or reset


def test_accept_config_change_continues_and_records_it(tmp_path: Path) -> None:
    state = tmp_path / "state"
    started_run(state)
    changed = stored(server_config(state, *BASE, "training.learning_rate=0.1"))
    with pytest.raises(StateError, match="training.learning_rate 0.05 -> 0.1"):
        open_run_store(state, mode=StartMode(), config=changed, run_id="r2")
    store = open_run_store(state, mode=StartMode(accept_config_change=True), config=changed,
                           run_id="r2")
    try:
        assert store.run_info()[2]["training"]["learning_rate"] == 0.05  # staged only
        store.commit_config_change()  # the coordinator does this once the run resumed
        info = store.run_info()
        assert info is not None and info[0] == "r1"  # the same run continues
        assert info[2]["training"]["learning_rate"] == 0.1
        (change,) = store.get_state("config_changes")
        assert change["changes"] == {"training.learning_rate": [0.05, 0.1]}
    finally:
        store.close()
    # now the new config is the run's: a restart with it needs no flag
    open_run_store(state, mode=StartMode(), config=changed, run_id="r3").close()


def test_the_same_config_resumes_without_a_flag(tmp_path: Path) -> None:
    state = tmp_path / "state"
    started_run(state)
    store = open_run_store(state, mode=StartMode(),
                           config=stored(server_config(state, *BASE, "round.rounds=7")),
                           run_id="r2")
    store.close()
    check = RunStore(state / STORE_NAME)
    assert check.get_state("config_changes") is None
    check.close()
