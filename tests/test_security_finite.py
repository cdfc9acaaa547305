"""The model stays finite: the 3e38-delta attack over real gRPC.

Threat model: docs/threat-model.md ("malicious clients"). Two rounds of finite but huge
deltas (3e38, valid float32) used to overflow the global model to inf, wedge the
coordinator (evaluation on) or checkpoint an inf model (evaluation off).
"""

from __future__ import annotations

from pathlib import Path

import grpc
import numpy as np
import pytest

from fedcore.model_codec import decode_model, model_digest
from tests.helpers import RawClient, read_json, running_server, server_config, update_for, wait_for

HUGE = 3e38


@pytest.mark.timeout(90)
def test_huge_finite_deltas_are_refused_before_they_overflow_the_model(tmp_path: Path) -> None:
    config = server_config(tmp_path / "state", "round.rounds=3", "round.deadline_s=2")
    with running_server(config) as running:  # server evaluation on (the digits test set)
        coord = running.coordinator
        attacker = RawClient(running.port, client_id="attacker")
        honest = RawClient(running.port, client_id="honest")
        try:
            # round 1: 3e38 on top of a small model is still finite: FedAvg applies it
            task = attacker.round()
            params = decode_model(attacker.pull(task).model)
            huge = {k: np.full_like(v, HUGE) for k, v in params.items()}
            assert attacker.push_payload(*update_for(task, huge)).accepted
            wait_for(lambda: coord.model.version == 1, 30, "round 1 to close")
            # round 2: the same delta again would overflow: refused at the push, precisely
            task = attacker.round()
            before = (model_digest(coord.model.params), coord.model.version)
            with pytest.raises(grpc.RpcError) as info:
                attacker.push_payload(*update_for(task, huge))
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "would make the global model non-finite" in info.value.details()
            wait_for(lambda: coord.sm.step.round == 3, 30, "round 2 to fail at its deadline")
            assert (model_digest(coord.model.params), coord.model.version) == before
            # the run is alive: an honest client completes round 3 and the model is finite
            task = honest.round()
            payload = honest.pull(task)
            back = {k: np.zeros_like(v) for k, v in decode_model(payload.model).items()}
            assert honest.push_payload(*update_for(task, back)).accepted
            wait_for(lambda: coord.finished, 30, "the run to finish")
            assert all(np.all(np.isfinite(v)) for v in coord.model.params.values())
            assert coord.fatal is None
        finally:
            attacker.close()
            honest.close()
    report = read_json(Path(config.state_dir) / "report.json")
    assert report is not None
    assert [r["status"] for r in report["rounds"]] == ["completed", "failed", "completed"]
