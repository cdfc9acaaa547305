"""Client-pool scale: ``fedprune simulate`` with C clients hosted by client pools.

Runs ``python -m fedprune simulate`` as a child (real processes, real gRPC over loopback)
and samples the process tree with psutil once a second: peak RSS of the coordinator and of
each pool process, and the CPU seconds of each. Prints one table row per run.

    nice -n 10 python bench/client_pool.py --clients 1000 --per-process 500 \\
        --cohort 100 --rounds 3

Data: the synthetic source (64 features, 10 classes) with 20 samples per client, IID
(digits has only 1437 training samples, fewer than 10 per client at C = 1000).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil


def _role(proc: psutil.Process) -> str:
    try:
        cmd = " ".join(proc.cmdline())
    except psutil.Error:
        return ""
    if "-m fedserver" in cmd:
        return "coordinator"
    if "fedclient.pool_cli" in cmd or "-m fedclient" in cmd:
        return "clients"
    return ""


def run(clients: int, per_process: int, cohort: int, rounds: int, extra: list[str]) -> dict:
    out = Path(tempfile.mkdtemp(prefix="pool-bench-")) / "run"
    cmd = [sys.executable, "-m", "fedprune", "simulate", "--clients", str(clients),
           "--client-pool", str(per_process), "--rounds", str(rounds), "--data", "synthetic",
           "--iid", "--no-progress", "--out", str(out),
           "--set", f"round.clients_per_round={cohort}", "--set", f"round.min_clients={cohort}",
           "--set", "round.selection_timeout_s=600", "--set", "round.deadline_s=600",
           "--set", f"simulate.synthetic_samples={20 * clients}",
           "--set", "evaluation.test_set=synthetic", *extra]
    start = time.monotonic()
    sim = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak: dict[int, tuple[str, int]] = {}
    cpu: dict[int, float] = {}
    root = psutil.Process(sim.pid)
    while sim.poll() is None:
        for p in root.children(recursive=True):
            role = _role(p)
            if not role:
                continue
            try:
                rss = p.memory_info().rss
                t = p.cpu_times()
            except psutil.Error:
                continue
            peak[p.pid] = (role, max(rss, peak.get(p.pid, ("", 0))[1]))
            cpu[p.pid] = t.user + t.system
        time.sleep(1.0)
    output = sim.stdout.read() if sim.stdout else ""
    wall = time.monotonic() - start
    report = json.loads((out / "report.json").read_text()) if (out / "report.json").exists() \
        else {"rounds": []}
    by_role = {r: [pid for pid, (role, _) in peak.items() if role == r]
               for r in ("coordinator", "clients")}
    return {
        "clients": clients, "per_process": per_process, "cohort": cohort,
        "exit": sim.returncode, "wall_s": wall,
        "rounds": [(r["round"], r["status"], r["accepted"], round(r["timings"]["wall"], 2))
                   for r in report["rounds"]],
        "coordinator_peak_rss_mb": sum(peak[p][1] for p in by_role["coordinator"]) / 2**20,
        "coordinator_cpu_s": sum(cpu[p] for p in by_role["coordinator"]),
        "pool_processes": len(by_role["clients"]),
        "pool_peak_rss_mb": [round(peak[p][1] / 2**20) for p in by_role["clients"]],
        "pools_cpu_s": sum(cpu[p] for p in by_role["clients"]),
        "tail": output.strip().splitlines()[-2:],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, default=1000)
    ap.add_argument("--per-process", type=int, default=500)
    ap.add_argument("--cohort", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--set", action="append", default=[], help="extra simulate --set")
    ns = ap.parse_args()
    extra = [x for kv in ns.set for x in ("--set", kv)]
    print(json.dumps(run(ns.clients, ns.per_process, ns.cohort, ns.rounds, extra), indent=1))


if __name__ == "__main__":
    main()
