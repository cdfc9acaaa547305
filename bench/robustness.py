"""W1 under attack, and personalized vs global models: the tables of docs/robustness.md.

Workload W1 (docs/workloads.md: 10 non-IID digits clients, all in every round, the MLP,
2 local epochs of SGD) run in-process through ``fedprune.emulation.Emulation`` (the
coordinator's round runner and the clients' own training and attack code; only gRPC is
left out, so accuracies are a real federation's for the same seeds).

**Attack grid.** Each aggregation preset against each client-side attack (``[attack]``:
sign flip x10, scaled update x10, label flip, a claimed example count of 2^40) with 10%,
20% and 30% of the clients adversarial (the first ceil(f * 10) clients; the coordinator is
not told), plus the clean run. ``fedavg (no cap)`` is FedAvg with ``weight_cap = 0``; the
other rows keep the default cap (4 x the median claimed count). Krum assumes f = 3 (the
most it tolerates among 10 updates). Final server-side test accuracy after R rounds.

**Personalization.** Clean W1 with a 20% per-client hold-out (``data.val_fraction = 0.2``,
so each client is scored on data it did not train on): FedAvg, FedAvg + FT (1 epoch),
FedPer (personal ``head``), FedPer + FT, and q-FFL (q = 0.2, and q = 1 with L = 0.5; fairness by aggregation,
no personal model). After the last round every client evaluates the global model and its
personalized model on its hold-out; reported: mean, worst client, 10th percentile and
Jain's index of both.

Cells are cached as ``<out>/cells/<name>.json`` (rerun skips them; ``--force`` reruns).

    python bench/robustness.py                 # everything (about 80 runs of W1)
    python bench/robustness.py --only personal
    python bench/robustness.py --quick         # 5 rounds, into <out>-quick
"""

from __future__ import annotations

import argparse
import json
import math
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

CLIENTS = 10
AGGREGATORS = {  # row label -> config overrides
    "fedavg (no cap)": {"aggregation": {"preset": "fedavg", "weight_cap": 0.0}},
    "fedavg": {"aggregation": {"preset": "fedavg"}},
    "robust_fedavg": {"aggregation": {"preset": "robust_fedavg"}},
    "robust_median": {"aggregation": {"preset": "robust_median"}},
    "robust_trimmed_mean": {"aggregation": {"preset": "robust_trimmed_mean"}},
    "robust_krum": {"aggregation": {"preset": "robust_krum", "krum": {"f": 3}}},
}
ATTACKS = {"sign_flip": {"behaviour": "sign_flip", "scale": 10.0},
           "scale": {"behaviour": "scale", "scale": 10.0},
           "label_flip": {"behaviour": "label_flip"},
           "claim_examples": {"behaviour": "claim_examples", "claimed_examples": 2 ** 40}}
FRACTIONS = (0.1, 0.2, 0.3)
PERSONALIZATION = {  # row label -> config overrides
    "fedavg": {},
    "fedavg+ft": {"personalization": {"finetune_epochs": 1}},
    "fedper": {"personalization": {"personal_layers": ["head"]}},
    "fedper+ft": {"personalization": {"personal_layers": ["head"], "finetune_epochs": 1}},
    "q_ffl q=0.2": {"aggregation": {"preset": "q_ffl"}, "strategy": {"qffl_q": 0.2}},
    "q_ffl q=1 L=0.5": {"aggregation": {"preset": "q_ffl"},
                        "strategy": {"qffl_q": 1.0, "qffl_lipschitz": 0.5}},
}


def cells() -> list[dict[str, Any]]:
    out = []
    for agg in AGGREGATORS:
        out.append({"kind": "attack", "name": f"{agg}/clean", "aggregator": agg,
                    "attack": "none", "fraction": 0.0})
        out += [{"kind": "attack", "name": f"{agg}/{attack}/{f:g}", "aggregator": agg,
                 "attack": attack, "fraction": f} for attack in ATTACKS for f in FRACTIONS]
    out += [{"kind": "personal", "name": f"personal/{p}", "personalization": p}
            for p in PERSONALIZATION]
    return out


def overrides(cell: dict[str, Any], rounds: int) -> dict[str, Any]:
    keys: dict[str, Any] = {"round": {"rounds": rounds, "clients_per_round": CLIENTS,
                                      "min_clients": CLIENTS}}
    if cell["kind"] == "attack":
        keys.update(json.loads(json.dumps(AGGREGATORS[cell["aggregator"]])))
    else:
        keys.update(json.loads(json.dumps(PERSONALIZATION[cell["personalization"]])))
        if "personalization" in keys:
            keys["round"]["federated_eval_every"] = rounds  # rule: personalization needs it
    return keys


