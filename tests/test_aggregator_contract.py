"""One contract suite for every aggregator and wrapper (fedserver.aggregators.base).

Each contract check is a test parametrized over :data:`CASES`; wrappers are also run over a
stub inner aggregator (:class:`PlusOneSum`) whose answer is visibly different, so a wrapper
that computed on its own instead of delegating would fail. Then known answers, the client
weighting (fedserver.aggregators.weighting), and two end-to-end checks through the pure
round runner: a client lying about its example count, and the norm-bounded preset.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from fedserver.aggregators.base import (
    Aggregator,
    Contribution,
    Output,
    RejectedContribution,
    RoundSpec,
    State,
)
from fedserver.aggregators.krum import MultiKrum
from fedserver.aggregators.mean import UnweightedMean, WeightedMean
from fedserver.aggregators.median import Median
from fedserver.aggregators.norm_bound import NormBound
from fedserver.aggregators.side import SideAggregator
from fedserver.aggregators.staleness import StalenessWeighted
from fedserver.aggregators.sum import Sum, SumAccumulator
from fedserver.aggregators.trimmed_mean import TrimmedMean
from fedserver.aggregators.weighting import WEIGHTINGS, Weighting, reference_examples
from fedserver.config import AggregationConfig, EvaluationConfig, ServerConfig
from fedserver.model_state import ModelState
from fedserver.presets import build_program
from fedserver.pruning.combine import TopKVote, WeightedScoreSum
from fedserver.round_program import AggregatorComponent
from fedserver.round_runner import RoundRunner
from fedserver.updates import DecodedUpdate

SHAPES = {"a": (2,), "b": (2, 3)}
SPEC = RoundSpec(1, SHAPES)
Values = dict[str, np.ndarray]


# -- the implementations under test ----------------------------------------------------------
@dataclass(frozen=True)
class Case:
    id: str
    make: Callable[[], Aggregator]
    weighted: bool  # rejects a weight that is not finite and > 0
    side: bool = False  # folds ``extras["scores"]`` instead of ``values``
    roles: tuple[str, ...] = ()  # nested measurement dicts, by role
    buffered: bool = False  # holds updates (median, Krum): max_buffered is an int

    def contribution(self, values: Mapping[str, Any], weight: float = 1.0,
                     client: str = "c") -> Contribution:
        if self.side:
            return Contribution(client, {}, weight, {"scores": dict(values)})
        return Contribution(client, dict(values), weight)


def _side(make_combiner: Callable[[], Any], name: str) -> Callable[[], Aggregator]:
    return lambda: SideAggregator(key="scores", shapes=SHAPES, make_combiner=make_combiner,
                                  name=name)


CASES = [
    Case("sum", Sum, weighted=False),
    Case("weighted_mean", WeightedMean, weighted=True, roles=("value_sum", "weight_sum")),
    Case("unweighted_mean", UnweightedMean, weighted=False, roles=("value_sum", "weight_sum")),
    Case("weighted_mean_explicit_sums", lambda: WeightedMean(Sum(), Sum()), weighted=True,
         roles=("value_sum", "weight_sum")),
    Case("norm_bound_large", lambda: NormBound(WeightedMean(), max_norm=1e6), weighted=True,
         roles=("inner",)),
    Case("norm_bound_small", lambda: NormBound(WeightedMean(), max_norm=0.5), weighted=True,
         roles=("inner",)),
    Case("norm_bound_sum", lambda: NormBound(Sum(), max_norm=0.5), weighted=False,
         roles=("inner",)),
    Case("staleness_weighted", lambda: StalenessWeighted(WeightedMean(), weighting="polynomial",
                                                         exponent=0.5),
         weighted=True, roles=("inner",)),
    Case("side_weighted_sum", _side(lambda: WeightedScoreSum(SHAPES), "weighted-sum"),
         weighted=True, side=True),
    Case("side_vote", _side(lambda: TopKVote(SHAPES, top_fraction=0.5), "vote"),
         weighted=True, side=True),
    Case("median", lambda: Median(max_buffered=8), weighted=False, buffered=True),
    Case("trimmed_mean", lambda: TrimmedMean(beta=0.34, max_buffered=8), weighted=False,
         buffered=True),
    Case("multi_krum", lambda: MultiKrum(f=1, m=2, max_buffered=8), weighted=False,
         buffered=True),
]
CASE_IDS = [c.id for c in CASES]
each_case = pytest.mark.parametrize("case", CASES, ids=CASE_IDS)


def _values(seed: int) -> Values:
    """Non-negative (valid scores too), not all equal, norm well above 0.5."""
    rng = np.random.default_rng(seed)
    return {n: rng.uniform(0.1, 3.0, size=s) for n, s in SHAPES.items()}


def _good(case: Case, seed: int) -> Contribution:
    return case.contribution(_values(seed), weight=1.0 + seed, client=f"c{seed}")


def _run(agg: Aggregator, contributions: list[Contribution], state: State | None = None,
         spec: RoundSpec = SPEC) -> Output:
    state = agg.initialize(spec.shapes) if state is None else state
    acc = agg.begin(state, spec)
    for c in contributions:
        acc.add(c)
    return agg.finalize(state, acc)


def assert_results_close(got: Mapping[str, np.ndarray] | None,
                         want: Mapping[str, np.ndarray] | None) -> None:
    assert (got is None) == (want is None), (got, want)
    if got is None or want is None:
        return
    assert set(got) == set(want)
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-6, atol=1e-9, err_msg=name)


# -- streaming -------------------------------------------------------------------------------
@each_case
def test_streaming_aggregators_buffer_nothing(case: Case) -> None:
    assert (case.make().max_buffered is None) != case.buffered


# -- delegation: wrappers over a stub inner sum ----------------------------------------------
class PlusOneSum(Sum):
    """A visibly different sum: ``finalize`` returns sum + 1 and threads a state counter."""

    max_buffered = 7

    def initialize(self, shapes: Mapping[str, tuple[int, ...]]) -> State:
        return {"finalized": 0}

    def finalize(self, state: State, acc: SumAccumulator) -> Output:  # type: ignore[override]
        out = super().finalize(state, acc)
        result = None if out.result is None else {n: v + 1 for n, v in out.result.items()}
        return Output({"finalized": state["finalized"] + 1}, result,
                      {**out.measurements, "stub": True})

    def get_config(self) -> dict[str, Any]:
        return {"name": "plus_one_sum"}


X1, X2 = {"w": np.array([1.0, 2.0])}, {"w": np.array([4.0, 8.0])}
DELEGATION = [
    # (id, wrapper over a stub, contributions (values, weight), expected result, stub role)
    ("weighted_mean/value_sum", lambda: WeightedMean(PlusOneSum(), Sum()),
     [(X1, 1.0), (X2, 2.0)], [10 / 3, 19 / 3], "value_sum"),
    ("weighted_mean/weight_sum", lambda: WeightedMean(Sum(), PlusOneSum()),
     [(X1, 1.0), (X2, 2.0)], [9 / 4, 18 / 4], "weight_sum"),
    ("unweighted_mean/value_sum", lambda: UnweightedMean(PlusOneSum()),
     [(X1, 1.0), (X2, 2.0)], [6 / 2, 11 / 2], "value_sum"),
    ("norm_bound/inner", lambda: NormBound(PlusOneSum(), max_norm=1.0),
     [({"w": np.array([3.0, 4.0])}, 1.0)], [1.6, 1.8], "inner"),
    ("staleness_weighted/inner",
     lambda: StalenessWeighted(PlusOneSum(), weighting="constant", exponent=0.0),
     [(X1, 1.0), (X2, 2.0)], [6.0, 11.0], "inner"),
]


@pytest.mark.parametrize(("make", "contribs", "expected", "role"),
                         [d[1:] for d in DELEGATION], ids=[d[0] for d in DELEGATION])
def test_wrappers_delegate_to_their_inner_aggregator(make: Callable[[], Aggregator],
                                                     contribs: list[tuple[Values, float]],
                                                     expected: list[float], role: str) -> None:
    agg = make()
    shapes = {"w": (2,)}
    state = agg.initialize(shapes)
    assert state[role] == {"finalized": 0}  # the inner's own state, under its role
    acc = agg.begin(state, RoundSpec(1, shapes))
    for values, weight in contribs:
        acc.add(Contribution("c", values, weight))
    out = agg.finalize(state, acc)
    np.testing.assert_allclose(out.result["w"], expected, rtol=1e-6)
    assert out.state[role] == {"finalized": 1}  # the inner's next state is passed on
    assert out.measurements[role]["stub"] is True
    assert agg.get_config()[role] == {"name": "plus_one_sum"}
    assert agg.max_buffered == 7 or role == "weight_sum"  # buffering is the value sum's


# -- a rejected contribution changes nothing -------------------------------------------------
def _bad_contributions(case: Case) -> dict[str, Contribution]:
    base = _values(99)
    bad = {
        "wrong_shape": {**base, "a": np.ones(3)},
        "wrong_rank": {**base, "b": np.ones(6)},
        "missing_tensor": {"a": base["a"]},
        "extra_tensor": {**base, "c": np.ones(2)},
        "nan_value": {**base, "b": np.where(np.eye(2, 3) > 0, np.nan, 1.0)},
        "inf_value": {**base, "a": np.array([1.0, np.inf])},
    }
    out = {name: case.contribution(v, weight=2.0) for name, v in bad.items()}
    if case.weighted:
        for w in (0.0, -1.0, math.nan, math.inf):
            out[f"weight_{w}"] = case.contribution(base, weight=w)
    if case.side:
        out["no_scores"] = Contribution("c", base, 1.0, {})
        out["negative_score"] = case.contribution({**base, "a": np.array([1.0, -1.0])})
    return out


REJECTS = [(case, name) for case in CASES for name in _bad_contributions(case)]


@pytest.mark.parametrize(("case", "bad"), REJECTS, ids=[f"{c.id}-{n}" for c, n in REJECTS])
def test_rejected_contribution_changes_nothing(case: Case, bad: str) -> None:
    agg = case.make()
    state = agg.initialize(SHAPES)
    acc = agg.begin(state, SPEC)
    acc.add(_good(case, 1))
    with pytest.raises(RejectedContribution) as info:
        acc.add(_bad_contributions(case)[bad])
    assert isinstance(info.value, ValueError)
    assert acc.count == 1
    acc.add(_good(case, 2))
    got = agg.finalize(state, acc)
    want = _run(case.make(), [_good(case, 1), _good(case, 2)])
    assert_results_close(got.result, want.result)
    assert got.measurements == want.measurements


@each_case
def test_rejected_first_contribution_leaves_an_empty_round(case: Case) -> None:
    agg = case.make()
    state = agg.initialize(SHAPES)
    acc = agg.begin(state, SPEC)
    for bad in _bad_contributions(case).values():
        with pytest.raises(RejectedContribution):
            acc.add(bad)
    assert acc.count == 0
    assert agg.finalize(state, acc).result is None


@pytest.mark.parametrize("case", [c for c in CASES if not c.weighted and not c.side],
                         ids=[c.id for c in CASES if not c.weighted and not c.side])
def test_unweighted_aggregators_ignore_the_weight(case: Case) -> None:
    ones = [case.contribution(_values(s), weight=1.0) for s in (1, 2)]
    odd = [case.contribution(_values(1), weight=math.nan),
           case.contribution(_values(2), weight=-5.0)]
    assert_results_close(_run(case.make(), odd).result, _run(case.make(), ones).result)


# -- empty round -----------------------------------------------------------------------------
@each_case
def test_empty_round_has_no_result(case: Case) -> None:
    out = _run(case.make(), [])
    assert out.result is None
    json.dumps(out.measurements)  # still reportable


# -- merge -----------------------------------------------------------------------------------
@each_case
def test_merge_equals_a_single_fold(case: Case) -> None:
    agg = case.make()
    state = agg.initialize(SHAPES)
    a, b, empty = agg.begin(state, SPEC), agg.begin(state, SPEC), agg.begin(state, SPEC)
    a.add(_good(case, 1))
    b.add(_good(case, 2))
    b.add(_good(case, 3))
    a.merge(b)
    a.merge(empty)
    assert a.count == 3
    got = agg.finalize(state, a)
    want = _run(case.make(), [_good(case, s) for s in (1, 2, 3)])
    assert_results_close(got.result, want.result)
    assert got.measurements == want.measurements


@each_case
def test_merge_into_an_empty_accumulator(case: Case) -> None:
    agg = case.make()
    state = agg.initialize(SHAPES)
    a, b = agg.begin(state, SPEC), agg.begin(state, SPEC)
    b.add(_good(case, 4))
    a.merge(b)
    assert_results_close(agg.finalize(state, a).result, _run(case.make(), [_good(case, 4)]).result)


def _foreign(case: Case) -> Aggregator:
    return WeightedMean() if case.id == "sum" else Sum()


@each_case
def test_merging_another_kind_raises_type_error_and_changes_nothing(case: Case) -> None:
    agg = case.make()
    state = agg.initialize(SHAPES)
    acc = agg.begin(state, SPEC)
    acc.add(_good(case, 1))
    other_agg = _foreign(case)
    other = other_agg.begin(other_agg.initialize(SHAPES), SPEC)
    other.add(Contribution("x", _values(5)))
    with pytest.raises(TypeError):
        acc.merge(other)
    assert acc.count == 1
    assert_results_close(agg.finalize(state, acc).result, _run(case.make(), [_good(case, 1)]).result)


MISMATCHED = [
    ("weighted_vs_unweighted_mean", WeightedMean, UnweightedMean),
    ("norm_bound_inner", lambda: NormBound(Sum(), max_norm=1.0),
     lambda: NormBound(WeightedMean(), max_norm=1.0)),
    ("norm_bound_max_norm", lambda: NormBound(Sum(), max_norm=1.0),
     lambda: NormBound(Sum(), max_norm=2.0)),
    ("staleness_exponent", lambda: StalenessWeighted(Sum(), weighting="polynomial", exponent=0.5),
     lambda: StalenessWeighted(Sum(), weighting="polynomial", exponent=1.0)),
]


@pytest.mark.parametrize(("make", "make_other"), [m[1:] for m in MISMATCHED],
                         ids=[m[0] for m in MISMATCHED])
def test_merging_another_aggregators_accumulator_raises(make: Callable[[], Aggregator],
                                                        make_other: Callable[[], Aggregator]
                                                        ) -> None:
    """Same accumulator class, different aggregator: merge must refuse, not mix."""
    agg, other_agg = make(), make_other()
    state = agg.initialize(SHAPES)
    acc = agg.begin(state, SPEC)
    acc.add(Contribution("a", _values(1), 3.0))
    other = other_agg.begin(other_agg.initialize(SHAPES), SPEC)
    other.add(Contribution("b", _values(2), 5.0))
    with pytest.raises(TypeError):
        acc.merge(other)
    want = _run(make(), [Contribution("a", _values(1), 3.0)])
    assert_results_close(agg.finalize(state, acc).result, want.result)


def test_merging_a_sum_of_other_shapes_raises_instead_of_broadcasting() -> None:
    agg = Sum()
    acc = agg.begin({}, RoundSpec(1, {"w": (2,)}))
    acc.add(Contribution("a", {"w": np.array([1.0, 2.0])}))
    other = agg.begin({}, RoundSpec(1, {"w": (1,)}))
    other.add(Contribution("b", {"w": np.array([5.0])}))
    with pytest.raises(TypeError):
        acc.merge(other)
    np.testing.assert_array_equal(agg.finalize({}, acc).result["w"], [1.0, 2.0])


def test_side_merge_refuses_another_combiner() -> None:
    votes = _side(lambda: TopKVote(SHAPES, top_fraction=0.5), "vote")()
    sums = _side(lambda: WeightedScoreSum(SHAPES), "weighted-sum")()
    acc, other = votes.begin({}, SPEC), sums.begin({}, SPEC)
    acc.add(Contribution("a", {}, 1.0, {"scores": _values(1)}))
    other.add(Contribution("b", {}, 1.0, {"scores": _values(2)}))
    with pytest.raises((TypeError, ValueError)):
        acc.merge(other)
    assert acc.count == 1


# -- state and configuration -----------------------------------------------------------------
@each_case
def test_state_survives_a_component_state_dict_round_trip(case: Case) -> None:
    agg = case.make()
    component = AggregatorComponent(agg, agg.initialize(SHAPES))
    saved = json.loads(json.dumps(component.state_dict()))
    restored = AggregatorComponent(case.make(), {"stale": True})
    restored.load_state_dict(saved)
    assert restored.state == component.state
    contributions = [_good(case, s) for s in (1, 2)]
    first = _run(agg, contributions, state=component.state)
    again = _run(restored.aggregator, contributions, state=restored.state)
    assert_results_close(again.result, first.result)
    assert again.state == first.state
    # the next round's state round-trips as well and starts an identical round
    component.state = first.state
    restored.load_state_dict(json.loads(json.dumps(component.state_dict())))
    assert_results_close(_run(agg, contributions, state=restored.state).result, first.result)
    with pytest.raises(ValueError, match="state"):
        restored.load_state_dict({})


@each_case
def test_config_is_json_and_equal_for_equal_constructions(case: Case) -> None:
    config = case.make().get_config()
    assert json.loads(json.dumps(config)) == config
    assert case.make().get_config() == config
    assert AggregatorComponent(case.make(), {}).get_config() == config


def test_configs_differ_for_different_aggregators() -> None:
    configs = {c.id: json.dumps(c.make().get_config(), sort_keys=True) for c in CASES}
    # WeightedMean() is WeightedMean(Sum(), Sum()): one construction, one config
    assert configs.pop("weighted_mean_explicit_sums") == configs["weighted_mean"]
    assert len(set(configs.values())) == len(configs), configs
    assert (NormBound(WeightedMean(), max_norm=1.0).get_config()
            != NormBound(WeightedMean(), max_norm=2.0).get_config())
    assert (NormBound(WeightedMean(), max_norm=1.0).get_config()
            == NormBound(WeightedMean(), max_norm=1).get_config())


# -- measurements ----------------------------------------------------------------------------
@each_case
def test_measurements_are_nested_by_role(case: Case) -> None:
    out = _run(case.make(), [_good(case, 1), _good(case, 2)])
    json.dumps(out.measurements)
    for role in case.roles:
        assert isinstance(out.measurements[role], dict), role
    if not case.roles:
        assert out.measurements["count"] == 2
    if "inner" in case.roles:
        assert out.measurements["inner"]["value_sum" if case.weighted else "count"]
    if isinstance(case.make(), StalenessWeighted):  # no staleness reported: all fresh
        assert out.measurements["mean_scale"] == 1.0
    elif "inner" in case.roles:
        assert out.measurements["max_norm"] == case.make().max_norm  # type: ignore[attr-defined]
        small = case.make().max_norm < 1  # type: ignore[attr-defined]
        assert out.measurements["clipped"] == (2 if small else 0)
        assert out.measurements["inner"]["value_sum" if case.weighted else "count"]
    if "value_sum" in case.roles:
        assert out.measurements["value_sum"] == {"count": 2}
        assert out.measurements["weight_sum"] == {"count": 2}
        assert out.measurements["total_weight"] == (5.0 if case.weighted else 2.0)


# -- known answers ---------------------------------------------------------------------------
def _one_tensor(agg: Aggregator, contributions: list[tuple[list[float], float]]) -> Output:
    shapes = {"w": (len(contributions[0][0]),)}
    return _run(agg, [Contribution(f"c{i}", {"w": np.array(v, dtype=np.float64)}, w)
                      for i, (v, w) in enumerate(contributions)], spec=RoundSpec(1, shapes))


def test_weighted_mean_known_answer() -> None:
    out = _one_tensor(WeightedMean(), [([1, 2], 1.0), ([4, 8], 2.0)])
    np.testing.assert_allclose(out.result["w"], [3.0, 6.0])
    assert out.result["w"].dtype == np.float32
    assert out.measurements["total_weight"] == 3.0


def test_unweighted_mean_ignores_weights() -> None:
    out = _one_tensor(UnweightedMean(), [([1, 2], 1.0), ([4, 8], 2.0)])
    np.testing.assert_allclose(out.result["w"], [2.5, 5.0])
    assert out.measurements["total_weight"] == 2.0


def test_sum_known_answer_ignores_weights() -> None:
    out = _one_tensor(Sum(), [([1, 2], 1.0), ([4, 8], 2.0)])
    np.testing.assert_allclose(out.result["w"], [5.0, 10.0])


def test_norm_bound_scales_to_max_norm_and_counts_clipped() -> None:
    out = _one_tensor(NormBound(Sum(), max_norm=1.0), [([3, 4], 1.0)])
    np.testing.assert_allclose(out.result["w"], [0.6, 0.8])
    assert out.measurements["clipped"] == 1
    out = _one_tensor(NormBound(Sum(), max_norm=5.0), [([3, 4], 1.0), ([0.3, 0.4], 1.0)])
    np.testing.assert_allclose(out.result["w"], [3.3, 4.4])  # at or under the bound: unchanged
    assert out.measurements["clipped"] == 0


def test_norm_bound_norm_is_global_over_all_tensors() -> None:
    agg = NormBound(Sum(), max_norm=1.0)
    shapes = {"x": (1,), "y": (1,)}
    out = _run(agg, [Contribution("c", {"x": np.array([3.0]), "y": np.array([4.0])})],
               spec=RoundSpec(1, shapes))
    np.testing.assert_allclose([out.result["x"][0], out.result["y"][0]], [0.6, 0.8])


def test_norm_bound_passes_an_all_zero_update_unchanged() -> None:
    with np.errstate(all="raise"):  # no division by zero, no invalid value
        out = _one_tensor(NormBound(WeightedMean(), max_norm=1.0), [([0, 0, 0], 2.0)])
    np.testing.assert_array_equal(out.result["w"], [0.0, 0.0, 0.0])
    assert out.measurements["clipped"] == 0


def test_norm_bound_bounds_a_huge_finite_update_to_max_norm() -> None:
    """An update whose squared norm overflows is still scaled to max_norm, not to zero."""
    out = _one_tensor(NormBound(Sum(), max_norm=1.0), [([3e200, 4e200], 1.0)])
    np.testing.assert_allclose(out.result["w"], [0.6, 0.8])
    assert out.measurements["clipped"] == 1


@pytest.mark.parametrize("max_norm", [0.0, -1.0, math.nan, math.inf])
def test_norm_bound_rejects_an_invalid_max_norm(max_norm: float) -> None:
    with pytest.raises(ValueError, match="max_norm"):
        NormBound(Sum(), max_norm=max_norm)


def test_one_client_moves_a_norm_bounded_mean_by_at_most_max_norm_share() -> None:
    honest = [([0.1, 0.1], 1.0)] * 9
    out = _one_tensor(NormBound(WeightedMean(), max_norm=1.0), [*honest, ([-1e9, 1e9], 1.0)])
    honest_part = np.array([0.1, 0.1]) * 9 / 10
    assert np.linalg.norm(out.result["w"] - honest_part) <= 1.0 * 1 / 10 + 1e-6


# -- client weighting ------------------------------------------------------------------------
def test_weighting_known_answers() -> None:
    inf = math.inf
    assert Weighting("examples").weight(100, cap=inf) == 100.0
    assert Weighting("examples").weight(1000, cap=400.0) == 400.0
    assert Weighting("sqrt").weight(100, cap=inf) == 10.0
    assert Weighting("sqrt").weight(1600, cap=400.0) == 20.0
    assert Weighting("uniform").weight(1, cap=inf) == 1.0
    assert Weighting("uniform").weight(2**40, cap=400.0) == 1.0
    assert sorted(WEIGHTINGS) == ["examples", "sqrt", "uniform"]
    with pytest.raises(ValueError, match="claimed"):
        Weighting().weight(0, cap=inf)


def test_weight_cap_is_cap_multiple_times_the_median_reference() -> None:
    declared = [100] * 9 + [2**40]
    reference = reference_examples(declared)
    assert reference == 100.0  # a median: one liar does not move it
    assert reference_examples([0, -3, 50, 70]) == 60.0  # non-positive declarations ignored
    assert reference_examples([]) == 0.0
    assert Weighting(cap_multiple=4.0).cap(reference) == 400.0
    assert Weighting(cap_multiple=2.5).cap(10.0) == 25.0
    assert Weighting(cap_multiple=4.0).cap(0.0) == math.inf  # no reference: no cap
    assert Weighting(cap_multiple=0.0).cap(reference) == math.inf  # 0 disables the cap
    assert Weighting("examples", 0.0).weight(2**40, cap=math.inf) == float(2**40)


@pytest.mark.parametrize(("kind", "cap"), [("median", 4.0), ("", 4.0), ("examples", -1.0),
                                           ("examples", math.nan), ("sqrt", math.inf)])
def test_weighting_rejects_invalid_kind_or_cap(kind: str, cap: float) -> None:
    with pytest.raises(ValueError, match="weighting" if cap == 4.0 else "weight_cap"):
        Weighting(kind, cap)


# -- through the round runner ----------------------------------------------------------------
N_HONEST, HONEST_EXAMPLES, LIAR_EXAMPLES = 9, 100, 2**40


def _runner(aggregation: AggregationConfig) -> RoundRunner:
    config = ServerConfig(evaluation=EvaluationConfig(test_set=""), aggregation=aggregation)
    initial = {"w": np.zeros(4, np.float32)}
    program = build_program(config, initial=initial, evaluator=None)
    return RoundRunner(program, model=ModelState(params=dict(initial), version=0))


def _round(runner: RoundRunner, honest_delta: float, liar_delta: float
           ) -> tuple[np.ndarray, dict[str, float], dict[str, Any]]:
    """One round of 9 honest clients and one liar claiming 2**40 examples; commits it."""
    declared = [HONEST_EXAMPLES] * N_HONEST + [LIAR_EXAMPLES]
    open_round = runner.open(1, reference_examples=reference_examples(declared))
    weights = {}
    for i in range(N_HONEST):
        update = DecodedUpdate({"w": np.full(4, honest_delta, np.float32)}, None, 0.0)
        weights[f"h{i}"] = runner.add(open_round, f"h{i}", update,
                                      claimed_examples=HONEST_EXAMPLES)
    liar = DecodedUpdate({"w": np.full(4, liar_delta, np.float32)}, None, 0.0)
    weights["liar"] = runner.add(open_round, "liar", liar, claimed_examples=LIAR_EXAMPLES)
    candidate = runner.close(open_round)
    assert candidate is not None
    runner.commit(candidate)
    assert runner.model.version == 1
    return runner.model.params["w"], weights, candidate.measurements


def test_a_liar_claiming_2_40_examples_cannot_move_the_model_alone() -> None:
    capped, weights, _ = _round(_runner(AggregationConfig()), honest_delta=1.0,
                                liar_delta=-100.0)
    uncapped, raw, _ = _round(_runner(AggregationConfig(weight_cap=0.0)), honest_delta=1.0,
                              liar_delta=-100.0)
    honest_total = N_HONEST * HONEST_EXAMPLES
    share = weights["liar"] / (weights["liar"] + sum(w for c, w in weights.items() if c != "liar"))
    assert weights["liar"] == 4 * HONEST_EXAMPLES
    assert share <= 4 * 100 / (4 * 100 + honest_total)
    np.testing.assert_allclose(capped, (1 - share) * 1.0 + share * -100.0, rtol=1e-6)
    # without the cap the liar's claim alone sets the model (its share is ~1)
    assert raw["liar"] == float(LIAR_EXAMPLES)
    np.testing.assert_allclose(uncapped, -100.0, rtol=1e-6)
    assert np.all(np.abs(capped - 1.0) < np.abs(uncapped - 1.0) / 3)


def test_uniform_weighting_gives_the_liar_one_vote() -> None:
    model, weights, _ = _round(_runner(AggregationConfig(weighting="uniform")), 1.0, -100.0)
    assert set(weights.values()) == {1.0}
    np.testing.assert_allclose(model, (9 * 1.0 - 100.0) / 10, rtol=1e-6)


def test_robust_fedavg_bounds_a_liars_huge_delta() -> None:
    runner = _runner(AggregationConfig(preset="robust_fedavg"))
    assert runner.program.aggregator.get_config()["name"] == "norm_bound"
    # honest deltas of norm 0.5 pass unclipped; the liar's norm-2e6 delta is cut to norm 1
    model, weights, measurements = _round(runner, honest_delta=0.25, liar_delta=-1e6)
    total = sum(weights.values())
    share = weights["liar"] / total
    assert weights["liar"] == 400.0 and total == 1300.0
    assert measurements["aggregator"]["clipped"] == 1
    assert measurements["aggregator"]["inner"]["total_weight"] == total
    np.testing.assert_allclose(model, (1 - share) * 0.25 + share * -0.5, rtol=1e-5)
    honest_part = np.full(4, (1 - share) * 0.25)
    assert np.linalg.norm(model - honest_part) <= 1.0 * share + 1e-6  # max_norm * its share
    # the same round under fedavg: the delta goes through unbounded
    plain, _, _ = _round(_runner(AggregationConfig()), honest_delta=0.25, liar_delta=-1e6)
    assert np.all(plain < -1e5)


# -- robust (buffered) aggregators -----------------------------------------------------------
def test_median_known_answer_ignores_weights_and_outliers() -> None:
    out = _one_tensor(Median(max_buffered=3), [([1, -5], 1.0), ([2, 0], 1e9), ([100, 7], 1.0)])
    np.testing.assert_array_equal(out.result["w"], [2.0, 0.0])
    assert out.result["w"].dtype == np.float32
    even = _one_tensor(Median(max_buffered=4), [([1], 1.0), ([2], 1.0), ([4], 1.0), ([99], 1.0)])
    np.testing.assert_array_equal(even.result["w"], [3.0])


def test_trimmed_mean_known_answer() -> None:
    values = [([-50, 0], 1.0), ([1, 10], 1.0), ([2, 20], 1.0), ([3, 30], 1.0), ([900, 40], 1.0)]
    out = _one_tensor(TrimmedMean(beta=0.2, max_buffered=5), values)
    np.testing.assert_allclose(out.result["w"], [2.0, 20.0])  # per coordinate
    assert out.measurements["trimmed"] == 1
    untrimmed = _one_tensor(TrimmedMean(beta=0.0, max_buffered=5), values)
    np.testing.assert_allclose(untrimmed.result["w"], [171.2, 20.0])  # the plain mean
    # fewer values than 2k + 1: at least one remains (k = (n - 1) // 2)
    two = _one_tensor(TrimmedMean(beta=0.49, max_buffered=5), [([1], 1.0), ([3], 1.0)])
    np.testing.assert_allclose(two.result["w"], [2.0])


def test_multi_krum_picks_the_cluster_and_rejects_the_outlier() -> None:
    rng = np.random.default_rng(0)
    honest = [(list(1.0 + 0.01 * rng.standard_normal(3)), 1.0) for _ in range(5)]
    outlier = ([-40.0, 60.0, 0.0], 2**40)
    out = _one_tensor(MultiKrum(f=1, m=4, max_buffered=6), [*honest, outlier])
    assert "c5" not in out.measurements["selected"] and len(out.measurements["selected"]) == 4
    assert out.measurements["neighbours"] == 6 - 1 - 2
    np.testing.assert_allclose(out.result["w"], [1.0, 1.0, 1.0], atol=0.05)
    krum = _one_tensor(MultiKrum(f=1, m=1, max_buffered=6), [*honest, outlier])
    assert len(krum.measurements["selected"]) == 1 and krum.measurements["selected"] != ["c5"]
    # m = 0 averages n - f; a single update is its own result
    assert len(_one_tensor(MultiKrum(f=2, max_buffered=6), [*honest, outlier])
               .measurements["selected"]) == 4
    single = _one_tensor(MultiKrum(f=1, max_buffered=1), [([3.0, 4.0], 1.0)])
    np.testing.assert_array_equal(single.result["w"], [3.0, 4.0])


@pytest.mark.parametrize("make", [lambda: Median(max_buffered=2),
                                  lambda: MultiKrum(f=0, max_buffered=2)],
                         ids=["median", "multi_krum"])
def test_buffered_aggregators_refuse_more_than_max_buffered(make: Callable[[], Aggregator]
                                                            ) -> None:
    agg = make()
    acc, other = agg.begin({}, SPEC), agg.begin({}, SPEC)
    acc.add(Contribution("a", _values(1)))
    acc.add(Contribution("b", _values(2)))
    with pytest.raises(RejectedContribution, match="max_buffered"):
        acc.add(Contribution("c", _values(3)))
    other.add(Contribution("d", _values(4)))
    with pytest.raises(ValueError, match="max_buffered"):
        acc.merge(other)
    assert acc.count == 2


def test_buffered_merge_refuses_another_parameter() -> None:
    acc = TrimmedMean(beta=0.1, max_buffered=4).begin({}, SPEC)
    other = TrimmedMean(beta=0.2, max_buffered=4).begin({}, SPEC)
    other.add(Contribution("b", _values(2)))
    with pytest.raises(TypeError):
        acc.merge(other)
    assert acc.count == 0


@pytest.mark.parametrize("bad", [
    lambda: Median(max_buffered=0), lambda: TrimmedMean(beta=0.5, max_buffered=2),
    lambda: TrimmedMean(beta=-0.1, max_buffered=2), lambda: MultiKrum(f=-1, max_buffered=2),
    lambda: MultiKrum(f=1, m=-1, max_buffered=2)])
def test_buffered_aggregators_reject_invalid_parameters(bad: Callable[[], Aggregator]) -> None:
    with pytest.raises(ValueError):
        bad()


def test_buffered_aggregators_keep_pruned_coordinates_zero() -> None:
    """Under pruning every update is zero at pruned positions; so is the robust result."""
    rows = [([0.0, 1.0, 0.0], 1.0), ([0.0, 5.0, 0.0], 1.0), ([0.0, -2.0, 0.0], 1.0),
            ([0.0, 3.0, 0.0], 1.0)]
    for agg in (Median(max_buffered=4), TrimmedMean(beta=0.25, max_buffered=4),
                MultiKrum(f=1, max_buffered=4)):
        out = _one_tensor(agg, rows)
        assert out.result["w"][0] == 0.0 and out.result["w"][2] == 0.0, agg.get_config()


@pytest.mark.parametrize(("preset", "name"), [("robust_median", "median"),
                                              ("robust_trimmed_mean", "trimmed_mean"),
                                              ("robust_krum", "multi_krum")])
def test_robust_presets_bound_the_buffer_by_the_cohort(preset: str, name: str) -> None:
    from fedserver.config import RoundConfig

    config = ServerConfig(evaluation=EvaluationConfig(test_set=""),
                          round=RoundConfig(clients_per_round=10, over_selection=0.25),
                          aggregation=AggregationConfig(preset=preset))
    program = build_program(config, initial={"w": np.zeros(4, np.float32)}, evaluator=None)
    assert program.aggregator.get_config()["name"] == name
    assert program.aggregator.max_buffered == 13  # ceil(10 * 1.25)


def test_a_buffer_over_the_cap_is_refused_at_config_time_naming_the_keys() -> None:
    from fedserver.config import RoundConfig

    # the W1 MLP has 85,002 values: 10 x 85,002 x 4 bytes = 3,400,080 bytes
    ok = AggregationConfig(preset="robust_median", max_buffer_bytes=3_400_080)
    ServerConfig(aggregation=ok)
    with pytest.raises(ValueError, match=r"round\.clients_per_round.*max_buffer_bytes"):
        ServerConfig(aggregation=AggregationConfig(preset="robust_median",
                                                   max_buffer_bytes=3_400_079))
    with pytest.raises(ValueError, match="over_selection"):
        ServerConfig(aggregation=ok, round=RoundConfig(over_selection=0.1))
    # a streaming preset never buffers, whatever the cap
    ServerConfig(aggregation=AggregationConfig(preset="robust_fedavg", max_buffer_bytes=1))


def test_krum_needs_more_than_2f_plus_2_clients() -> None:
    from fedserver.config import KrumConfig, RoundConfig

    krum = AggregationConfig(preset="robust_krum", krum=KrumConfig(f=2))
    ServerConfig(aggregation=krum, round=RoundConfig(clients_per_round=7))
    with pytest.raises(ValueError, match=r"aggregation\.krum\.f"):
        ServerConfig(aggregation=krum, round=RoundConfig(clients_per_round=6))


@pytest.mark.parametrize("preset", ["robust_median", "robust_trimmed_mean", "robust_krum"])
def test_robust_presets_resist_a_liar_with_a_huge_delta(preset: str) -> None:
    """One vote per client: neither the 2**40 claim nor the huge delta moves the model."""
    model, _, _ = _round(_runner(AggregationConfig(preset=preset)), honest_delta=0.25,
                         liar_delta=-1e6)
    np.testing.assert_allclose(model, 0.25, rtol=1e-6)
