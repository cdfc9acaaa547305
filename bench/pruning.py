"""W1 federated pruning: schemes x granularity x sparsity x wire values, vs dense FedAvg.

Workload: W1 ``digits-mlp`` as defined in docs/workloads.md (FedAvg defaults): the real
coordinator and 10 client daemons (separate OS processes, real gRPC over loopback) via
``fedprune.simulate.run_simulation``, 30 rounds, MLP 64-256-256-10, 2 local epochs SGD lr 0.05
momentum 0.9 batch 32.

Cells (run in this priority order, so a cut-short run still answers the targets):

1. ``dense-fp32``: pruning off, fp32 both ways, **zstd off** — the byte reference. It is
   one dense float32 copy per client per direction per round (~2 x 10 x 30 x 340 KB =
   204 MB; bytes counted as in docs/workloads.md) and is exactly what ``bench/federation.py`` uses as
   its reference, so ratios here and there are comparable.
2. Federated pruning, main schedule (``--schedule``, default ``cubic15``), for scheme
   {server-mask, client-scores} x granularity {unstructured, structured (columns)} x
   sparsity {0.8, 0.9, then 0.5, 0.95} x wire values {fp32, int8} (``wire.uplink`` and
   ``wire.downlink``; zstd on, the coordinator default). client-scores uses saliency
   |w * grad| on each client's data, combined by example-weighted sum. Structured cells
   set ``pruning.exclude=fc1.weight`` (``STRUCT_EXCLUDE``): structured pruning keeps the
   input layer dense, because fc1's columns are the 64 input pixels. The nominal sparsity
   then applies to fc2 + fc3 only (68,096 of the 84,480 prunable weights), so the overall
   sparsity of the prunable weights is nominal x 0.806 (0.8 -> ~0.645, 0.9 -> ~0.725); the
   tables report it as "achieved".
3. A schedule study at 90% for both unstructured schemes (the structured ones cannot
   reach the accuracy target at 90%, see docs/pruning.md), fp32 and int8.
4. Context: dense ``fp32+zstd`` (the coordinator's default wire) and dense ``int8+zstd``.
5. Centralized baseline (``fedprune.centralized``) per granularity x sparsity x schedule,
   plus dense: same model, schedule, sparsity, 2 epochs per round, union of the clients'
   training data, evaluated on the W1 test set after each round. The centralized
   structured cells exclude fc1 too (``train_centralized`` honours ``pruning.exclude``);
   their achieved sparsity is measured on the final weights over all prunable tensors.

Per federated cell: final and best accuracy, bytes up / down (the coordinator's gRPC
counts), ratio vs the dense fp32 reference (and vs dense fp32+zstd), achieved sparsity of
the final global model, and an export (``fedprune.export.export_run`` with the run's
value codec, ``shrink=True`` for structured): artifact bytes, parameter count, CPU
latency of the exported model vs the dense model at batch 1 and 256 (single thread,
median of 200). Exports and centralized runs happen after all simulations, one at a
time, so latencies are not measured next to a running federation.

Resumable: each finished cell's summary is cached as ``<out>/cells/<name>.json`` together
with its exact configuration; a rerun skips cells whose cache matches (``--force`` reruns).
Run folders (logs, state, checkpoints) are kept under ``<out>/runs/<name>/``.

    python bench/pruning.py --jobs 2                      # everything, resumable
    python bench/pruning.py --quick                       # smoke test: 4 clients, 6 rounds
    python bench/pruning.py --only 'sm-unstr-0.9' --list  # show matching cells
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import json
import re
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from fedcore import config as config_io  # noqa: E402
from fedserver.config import ServerConfig  # noqa: E402

SCHEMES = {"sm": "server-mask", "cs": "client-scores"}
GRANULARITIES = {"unstr": "unstructured", "struct": "structured"}
SPARSITIES = (0.8, 0.9, 0.5, 0.95)  # priority order: the targets need 80% and 90% first
VALUES = ("fp32", "int8")
ACC_TARGET_90 = 0.95
WITHIN_DENSE_80 = 0.02
BYTES_TARGET = {"fp32": 5.0, "int8": 15.0}
BYTES_ACC = 0.95
# Structured (column) pruning keeps the input layer dense: fc1.weight's columns are the 64
# input pixels, so pruning them deletes input features. fc1 holds 16,384 of the 84,480
# prunable weights, so the overall sparsity of the prunable weights is below the nominal
# target (nominal x 68,096 / 84,480, e.g. 0.8 -> ~0.645). Federated and centralized
# structured cells both set pruning.exclude (fedprune.centralized builds its controller with
# fedserver.pruning.factory.build_controller, which honours it).
STRUCT_EXCLUDE: tuple[str, ...] = ("fc1.weight",)


# -- schedules -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Schedule:
    """A pruning schedule scaled to the run length: the ramp ends at ~``end_frac`` of the
    rounds (snapped so the last prune step lands on ``end_round``), the first mask step is
    after round ``start_round`` at ``init_frac`` x target, then refine / fine-tune."""

    kind: str  # step | cubic | one-shot
    end_frac: float
    every: int
    init_frac: float
    refine: int = 0
    start_round: int = 1
    note: str = ""

    def keys(self, target: float, rounds: int) -> dict[str, Any]:
        steps = max(1, round((rounds * self.end_frac - self.start_round) / self.every))
        end = self.start_round + self.every * steps
        return {"schedule": self.kind, "start_round": self.start_round, "end_round": end,
                "prune_every": self.every, "refine_rounds": self.refine,
                "initial_sparsity": round(target * self.init_frac, 4),
                "target_sparsity": target}


SCHEDULES: dict[str, Schedule] = {
    # main: cubic ramp over rounds 1..25 in 8 steps of 3 rounds, the first mask (after
    # round 1) at half the target, then 5 fine-tune rounds
    "cubic25": Schedule("cubic", 25 / 30, 3, 0.5,
                        note="cubic, rounds 1-25, a mask step every 3 rounds, s0 = target/2"),
    "cubic15": Schedule("cubic", 0.5, 2, 0.5,
                        note="cubic, rounds 1-15, a mask step every 2 rounds, s0 = target/2"),
    "step25": Schedule("step", 25 / 30, 3, 0.5,
                       note="step (linear), rounds 1-25, every 3 rounds, s0 = target/2"),
    # picked from the --explore sweep (longest ramp, first step at 0.65 x target): see
    # docs/pruning.md for why its margin over the target is within noise
    "cubic28": Schedule("cubic", 28 / 30, 3, 0.65,
                        note="cubic, rounds 1-28, every 3 rounds, s0 = 0.65 x target "
                             "(chosen from the --explore sweep)"),
    "cubic25-refine2": Schedule("cubic", 25 / 30, 3, 0.5, refine=2,
                                note="cubic25 + 2 refine cycles (rounds 26-27 train dense, "
                                     "then re-score at the target; regrowth allowed)"),
}
MAIN_SCHEDULE = "cubic25"
# schedule -> schemes it is studied for (unstructured, 90%, fp32 and int8)
STUDY: dict[str, tuple[str, ...]] = {
    "cubic15": ("server-mask", "client-scores"),
    "step25": ("server-mask", "client-scores"),
    "cubic25-refine2": ("server-mask",),
    "cubic28": ("server-mask", "client-scores"),
}


# -- cells -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Cell:
    name: str
    kind: str  # fed | central
    scheme: str = "dense"  # dense | server-mask | client-scores
    granularity: str = "dense"
    sparsity: float = 0.0
    values: str = "fp32"
    zstd: bool = True
    schedule: str = ""
    role: str = "grid"  # reference | grid | study | context | central
    overrides: tuple[str, ...] = ()

    def config_key(self, clients: int, rounds: int) -> dict[str, Any]:
        return {"clients": clients, "rounds": rounds, "kind": self.kind,
                "overrides": list(self.overrides)}


def _wire(values: str, zstd: bool) -> list[str]:
    return [f"wire.uplink={values}", f"wire.downlink={values}",
            f"wire.zstd={'true' if zstd else 'false'}"]


def _pruning(scheme: str, granularity: str, keys: dict[str, Any]) -> list[str]:
    out = ["pruning.enabled=true", f"pruning.scheme={scheme}", f"pruning.granularity={granularity}"]
    if scheme == "client-scores":
        out += ["pruning.score_kind=saliency", "pruning.combine=weighted-sum"]
    out += [f"pruning.{k}={v}" for k, v in keys.items()]
    return out


def _exclude(gran: str) -> list[str]:
    # part of the overrides, hence of the cache key: structured cells cached before the
    # exclusion existed do not match and are rerun
    return ([f"pruning.exclude={','.join(STRUCT_EXCLUDE)}"]
            if gran == "structured" and STRUCT_EXCLUDE else [])


def _short(x: str) -> str:
    return {v: k for k, v in {**SCHEMES, **GRANULARITIES}.items()}.get(x, x)


def fed_cell(scheme: str, gran: str, sparsity: float, values: str, schedule: str, rounds: int,
             role: str) -> Cell:
    keys = SCHEDULES[schedule].keys(sparsity, rounds)
    name = f"{_short(scheme)}-{_short(gran)}-{sparsity:g}-{values}-{schedule}"
    # the exclusion is part of the overrides, hence of the cache key: cells cached before it
    # existed do not match and are rerun
    return Cell(name, "fed", scheme, gran, sparsity, values, True, schedule, role,
                tuple(_pruning(scheme, gran, keys) + _exclude(gran) + _wire(values, True)))


def central_cell(gran: str, sparsity: float, schedule: str, rounds: int) -> Cell:
    if gran == "dense":
        return Cell("central-dense", "central", role="central")
    keys = SCHEDULES[schedule].keys(sparsity, rounds)
    return Cell(f"central-{_short(gran)}-{sparsity:g}-{schedule}", "central", "server-mask", gran,
                sparsity, "fp32", True, schedule, "central",
                tuple(_pruning("server-mask", gran, keys) + _exclude(gran)))


def all_cells(args: argparse.Namespace) -> list[Cell]:
    r = args.rounds
    cells = [Cell("dense-fp32", "fed", role="reference", zstd=False,
                  overrides=tuple(_wire("fp32", False)))]
    for sparsity in args.sparsities:
        for values in args.values:
            for scheme in ("server-mask", "client-scores"):
                for gran in ("unstructured", "structured"):
                    cells.append(fed_cell(scheme, gran, sparsity, values, args.schedule, r, "grid"))
        if sparsity == 0.9:  # the schedule study comes right after the 90% grid
            for sched in args.study:
                for values in args.values:
                    for scheme in STUDY.get(sched, ("server-mask", "client-scores")):
                        cells.append(fed_cell(scheme, "unstructured", 0.9, values, sched, r,
                                              "study"))
    if not args.quick:
        cells += [Cell("dense-fp32+zstd", "fed", role="context",
                       overrides=tuple(_wire("fp32", True))),
                  Cell("dense-int8+zstd", "fed", values="int8", role="context",
                       overrides=tuple(_wire("int8", True)))]
    cells.append(central_cell("dense", 0.0, "", r))
    for gran in ("unstructured", "structured"):
        for sparsity in args.sparsities:
            for sched in (args.schedule, *args.study):
                if sched != args.schedule and (gran != "unstructured" or sparsity != 0.9):
                    continue
                cells.append(central_cell(gran, sparsity, sched, r))
    if args.only:
        pattern = re.compile(args.only)
        cells = [c for c in cells if pattern.search(c.name) or c.role == "reference"]
    return cells


# -- running ---------------------------------------------------------------------------------
def cache_path(out: Path, cell: Cell) -> Path:
    return out / "cells" / f"{cell.name}.json"


def load_cached(out: Path, cell: Cell, args: argparse.Namespace) -> dict[str, Any] | None:
    path = cache_path(out, cell)
    try:
        data = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    if data.get("config_key") != cell.config_key(args.clients, args.rounds):
        return None
    return data


def save(out: Path, cell: Cell, data: dict[str, Any]) -> None:
    path = cache_path(out, cell)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(path)


def server_config(cell: Cell, args: argparse.Namespace) -> ServerConfig:
    return config_io.load(ServerConfig, overrides=[
        f"round.rounds={args.rounds}", f"round.clients_per_round={args.clients}",
        *cell.overrides], environ={})


def mask_sparsity(mask_id: str) -> float | None:
    m = re.match(r"m\d+-([0-9.]+)-", mask_id or "")
    return float(m.group(1)) if m else None


def run_fed(cell: Cell, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    from federation import cohort_differed

    from fedprune.simulate import SimulationSpec, run_simulation

    run_dir = out / "runs" / cell.name
    spec = SimulationSpec(out=run_dir, clients=args.clients, server=server_config(cell, args),
                          progress=False, timeout_s=args.timeout)
    t0 = time.perf_counter()
    report = run_simulation(spec)
    wall = time.perf_counter() - t0
    rounds = [r for r in report["rounds"] if r["status"] == "completed"]
    acc = [r["metrics"].get("accuracy") for r in rounds]
    best = max(range(len(acc)), key=lambda i: acc[i]) if acc else None
    return {
        **dataclasses.asdict(cell), "config_key": cell.config_key(args.clients, args.rounds),
        "run_dir": str(run_dir.relative_to(REPO) if run_dir.is_relative_to(REPO) else run_dir),
        "run_wall_s": wall, "rounds_completed": len(rounds),
        "rounds_failed": report["totals"]["rounds_failed"],
        "cohort_differed": cohort_differed(report, args.clients, args.rounds),
        "final_accuracy": report["totals"]["final_accuracy"],
        "best_accuracy": acc[best] if best is not None else None,
        "best_round": rounds[best]["round"] if best is not None else None,
        "accuracy": acc,
        "bytes_up": report["totals"]["bytes_up"], "bytes_down": report["totals"]["bytes_down"],
        "bytes_up_per_round": [r["bytes_up"] for r in rounds],
        "bytes_down_per_round": [r["bytes_down"] for r in rounds],
        "mask_sparsity_per_round": [mask_sparsity(r.get("mask_id", "")) for r in rounds],
        "finished_at": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def export_cell(data: dict[str, Any], out: Path) -> dict[str, Any]:
    """Export the run's final model with its value codec; achieved sparsity from the weights."""
    import numpy as np

    from fedcore.params import prunable_names
    from fedprune.export import export_run, load_run_model

    run_dir = REPO / data["run_dir"] if not Path(data["run_dir"]).is_absolute() else Path(data["run_dir"])
    state = run_dir / "state"
    params = load_run_model(state).params
    names = prunable_names(params)
    pruned = sum(int(params[n].size - np.count_nonzero(params[n])) for n in names)
    total = sum(params[n].size for n in names)
    structured = data["granularity"] == "structured"
    info = export_run(state, run_dir / "model.fpm", values=data["values"], shrink=structured)
    lat = info["latency_ms"]
    return {"achieved_sparsity": pruned / total, "export": {
        "artifact_bytes": info["artifact_bytes"], "dense_fp32_bytes": info["dense_fp32_bytes"],
        "values": info["values"], "shrunk": info["shrunk"],
        "parameters_dense": info["dense"]["parameters"],
        "parameters_exported": info["exported"]["parameters"],
        "nonzero_exported": info["exported"]["nonzero"],
        "max_output_difference": info["max_output_difference"],
        "latency_ms": lat,
        "speedup_b1": lat["batch1"]["dense"] / lat["batch1"]["exported"],
        "speedup_b256": lat["batch256"]["dense"] / lat["batch256"]["exported"]}}


