"""No code execution by the coordinator: a client builds only the models it allows.

Threat model: docs/threat-model.md ("malicious or spoofed coordinator").
"""

from __future__ import annotations

import json
import struct
import sys
from pathlib import Path

import pytest

from fedclient.config import ClientConfig
from fedclient.local_work import LocalWorker, ModelNotAllowed
from fedcore.datasets import DataSpec, load_client_data
from fedcore.models import build_model
from fedcore.params import get_parameters
from fedprune.export import Artifact, read_artifact, write_artifact
from tests.helpers import (
    read_json,
    running_server,
    server_config,
    spawn,
    stop,
    wait_for,
    write_config,
)

FOREIGN = "tests.foreign_model:build"


def _worker(*allowed: str) -> LocalWorker:
    data = load_client_data(DataSpec(source="synthetic"))
    return LocalWorker(data, allowed_models=allowed)


def test_entry_point_outside_the_allowlist_is_refused_unimported() -> None:
    worker = _worker()
    before = set(sys.modules)
    for name in ("os:system", "subprocess:run", "tests.never_imported:build"):
        with pytest.raises(ModelNotAllowed, match="allowed_models"):
            worker.model(name)
    assert "tests.never_imported" not in sys.modules and set(sys.modules) == before
    with pytest.raises(ModelNotAllowed) as info:  # a huge name is not echoed whole
        worker.model("a" * 3_000_000 + ":b")
    assert len(str(info.value)) < 500
    assert worker.model("mlp") is worker.model("mlp")  # registry names need no allowlist
    assert _worker(FOREIGN).model(FOREIGN) is not None


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_client_daemon_refuses_a_foreign_entry_point_from_the_coordinator(tmp_path: Path) -> None:
    """The coordinator names ``tests.foreign_model:build``; a client that does not allow
    it logs the refusal and never imports it; one that allows it trains the round."""
    config = server_config(tmp_path / "state", f"training.model={FOREIGN}", "round.rounds=2",
                           "evaluation.test_set=", "round.deadline_s=8")
    markers = {name: tmp_path / f"{name}.imported" for name in ("refuser", "allower")}
    logs = {name: tmp_path / f"{name}.log" for name in markers}
    with running_server(config) as running:
        procs = []
        try:
            for name, allowed in (("refuser", ()), ("allower", (FOREIGN,))):
                client = ClientConfig(server=f"127.0.0.1:{running.port}", client_id=name,
                                      token="test-token", max_wait_ms=1000,
                                      allowed_models=allowed,
                                      data=DataSpec(source="synthetic"))
                procs.append(spawn("fedclient", write_config(tmp_path / f"{name}.toml", client),
                                   logs[name], FEDPRUNE_FOREIGN_MARKER=str(markers[name])))
                if name == "refuser":  # selected alone for round 1, it refuses; then it leaves
                    wait_for(lambda: "told the coordinator" in logs["refuser"].read_text(), 60,
                             "the refusal reported to the coordinator")
                    stop(procs)
            wait_for(lambda: (read_json(Path(config.state_dir) / "report.json") or {})
                     .get("finished"), 120, "the round to complete")
        finally:
            stop(procs)
    refusal = logs["refuser"].read_text()
    assert f"refusing model {FOREIGN!r} named by the coordinator" in refusal
    assert "nothing was imported" in refusal
    assert not markers["refuser"].exists()
    assert markers["allower"].exists()
    report = read_json(Path(config.state_dir) / "report.json")
    assert report and [r["status"] for r in report["rounds"]] == ["failed", "completed"]
    assert report["rounds"][1]["clients"] == ["allower"]
    assert report["rounds"][0]["measurements"]["client_failures"] == \
        {"refuser": "model_not_allowed"}


def test_loading_an_fpm_never_imports_the_entry_point_it_names(tmp_path: Path) -> None:
    """A ``.fpm`` file is data: its model name is not a licence to import code."""

    params = get_parameters(build_model("mlp"))
    path = tmp_path / "evil.fpm"
    write_artifact(Artifact("tests.never_imported:build", params), path)
    before = set(sys.modules)
    artifact = read_artifact(path)  # reading: data only
    with pytest.raises(ModelNotAllowed, match="named by the artifact.*nothing was imported"):
        artifact.to_torch()
    assert "tests.never_imported" not in sys.modules and set(sys.modules) == before
    write_artifact(Artifact(FOREIGN, params), path)
    model = read_artifact(path).to_torch(allowed_models=(FOREIGN,))  # the loader's choice
    assert sum(p.numel() for p in model.parameters()) == sum(a.size for a in params.values())
    # a header that is not the documented shape is refused before anything is built
    for header in ({"format": 1, "model_name": ["os:system"]},
                   {"format": 1, "model_name": "mlp", "specs": [{"kind": "relu", "__init__": 1}]}):
        head = json.dumps(header).encode()
        path.write_bytes(b"FEDPRUNE" + struct.pack("<I", len(head)) + head)
        with pytest.raises(ValueError, match="malformed artifact header"):
            read_artifact(path)
