"""Known answers and invariants of the sparsity schedules (fedserver.pruning.schedule)."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fedserver.pruning.schedule import (
    SCHEDULES,
    CubicSchedule,
    OneShotSchedule,
    StepSchedule,
    UnknownScheduleError,
    make_schedule,
)


def test_one_shot_known_answers() -> None:
    s = OneShotSchedule(at_round=4, sparsity=0.6)
    assert [s.sparsity_at(t) for t in range(1, 7)] == [0.0, 0.0, 0.0, 0.6, 0.6, 0.6]


def test_step_known_answers() -> None:
    s = StepSchedule(start_round=3, s_initial=0.2, s_final=0.8, delta=0.25, every=2)
    got = [s.sparsity_at(t) for t in range(1, 11)]
    want = [0.0, 0.0, 0.2, 0.2, 0.45, 0.45, 0.7, 0.7, 0.8, 0.8]
    assert got == pytest.approx(want, abs=1e-12)


def test_step_snaps_to_final_despite_float_rounding() -> None:
    assert 0.3 * 3 != 0.9  # the float hazard this guards against
    s = make_schedule("step", start_round=1, end_round=4, initial_sparsity=0.0,
                      target_sparsity=0.9, prune_every=1)
    assert s.sparsity_at(4) == 0.9


def test_cubic_known_answers() -> None:
    s = CubicSchedule(start_round=3, end_round=13, s_initial=0.1, s_final=0.9, every=2)
    got = {t: s.sparsity_at(t) for t in (1, 2, 3, 4, 5, 6, 8, 9, 13, 14, 40)}
    want = {1: 0.0, 2: 0.0, 3: 0.1,
            4: 0.1,                          # held until the next step
            5: 0.9 - 0.8 * 0.8 ** 3,         # (t - t0)/(nR) = 2/10
            6: 0.9 - 0.8 * 0.8 ** 3,
            8: 0.9 - 0.8 * 0.6 ** 3,         # 4/10
            9: 0.9 - 0.8 * 0.4 ** 3,         # 6/10
            13: 0.9, 14: 0.9, 40: 0.9}       # clamped after the end
    assert got == pytest.approx(want, abs=1e-12)
    assert s.sparsity_at(5) == pytest.approx(0.4904)


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_presets_reach_target_at_end_round(name: str) -> None:
    s = make_schedule(name, start_round=2, end_round=8, initial_sparsity=0.1,
                      target_sparsity=0.7, prune_every=3)
    assert s.sparsity_at(1) == 0.0
    assert s.sparsity_at(8) == 0.7
    assert s.sparsity_at(100) == 0.7


def test_registry_names_and_unknown_name() -> None:
    assert set(SCHEDULES) == {"one-shot", "step", "cubic"}
    with pytest.raises(UnknownScheduleError, match="^schedule: unknown name 'linear'"):
        make_schedule("linear", start_round=1, end_round=2, initial_sparsity=0.0,
                      target_sparsity=0.5, prune_every=1)
    assert issubclass(UnknownScheduleError, ValueError)


@pytest.mark.parametrize("name", ["step", "cubic"])
def test_gradual_presets_need_a_ramp(name: str) -> None:
    with pytest.raises(ValueError, match="^end_round"):
        make_schedule(name, start_round=5, end_round=5, initial_sparsity=0.0,
                      target_sparsity=0.5, prune_every=1)


@pytest.mark.parametrize(("make", "key"), [
    (lambda: OneShotSchedule(at_round=0, sparsity=0.5), "at_round"),
    (lambda: OneShotSchedule(at_round=1, sparsity=1.0), "sparsity"),
    (lambda: StepSchedule(start_round=1, s_initial=0.5, s_final=0.4, delta=0.1, every=1),
     "s_initial"),
    (lambda: StepSchedule(start_round=1, s_initial=0.1, s_final=0.4, delta=0.0, every=1),
     "delta"),
    (lambda: StepSchedule(start_round=1, s_initial=0.1, s_final=0.4, delta=0.1, every=0),
     "every"),
    (lambda: CubicSchedule(start_round=4, end_round=4, s_initial=0.0, s_final=0.5, every=1),
     "end_round"),
    (lambda: CubicSchedule(start_round=1, end_round=4, s_initial=0.0, s_final=-0.1, every=1),
     "s_final"),
    (lambda: OneShotSchedule(at_round=1, sparsity=0.5).sparsity_at(0), "round"),
])
def test_bad_arguments_are_named(make, key: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=f"^{key}"):
        make()


@settings(max_examples=60, deadline=None)
@given(name=st.sampled_from(sorted(SCHEDULES)), start=st.integers(1, 20),
       steps=st.integers(1, 10), every=st.integers(1, 4),
       initial=st.floats(0, 0.5), extra=st.floats(0, 0.49))
def test_schedules_are_monotone_and_bounded(name: str, start: int, steps: int, every: int,
                                            initial: float, extra: float) -> None:
    target = initial + extra
    s = make_schedule(name, start_round=start, end_round=start + steps * every,
                      initial_sparsity=initial, target_sparsity=target, prune_every=every)
    values = [s.sparsity_at(t) for t in range(1, start + steps * every + 5)]
    assert all(0.0 <= v <= target for v in values)
    assert all(a <= b for a, b in itertools.pairwise(values))
    assert values[-1] == target