def run_central(cell: Cell, args: argparse.Namespace) -> dict[str, Any]:
    import numpy as np

    from fedcore.params import prunable_names
    from fedprune.centralized import train_centralized

    t0 = time.perf_counter()
    res = train_centralized(server_config(cell, args), clients=args.clients, alpha=0.5)
    rows = res.rounds
    # rows' "sparsity" covers the pruned tensors only; "achieved" covers every prunable
    # weight (excluded tensors count as dense), like the federated cells
    names = prunable_names(res.params)
    achieved = (sum(int(res.params[n].size - np.count_nonzero(res.params[n])) for n in names)
                / sum(res.params[n].size for n in names))
    acc = [r["accuracy"] for r in rows]
    best = max(range(len(acc)), key=lambda i: acc[i])
    return {**dataclasses.asdict(cell), "config_key": cell.config_key(args.clients, args.rounds),
            "run_wall_s": time.perf_counter() - t0, "final_accuracy": acc[-1],
            "best_accuracy": acc[best], "best_round": rows[best]["round"], "accuracy": acc,
            "sparsity_per_round": [r["sparsity"] for r in rows],
            "achieved_sparsity": achieved,
            "finished_at": time.strftime("%Y-%m-%d %H:%M:%S")}


_print_lock = threading.Lock()