def run_cell(cell: dict[str, Any], rounds: int) -> dict[str, Any]:
    import numpy as np
    import torch

    from fedclient.config import AttackConfig
    from fedcore import config as config_io
    from fedcore.datasets import DataSpec, load_client_data
    from fedprune.emulation import Emulation
    from fedserver.config import ServerConfig
    from fedserver.evaluation import ServerEvaluator
    from fedserver.fairness import fairness_stats

    torch.set_num_threads(1)
    config = config_io.build(ServerConfig, overrides(cell, rounds))
    val = 0.2 if cell["kind"] == "personal" else 0.0
    clients = [load_client_data(DataSpec(partition=i, num_partitions=CLIENTS, val_fraction=val))
               for i in range(CLIENTS)]
    attacks = None
    if cell["kind"] == "attack" and cell["attack"] != "none":
        bad = math.ceil(cell["fraction"] * CLIENTS)
        attacks = [AttackConfig(**ATTACKS[cell["attack"]]) if i < bad else AttackConfig()
                   for i in range(CLIENTS)]
    emulation = Emulation(config, clients, attacks=attacks,
                          evaluator=ServerEvaluator(model_name="mlp", test_set="digits"))
    start, cpu = time.perf_counter(), time.process_time()
    records = emulation.run(rounds)
    result = {**cell, "overrides": overrides(cell, rounds), "rounds_run": len(records),
              "cohorts": sorted({r["cohort"] for r in records}),
              "final_accuracy": next((r["accuracy"] for r in reversed(records)
                                      if "accuracy" in r), None),
              "failed_rounds": sum(1 for r in records if r.get("failed")),
              "dropped_updates": sum(len(r.get("failed_clients", [])) for r in records),
              "accuracy_by_round": [r.get("accuracy") for r in records]}
    if cell["kind"] == "personal":
        per_client = emulation.evaluate_clients(rounds + 1)
        for key, label in (("accuracy", "global"), ("personalized_accuracy", "personalized")):
            accs = [m[key] for m in per_client.values() if key in m]
            result[label] = ({"mean": float(np.mean(accs)), **(fairness_stats(accs) or {})}
                             if accs else None)
    result.update(wall_seconds=time.perf_counter() - start, cpu_seconds=time.process_time() - cpu)
    return result


def attack_table(results: dict[str, dict[str, Any]]) -> str:
    columns = ["clean"] + [f"{a} {int(f * 100)}%" for a in ATTACKS for f in FRACTIONS]
    lines = ["| aggregator | " + " | ".join(columns) + " |",
             "|---|" + "---|" * len(columns)]
    for agg in AGGREGATORS:
        names = [f"{agg}/clean"] + [f"{agg}/{a}/{f:g}" for a in ATTACKS for f in FRACTIONS]
        cells_ = [results.get(n) for n in names]
        lines.append(f"| {agg} | " + " | ".join(
            "-" if c is None else _accuracy(c) for c in cells_) + " |")
    return "\n".join(lines)


def _accuracy(cell: dict[str, Any]) -> str:
    """Final accuracy; a dagger marks runs with failed rounds (the model stopped moving)."""
    return f"{cell['final_accuracy']:.3f}" + (" †" if cell.get("failed_rounds") else "")


def personal_table(results: dict[str, dict[str, Any]]) -> str:
    lines = ["| method | global: mean | worst | p10 | Jain | personalized: mean | worst | p10 | "
             "Jain | server test acc |", "|---|---|---|---|---|---|---|---|---|---|"]
    for p in PERSONALIZATION:
        c = results.get(f"personal/{p}")
        if c is None:
            continue
        row = [p]
        for label in ("global", "personalized"):
            s = c.get(label)
            row += (["-"] * 4 if s is None else
                    [f"{s['mean']:.3f}", f"{s['min']:.3f}", f"{s['p10']:.3f}", f"{s['jain']:.3f}"])
        row.append(f"{c['final_accuracy']:.3f}")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=30)
    p.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "robustness")
    p.add_argument("--only", default="", help="regex on cell names")
    p.add_argument("--force", action="store_true")
    p.add_argument("--quick", action="store_true", help="5 rounds, into <out>-quick")
    args = p.parse_args()
    if args.quick:
        args.rounds, args.out = 5, args.out.with_name(args.out.name + "-quick")
    from federation import machine

    info = machine()
    print("$ python " + " ".join(shlex.quote(a) for a in [os.path.relpath(__file__, REPO),
                                                          *sys.argv[1:]]))
    print(f"machine: {info['cpu']}, nproc {info['nproc']}, load average {os.getloadavg()}")
    (args.out / "cells").mkdir(parents=True, exist_ok=True)
    results: dict[str, dict[str, Any]] = {}
    for cell in cells():
        path = args.out / "cells" / (re.sub(r"[^\w.+-]+", "_", cell["name"]) + ".json")
        if args.only and not re.search(args.only, cell["name"]):
            if path.exists():
                results[cell["name"]] = json.loads(path.read_text())
            continue
        ident = {"cell": cell, "overrides": overrides(cell, args.rounds)}
        cached = json.loads(path.read_text()) if path.exists() else None
        if cached is not None and cached.get("ident") == ident and not args.force:
            results[cell["name"]] = cached
            continue
        res = {"ident": ident, **run_cell(cell, args.rounds)}
        path.write_text(json.dumps(res, indent=1))
        results[cell["name"]] = res
        if res["cohorts"] != [CLIENTS]:
            print(f"  NOTE {cell['name']}: cohorts {res['cohorts']} differ from {CLIENTS}")
        print(f"{cell['name']}: final accuracy {res['final_accuracy']:.4f} "
              f"({res['cpu_seconds']:.0f} CPU s)", flush=True)
    print(f"\nFinal server test accuracy after {args.rounds} rounds (W1):\n")
    print(attack_table(results))
    print("\nPer-client accuracy on each client's 20% hold-out after the last round:\n")
    print(personal_table(results))


if __name__ == "__main__":
    main()
