"""The run report as a picture: accuracy and cumulative bytes per round, the privacy spent
(epsilon per round) when the run is differentially private, and the distribution of client
accuracies over rounds (each client a dot, the median and 10th percentile as lines; the
personalized models beside the global one) when clients evaluated the model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fedserver.fairness import KEY, PERSONALIZED_KEY, client_accuracies


def plot_report(report: dict[str, Any], out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rounds = [r for r in report["rounds"] if r["status"] == "completed"]
    xs = [r["round"] for r in rounds]
    acc = [r["metrics"].get("accuracy") for r in rounds]
    up, down, total_up, total_down = [], [], 0, 0
    for r in report["rounds"]:
        total_up += r["bytes_up"]
        total_down += r["bytes_down"]
        if r["status"] == "completed":
            up.append(total_up / 1e6)
            down.append(total_down / 1e6)
    epsilon = [r["metrics"].get("epsilon") for r in rounds]
    private = any(e is not None for e in epsilon)
    per_client = any(client_accuracies(r) for r in rounds)
    panels = 2 + private + per_client
    fig, axes = plt.subplots(1, panels, figsize=(5.5 * panels, 4))
    ax1, ax2 = axes[0], axes[1]
    ax1.plot(xs, acc, marker="o", ms=3)
    ax1.set(xlabel="round", ylabel="test accuracy", title="Global model accuracy", ylim=(0, 1))
    ax1.grid(alpha=0.3)
    ax2.plot(xs, up, label="uplink (clients → server)")
    ax2.plot(xs, down, label="downlink (server → clients)")
    totals = report["totals"]
    moved = (totals["bytes_up"] + totals["bytes_down"]) / 1e6
    dense = totals.get("dense_fp32_bytes", 0) / 1e6
    title = f"Bytes moved: {moved:.2f} MB"
    if dense:
        title += f" (dense float32: {dense:.0f} MB)"
        ax2.text(0.02, 0.95, f"dense float32 FedAvg would move {dense:.1f} MB, "
                 f"{dense / max(moved, 1e-9):.0f}x more", transform=ax2.transAxes, va="top",
                 fontsize=8)
    ax2.set(xlabel="round", ylabel="cumulative MB on the wire", title=title)
    ax2.legend()
    ax2.grid(alpha=0.3)
    if private:
        delta = next(r["metrics"]["delta"] for r in rounds if "delta" in r["metrics"])
        axes[2].plot(xs, epsilon, marker="o", ms=3, color="tab:red")
        axes[2].set(xlabel="round", ylabel=f"epsilon at delta {delta:g}",
                    title="Privacy spent (user-level DP)")
        axes[2].grid(alpha=0.3)
    if per_client:
        _plot_client_distribution(axes[-1], rounds)
    final = report["totals"].get("final_accuracy")
    fig.suptitle(f"fedprune run {report.get('run_id', '')}: final accuracy "
                 f"{final:.3f}" if final is not None else "fedprune run")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def _plot_client_distribution(ax: Any, rounds: list[dict[str, Any]]) -> None:
    """Per-client federated accuracy per evaluated round: who the model serves badly."""
    import numpy as np

    for key, label, color, shift in ((KEY, "global model", "tab:blue", -0.15),
                                     (PERSONALIZED_KEY, "personalized", "tab:orange", 0.15)):
        points = [(r["round"], list(client_accuracies(r, key).values())) for r in rounds]
        points = [(x, a) for x, a in points if a]
        if not points:
            continue
        for x, accs in points:
            ax.scatter([x + shift] * len(accs), accs, s=8, color=color, alpha=0.4)
        xs = [x for x, _ in points]
        ax.plot(xs, [float(np.median(a)) for _, a in points], color=color, label=f"{label}: median")
        ax.plot(xs, [float(np.percentile(a, 10)) for _, a in points], color=color, ls="--",
                label=f"{label}: 10th percentile")
    ax.set(xlabel="round", ylabel="client accuracy (federated evaluation)",
           title="Accuracy per client", ylim=(0, 1))
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)


def plot_report_file(report_path: Path, out: Path | None = None) -> Path:
    report = json.loads(report_path.read_text())
    return plot_report(report, out or report_path.with_suffix(".png"))
