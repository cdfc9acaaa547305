"""q-FFL's aggregate (fedserver.aggregators.q_fair) against q-FedAvg's formula."""

from __future__ import annotations

import numpy as np
import pytest

from fedserver.aggregators import Contribution, RoundSpec
from fedserver.aggregators.base import RejectedContribution
from fedserver.aggregators.mean import WeightedMean
from fedserver.aggregators.q_fair import QFair

SHAPES = {"w": (3,)}
DELTAS = [np.array([1.0, 0.0, -1.0]), np.array([0.5, 2.0, 0.0]), np.array([-0.2, 0.1, 0.3])]
LOSSES = [2.0, 0.5, 1.0]


def _run(agg: QFair, parts=None) -> np.ndarray:
    acc = agg.begin(agg.initialize(SHAPES), RoundSpec(1, SHAPES))
    for i, (d, f) in enumerate(parts or zip(DELTAS, LOSSES)):
        acc.add(Contribution(f"c{i}", {"w": d}, weight=1000.0 * (i + 1),
                             reports={"initial_loss": f}))
    return agg.finalize(agg.initialize(SHAPES), acc).result["w"]


@pytest.mark.parametrize("q", [0.5, 1.0, 3.0])
def test_matches_q_fedavg(q: float) -> None:
    lip = 20.0
    num = sum(f ** q * lip * d for d, f in zip(DELTAS, LOSSES))
    den = sum(q * f ** (q - 1) * lip ** 2 * float(d @ d) + lip * f ** q
              for d, f in zip(DELTAS, LOSSES))
    np.testing.assert_allclose(_run(QFair(WeightedMean(), q=q, lipschitz=lip)), num / den,
                               rtol=1e-6)


def test_q_zero_is_the_unweighted_mean_whatever_the_claimed_counts() -> None:
    np.testing.assert_allclose(_run(QFair(WeightedMean(), q=0.0, lipschitz=20.0)),
                               np.mean(DELTAS, axis=0), rtol=1e-6)


def test_higher_q_weights_the_worst_served_client_more() -> None:
    """Orthogonal unit deltas: the result's coordinates are in the ratio F_k^q."""
    parts = list(zip(np.eye(3), LOSSES))
    for q in (0.0, 1.0, 3.0):
        out = _run(QFair(WeightedMean(), q=q, lipschitz=1.0), parts)
        assert out[0] / out[1] == pytest.approx((LOSSES[0] / LOSSES[1]) ** q)


@pytest.mark.parametrize("report", [{}, {"initial_loss": float("nan")}, {"initial_loss": -1.0}])
def test_a_missing_or_bad_loss_is_rejected_and_changes_nothing(report) -> None:
    agg = QFair(WeightedMean(), q=1.0, lipschitz=20.0)
    acc = agg.begin(agg.initialize(SHAPES), RoundSpec(1, SHAPES))
    with pytest.raises(RejectedContribution, match="initial_loss"):
        acc.add(Contribution("c", {"w": DELTAS[0]}, reports=report))
    assert acc.count == 0 and agg.finalize(agg.initialize(SHAPES), acc).result is None


def test_merge_equals_one_accumulator() -> None:
    agg = QFair(WeightedMean(), q=2.0, lipschitz=5.0)
    a = agg.begin(agg.initialize(SHAPES), RoundSpec(1, SHAPES))
    b = agg.begin(agg.initialize(SHAPES), RoundSpec(1, SHAPES))
    for i, (d, f) in enumerate(zip(DELTAS, LOSSES)):
        (a if i < 2 else b).add(Contribution(f"c{i}", {"w": d}, reports={"initial_loss": f}))
    a.merge(b)
    np.testing.assert_allclose(agg.finalize(agg.initialize(SHAPES), a).result["w"],
                               _run(QFair(WeightedMean(), q=2.0, lipschitz=5.0)), rtol=1e-12)


def test_bad_parameters() -> None:
    with pytest.raises(ValueError, match="q must be"):
        QFair(WeightedMean(), q=-1.0, lipschitz=1.0)
    with pytest.raises(ValueError, match="lipschitz"):
        QFair(WeightedMean(), q=1.0, lipschitz=0.0)