def log(msg: str) -> None:
    with _print_lock:
        print(f"[pruning {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def describe(d: dict[str, Any]) -> str:
    s = f"acc {d['final_accuracy']:.4f} (best {d['best_accuracy']:.4f} @ r{d['best_round']})"
    if "bytes_up" in d:
        s += f", up {d['bytes_up'] / 1e6:.2f} MB, down {d['bytes_down'] / 1e6:.2f} MB"
    if d.get("cohort_differed"):
        s += f"; WARNING: cohort differed in rounds {d['cohort_differed']}"
    return s + f", {d['run_wall_s']:.0f}s"


def run_all(cells: list[Cell], args: argparse.Namespace, out: Path) -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {}
    todo_fed = []
    for cell in cells:
        cached = None if args.force else load_cached(out, cell, args)
        if cached is not None:
            results[cell.name] = cached
        elif cell.kind == "fed":
            todo_fed.append(cell)
    log(f"{len(cells)} cells, {len(results)} cached, {len(todo_fed)} simulations to run "
        f"with --jobs {args.jobs}")

    def one(cell: Cell) -> None:
        log(f"start {cell.name}")
        try:
            data = run_fed(cell, args, out)
        except Exception as exc:  # record and continue: a rerun retries the cell
            log(f"FAILED {cell.name}: {type(exc).__name__}: {exc}")
            return
        save(out, cell, data)
        results[cell.name] = data
        log(f"done  {cell.name}: {describe(data)}")

    with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
        for f in concurrent.futures.as_completed([pool.submit(one, c) for c in todo_fed]):
            f.result()
    # Quiet phase: exports (latency) and the in-process centralized baselines, one at a time.
    for cell in cells:
        data = results.get(cell.name)
        if cell.kind == "fed" and data is not None and "export" not in data and not args.no_export:
            try:
                data.update(export_cell(data, out))
                save(out, cell, data)
                e = data["export"]
                log(f"export {cell.name}: {e['artifact_bytes']} B, {e['parameters_exported']} "
                    f"params, speedup b1 {e['speedup_b1']:.2f}x b256 {e['speedup_b256']:.2f}x")
            except Exception as exc:
                log(f"export FAILED {cell.name}: {type(exc).__name__}: {exc}")
        elif cell.kind == "central" and data is None:
            data = run_central(cell, args)
            save(out, cell, data)
            results[cell.name] = data
            log(f"done  {cell.name}: {describe(data)}")
    return results


# -- report ----------------------------------------------------------------------------------
def _mb(x: float) -> str:
    return f"{x / 1e6:.2f}"


def _acc(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4f}"


def fed_table(rows: list[dict[str, Any]], ref_total: float, zref_total: float | None) -> str:
    head = ("| cell | scheme | granularity | sparsity (achieved) | values | schedule | final acc "
            "| best acc (round) | MB up | MB down | MB total | vs dense fp32 | vs dense fp32+zstd "
            "| artifact KB | params exported | latency b1 ms dense / exp | latency b256 ms "
            "dense / exp |")
    lines = [head, "|" + "---|" * head.count(" | ") + "---|"]
    for d in rows:
        tot = d["bytes_up"] + d["bytes_down"]
        e = d.get("export")
        ach = d.get("achieved_sparsity")
        sp = f"{d['sparsity']:g} ({ach:.3f})" if ach is not None else f"{d['sparsity']:g}"
        zr = f"{zref_total / tot:.2f}x" if zref_total else "n/a"
        if e:
            lat = e["latency_ms"]
            ex = (f"{e['artifact_bytes'] / 1e3:.1f} | {e['parameters_exported']:,}"
                  f"{'' if e['shrunk'] else ' (' + format(e['nonzero_exported'], ',') + ' nz)'} | "
                  f"{lat['batch1']['dense']:.3f} / {lat['batch1']['exported']:.3f} | "
                  f"{lat['batch256']['dense']:.2f} / {lat['batch256']['exported']:.2f}")
        else:
            ex = "n/a | n/a | n/a | n/a"
        lines.append(
            f"| `{d['name']}`{_cohort_flag(d)} | {d['scheme']} | {d['granularity']} | {sp} | {d['values']}"
            f"{'' if d['zstd'] else ' (no zstd)'} | {d['schedule'] or '-'} | "
            f"{_acc(d['final_accuracy'])} | {_acc(d['best_accuracy'])} ({d['best_round']}) | "
            f"{_mb(d['bytes_up'])} | {_mb(d['bytes_down'])} | {_mb(tot)} | "
            f"{ref_total / tot:.2f}x | {zr} | {ex} |")
    return "\n".join(lines)


def _cohort_flag(d: dict[str, Any]) -> str:
    """Mark a cell that did not run with the whole cohort in every round (or was not checked)."""
    if "cohort_differed" not in d:
        return " (cohort not checked)"
    return f" **(cohort differed in rounds {d['cohort_differed']})**" if d["cohort_differed"] else ""


def cohort_summary(fed: dict[str, dict[str, Any]], clients: int) -> str:
    bad = [f"`{n}`: cohort differed in rounds {d['cohort_differed']}"
           for n, d in sorted(fed.items()) if d.get("cohort_differed")]
    unchecked = [f"`{n}`" for n, d in sorted(fed.items()) if "cohort_differed" not in d]
    lines = []
    if bad:
        lines.append(f"**Cohort check FAILED** (selected == accepted == {clients} clients in "
                     "every round), these cells are not comparable with full runs: "
                     + "; ".join(bad) + ".")
    else:
        lines.append(f"Cohort check: every checked federated cell had selected == accepted == "
                     f"{clients} clients in every round.")
    if unchecked:
        lines.append("Not checked (cached before the check existed): " + ", ".join(unchecked) + ".")
    return " ".join(lines)


def _excluded(d: dict[str, Any]) -> str:
    return next((o.split("=", 1)[1] for o in d.get("overrides", ())
                 if o.startswith("pruning.exclude=")), "")


def _excl_note(fed_cell: dict[str, Any], central_cell: dict[str, Any]) -> str:
    """Flag a federated cell whose exclusions differ from its centralized counterpart's."""
    ex = _excluded(fed_cell)
    return f" ({ex} dense; not comparable)" if ex != _excluded(central_cell) else ""


def central_table(rows: list[dict[str, Any]], fed: dict[str, dict[str, Any]]) -> str:
    head = ("| centralized cell | granularity | sparsity (achieved) | schedule | final acc | "
            "best acc (round) | federated server-mask fp32: final acc | federated client-scores "
            "fp32: final acc |")
    lines = [head, "|" + "---|" * head.count(" | ") + "---|"]
    for d in rows:
        if d["granularity"] == "dense":
            fs = fed.get("dense-fp32")
            fa = _acc(fs["final_accuracy"]) + " (dense)" if fs else "n/a"
            fc = "-"
        else:
            key = f"{_short(d['granularity'])}-{d['sparsity']:g}-fp32-{d['schedule']}"
            fs, fcs = fed.get(f"sm-{key}"), fed.get(f"cs-{key}")
            fa = _acc(fs["final_accuracy"]) + _excl_note(fs, d) if fs else "n/a"
            fc = _acc(fcs["final_accuracy"]) + _excl_note(fcs, d) if fcs else "n/a"
        lines.append(f"| `{d['name']}` | {d['granularity']} | {d['sparsity']:g} "
                     f"({d['achieved_sparsity']:.3f}) | {d['schedule'] or '-'} | "
                     f"{_acc(d['final_accuracy'])} | {_acc(d['best_accuracy'])} "
                     f"({d['best_round']}) | {fa} | {fc} |")
    return "\n".join(lines)


def targets(fed: dict[str, dict[str, Any]], ref: dict[str, Any]) -> tuple[str, list[dict]]:
    ref_total = ref["bytes_up"] + ref["bytes_down"]
    dense_acc = ref["final_accuracy"]
    pruned = [d for d in fed.values() if d["scheme"] != "dense"]

    def mark(ok: bool) -> str:
        return "**met**" if ok else "**MISSED**"

    lines = ["| target | evidence | result |", "|---|---|---|"]
    found = []
    at90 = sorted((d for d in pruned if d["sparsity"] == 0.9),
                  key=lambda d: -(d["final_accuracy"] or 0))
    if at90:
        b = at90[0]
        ok = b["final_accuracy"] >= ACC_TARGET_90
        lines.append(f"| best scheme at 90% removed: final accuracy >= {ACC_TARGET_90} | best of "
                     f"{len(at90)} cells: `{b['name']}` {b['final_accuracy']:.4f} (best round "
                     f"{b['best_accuracy']:.4f}); dense FedAvg {dense_acc:.4f} | {mark(ok)} |")
        found.append({"target": "acc90", "ok": ok, "cell": b["name"]})
    at80 = [d for d in pruned if d["sparsity"] == 0.8 and d["role"] == "grid"]
    if at80:
        bad = [d for d in at80 if d["final_accuracy"] < dense_acc - WITHIN_DENSE_80]
        worst = min(at80, key=lambda d: d["final_accuracy"])
        tail = (f" ({len(bad)} of {len(at80)} cells below; worst `{worst['name']}` "
                f"{worst['final_accuracy']:.4f})" if bad else "")
        per = ", ".join(f"`{d['name'].rsplit('-', 1)[0]}` {d['final_accuracy']:.4f}"
                        for d in sorted(at80, key=lambda d: d["name"]))
        lines.append(f"| every scheme at 80%: final accuracy within {WITHIN_DENSE_80 * 100:.0f} "
                     f"points of dense FedAvg ({dense_acc:.4f}, so >= "
                     f"{dense_acc - WITHIN_DENSE_80:.4f}) | {per} | {mark(not bad)}{tail} |")
        found.append({"target": "within80", "ok": not bad, "bad": [d["name"] for d in bad]})
    for values, factor in BYTES_TARGET.items():
        cands = [d for d in pruned if d["values"] == values]
        good = [d for d in cands if d["final_accuracy"] >= BYTES_ACC]
        best_good = max(good, key=lambda d: ref_total / (d["bytes_up"] + d["bytes_down"]),
                        default=None)
        best_any = max(cands, key=lambda d: ref_total / (d["bytes_up"] + d["bytes_down"]),
                       default=None)
        if best_good is not None:
            r = ref_total / (best_good["bytes_up"] + best_good["bytes_down"])
            ev = f"best ratio at acc >= {BYTES_ACC}: `{best_good['name']}` {r:.2f}x " \
                 f"(acc {best_good['final_accuracy']:.4f})"
            ok = r >= factor
        else:
            ev = f"no {values} cell reaches final accuracy {BYTES_ACC}"
            ok = False
        near = sorted((d for d in cands if d["final_accuracy"] >= BYTES_ACC - 0.01),
                      key=lambda d: -ref_total / (d["bytes_up"] + d["bytes_down"]))
        if near and (best_good is None or near[0]["name"] != best_good["name"]):
            n = near[0]
            ev += (f"; best at acc >= {BYTES_ACC - 0.01:.2f}: `{n['name']}` "
                   f"{ref_total / (n['bytes_up'] + n['bytes_down']):.2f}x (acc "
                   f"{n['final_accuracy']:.4f})")
        if best_any is not None:
            ev += (f"; largest ratio overall: `{best_any['name']}` "
                   f"{ref_total / (best_any['bytes_up'] + best_any['bytes_down']):.2f}x (acc "
                   f"{best_any['final_accuracy']:.4f})")
        lines.append(f"| total bytes >= {factor:g}x below dense fp32 with {values} values, at "
                     f"final accuracy >= {BYTES_ACC} | {ev} | {mark(ok)} |")
        found.append({"target": f"bytes-{values}", "ok": ok})
    return "\n".join(lines), found


MARKERS = {("server-mask", "unstructured"): "o", ("server-mask", "structured"): "s",
           ("client-scores", "unstructured"): "^", ("client-scores", "structured"): "D"}
COLORS = {0.5: "#4c72b0", 0.8: "#55a868", 0.9: "#dd8452", 0.95: "#c44e52"}


def plot_bytes(fed: dict[str, dict[str, Any]], ref: dict[str, Any], path: Path) -> None:
    """Final accuracy vs total bytes (log x): all cells on top, a zoom on >= 0.9 below."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    ref_total = ref["bytes_up"] + ref["bytes_down"]
    fig, axes = plt.subplots(2, 1, figsize=(11.5, 10), sharex=True,
                             gridspec_kw={"height_ratios": [1, 1.2]})
    accs = [d["final_accuracy"] for d in fed.values()]
    limits = [(max(0.0, min(accs) - 0.03), 1.0), (0.915, 0.965)]
    for panel, (ax, ylim) in enumerate(zip(axes, limits)):
        for d in fed.values():
            tot = (d["bytes_up"] + d["bytes_down"]) / 1e6
            acc = d["final_accuracy"]
            if d["scheme"] == "dense":
                ax.scatter(tot, acc, marker="*", s=220, color="black",
                           facecolors="black" if d["values"] == "fp32" else "none", zorder=4)
                below = d["name"] == "dense-fp32"
                ax.annotate(d["name"], (tot, acc), fontsize=7, ha="right" if below else "left",
                            xytext=(-4, -12) if below else (4, 5), textcoords="offset points")
                continue
            m = MARKERS[(d["scheme"], d["granularity"])]
            c = COLORS.get(d["sparsity"], "gray")
            study = d["role"] != "grid"
            ax.scatter(tot, acc, marker=m, s=40 if study else 65,
                       facecolors=c if d["values"] == "fp32" else "none", edgecolors=c,
                       linewidths=1.5, alpha=0.55 if study else 1.0, zorder=3)
            if panel == 1 and ylim[0] <= acc <= ylim[1] and d["granularity"] == "unstructured" \
                    and d["sparsity"] == 0.9:
                ax.annotate(d["schedule"], (tot, acc), fontsize=6, color="dimgray",
                            xytext=(4, -3), textcoords="offset points")
        for factor, style in ((5, "--"), (15, ":")):
            ax.axvline(ref_total / factor / 1e6, color="gray", ls=style, lw=1)
            ax.text(ref_total / factor / 1e6, 0.02, f"{factor}x below dense fp32 ",
                    transform=ax.get_xaxis_transform(), fontsize=8, color="gray", rotation=90,
                    va="bottom", ha="right")
        ax.axhline(ACC_TARGET_90, color="gray", ls="-.", lw=1)
        ax.set_xscale("log")
        ax.set_ylim(*ylim)
        ax.grid(alpha=0.3, which="both")
        ax.set_ylabel("final test accuracy (round 30)" + (" - zoom" if panel else ""))
    axes[0].set_title("W1 federated pruning: final accuracy vs total traffic "
                      "(10 clients, 30 rounds; dash-dot = 0.95)")
    axes[1].set_xlabel("total bytes up + down over 30 rounds (MB, log scale)")
    handles = [Line2D([], [], marker=m, ls="", color="k", markerfacecolor="k",
                      label=f"{s} / {g}") for (s, g), m in MARKERS.items()]
    handles += [Line2D([], [], marker="o", ls="", color=c, label=f"sparsity {s:g}")
                for s, c in COLORS.items()]
    handles += [Line2D([], [], marker="o", ls="", color="k", markerfacecolor="k",
                       label="fp32 values (filled)"),
                Line2D([], [], marker="o", ls="", color="k", markerfacecolor="none",
                       label="int8 values (hollow)"),
                Line2D([], [], marker="o", ls="", color="k", alpha=0.5,
                       label="schedule study (faded;\nlabelled in the zoom)"),
                Line2D([], [], marker="*", ls="", color="k", markersize=10,
                       label="dense FedAvg")]
    axes[0].legend(handles=handles, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_sparsity(fed: dict[str, dict[str, Any]], central: list[dict[str, Any]],
                  ref: dict[str, Any], schedule: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), sharey=True)
    for ax, gran in zip(axes, ("unstructured", "structured")):
        series = {f"federated {s}, {v}": [d for d in fed.values() if d["scheme"] == s
                                            and d["granularity"] == gran and d["values"] == v
                                            and d["schedule"] == schedule]
                  for s in ("server-mask", "client-scores") for v in ("fp32", "int8")}
        series["centralized (server-mask)"] = [d for d in central if d["granularity"] == gran
                                               and d["schedule"] == schedule]
        for label, rows in series.items():
            rows = sorted(rows, key=lambda d: d["sparsity"])
            if rows:
                ax.plot([d["sparsity"] for d in rows], [d["final_accuracy"] for d in rows],
                        marker="o", ls="--" if "int8" in label else "-", label=label)
        ax.axhline(ref["final_accuracy"], color="k", lw=1, label="dense FedAvg")
        title = f"{gran} ({schedule})"
        if gran == "structured" and STRUCT_EXCLUDE:
            title += f"\n{', '.join(STRUCT_EXCLUDE)} kept dense (federated and centralized)"
        ax.set(title=title, xlabel="target sparsity (nominal, of the pruned tensors)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("final test accuracy")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def report(results: dict[str, dict[str, Any]], args: argparse.Namespace, out: Path,
           command: str) -> str:
    from federation import machine

    fed = {k: v for k, v in results.items() if v["kind"] == "fed"}
    central = [v for v in results.values() if v["kind"] == "central"]
    ref = fed.get("dense-fp32")
    if ref is None:
        return "no dense reference yet"
    zref = fed.get("dense-fp32+zstd")
    ref_total = ref["bytes_up"] + ref["bytes_down"]
    zref_total = zref["bytes_up"] + zref["bytes_down"] if zref else None

    def order(d: dict[str, Any]) -> tuple:
        return (d["sparsity"], d["scheme"], d["granularity"], d["values"])

    ctx = [fed[n] for n in ("dense-fp32", "dense-fp32+zstd", "dense-int8+zstd") if n in fed]
    grid = sorted((d for d in fed.values() if d["role"] == "grid"), key=order)
    study = sorted((d for d in fed.values() if d["role"] == "study"
                    or (d["role"] == "grid" and d["sparsity"] == 0.9
                        and d["granularity"] == "unstructured")),
                   key=lambda d: (d["scheme"], d["values"], d["schedule"]))
    central = sorted(central, key=lambda d: (d["granularity"], d["sparsity"], d["schedule"]))
    targets_md, found = targets(fed, ref)
    png_bytes = args.plot_dir / f"pruning-accuracy-vs-bytes{args.suffix}.png"
    png_sparsity = args.plot_dir / f"pruning-accuracy-vs-sparsity{args.suffix}.png"
    plot_bytes(fed, ref, png_bytes)
    plot_sparsity(fed, central, ref, args.schedule, png_sparsity)
    info = machine()
    sched_md = "\n".join(f"- `{k}`: {s.note}; keys at 90%: "
                         f"`{json.dumps(s.keys(0.9, args.rounds))}`"
                         for k, s in SCHEDULES.items() if k in (args.schedule, *args.study))
    md = [f"Command: `{command}`", "",
          f"Machine: {info['cpu']}, nproc {info['nproc']}; Python {info['python']}, torch "
          f"{info['torch']}, grpcio {info['grpc']}, Linux {info['kernel']}.", "",
          "```", "$ free -h", info["free"], "```", "",
          f"W1: {args.clients} clients x {args.rounds} rounds, FedAvg defaults. Byte reference "
          f"`dense-fp32` (fp32 both ways, zstd off): {_mb(ref_total)} MB total. Schedules:", "",
          sched_md, "",
          cohort_summary(fed, args.clients), "",
          "Dense FedAvg:", "", fed_table(ctx, ref_total, zref_total), "",
          f"Federated pruning grid (schedule `{args.schedule}`):", "",
          fed_table(grid, ref_total, zref_total), "",
          "Schedule study, unstructured at 90%:", "", fed_table(study, ref_total, zref_total), "",
          "Centralized baseline vs federated (fp32 wire):", "", central_table(central, fed), "",
          "Targets:", "", targets_md, ""]
    text = "\n".join(md) + "\n"
    (out / "summary.md").write_text(text)
    (out / "summary.json").write_text(json.dumps(
        {"command": command, "machine": info, "targets": found,
         "cells": sorted(results.values(), key=lambda d: d["name"])}, indent=1))
    return text


# -- in-process exploration -------------------------------------------------------------------
# A fast, single-process FedAvg with the coordinator's math (example-weighted mean of the
# clients' deltas, server learning rate 1.0, the same PruningController, pruned weights of
# the global model zeroed after every round, clients seeded with ``seed + round``) and fp32
# values without a wire. It reproduces the accuracy curve of a real fp32 W1 run (checked
# against the cached gRPC cells, see the ``gRPC check`` column) in ~5 s instead of ~75 s, so
# it is used to search schedules; every number the targets are judged on comes from the
# real runs above. ``exclude`` leaves tensors out of pruning, like the coordinator's
# ``pruning.exclude`` key (the gRPC check matches a real cell only with the same exclusion).
def _explore_configs() -> list[tuple[str, dict[str, Any], tuple[str, ...]]]:
    out: list[tuple[str, dict[str, Any], tuple[str, ...]]] = []
    base = {"enabled": True, "scheme": "server-mask", "granularity": "unstructured"}
    for kind in ("cubic", "step"):
        for end, every in ((7, 1), (13, 3), (15, 2), (19, 3), (22, 3), (25, 3), (28, 3)):
            for frac in (0.0, 0.5, 0.65):
                keys = {"schedule": kind, "start_round": 1, "end_round": end,
                        "prune_every": every, "initial_sparsity": round(0.9 * frac, 4)}
                out.append((f"{kind} 1-{end}/{every} s0={frac:g}t", {**base, **keys,
                            "target_sparsity": 0.9}, ()))
    c25 = {"schedule": "cubic", "start_round": 1, "end_round": 25, "prune_every": 3,
           "initial_sparsity": 0.45, "target_sparsity": 0.9}
    out += [
        ("cubic25 refine 2", {**base, **c25, "refine_rounds": 2}, ()),
        ("cubic25 refine 4", {**base, **c25, "end_round": 22, "refine_rounds": 4}, ()),
        ("cubic25 global allocation", {**base, **c25, "allocation": "global"}, ()),
        ("cubic25 dense rounds 1-4, ramp 5-26", {**base, **c25, "start_round": 5,
                                                 "end_round": 26, "initial_sparsity": 0.0}, ()),
        ("one-shot 90% after round 3", {**base, "schedule": "one-shot", "start_round": 3,
                                        "end_round": 3, "target_sparsity": 0.9}, ()),
        ("cubic25 client-scores saliency", {**base, **c25, "scheme": "client-scores",
                                            "score_kind": "saliency"}, ()),
        ("cubic25 client-scores saliency vote", {**base, **c25, "scheme": "client-scores",
                                                 "score_kind": "saliency",
                                                 "combine": "vote"}, ()),
        ("cubic25 client-scores magnitude", {**base, **c25, "scheme": "client-scores",
                                             "score_kind": "magnitude"}, ()),
        ("cubic25 fc3 excluded, fc1+fc2 at 92.8% (= 90% overall)",
         {**base, **c25, "target_sparsity": 0.928, "initial_sparsity": 0.464}, ("fc3.weight",)),
    ]
    for t in (0.5, 0.8, 0.9):
        s = {**base, **c25, "granularity": "structured", "target_sparsity": t,
             "initial_sparsity": t / 2}
        out.append((f"structured columns {t:g}, cubic25", s, ()))
        out.append((f"structured columns {t:g} on fc2+fc3, fc1 (input pixels) excluded",
                    s, ("fc1.weight",)))
        out.append((f"structured rows {t:g}, cubic25", {**s, "structured_axis": "rows"}, ()))
    return out


def emulate(pruning: dict[str, Any], *, clients: int, rounds: int,
            exclude: tuple[str, ...] = (), seed: int = 0) -> dict[str, Any]:
    """One emulated federation (``fedprune.emulation``: the shared round runner and the
    clients' own code, in-process); ``seed`` is the model-init seed (``training.seed``) and
    the clients' seed (local shuffling uses ``seed + round``)."""
    import numpy as np

    from fedcore.datasets import DataSpec, load_client_data
    from fedprune.emulation import Emulation
    from fedserver.evaluation import ServerEvaluator

    config = config_io.build(ServerConfig, {
        "pruning": {**pruning, "exclude": list(exclude)}, "training": {"seed": seed},
        "round": {"rounds": rounds, "clients_per_round": clients}})
    data = [load_client_data(DataSpec(partition=i, num_partitions=clients, alpha=0.5))
            for i in range(clients)]
    emulation = Emulation(config, data, evaluator=ServerEvaluator(model_name="mlp",
                                                                  test_set="digits"),
                          client_seed=seed)
    records = emulation.run(rounds)
    acc = [r["accuracy"] for r in records]
    return {"accuracy": acc, "final_accuracy": acc[-1], "best_accuracy": max(acc),
            "mean_kept": float(np.mean([r["kept_fraction"] for r in records]))}


def explore(args: argparse.Namespace, out: Path) -> str:
    import torch

    torch.set_num_threads(1)
    cache = out / "explore"
    cache.mkdir(parents=True, exist_ok=True)
    grpc = {}
    for path in (out / "cells").glob("*.json"):
        d = json.loads(path.read_text())
        if d["kind"] == "fed" and d["values"] == "fp32" and d["scheme"] != "dense":
            keys = {o.split("=", 1)[0].removeprefix("pruning."): o.split("=", 1)[1]
                    for o in d["overrides"] if o.startswith("pruning.")}
            grpc[json.dumps(keys, sort_keys=True)] = d
    head = ("| configuration | pruning keys | excluded | final acc | best acc | mean fraction "
            "of weights sent | gRPC check |")
    lines = [head, "|" + "---|" * head.count(" | ") + "---|"]
    for label, keys, exclude in _explore_configs():
        ident = json.dumps({"keys": keys, "exclude": exclude, "clients": args.clients,
                            "rounds": args.rounds}, sort_keys=True)
        name = re.sub(r"[^\w.-]+", "_", label)
        path = cache / f"{name}.json"
        try:
            res = json.loads(path.read_text())
            assert res["ident"] == ident
        except (FileNotFoundError, json.JSONDecodeError, AssertionError, KeyError):
            t0 = time.perf_counter()
            res = {"ident": ident, **emulate(keys, clients=args.clients, rounds=args.rounds,
                                             exclude=exclude)}
            path.write_text(json.dumps(res))
            log(f"explore {label}: final {res['final_accuracy']:.4f} best "
                f"{res['best_accuracy']:.4f} ({time.perf_counter() - t0:.0f}s)")
        as_str = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in keys.items()}
        match = next((d for k, d in grpc.items()
                      if json.loads(k).get("exclude", "") == ",".join(exclude) and all(
            json.loads(k).get(kk) == vv for kk, vv in as_str.items())
            and json.loads(k).get("refine_rounds", "0") == as_str.get("refine_rounds", "0")), None)
        check = "-"
        if match is not None:
            diff = max(abs(a - b) for a, b in zip(match["accuracy"], res["accuracy"]))
            check = f"`{match['name']}`: max diff {diff:.4f}"
        short = {k: v for k, v in keys.items() if k not in ("enabled",)}
        lines.append(f"| {label} | `{json.dumps(short)}` | {', '.join(exclude) or '-'} | "
                     f"{res['final_accuracy']:.4f} | {res['best_accuracy']:.4f} | "
                     f"{res['mean_kept']:.3f} | {check} |")
    text = "\n".join(lines) + "\n\n" + _seed_table(args, cache)
    (out / "explore.md").write_text(text)
    return text


SEED_CONFIGS: dict[str, tuple[float, str]] = {
    "dense": (0.0, ""), "80% cubic25": (0.8, "cubic25"), "90% cubic15": (0.9, "cubic15"),
    "90% cubic25": (0.9, "cubic25"), "90% cubic28": (0.9, "cubic28")}
SEEDS = (0, 1, 2, 3)


def _seed_table(args: argparse.Namespace, cache: Path) -> str:
    """Seed robustness: server-mask unstructured, final accuracy per model/client seed."""
    head = "| configuration | " + " | ".join(f"seed {s}" for s in SEEDS) + " | mean |"
    lines = [head, "|" + "---|" * (len(SEEDS) + 2)]
    for label, (target, sched) in SEED_CONFIGS.items():
        keys: dict[str, Any] = {"enabled": False} if not sched else {
            "enabled": True, "scheme": "server-mask", "granularity": "unstructured",
            **{k: v for k, v in SCHEDULES[sched].keys(target, args.rounds).items()}}
        accs = []
        for seed in SEEDS:
            ident = json.dumps({"keys": keys, "seed": seed, "clients": args.clients,
                                "rounds": args.rounds}, sort_keys=True)
            slug = re.sub(r"[^\w.-]+", "_", label)
            path = cache / f"seed-{slug}-{seed}.json"
            try:
                res = json.loads(path.read_text())
                assert res["ident"] == ident
            except (FileNotFoundError, json.JSONDecodeError, AssertionError, KeyError):
                res = {"ident": ident, **emulate(keys, clients=args.clients, rounds=args.rounds,
                                                 seed=seed)}
                path.write_text(json.dumps(res))
                log(f"explore seeds {label} seed {seed}: final {res['final_accuracy']:.4f}")
            accs.append(res["final_accuracy"])
        lines.append(f"| {label} | " + " | ".join(f"{a:.4f}" for a in accs)
                     + f" | {sum(accs) / len(accs):.4f} |")
    return ("Seed robustness (emulated, server-mask unstructured, final accuracy; seed = "
            "model-init and client seed, the W1 data split is fixed):\n\n"
            + "\n".join(lines) + "\n")


# -- main ------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--out", default=None, help="cache / run folder (bench/out/pruning)")
    p.add_argument("--plot-dir", default=None, help="where the PNGs go (docs/)")
    p.add_argument("--clients", type=int, default=10)
    p.add_argument("--rounds", type=int, default=30)
    p.add_argument("--jobs", type=int, default=1, help="simulations in parallel (1)")
    p.add_argument("--schedule", default=MAIN_SCHEDULE, choices=sorted(SCHEDULES))
    p.add_argument("--study", default=",".join(STUDY),
                   help="comma-separated schedules for the 90%% study ('' for none)")
    p.add_argument("--sparsities", default=",".join(f"{s:g}" for s in SPARSITIES))
    p.add_argument("--values", default=",".join(VALUES))
    p.add_argument("--only", default="", help="regex on cell names (the reference always runs)")
    p.add_argument("--quick", action="store_true",
                   help="smoke test: 4 clients, 6 rounds, 90%% only, no study / context cells, "
                        "output under bench/out/pruning-quick and docs PNGs suffixed -quick")
    p.add_argument("--force", action="store_true", help="ignore cached cells")
    p.add_argument("--no-export", action="store_true")
    p.add_argument("--list", action="store_true", help="list the cells and exit")
    p.add_argument("--explore", action="store_true",
                   help="run only the in-process schedule exploration (fp32, no wire) and "
                        "write <out>/explore.md")
    p.add_argument("--timeout", type=float, default=1800.0)
    args = p.parse_args(argv)
    if args.quick:
        args.clients, args.rounds = 4, 6
        args.sparsities, args.study = "0.9", ""
    args.sparsities = [float(s) for s in args.sparsities.split(",") if s]
    args.values = [v for v in args.values.split(",") if v]
    args.study = [s for s in args.study.split(",") if s]
    for s in args.study:
        if s not in SCHEDULES:
            p.error(f"--study: unknown schedule {s!r} (known: {sorted(SCHEDULES)})")
    default_out = "pruning-quick" if args.quick else "pruning"
    out = Path(args.out or REPO / "bench" / "out" / default_out)
    args.plot_dir = Path(args.plot_dir or (out if args.quick else REPO / "docs"))
    args.suffix = "-quick" if args.quick else ""
    cells = all_cells(args)
    for c in cells:  # validate every configuration before starting anything
        try:
            server_config(c, args)
        except (ValueError, config_io.ConfigError) as exc:
            p.error(f"cell {c.name}: {exc}")
    if args.list:
        for c in cells:
            cached = load_cached(out, c, args) is not None
            print(f"{c.name:40s} {c.role:9s} {'cached' if cached else 'todo'}  "
                  f"{' '.join(c.overrides)}")
        return 0
    out.mkdir(parents=True, exist_ok=True)
    if args.explore:
        print(explore(args, out))
        return 0
    args.plot_dir.mkdir(parents=True, exist_ok=True)
    command = "python bench/pruning.py " + " ".join(
        a if re.fullmatch(r"[\w@%+=:,./-]+", a) else repr(a)
        for a in (sys.argv[1:] if argv is None else argv))
    t0 = time.perf_counter()
    results = run_all(cells, args, out)
    text = report(results, args, out, command.strip())
    print(text)
    log(f"finished in {time.perf_counter() - t0:.0f}s; summary {out / 'summary.md'}")
    missing = [c.name for c in cells if c.name not in results]
    if missing:
        log(f"{len(missing)} cell(s) missing (failed?): {', '.join(missing)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
