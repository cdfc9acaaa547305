"""Client cost of one local round under structured pruning: reduced vs masked dense vs dense.

Workloads (docs/workloads.md): W1 `digits-mlp` (64-256-256-10) and W5 `digits-mlp-wide`
(64-2048-2048-10), one W1 client (client 1 of 10, 188 samples), W1 local training (2 epochs
SGD lr 0.05, momentum 0.9, batch 32). Masks: structured columns of ``fc2`` and ``fc3`` by
magnitude at 50/80/90% (``fc1``'s columns are the input pixels and stay dense, as in
docs/pruning.md), from the seed-0 initial weights (the cost depends on the widths only).

Every (workload, mode, sparsity) cell runs in a fresh child process with one intra-op
thread (``torch.set_num_threads(1)``), so peak RSS and CPU time belong to that cell alone:

- ``cpu_s``: ``time.process_time()`` of the local round, the fastest of 3 identical runs
  after a warm-up round of another model (the machine is shared, so CPU time is the figure
  to compare; the wall time of the same run is printed next to it);
- ``model_bytes``: measured tensor bytes of the training working set: trainable parameters
  + their gradients + SGD momentum buffers + mask tensors of the enforcer (bool, 1 byte an
  entry) + the activations autograd saves for backward in one batch of 32 (counted with
  ``torch.autograd.graph.saved_tensors_hooks``, parameter storages excluded). This is the
  "model memory" of the target. (The CPU allocator has no peak counter in torch; tracemalloc
  does not see torch's allocations.)
- ``rss_peak_delta``: the child's peak RSS (``VmHWM``) after the first measured round minus
  its RSS just before it (after imports, data, the warm-up, the template model and the
  pulled global model): what the round allocates, including the dense-shaped delta every
  mode returns for the uplink encoder;
- ``gflop``: forward + backward FLOPs of the round (``torch.utils.flop_counter``; matmuls and
  convolutions, the masking's elementwise work is not counted).

Then (unless ``--no-accuracy``) emulated W1 federations (10 clients, 30 rounds, the shared
round runner and the clients' own code in-process, ``fedprune.emulation``) with
``pruning.client_training`` = masked and = reduced at each sparsity, cubic schedule over
rounds 1-25: final accuracy and the clients' summed local CPU time.

    python bench/client_cost.py [--quick] [--no-accuracy] [--out bench/out/client-cost]
    python bench/client_cost.py --wide-rounds 10   # W5: masked vs reduced federation at 80%
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
WORKLOADS = {"W1": "mlp", "W5": "mlp-wide"}
MODES = ("dense", "masked", "reduced")
SPARSITIES = (0.5, 0.8, 0.9)
CLIENT = 1  # of 10 W1 clients
REPEATS = 3  # CPU time: the fastest of 3 identical rounds (a shared machine only adds time)


def _rss_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _masks(params: dict[str, Any], sparsity: float) -> dict[str, Any]:
    from fedcompression import allocate_masks, group_scores

    names = ("fc2.weight", "fc3.weight")
    return allocate_masks({n: group_scores(params[n], "columns") for n in names}, sparsity,
                          granularity="columns", shapes={n: params[n].shape for n in names})


def _saved_activation_bytes(model: Any, dataset: Any) -> int:
    import torch

    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        ptr = t.untyped_storage().data_ptr()
        if ptr not in params:
            seen[ptr] = max(seen.get(ptr, 0), t.untyped_storage().nbytes())
        return t

    x = torch.stack([dataset[i][0] for i in range(32)])
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(x).sum().backward()
    model.zero_grad(set_to_none=True)
    return sum(seen.values())


def _working_set(mode: str, template: Any, plan: Any, masks: Any, dataset: Any) -> int:
    """Tensor bytes of the model being trained (see the module docstring)."""
    model = plan.build(dict(_dense_params(template))) if mode == "reduced" else template
    trainable = sum(p.numel() for p in model.parameters()) * 4
    mask_bytes = 0
    if mode == "masked":
        mask_bytes = sum(m.size for m in masks.values())
    elif mode == "reduced":
        mask_bytes = sum(m.size for m in plan.residual.values())
    return 3 * trainable + mask_bytes + _saved_activation_bytes(model, dataset)


def _dense_params(model: Any) -> dict[str, Any]:
    from fedcore.params import get_parameters

    return get_parameters(model)


def child(workload: str, mode: str, sparsity: float) -> dict[str, Any]:
    """One cell, measured in this (fresh) process."""
    import numpy as np
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from fedcore.client_training import train_update
    from fedcore.datasets import DataSpec, load_client_data
    from fedcore.models import build_model
    from fedcore.structure import plan_structure
    from fedcore.training import TrainConfig

    torch.set_num_threads(1)
    data = load_client_data(DataSpec(partition=CLIENT, num_partitions=10, alpha=0.5)).train
    template = build_model(WORKLOADS[workload], seed=0)
    pulled = _dense_params(template)
    masks = _masks(pulled, sparsity) if mode != "dense" else None
    if masks is not None:
        pulled = {n: np.where(masks[n], a, 0).astype(np.float32) if n in masks else a
                  for n, a in pulled.items()}
    config = TrainConfig(epochs=2, batch_size=32, learning_rate=0.05, momentum=0.9, seed=1)
    train_mode = "reduced" if mode == "reduced" else "masked"
    warm = build_model("mlp", seed=0)  # torch's lazy first-call set-up, outside the figures
    train_update(warm, _dense_params(warm), None, data, config, mode="masked")
    rss_before = _rss_kb("VmRSS")
    times = []
    for _ in range(REPEATS):
        cpu, wall = time.process_time(), time.perf_counter()
        update = train_update(template, pulled, masks, data, config, mode=train_mode)
        times.append((time.process_time() - cpu, time.perf_counter() - wall))
        if len(times) == 1:
            rss_peak = _rss_kb("VmHWM")
    cpu, wall = min(times)
    plan = plan_structure(template, masks, input_shape=(64,), biases=pulled) if masks else None
    with FlopCounterMode(display=False) as flops:
        train_update(template, pulled, masks, data, config, mode=train_mode)
    return {"workload": workload, "mode": mode, "sparsity": sparsity if masks else 0.0,
            "reduced": update.reduced, "cpu_s": cpu, "wall_s": wall,
            "rss_peak_delta_mb": (rss_peak - rss_before) / 1024, "rss_peak_mb": rss_peak / 1024,
            "model_bytes": _working_set(mode, template, plan, masks, data),
            "gflop": flops.get_total_flops() / 1e9, "steps": update.result.steps,
            "params": plan.reduced_size if mode == "reduced" else sum(
                p.numel() for p in template.parameters())}


def _run_child(workload: str, mode: str, sparsity: float) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, __file__, "--child", workload, mode, str(sparsity)],
                         capture_output=True, text=True, env=env, check=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def cost_table(cells: list[dict[str, Any]]) -> str:
    dense = {c["workload"]: c for c in cells if c["mode"] == "dense"}
    lines = ["| workload | mode | sparsity | params | model MB | x dense | CPU s | x dense | "
             "wall s | GFLOP | x dense | RSS peak delta MB | RSS peak MB |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for c in cells:
        d = dense[c["workload"]]
        lines.append(
            f"| {c['workload']} | {c['mode']} | {c['sparsity']:.0%} | {c['params']:,} | "
            f"{c['model_bytes'] / 2**20:.2f} | {c['model_bytes'] / d['model_bytes']:.3f} | "
            f"{c['cpu_s']:.3f} | {c['cpu_s'] / d['cpu_s']:.3f} | {c['wall_s']:.3f} | "
            f"{c['gflop']:.3f} | {c['gflop'] / d['gflop']:.3f} | "
            f"{c['rss_peak_delta_mb']:.1f} | {c['rss_peak_mb']:.1f} |")
    return "\n".join(lines)


def federation(client_training: str, sparsity: float, *, rounds: int,
               model: str = "mlp") -> dict[str, Any]:
    """One emulated W1 federation (or W5 with ``model="mlp-wide"``) under structured
    columns at ``sparsity``."""
    from fedcore import config as config_io
    from fedcore.datasets import DataSpec, load_client_data
    from fedprune.emulation import Emulation
    from fedserver.config import ServerConfig
    from fedserver.evaluation import ServerEvaluator

    pruning = {"enabled": sparsity > 0, "granularity": "structured", "schedule": "cubic",
               "start_round": 1, "end_round": min(25, rounds - 2) // 3 * 3 + 1,
               "prune_every": 3, "initial_sparsity": sparsity / 2,
               "target_sparsity": sparsity, "exclude": ["fc1.weight"],
               "client_training": client_training}
    config = config_io.build(ServerConfig, {"pruning": pruning, "training": {"model": model},
                                            "round": {"rounds": rounds, "clients_per_round": 10}})
    data = [load_client_data(DataSpec(partition=i, num_partitions=10, alpha=0.5))
            for i in range(10)]
    emulation = Emulation(config, data, evaluator=ServerEvaluator(model_name=model,
                                                                  test_set="digits"))
    cpu = time.process_time()
    records = emulation.run(rounds)
    return {"model": model, "rounds": rounds, "client_training": client_training,
            "sparsity": sparsity,
            "final_accuracy": records[-1]["accuracy"], "process_cpu_s": time.process_time() - cpu,
            "final_sparsity": records[-1]["sparsity"]}


def accuracy_table(runs: list[dict[str, Any]]) -> str:
    lines = ["| sparsity | masked dense: final acc | reduced: final acc | difference (points) | "
             "masked CPU s | reduced CPU s |", "|---|---|---|---|---|---|"]
    by = {(r["client_training"], r["sparsity"]): r for r in runs}
    for s in sorted({r["sparsity"] for r in runs}):
        m, r = by[("masked", s)], by[("reduced", s)]
        lines.append(f"| {s:.0%} (reached {m['final_sparsity']:.3f}) | {m['final_accuracy']:.4f} | "
                     f"{r['final_accuracy']:.4f} | "
                     f"{100 * (r['final_accuracy'] - m['final_accuracy']):+.2f} | "
                     f"{m['process_cpu_s']:.1f} | {r['process_cpu_s']:.1f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--child", nargs=3, metavar=("WORKLOAD", "MODE", "SPARSITY"))
    parser.add_argument("--out", default=str(ROOT / "bench" / "out" / "client-cost"))
    parser.add_argument("--quick", action="store_true", help="80%% only, 6 federated rounds")
    parser.add_argument("--no-accuracy", action="store_true")
    parser.add_argument("--wide-rounds", type=int, default=0, metavar="R",
                        help="only the W5 accuracy check: masked vs reduced at 80%%, R rounds")
    args = parser.parse_args()
    if args.child:
        workload, mode, sparsity = args.child
        print(json.dumps(child(workload, mode, float(sparsity))))
        return
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.wide_rounds:
        runs = [federation(mode, 0.8, rounds=args.wide_rounds, model="mlp-wide")
                for mode in ("masked", "reduced")]
        (out / "federations-wide.json").write_text(json.dumps(runs, indent=1))
        print(accuracy_table(runs))
        return
    sparsities = (0.8,) if args.quick else SPARSITIES
    cells = []
    for workload in WORKLOADS:
        cells.append(_run_child(workload, "dense", 0.0))
        for s in sparsities:
            for mode in ("masked", "reduced"):
                cells.append(_run_child(workload, mode, s))
                print(json.dumps(cells[-1]), flush=True)
    report = "## Client cost of one local round\n\n" + cost_table(cells) + "\n"
    if not args.no_accuracy:
        rounds = 6 if args.quick else 30
        runs = [federation(mode, s, rounds=rounds) for s in sparsities
                for mode in ("masked", "reduced")]
        report += f"\n## Emulated W1 federation ({rounds} rounds)\n\n" + accuracy_table(runs) + "\n"
        (out / "federations.json").write_text(json.dumps(runs, indent=1))
    (out / "cells.json").write_text(json.dumps(cells, indent=1))
    (out / "summary.md").write_text(report)
    print(report)


if __name__ == "__main__":
    main()
