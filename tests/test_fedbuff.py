"""FedBuff: the scheduler under a fake clock, staleness weighting, and its config rules."""

from __future__ import annotations

import numpy as np
import pytest

from fedcore import config as config_io
from fedserver.aggregators import Contribution, RoundSpec, WeightedMean
from fedserver.aggregators.staleness import StalenessWeighted
from fedserver.config import RoundConfig, ScheduleConfig, ServerConfig
from fedserver.fedbuff import FedBuffScheduler
from fedserver.round_plan import PhaseKind, RoundPlan
from fedserver.round_state import Assignment, Rejection, RejectReason, Shutdown, Wait
from fedserver.status import status_for


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def make(*, rounds: int = 5, k: int = 2, max_staleness: int = 1, first_round: int = 1,
         version: int = 0) -> tuple[FedBuffScheduler, Clock]:
    clock = Clock()
    rc = RoundConfig(rounds=rounds, clients_per_round=1, min_clients=1, deadline_s=30)
    sc = ScheduleConfig(mode="fedbuff", buffer_size=k, max_staleness=max_staleness)
    return FedBuffScheduler(rc, sc, run_id="run", first_round=first_round, version=version,
                            mask_id="", clock=clock, plan=RoundPlan(rc)), clock


def task(sm: FedBuffScheduler, client: str) -> Assignment:
    sm.client_waiting(client)
    try:
        decision = sm.poll(client)
    finally:
        sm.client_left(client)
    assert isinstance(decision, Assignment), decision
    return decision


def push(sm: FedBuffScheduler, client: str, t: Assignment, digest: bytes = b"d") -> bool:
    new = sm.check_result(client, t.task_id, kind=PhaseKind.TRAIN, round=t.round,
                          version=t.version, mask_id=t.mask_id, digest=digest)
    if new:
        sm.record_result(client, digest)
    return new


def flush(sm: FedBuffScheduler, clock: Clock) -> None:
    closed = sm.close_if_due()
    assert closed is not None and closed.succeeded and closed.ends_round
    sm.start_next(closed, version=sm.step.version + 1, mask_id="")


def test_every_client_trains_at_once_and_k_results_close_a_buffer() -> None:
    sm, clock = make(k=2)
    ta, tb, tc = task(sm, "a"), task(sm, "b"), task(sm, "c")  # nobody waits for a cohort
    assert (ta.round, ta.version) == (1, 0) and sm.active_count == 3
    assert task(sm, "a") == ta  # asking again returns the open task
    assert push(sm, "a", ta) and sm.close_if_due() is None
    assert isinstance(sm.poll("a"), Wait)  # one result per client per buffer
    assert push(sm, "b", tb)
    assert sm.result_reports("c") == {"staleness": 0.0}
    flush(sm, clock)
    assert sm.step.round == 2 and sm.step.version == 1
    assert sm.result_reports("c") == {"staleness": 1.0}  # c trained on version 0
    assert sm.folding_round(tc.round) == 2  # its result folds into the open buffer
    assert push(sm, "c", tc)
    assert task(sm, "a").version == 1  # a new buffer: a trains again, on the new model


def test_a_result_older_than_max_staleness_is_refused_and_changes_nothing() -> None:
    sm, clock = make(k=1, max_staleness=1)
    old = task(sm, "slow")
    for _ in range(2):
        t = task(sm, "fast")
        assert push(sm, "fast", t)
        flush(sm, clock)
    with pytest.raises(Rejection) as err:
        push(sm, "slow", old)
    assert err.value.reason is RejectReason.TOO_STALE
    assert "staleness 2 > schedule.max_staleness 1" in str(err.value)
    assert status_for(err.value).name == "FAILED_PRECONDITION"  # type: ignore[union-attr]
    assert sm.step.results == {} and sm.active_count == 1
    with pytest.raises(LookupError, match="check in again"):  # its model is not served
        sm.task_round("slow", old.task_id)
    assert task(sm, "slow").version == 2  # checking in again gives a task on the model


def test_duplicates_other_clients_tasks_deadlines_and_the_end() -> None:
    sm, clock = make(k=2, rounds=1)
    ta, tb = task(sm, "a"), task(sm, "b")
    assert push(sm, "a", ta, b"x")
    assert not push(sm, "a", ta, b"x")  # a retried identical push
    with pytest.raises(Rejection) as err:
        push(sm, "a", ta, b"y")
    assert err.value.reason is RejectReason.CONFLICTING_DUPLICATE
    with pytest.raises(Rejection) as err:
        sm.check_result("a", tb.task_id, kind=PhaseKind.TRAIN, round=1, version=0,
                        mask_id="", digest=b"z")
    assert err.value.reason is RejectReason.NOT_YOUR_TASK
    with pytest.raises(Rejection) as err:
        sm.check_result("b", tb.task_id, kind=PhaseKind.TRAIN, round=1, version=7,
                        mask_id="", digest=b"z")
    assert err.value.reason is RejectReason.STALE_VERSION
    clock.now += 31
    with pytest.raises(Rejection) as err:
        push(sm, "b", tb)
    assert err.value.reason is RejectReason.LATE
    assert sm.close_if_due() is None and sm.active_count == 0  # the expired task is gone
    tb = task(sm, "b")
    assert push(sm, "b", tb)
    flush(sm, clock)
    assert sm.finished and isinstance(sm.poll("a"), Shutdown)


