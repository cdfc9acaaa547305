"""The client daemon's secure-aggregation handlers, fed real step tasks by a server session."""

from __future__ import annotations

import numpy as np

from fedclient.local_work import TrainOutcome
from fedclient.secure_steps import SecureAggregationSteps
from fedcore.pb import coordinator_pb2 as cpb
from fedcore.pb import secagg_pb2 as spb
from fedcore.secagg import PROTOCOL
from fedcore.secagg.keys import RoundContext
from fedcore.secagg.server_session import ServerSession

SHAPES = {"w": (4,)}


def _task(kind: int, payload: bytes) -> cpb.Task:
    return cpb.Task(kind=kind, run_id="run", round=1, task_id=f"t{kind}",
                    step=cpb.ProtocolStep(protocol=PROTOCOL, payload=payload, threshold=2))


def test_daemon_handlers_run_a_round_and_refuse_the_double_unmask_attack() -> None:
    setup = spb.SecAggSetup(value_bits=8, ring_bits=10, clip_range=1.0, threshold=2,
                            cohort_size=3, vector_length=4)
    server = ServerSession(context=RoundContext("run", 1), setup=setup, cohort=["a", "b", "c"])
    sent: dict[str, list[bytes]] = {c: [] for c in "abc"}
    refusals: list[str] = []

    def train(task: cpb.Task) -> tuple[TrainOutcome, dict, None]:
        return TrainOutcome({"w": np.full(4, 0.5, np.float32)}, None, 7, {}), SHAPES, None

    steps = {c: SecureAggregationSteps(
        client_id=c, send=lambda task, payload, c=c: sent[c].append(payload), train=train,
        refused=lambda c=c: refusals.append(c)).handlers() for c in "abc"}
    for c in "abc":
        steps[c][cpb.TASK_KIND_ADVERTISE_KEYS](
            _task(cpb.TASK_KIND_ADVERTISE_KEYS, setup.SerializeToString()))
        server.add_keys(c, spb.SecAggPublicKeys.FromString(sent[c][-1]))
    server.close_advertise(list("abc"))
    for c in "abc":
        steps[c][cpb.TASK_KIND_SHARE_KEYS](
            _task(cpb.TASK_KIND_SHARE_KEYS, server.key_list_for(c).SerializeToString()))
        server.add_shares(c, spb.SecAggShareUpload.FromString(sent[c][-1]))
    server.close_share_keys(list("abc"))
    for c in "abc":
        steps[c][cpb.TASK_KIND_MASKED_TRAIN](
            _task(cpb.TASK_KIND_MASKED_TRAIN, server.delivery_for(c).SerializeToString()))
        masked = spb.SecAggMaskedInput.FromString(sent[c][-1])
        assert masked.vector_length == 4 and masked.num_examples == 7
    server.close_masked(list("abc"))
    attack = spb.SecAggUnmaskRequest(survivors=["a", "b", "c"], dropped=["b"])
    before = len(sent["a"])
    steps["a"][cpb.TASK_KIND_UNMASK](_task(cpb.TASK_KIND_UNMASK, attack.SerializeToString()))
    assert len(sent["a"]) == before and refusals == ["a"]  # not answered, and it paused
    honest = server.unmask_request_for("a")
    steps["a"][cpb.TASK_KIND_UNMASK](_task(cpb.TASK_KIND_UNMASK, honest.SerializeToString()))
    assert len(sent["a"]) == before + 1
    wrong = _task(cpb.TASK_KIND_UNMASK, honest.SerializeToString())
    wrong.step.protocol = "other/9"
    steps["b"][cpb.TASK_KIND_UNMASK](wrong)
    assert refusals == ["a", "b"]
