"""Time to accuracy on W1 when client speeds differ 10x: FedBuff vs synchronous FedAvg.

Both runs are exact W1 (docs/workloads.md: 10 digits clients, Dirichlet 0.5, each its own
OS process, real gRPC over loopback, server accuracy after every model update) except that
the last ``--slow-fraction`` of the clients stretch every local training ``--slow-factor``
times (``simulate.slow_fraction`` / ``simulate.slow_factor``). Synchronous FedAvg waits for
all 10 clients every round (30 rounds); FedBuff (``schedule.mode = fedbuff``) applies every
``--buffer`` accepted updates with staleness weight 1/sqrt(1 + s), for as many server steps
as give the same number of client updates (30 x 10 / K). Time to a target is from the
first model update to the first one whose accuracy reaches it (before the first update,
the processes start: up to minutes on a loaded machine). A slow client's first training is
not stretched (it is mostly warm-up, see :mod:`fedclient.daemon`). Prints a table and
writes the accuracy-vs-time plot.

    nice -n 10 python bench/async.py --out docs/async-time-to-accuracy.png
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

TARGETS = (0.80, 0.85, 0.90, 0.93)


def simulate(name: str, sets: list[str], rounds: int) -> dict[str, Any]:
    out = Path(tempfile.mkdtemp(prefix=f"async-{name}-")) / "run"
    cmd = [sys.executable, "-m", "fedprune", "simulate", "--clients", "10", "--rounds",
           str(rounds), "--no-progress", "--out", str(out),
           "--set", "round.min_clients=10", "--set", "round.selection_timeout_s=600",
           "--set", "round.deadline_s=600", *[x for kv in sets for x in ("--set", kv)]]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{name}: simulate failed:\n{proc.stderr[-2000:]}")
    report = json.loads((out / "report.json").read_text())
    report["_cpu_s"] = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    report["_out"] = str(out)
    return report


def curve(report: dict[str, Any]) -> list[tuple[float, float]]:
    """(seconds since the first model update, accuracy) after each model update; the time
    before the first update is mostly process start-up on a loaded machine."""
    rounds = [r for r in report["rounds"] if r["status"] == "completed"]
    t0 = rounds[0]["closed"]
    return [(r["closed"] - t0, r["metrics"]["accuracy"]) for r in rounds]


def time_to(points: list[tuple[float, float]], target: float) -> float | None:
    return next((t for t, acc in points if acc >= target), None)


def updates(report: dict[str, Any]) -> int:
    return sum(r["accepted"] for r in report["rounds"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--slow-fraction", type=float, default=0.5)
    ap.add_argument("--slow-factor", type=float, default=10.0)
    ap.add_argument("--buffer", type=int, default=5, help="FedBuff K")
    ap.add_argument("--max-staleness", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=30, help="synchronous rounds")
    ap.add_argument("--out", default="async-time-to-accuracy.png")
    ns = ap.parse_args()
    slow = [f"simulate.slow_fraction={ns.slow_fraction}", f"simulate.slow_factor={ns.slow_factor}"]
    runs = {
        "sync FedAvg": simulate("sync", slow, ns.rounds),
        f"FedBuff K={ns.buffer}": simulate("fedbuff", slow + [
            "schedule.mode=fedbuff", f"schedule.buffer_size={ns.buffer}",
            f"schedule.max_staleness={ns.max_staleness}"], ns.rounds * 10 // ns.buffer),
    }
    print(f"W1, {ns.slow_fraction:.0%} of 10 clients {ns.slow_factor:g}x slower")
    print("| run | model updates | client updates | wall to last update (s) | final acc | "
          + " | ".join(f"time to {t:.2f} (s)" for t in TARGETS) + " |")
    print("|---" * (5 + len(TARGETS)) + "|")
    for name, report in runs.items():
        pts = curve(report)
        cells = [f"{x:.1f}" if x is not None else "not reached"
                 for x in (time_to(pts, t) for t in TARGETS)]
        print(f"| {name} | {len(pts)} | {updates(report)} | {pts[-1][0]:.1f} | "
              f"{pts[-1][1]:.4f} | " + " | ".join(cells) + " |")
        stale = [m.get("staleness", 0.0) for r in report["rounds"]
                 for m in r["client_metrics"].values()]
        print(f"  {name}: mean staleness {sum(stale) / max(1, len(stale)):.2f}, max "
              f"{max(stale, default=0):.0f}; CPU {report['_cpu_s']:.0f} s (all processes); "
              f"run folder {report['_out']}")
    _plot(runs, Path(ns.out))
    print(f"plot: {ns.out}")


def _plot(runs: dict[str, dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6))
    for name, report in runs.items():
        pts = curve(report)
        ax.plot([t for t, _ in pts], [a for _, a in pts], marker=".", label=name)
    ax.set_xlabel("seconds since the first model update")
    ax.set_ylabel("server test accuracy")
    ax.set_title("W1, clients 10x apart in speed")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
