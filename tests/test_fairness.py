"""Fairness statistics of federated evaluation (fedserver.fairness) in the report."""

from __future__ import annotations

import math

import pytest

from fedserver.fairness import fairness_stats, with_fairness, worst_clients_lines


def _report() -> dict:
    accs = {"c0": 0.9, "c1": 0.5, "c2": 0.8, "c3": 0.7, "c4": 0.6}
    return {"rounds": [
        {"round": 1, "client_metrics": {"c0": {"train_loss": 1.0}}},
        {"round": 2, "client_metrics": {c: {"federated_accuracy": a, "train_loss": 0.1}
                                        for c, a in accs.items()}},
        {"round": 3, "client_metrics": {}}], "totals": {}}


def test_fairness_known_answers() -> None:
    stats = fairness_stats([0.9, 0.5, 0.8, 0.7, 0.6])
    assert stats is not None
    assert (stats["min"], stats["median"], stats["max"]) == (0.5, 0.7, 0.9)
    assert stats["p10"] == pytest.approx(0.54)
    assert stats["std"] == pytest.approx(math.sqrt(0.02))
    assert stats["jain"] == pytest.approx(3.5 ** 2 / (5 * 2.55))
    assert fairness_stats([0.5, 0.5])["jain"] == pytest.approx(1.0)  # type: ignore[index]
    assert fairness_stats([1.0, 0.0, 0.0, 0.0])["jain"] == pytest.approx(0.25)  # type: ignore[index]
    assert fairness_stats([]) is None


def test_report_holds_per_round_and_final_fairness() -> None:
    report = with_fairness(_report())
    assert "fairness" not in report["rounds"][0] and "fairness" not in report["rounds"][2]
    assert report["rounds"][1]["fairness"]["min"] == 0.5
    assert report["totals"]["fairness"] == report["rounds"][1]["fairness"]
    assert with_fairness({"rounds": [], "totals": {}})["totals"]["fairness"] is None


def test_worst_clients_are_printed() -> None:
    (line,) = worst_clients_lines(_report())
    assert line.startswith("round 2 ")
    assert line.endswith("worst clients: c1 0.5000, c4 0.6000, c3 0.7000")
    assert "no federated evaluation" in worst_clients_lines({"rounds": []})[0]
