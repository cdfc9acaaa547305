"""Per-client fairness of federated evaluation: who the global model serves badly.

From a round's ``client_metrics[c]["federated_accuracy"]`` (recorded on the round whose
model was evaluated): min, 10th percentile, median, max, standard deviation (population)
and Jain's index ``(sum a)^2 / (n * sum a^2)`` (1: every client equally served, 1/n: one
client served). The mean alone hides a client the model fails. With personalization
(docs/robustness.md) the same statistics of ``federated_personalized_accuracy`` (each
client's accuracy with its personalized model) go under ``fairness_personalized``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

KEY = "federated_accuracy"
PERSONALIZED_KEY = "federated_personalized_accuracy"
# report field -> the per-client metric it summarizes
SUMMARIES = {"fairness": KEY, "fairness_personalized": PERSONALIZED_KEY}


def client_accuracies(record: Mapping[str, Any], key: str = KEY) -> dict[str, float]:
    return {c: float(m[key]) for c, m in record.get("client_metrics", {}).items() if key in m}


def fairness_stats(accuracies: Sequence[float]) -> dict[str, float] | None:
    """The distribution's statistics, or None without any accuracy."""
    if not accuracies:
        return None
    a = np.asarray(accuracies, dtype=np.float64)
    square_sum = float(np.sum(a * a))
    return {"clients": float(a.size), "min": float(a.min()),
            "p10": float(np.percentile(a, 10)), "median": float(np.median(a)),
            "max": float(a.max()), "std": float(a.std()),
            "jain": float(a.sum() ** 2 / (a.size * square_sum)) if square_sum > 0 else 1.0}


def with_fairness(report: dict[str, Any]) -> dict[str, Any]:
    """``report`` with ``rounds[i]["fairness"]`` for each federated-evaluated round and
    ``totals["fairness"]`` for the last of them (None without federated evaluation), and
    likewise ``fairness_personalized`` (present only with personalization)."""
    for field, key in SUMMARIES.items():
        last = None
        for record in report["rounds"]:
            stats = fairness_stats(list(client_accuracies(record, key).values()))
            if stats is not None:
                record[field], last = stats, stats
        if last is not None or field == "fairness":
            report["totals"][field] = last
    return report


def worst_clients_lines(report: Mapping[str, Any], *, count: int = 3) -> list[str]:
    """What ``fedprune report`` prints: the last evaluated round's ``count`` worst clients."""
    for record in reversed(report.get("rounds", [])):
        if client_accuracies(record):
            return [line for label, key in (("federated accuracy", KEY),
                                            ("personalized accuracy", PERSONALIZED_KEY))
                    if (line := _worst_line(record, label, key, count)) is not None]
    return ["no federated evaluation: no per-client accuracies"]


def _worst_line(record: Mapping[str, Any], label: str, key: str, count: int) -> str | None:
    accuracies = client_accuracies(record, key)
    stats = fairness_stats(list(accuracies.values()))
    if stats is None:
        return None
    worst = sorted(accuracies.items(), key=lambda kv: (kv[1], kv[0]))[:count]
    return (f"round {record['round']} {label}: min {stats['min']:.4f} p10 {stats['p10']:.4f} "
            f"median {stats['median']:.4f} jain {stats['jain']:.4f}; worst clients: "
            + ", ".join(f"{c} {a:.4f}" for c, a in worst))
