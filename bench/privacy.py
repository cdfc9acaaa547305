"""W4 digits-population: accuracy vs privacy of DP-FedAvg over a Poisson-sampled population.

Workload W4 as defined in docs/workloads.md: P = 1000 clients of the synthetic source
(``DataSpec(source="synthetic", seed=0)``, 50,000 samples cut by Dirichlet(1.0) label skew,
median 48 samples per client), each round a Poisson cohort with q = 0.1 (about 100 clients),
R = 30 rounds, the W1 MLP and local training (2 epochs SGD lr 0.05 momentum 0.9 batch 32),
server evaluation on 1000 held-out synthetic samples from the same class blobs
(``ServerEvaluator(test_set="synthetic")``). Everything runs in-process through
``fedprune.emulation.Emulation`` (the shared round runner and the clients' own code), whose
``sampling_rate`` gives the accountant q, so epsilon includes amplification by sampling.

Cells: no DP (fedavg, uniform weighting), DP-FedAvg central with fixed clipping at several
noise multipliers z, central with adaptive clipping (median target) at some of them, and
distributed DP (clients add their noise share) at the same z when ``dp.mode =
"distributed"`` is available. delta = 1 / P^1.1. The cohort draw is seeded
(``sampling_seed``) so cells are comparable and reruns reproducible; the DP noise itself is
not seeded (``SecureGaussian``), so DP cells vary from run to run.

Resumable: each finished cell is cached as ``<out>/cells/<name>.json`` with its exact
settings; a rerun skips matching cells (``--force`` reruns).

    python bench/privacy.py --jobs 2            # everything
    python bench/privacy.py --quick             # smoke test: P=200, 5 rounds
    python bench/privacy.py --only central --list
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import logging
import os
import re
import shlex
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

CLIP_NORM = 0.5  # ~ the median L2 norm of a client's round-1 delta on W4 (0.48)
NOISE = (0.3, 0.5, 1.0, 2.0)
HIGH_NOISE = (4.0, 8.0)  # central fixed only: where the accuracy cost shows
ADAPTIVE_NOISE = (0.5, 1.0)


def distributed_available() -> bool:
    from fedserver.config import DPConfig

    try:
        DPConfig(mode="distributed")
    except (TypeError, ValueError):
        return False
    return True


def cells() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [{"name": "no-dp", "mode": "none", "clipping": "-", "z": 0.0}]
    out += [{"name": f"central-fixed-z{z:g}", "mode": "central", "clipping": "fixed", "z": z}
            for z in (*NOISE, *HIGH_NOISE)]
    out += [{"name": f"central-adaptive-z{z:g}", "mode": "central", "clipping": "adaptive",
             "z": z} for z in ADAPTIVE_NOISE]
    if distributed_available():
        out += [{"name": f"distributed-fixed-z{z:g}", "mode": "distributed",
                 "clipping": "fixed", "z": z} for z in NOISE]
    return out


def overrides(cell: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    expected = round(args.q * args.population)
    keys: dict[str, Any] = {"aggregation": {"weighting": "uniform"},
                            "round": {"rounds": args.rounds, "clients_per_round": expected}}
    if cell["mode"] != "none":
        keys["aggregation"]["preset"] = "dp_fedavg"
        keys["dp"] = {"mode": cell["mode"], "noise_multiplier": cell["z"],
                      "clip_norm": CLIP_NORM, "adaptive": cell["clipping"] == "adaptive",
                      "delta": delta(args.population), "expected_clients": expected}
        if cell["mode"] == "central" and not distributed_available():
            del keys["dp"]["mode"]
    return keys


def delta(population: int) -> float:
    return float(population ** -1.1)


def population(args: argparse.Namespace) -> list:
    """W4's clients: exactly ``load_client_data(DataSpec(source="synthetic", partition=i,
    num_partitions=P, alpha=..., synthetic_samples=...))`` for every i, but with the source
    generated and partitioned once instead of P times (checked for a few i)."""
    import numpy as np
    import torch
    from torch.utils.data import TensorDataset

    from fedcore.datasets import ClientData, DataSpec, load_client_data, partition_indices

    n = args.population * args.samples_per_client
    spec = DataSpec(source="synthetic", synthetic_samples=n, alpha=args.alpha,
                    num_partitions=args.population)
    whole = load_client_data(DataSpec(source="synthetic", synthetic_samples=n)).train
    X, y = whole.tensors  # type: ignore[attr-defined]
    parts = partition_indices(y.numpy(), args.population, alpha=args.alpha, seed=spec.seed)
    empty = TensorDataset(torch.zeros((0, X.shape[1])), torch.zeros((0,), dtype=torch.int64))
    clients = [ClientData(TensorDataset(X[p], y[p]), empty, int(X.shape[1]), 10)
               for p in parts]
    for i in (0, args.population - 1):
        ref = load_client_data(DataSpec(**{**spec.__dict__, "partition": i})).train
        assert all(np.array_equal(a.numpy(), b.numpy())
                   for a, b in zip(ref.tensors, clients[i].train.tensors))  # type: ignore
    return clients


def run_cell(cell: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from fedcore import config as config_io
    from fedprune.emulation import Emulation
    from fedserver.config import ServerConfig
    from fedserver.evaluation import ServerEvaluator

    torch.set_num_threads(1)
    logging.getLogger("absl").setLevel(logging.ERROR)  # RDP orders that fail to converge
    config = config_io.build(ServerConfig, overrides(cell, args))
    emulation = Emulation(config, population(args),
                          evaluator=ServerEvaluator(model_name="mlp", test_set="synthetic"),
                          client_seed=0, sampling_rate=args.q, sampling_seed=args.sampling_seed)
    start = time.perf_counter()
    records, last = [], {"accuracy": float("nan"), "loss": float("nan"), "epsilon": 0.0}
    for r in emulation.run(args.rounds):
        last = {**last, **{k: r[k] for k in ("accuracy", "loss", "epsilon") if k in r}}
        records.append({"round": r["round"], "cohort": r["cohort"],
                        "clip_norm": r.get("clip_norm", 0.0), **last,
                        "seconds": r["seconds"]})
        print(f"  {cell['name']} r{r['round']} cohort {r['cohort']} acc "
              f"{last['accuracy']:.4f} eps {last['epsilon']:.3f}", flush=True)
    return {**cell, "overrides": overrides(cell, args), "records": records,
            "final_accuracy": records[-1]["accuracy"], "best_accuracy":
            max(r["accuracy"] for r in records), "epsilon": records[-1]["epsilon"],
            "delta": delta(args.population), "rounds_run": len(records),
            "stop_reason": emulation.stop_reason,
            "mean_cohort": sum(r["cohort"] for r in records) / len(records),
            "wall_seconds": time.perf_counter() - start}


def ident(cell: dict[str, Any], args: argparse.Namespace) -> str:
    return json.dumps({"cell": cell, "overrides": overrides(cell, args),
                       "population": args.population, "samples": args.samples_per_client,
                       "alpha": args.alpha, "q": args.q, "rounds": args.rounds,
                       "sampling_seed": args.sampling_seed}, sort_keys=True)


def _one(cell: dict[str, Any], args: argparse.Namespace, path: Path) -> dict[str, Any]:
    res = {"ident": ident(cell, args), **run_cell(cell, args)}
    path.write_text(json.dumps(res, indent=1))
    return res


def table(results: list[dict[str, Any]]) -> str:
    lines = ["| mode | clipping | z | final acc | best acc | epsilon (delta "
             f"{results[0]['delta']:.2g}) | mean cohort | wall s |",
             "|---|---|---|---|---|---|---|---|"]
    for d in results:
        eps = "inf (no DP)" if d["mode"] == "none" else f"{d['epsilon']:.3g}"
        lines.append(f"| {d['mode']} | {d['clipping']} | {d['z']:g} | "
                     f"{d['final_accuracy']:.4f} | {d['best_accuracy']:.4f} | {eps} | "
                     f"{d['mean_cohort']:.1f} | {d['wall_seconds']:.0f} |")
    return "\n".join(lines)


def plots(results: list[dict[str, Any]], out: Path, suffix: str = "") -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    markers = {"central-fixed": "o", "central-adaptive": "s", "distributed-fixed": "^"}
    dp = [d for d in results if d["mode"] != "none"]
    if not dp:
        return []
    nodp = next((d for d in results if d["mode"] == "none"), None)
    fig, ax = plt.subplots(figsize=(6, 4))
    for kind, marker in markers.items():
        group = sorted((d for d in dp if f"{d['mode']}-{d['clipping']}" == kind),
                       key=lambda d: d["epsilon"])
        if group:
            ax.plot([d["epsilon"] for d in group], [d["final_accuracy"] for d in group],
                    marker=marker, label=kind)
            for d in group:
                ax.annotate(f"z={d['z']:g}", (d["epsilon"], d["final_accuracy"]),
                            fontsize=7, xytext=(3, 3), textcoords="offset points")
    if nodp:
        ax.axhline(nodp["final_accuracy"], color="gray", ls="--", label="no DP")
    ax.set_xscale("log")
    ax.set_xlabel(f"epsilon after {max(d['rounds_run'] for d in results)} rounds "
                  f"(delta {results[0]['delta']:.2g})")
    ax.set_ylabel("final test accuracy")
    ax.set_title("W4 digits-population: accuracy vs epsilon")
    ax.legend(fontsize=8)
    fig.tight_layout()
    acc_path = out / f"privacy-accuracy-vs-epsilon{suffix}.png"
    fig.savefig(acc_path, dpi=110)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(6, 4))
    for d in dp:
        ax.plot([r["round"] for r in d["records"]], [r["epsilon"] for r in d["records"]],
                marker=markers[f"{d['mode']}-{d['clipping']}"], ms=3,
                label=f"{d['mode']} {d['clipping']} z={d['z']:g}")
    ax.set_yscale("log")
    ax.set_xlabel("round")
    ax.set_ylabel("epsilon")
    ax.set_title("W4: epsilon vs round (Poisson-sampled cohort, RDP)")
    ax.legend(fontsize=6, ncol=2, loc="lower right")
    fig.tight_layout()
    eps_path = out / f"privacy-epsilon-vs-round{suffix}.png"
    fig.savefig(eps_path, dpi=110)
    plt.close(fig)
    return [acc_path, eps_path]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--population", type=int, default=1000)
    p.add_argument("--samples-per-client", type=int, default=50)
    p.add_argument("--alpha", type=float, default=1.0)
    p.add_argument("--q", type=float, default=0.1)
    p.add_argument("--rounds", type=int, default=30)
    p.add_argument("--sampling-seed", type=int, default=0)
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "privacy")
    p.add_argument("--plot-dir", type=Path, default=None, help="default: --out")
    p.add_argument("--only", default="", help="regex on cell names")
    p.add_argument("--list", action="store_true")
    p.add_argument("--force", action="store_true")
    p.add_argument("--quick", action="store_true", help="P=200, 5 rounds, into <out>-quick")
    args = p.parse_args()
    if args.quick:
        args.population, args.rounds = 200, 5
        args.out = args.out.with_name(args.out.name + "-quick")
    args.plot_dir = args.plot_dir or args.out
    from federation import machine

    command = "python " + " ".join(shlex.quote(a) for a in [
        os.path.relpath(__file__, REPO), *sys.argv[1:]])
    info = machine()
    print(f"$ {command}")
    print(f"machine: {info['cpu']}, nproc {info['nproc']}, load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(info["free"])
    todo = [c for c in cells() if re.search(args.only, c["name"])]
    if not distributed_available():
        print("dp.mode = 'distributed' is not in fedserver/config.py: central DP only")
    if args.list:
        print("\n".join(c["name"] for c in todo))
        return
    (args.out / "cells").mkdir(parents=True, exist_ok=True)
    results: dict[str, dict[str, Any]] = {}
    pending = []
    for cell in todo:
        path = args.out / "cells" / f"{cell['name']}.json"
        try:
            cached = json.loads(path.read_text())
            assert not args.force and cached["ident"] == ident(cell, args)
            results[cell["name"]] = cached
        except (FileNotFoundError, json.JSONDecodeError, AssertionError, KeyError):
            pending.append((cell, path))
    load0 = os.getloadavg()[0]
    with concurrent.futures.ProcessPoolExecutor(max_workers=args.jobs) as pool:
        futures = {pool.submit(_one, cell, args, path): cell for cell, path in pending}
        for f in concurrent.futures.as_completed(futures):
            res = f.result()
            results[res["name"]] = res
            print(f"done {res['name']}: acc {res['final_accuracy']:.4f} eps "
                  f"{res['epsilon']:.3f} ({res['wall_seconds']:.0f} s)", flush=True)
    order = [c["name"] for c in cells()]
    ordered = [results[n] for n in order if n in results]
    if not ordered:
        return
    paths = plots(ordered, args.plot_dir)
    text = table(ordered)
    print(text)
    summary = {"command": command, "machine": info,
               "loadavg_1m": [load0, os.getloadavg()[0]],
               "workload": {"name": "W4 digits-population", "population": args.population,
                            "samples_per_client": args.samples_per_client,
                            "alpha": args.alpha, "q": args.q, "rounds": args.rounds,
                            "delta": delta(args.population), "clip_norm": CLIP_NORM,
                            "sampling_seed": args.sampling_seed,
                            "distributed_available": distributed_available()},
               "table": text, "plots": [str(p) for p in paths],
               "cells": [{k: v for k, v in d.items() if k != "ident"} for d in ordered]}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