def test_resumed_scheduler_knows_no_task_of_the_previous_process() -> None:
    sm, _ = make(first_round=3, version=2)
    with pytest.raises(Rejection) as err:
        sm.check_result("a", "run/r2/train/a", kind=PhaseKind.TRAIN, round=2, version=1,
                        mask_id="", digest=b"d")
    assert err.value.reason is RejectReason.UNKNOWN_TASK
    assert task(sm, "a").version == 2 and sm.step.round == 3


def test_staleness_scales_the_update_not_the_weight() -> None:
    agg = StalenessWeighted(WeightedMean(), weighting="polynomial", exponent=0.5)
    shapes = {"w": (1,)}
    acc = agg.begin(agg.initialize(shapes), RoundSpec(1, shapes))
    acc.add(Contribution("fresh", {"w": np.array([1.0])}, 1.0, reports={"staleness": 0.0}))
    acc.add(Contribution("old", {"w": np.array([1.0])}, 1.0, reports={"staleness": 3.0}))
    out = agg.finalize(agg.initialize(shapes), acc)
    assert out.result["w"].tolist() == [pytest.approx((1.0 + 0.5) / 2)]
    assert out.measurements["min_scale"] == 0.5
    with pytest.raises(ValueError, match="staleness must be finite"):
        acc.add(Contribution("bad", {"w": np.array([1.0])}, reports={"staleness": -1.0}))
    assert acc.count == 2


@pytest.mark.parametrize(("overrides", "message"), [
    (["schedule.mode=later"], "config section 'schedule': mode: must be one of"),
    (["schedule.buffer_size=0"], "buffer_size: must be >= 1"),
    (["schedule.max_staleness=-1"], "max_staleness: must be >= 0"),
    (["schedule.staleness_weighting=hinge"], "staleness_weighting: must be one of"),
    (["schedule.mode=fedbuff", "aggregation.preset=dp_fedavg", "aggregation.weighting=uniform"],
     "schedule.mode and aggregation.preset cannot be combined"),
    (["schedule.mode=fedbuff", "pruning.enabled=true"],
     "schedule.mode and pruning.enabled cannot be combined"),
    (["schedule.mode=fedbuff", "round.federated_eval_every=2"],
     "schedule.mode and round.federated_eval_every cannot be combined"),
])
def test_schedule_config_errors_name_the_key(overrides: list[str], message: str) -> None:
    with pytest.raises(config_io.ConfigError, match=message):
        config_io.load(ServerConfig, overrides=overrides, environ={})


@pytest.mark.parametrize(("flags", "message"), [
    (["--set", "simulate.slow_factor=0.5"],
     "config section 'simulate': slow_factor: must be finite and >= 1"),
    (["--set", "simulate.pool_size=3"], "unknown config key 'simulate.pool_size'"),
    (["--client-pool", "0"],
     "config section 'simulate': clients_per_process: must be >= 1"),
])
def test_simulate_config_errors_are_one_line_and_exit_2(
        flags: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    from fedprune.cli import main

    assert main(["simulate", "--no-progress", *flags]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(f"fedprune simulate: {message}"), err


def test_a_given_up_task_ends_and_the_client_trains_again_in_the_next_buffer() -> None:
    sm, clock = make(k=2)
    given_up = task(sm, "a")
    new = sm.check_result("a", given_up.task_id, kind=PhaseKind.TRAIN, round=given_up.round,
                          version=None, mask_id=None, digest=b"failure")
    assert new
    sm.record_failure("a", b"failure")
    assert sm.active_count == 0 and sm.step.results == {}  # a failure is not a result
    assert not sm.check_result("a", given_up.task_id, kind=PhaseKind.TRAIN, round=1,
                               version=None, mask_id=None, digest=b"failure")  # a repeat
    with pytest.raises(Rejection) as err:  # its one answer was the failure
        push(sm, "a", given_up)
    assert err.value.reason is RejectReason.CONFLICTING_DUPLICATE
    assert isinstance(sm.poll("a"), Wait)  # one answer per client per buffer
    tb, tc = task(sm, "b"), task(sm, "c")
    assert push(sm, "b", tb) and push(sm, "c", tc)
    flush(sm, clock)
    again = task(sm, "a")  # the next buffer: a trains again
    assert again.task_id != given_up.task_id and push(sm, "a", again)
