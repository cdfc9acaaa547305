"""Client-score combiners: known answers, vote tie-breaks, one contract suite for both."""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
import pytest

from fedserver.pruning.combine import (
    COMBINERS,
    ScoreCombiner,
    TopKVote,
    WeightedScoreSum,
    make_combiner,
)

SHAPES = {"w": (2, 3), "b": (4,)}


def _scores(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {name: rng.uniform(0, 1, size=shape) for name, shape in SHAPES.items()}


def test_weighted_sum_known_answer() -> None:
    c = WeightedScoreSum({"w": (3,)})
    c.add({"w": np.array([1.0, 2.0, 0.0])}, weight=1)
    c.add({"w": np.array([5.0, 0.0, 4.0])}, weight=3)
    np.testing.assert_allclose(c.result()["w"], [4.0, 0.5, 3.0])
    c.reset()
    with pytest.raises(ValueError, match="no client scores"):
        c.result()


def test_vote_counts_clients_not_weights() -> None:
    v = TopKVote({"w": (3,)}, top_fraction=1 / 3)
    v.add({"w": np.array([0.0, 0.1, 0.2])}, weight=1)  # votes for 2
    v.add({"w": np.array([0.0, 0.1, 0.3])}, weight=1)  # votes for 2
    v.add({"w": np.array([100.0, 0.0, 0.0])}, weight=1000)  # votes for 0, huge score
    result = v.result()["w"]
    assert np.argsort(-result).tolist() == [2, 0, 1]  # two votes beat any score


@pytest.mark.parametrize(("weights", "winner"), [((3.0, 1.0), 0), ((1.0, 3.0), 3)])
def test_vote_ties_broken_by_weighted_score_sum(weights: tuple[float, float],
                                                winner: int) -> None:
    v = TopKVote({"w": (4,)}, top_fraction=0.25)
    v.add({"w": np.array([2.0, 1.0, 0.0, 0.0])}, weight=weights[0])  # votes for 0
    v.add({"w": np.array([0.0, 0.0, 1.0, 3.0])}, weight=weights[1])  # votes for 3
    result = v.result()["w"]
    assert np.floor(result).tolist() == [1, 0, 0, 1]  # one vote each for 0 and 3
    assert int(np.argmax(result)) == winner


def test_vote_top_fraction_rounds_up_and_breaks_score_ties_by_index() -> None:
    v = TopKVote({"w": (10,)}, top_fraction=0.3)  # 0.3 * 10 must give 3 votes, not 4
    v.add({"w": np.ones(10)}, weight=1)
    assert np.floor(v.result()["w"]).tolist() == [1, 1, 1, 0, 0, 0, 0, 0, 0, 0]


def test_bad_top_fraction_is_named() -> None:
    with pytest.raises(ValueError, match="^top_fraction"):
        TopKVote(SHAPES, top_fraction=0.0)


def test_registry() -> None:
    assert set(COMBINERS) == {"weighted-sum", "vote"}
    assert isinstance(make_combiner("vote", SHAPES, top_fraction=0.5), TopKVote)
    assert isinstance(make_combiner("weighted-sum", SHAPES, top_fraction=0.5), WeightedScoreSum)
    with pytest.raises(ValueError, match="^combine: unknown name 'median'"):
        make_combiner("median", SHAPES, top_fraction=0.5)


FACTORIES: dict[str, Callable[[], ScoreCombiner]] = {
    name: functools.partial(make_combiner, name, SHAPES, top_fraction=0.5) for name in COMBINERS
}


@pytest.mark.parametrize("factory", FACTORIES.values(), ids=list(FACTORIES))
class TestCombinerContract:
    def test_result_is_a_copy_and_reset_forgets(self, factory: Callable[[], ScoreCombiner]) -> None:
        c = factory()
        c.add(_scores(0), weight=2)
        first = c.result()
        first["w"][...] = -1
        again = c.result()
        assert again["w"].min() >= 0
        c.reset()
        c.add(_scores(0), weight=2)
        for name in SHAPES:
            np.testing.assert_array_equal(c.result()[name], again[name])

    def test_order_of_clients_does_not_matter(self, factory: Callable[[], ScoreCombiner]) -> None:
        a, b = factory(), factory()
        for seed, weight in ((1, 3.0), (2, 1.0), (3, 5.0)):
            a.add(_scores(seed), weight)
        for seed, weight in ((3, 5.0), (1, 3.0), (2, 1.0)):
            b.add(_scores(seed), weight)
        for name in SHAPES:
            np.testing.assert_allclose(a.result()[name], b.result()[name], rtol=1e-12)

    @pytest.mark.parametrize(("mutate", "match"), [
        (lambda s: s.pop("b"), "'b'.*missing"),
        (lambda s: s.update(extra=np.zeros(2)), "'extra'"),
        (lambda s: s.update(w=np.zeros((3, 2))), "'w'.*shape"),
        (lambda s: s.__setitem__("w", np.full((2, 3), np.nan)), "'w'.*finite"),
        (lambda s: s.__setitem__("b", -np.ones(4)), "'b'.*>= 0"),
        (lambda s: s.__setitem__("b", np.array(["a"] * 4)), "'b'.*real"),
    ])
    def test_bad_update_is_rejected_and_leaves_state(
        self, factory: Callable[[], ScoreCombiner], mutate: Callable[[dict], object], match: str,
    ) -> None:
        c = factory()
        c.add(_scores(0), weight=1)
        before = c.result()
        bad = _scores(1)
        mutate(bad)
        with pytest.raises(ValueError, match=match):
            c.add(bad, weight=1)
        for name in SHAPES:
            np.testing.assert_array_equal(c.result()[name], before[name])

    @pytest.mark.parametrize("weight", [0, -1.0, float("nan"), float("inf"), True])
    def test_bad_weight_is_rejected(self, factory: Callable[[], ScoreCombiner],
                                    weight: float) -> None:
        with pytest.raises(ValueError, match="^weight"):
            factory().add(_scores(0), weight)
