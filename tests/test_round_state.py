"""RoundStateMachine driven by a fake clock: selection, deadlines, quorum, rejections."""

from __future__ import annotations

import pytest

from fedserver.config import RoundConfig
from fedserver.round_plan import PhaseKind
from fedserver.round_state import (
    Assignment,
    Rejection,
    RejectReason,
    RoundStateMachine,
    Shutdown,
    Wait,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(**kw: object) -> tuple[RoundStateMachine, FakeClock]:
    clock = FakeClock()
    cfg = RoundConfig(**{"rounds": 3, "clients_per_round": 3, "min_clients": 2,
                         "selection_timeout_s": 10, "deadline_s": 30, **kw})  # type: ignore[arg-type]
    return RoundStateMachine(cfg, run_id="run", first_round=1, version=0, clock=clock), clock


def wait_all(sm: RoundStateMachine, clients: list[str]) -> dict[str, object]:
    for c in clients:
        sm.client_waiting(c)
    return {c: sm.poll(c) for c in clients}


def push(sm: RoundStateMachine, client: str, *, digest: bytes = b"d", **kw: object) -> bool:
    step = sm.step
    args = {"kind": PhaseKind.TRAIN, "round": step.round, "version": step.version,
            "mask_id": step.mask_id, **kw}
    new = sm.check_result(client, step.task_id("run", client), digest=digest, **args)  # type: ignore[arg-type]
    if new:
        sm.record_result(client, digest)
    return new


def test_selects_when_enough_clients_wait() -> None:
    sm, _ = make()
    sm.client_waiting("a")
    assert isinstance(sm.poll("a"), Wait)
    decisions = wait_all(sm, ["a", "b", "c"])
    assert all(isinstance(d, Assignment) for d in decisions.values())
    a = decisions["a"]
    assert isinstance(a, Assignment) and a.round == 1 and a.deadline == 1030.0


def test_selection_timeout_starts_with_quorum() -> None:
    sm, clock = make()
    wait_all(sm, ["a", "b"])
    assert sm.step.selected_at is None
    assert sm.next_deadline() == 1010.0
    clock.now = 1010.0
    assert sm.close_if_due() is None
    assert sm.step.selected == {"a", "b"}


def test_round_closes_when_all_results_in_and_next_opens() -> None:
    sm, clock = make()
    wait_all(sm, ["a", "b", "c"])
    for c in "abc":
        assert push(sm, c)
    closed = sm.close_if_due()
    assert closed is not None and closed.succeeded and closed.reason == "all results in"
    sm.start_next(closed, version=1, mask_id="")
    assert sm.step.round == 2 and sm.step.version == 1


def test_deadline_with_quorum_succeeds_and_without_fails() -> None:
    sm, clock = make()
    wait_all(sm, ["a", "b", "c"])
    push(sm, "a")
    push(sm, "b")
    clock.now = 1030.0
    closed = sm.close_if_due()
    assert closed is not None and closed.succeeded
    sm.start_next(closed, version=1, mask_id="")
    wait_all(sm, ["a", "b", "c"])
    push(sm, "a")
    clock.now += 31
    closed = sm.close_if_due()
    assert closed is not None and not closed.succeeded and "quorum" in closed.reason
    sm.start_next(closed, version=1, mask_id="")
    assert sm.step.round == 3 and sm.step.version == 1


def test_rejections_name_the_reason() -> None:
    sm, clock = make()
    wait_all(sm, ["a", "b", "c"])
    with pytest.raises(Rejection) as exc:
        sm.check_result("a", "nope", kind=PhaseKind.TRAIN, round=1, version=0, mask_id="",
                        digest=b"x")
    assert exc.value.reason is RejectReason.UNKNOWN_TASK
    with pytest.raises(Rejection) as exc:
        sm.check_result("a", sm.step.task_id("run", "b"), kind=PhaseKind.TRAIN, round=1,
                        version=0, mask_id="", digest=b"x")
    assert exc.value.reason is RejectReason.NOT_YOUR_TASK
    for kw, reason in [({"version": 7}, RejectReason.STALE_VERSION),
                       ({"round": 2}, RejectReason.WRONG_ROUND),
                       ({"mask_id": "m1"}, RejectReason.WRONG_MASK),
                       ({"kind": PhaseKind.EVALUATE}, RejectReason.WRONG_KIND)]:
        with pytest.raises(Rejection) as exc:
            push(sm, "a", **kw)
        assert exc.value.reason is reason
    assert push(sm, "a", digest=b"same")
    assert not push(sm, "a", digest=b"same")  # identical retry: a duplicate, counted once
    with pytest.raises(Rejection) as exc:
        push(sm, "a", digest=b"other")
    assert exc.value.reason is RejectReason.CONFLICTING_DUPLICATE
    assert len(sm.step.results) == 1
    clock.now = 1031.0
    with pytest.raises(Rejection) as exc:
        push(sm, "b")
    assert exc.value.reason is RejectReason.LATE


def test_push_after_close_is_late() -> None:
    sm, _ = make()
    wait_all(sm, ["a", "b", "c"])
    old_task = sm.step.task_id("run", "c")
    push(sm, "a")
    push(sm, "b")
    push(sm, "c")
    closed = sm.close_if_due()
    assert closed is not None
    sm.start_next(closed, version=1, mask_id="")
    with pytest.raises(Rejection) as exc:
        sm.check_result("c", old_task, kind=PhaseKind.TRAIN, round=1, version=0, mask_id="",
                        digest=b"z")
    assert exc.value.reason is RejectReason.LATE


def test_over_selection_closes_at_target() -> None:
    sm, _ = make(over_selection=0.5, clients_per_round=2)
    decisions = wait_all(sm, ["a", "b", "c"])
    assert sum(isinstance(d, Assignment) for d in decisions.values()) == 3
    push(sm, "a")
    assert sm.close_if_due() is None
    push(sm, "c")
    closed = sm.close_if_due()
    assert closed is not None and closed.succeeded and set(closed.step.results) == {"a", "c"}


def test_only_waiting_clients_are_selected() -> None:
    sm, _ = make(clients_per_round=2)
    sm.client_waiting("dead")
    sm.client_left("dead")
    decisions = wait_all(sm, ["a", "b"])
    assert "dead" not in sm.step.selected
    assert all(isinstance(d, Assignment) for d in decisions.values())


def test_evaluation_step_and_shutdown() -> None:
    sm, _ = make(rounds=1, federated_eval_every=1, clients_per_round=2)
    wait_all(sm, ["a", "b"])
    push(sm, "a")
    push(sm, "b")
    closed = sm.close_if_due()
    assert closed is not None
    sm.start_next(closed, version=1, mask_id="")
    # the final model is evaluated in an evaluation-only round R + 1
    assert sm.step.kind is PhaseKind.EVALUATE and sm.step.round == 2 and sm.step.version == 1
    decisions = wait_all(sm, ["a", "b"])
    assert all(isinstance(d, Assignment) and d.kind is PhaseKind.EVALUATE
               for d in decisions.values())
    for c in "ab":
        assert sm.check_result(c, sm.step.task_id("run", c), kind=PhaseKind.EVALUATE, round=2,
                               version=None, mask_id=None, digest=b"e")
        sm.record_result(c, b"e")
    closed = sm.close_if_due()
    assert closed is not None and closed.ends_round
    sm.start_next(closed, version=1, mask_id="")
    assert sm.finished and isinstance(sm.poll("a"), Shutdown)
    assert sm.next_deadline() is None


def test_resume_at_later_round() -> None:
    clock = FakeClock()
    sm = RoundStateMachine(RoundConfig(rounds=5), run_id="r", first_round=4, version=3,
                           clock=clock)
    assert sm.step.round == 4 and sm.step.version == 3 and not sm.finished
    done = RoundStateMachine(RoundConfig(rounds=5), run_id="r", first_round=6, version=5,
                             clock=clock)
    assert done.finished


def test_evaluate_phase_precedes_training_and_only_required_failures_end_round() -> None:
    sm, clock = make(rounds=3, federated_eval_every=1, clients_per_round=2, min_clients=2)
    assert [p.kind for p in sm.plan.phases(2)] == [PhaseKind.EVALUATE, PhaseKind.TRAIN]
    wait_all(sm, ["a", "b"])
    push(sm, "a")
    push(sm, "b")
    closed = sm.close_if_due()
    assert closed is not None and closed.ends_round  # round 1 has no evaluation phase
    sm.start_next(closed, version=1, mask_id="")
    assert (sm.step.round, sm.step.kind) == (2, PhaseKind.EVALUATE)
    wait_all(sm, ["a", "b"])
    clock.now += 31  # nobody reports: evaluation is optional, so round 2 goes on to TRAIN
    closed = sm.close_if_due()
    assert closed is not None and not closed.succeeded and not closed.ends_round
    sm.start_next(closed, version=1, mask_id="")
    assert (sm.step.round, sm.step.kind) == (2, PhaseKind.TRAIN)
    wait_all(sm, ["a", "b"])
    clock.now += 31  # a failed TRAIN phase ends the round
    closed = sm.close_if_due()
    assert closed is not None and not closed.succeeded and closed.ends_round
    sm.start_next(closed, version=1, mask_id="")
    assert (sm.step.round, sm.step.kind) == (3, PhaseKind.EVALUATE)


def test_survivors_cohort_is_the_previous_phase_contributors() -> None:
    from fedserver.round_plan import Phase, RoundPlan

    class TwoPhase(RoundPlan):
        def phases(self, round: int) -> tuple[Phase, ...]:
            if not 1 <= round <= self.config.rounds:
                return ()
            return (Phase(PhaseKind.EVALUATE, target=3, quorum=1, deadline_s=10),
                    Phase(PhaseKind.TRAIN, target=3, quorum=1, deadline_s=10,
                          cohort="survivors"))

    clock = FakeClock()
    cfg = RoundConfig(rounds=1, clients_per_round=3, min_clients=1, selection_timeout_s=10)
    sm = RoundStateMachine(cfg, run_id="run", first_round=1, version=0, clock=clock,
                           plan=TwoPhase(cfg))
    wait_all(sm, ["a", "b", "c"])
    for c in "ab":
        assert sm.check_result(c, sm.step.task_id("run", c), kind=PhaseKind.EVALUATE, round=1,
                               version=None, mask_id=None, digest=b"e")
        sm.record_result(c, b"e")
    clock.now += 11
    closed = sm.close_if_due()
    assert closed is not None and closed.succeeded and not closed.ends_round
    sm.start_next(closed, version=0, mask_id="")
    assert sm.step.kind is PhaseKind.TRAIN and sm.step.selected == {"a", "b"}
    assert sm.step.deadline == clock.now + 10  # selected at once, nobody waits for sampling
    assert isinstance(sm.poll("c"), Wait)


def test_poisson_selection_draws_from_the_registered_population() -> None:
    clock = FakeClock()
    cfg = RoundConfig(rounds=2, clients_per_round=10, min_clients=1, selection="poisson",
                      sampling_rate=0.1, population=1000, selection_timeout_s=10)
    population = frozenset(f"c{i}" for i in range(1000))
    sm = RoundStateMachine(cfg, run_id="run", first_round=1, version=0, clock=clock,
                           population=lambda: population)
    sm.client_waiting("c1")
    sm.poll("c1")
    cohort = sm.step.selected
    assert 50 <= len(cohort) <= 150 and cohort <= population  # Binomial(1000, 0.1)
    outsider = next(c for c in sorted(population) if c not in cohort)
    insider = next(iter(sorted(cohort)))  # sampled without waiting at draw time
    sm.client_waiting(insider)
    assert isinstance(sm.poll(insider), Assignment)
    sm.client_waiting(outsider)
    assert isinstance(sm.poll(outsider), Wait)


def test_poisson_selection_waits_for_the_population_and_fails_an_empty_draw() -> None:
    clock = FakeClock()
    cfg = RoundConfig(rounds=1, clients_per_round=1, min_clients=1, selection="poisson",
                      sampling_rate=1e-9, population=3, selection_timeout_s=10)
    known: set[str] = {"a"}
    sm = RoundStateMachine(cfg, run_id="run", first_round=1, version=0, clock=clock,
                           population=lambda: frozenset(known))
    sm.client_waiting("a")
    sm.poll("a")
    assert sm.step.selected_at is None  # 1 of 3 registered: no draw yet
    known |= {"b", "c"}
    sm.poll("a")
    assert sm.step.selected == frozenset()
    closed = sm.close_if_due()
    assert closed is not None and not closed.succeeded and "empty cohort" in closed.reason


def test_poisson_config_needs_a_rate_and_a_population() -> None:
    with pytest.raises(ValueError, match="sampling_rate"):
        RoundConfig(selection="poisson", population=10)
    with pytest.raises(ValueError, match="population"):
        RoundConfig(selection="poisson", sampling_rate=0.1)
def test_uniform_selection_draws_a_fixed_cohort_from_the_registered_population() -> None:
    clock = FakeClock()
    cfg = RoundConfig(rounds=2, clients_per_round=10, min_clients=5, over_selection=0.2,
                      selection="uniform", population=100, selection_timeout_s=10)
    known = {f"c{i}" for i in range(99)}
    sm = RoundStateMachine(cfg, run_id="run", first_round=1, version=0, clock=clock,
                           population=lambda: frozenset(known))
    sm.client_waiting("c1")
    sm.poll("c1")
    assert sm.step.selected_at is None  # 99 of 100 registered: no draw yet
    known.add("c99")
    sm.poll("c1")
    cohort = sm.step.selected
    assert len(cohort) == 12 and cohort <= known  # ceil(10 * 1.2), without replacement
    insider = next(iter(sorted(cohort - {"c1"})))  # sampled while not waiting
    sm.client_waiting(insider)
    assert isinstance(sm.poll(insider), Assignment)
    outsider = next(c for c in sorted(known) if c not in cohort)
    sm.client_waiting(outsider)
    assert isinstance(sm.poll(outsider), Wait)


def test_uniform_selection_at_the_timeout_needs_a_quorum_of_registered_clients() -> None:
    clock = FakeClock()
    cfg = RoundConfig(rounds=1, clients_per_round=4, min_clients=3, selection="uniform",
                      population=10, selection_timeout_s=10)
    known = {"a", "b"}
    sm = RoundStateMachine(cfg, run_id="run", first_round=1, version=0, clock=clock,
                           population=lambda: frozenset(known))
    sm.client_waiting("a")
    clock.now += 11
    assert sm.close_if_due() is None and sm.step.selected_at is None  # 2 < quorum 3
    known.add("c")
    assert sm.close_if_due() is None
    assert sm.step.selected == {"a", "b", "c"}  # all of a population smaller than wanted


def test_uniform_config_names_its_keys() -> None:
    with pytest.raises(ValueError, match="population"):
        RoundConfig(selection="uniform", clients_per_round=10, population=5)
    with pytest.raises(ValueError, match="sampling_rate"):
        RoundConfig(selection="uniform", population=10, sampling_rate=0.1)
    with pytest.raises(ValueError, match="selection"):
        RoundConfig(selection="everyone")


def test_selection_timeout_counts_from_the_first_check_in_not_the_start() -> None:
    """A slow start-up (here 500 s before any client) must not shrink round 1's cohort."""
    sm, clock = make()
    clock.now = 1500.0  # the coordinator has been up for 500 s, past its 10 s timeout
    assert sm.next_deadline() is None  # nobody waited: no selection deadline yet
    assert sm.close_if_due() is None and sm.step.selected_at is None
    sm.client_waiting("a")
    assert isinstance(sm.poll("a"), Wait)  # one early client is not selected alone
    sm.client_waiting("b")
    assert isinstance(sm.poll("b"), Wait)  # quorum, but the timeout has not run out
    assert sm.next_deadline() == 1510.0
    clock.now = 1505.0
    sm.client_waiting("c")  # the third client arrives within the timeout: full cohort
    assert isinstance(sm.poll("c"), Assignment)
    assert sm.step.selected == {"a", "b", "c"}


def test_selection_timeout_of_a_later_step_counts_from_its_open_when_clients_wait() -> None:
    sm, clock = make()
    wait_all(sm, ["a", "b", "c"])
    for c in "abc":
        push(sm, c)
    sm.client_waiting("a")  # a is already back in a long-poll when round 2 opens
    clock.now = 1100.0
    closed = sm.close_if_due()
    assert closed is not None
    sm.start_next(closed, version=1, mask_id="")
    assert sm.step.first_waiting_at == 1100.0 and sm.next_deadline() == 1110.0


def test_overlapping_check_ins_with_one_id_keep_the_client_waiting() -> None:
    """A client's second Round call ending first must not take it out of selection."""
    sm, clock = make(clients_per_round=2, min_clients=2)
    sm.client_waiting("a")
    sm.client_waiting("a")  # an overlapping retry of the same long-poll
    sm.client_left("a")  # one of them returns (WAIT)
    sm.client_waiting("b")
    assert isinstance(sm.poll("b"), Assignment)
    assert sm.step.selected == {"a", "b"}
    sm.client_left("a")
    sm.client_left("b")
    assert sm.waiting_count == 0
