"""W3 `many-clients`: one coordinator, C lightweight clients, one round, over loopback gRPC.

Workload (W3, docs/workloads.md): the real coordinator (``python -m fedserver``, its own
process, default network settings) and ``--drivers`` driver processes
(``bench/scale_clients.py``), each running C / drivers lightweight clients as coroutines
on one grpc.aio loop. Every client checks in (``Round`` long-poll), pulls the W1 model
(MLP 64-256-256-10, 85k parameters) and pushes one W1-sized update; the round needs all
C (``clients_per_round = min_clients = C``, selection timeout and deadline 600 s), so a
round whose cohort differs from C is reported as such. Update variants set both wire
directions: ``fp32`` (dense float32), ``int8`` (+zstd), ``sparse-clustered`` (90% of the
weights pruned by a server mask, k = 16 clusters, +zstd; the mask comes from a one-client
warm-up round 1 on the same state folder, then round 2 is the measured round).

Per cell it reports: time to selection (all C checked in), time from selection to the
round's close, updates aggregated per second (accepted / that time), coordinator peak
RSS (VmHWM) and CPU seconds (from ready to round closed), calls by method and status code
as the clients saw them, pushes by code and admission refusals as the coordinator counts
them (its Prometheus endpoint), and the cost per update split into decode and fold
(measured in this process with the coordinator's own round runner on the same payload)
and transport (the coordinator's CPU per update minus those two: gRPC, protobuf, the
event loop, handlers, bookkeeping).

Targets (printed met / missed): 10,000 clients in one round with zero failed calls,
coordinator RSS <= 600 MB, >= 1,000 updates/s for the sparse clustered update.

    nice -n 10 python bench/scale.py --clients 100 1000 3000 10000
    python bench/scale.py --clients 1000 --updates sparse-clustered --drivers 4
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.federation import CoordinatorMemory, machine  # noqa: E402
from fedcore import config as config_io  # noqa: E402
from fedcore.model_codec import Encoding, encode_model  # noqa: E402
from fedcore.pb import coordinator_pb2 as cpb  # noqa: E402
from fedserver.config import ServerConfig  # noqa: E402
from fedserver.coordinator import Coordinator  # noqa: E402
from fedserver.updates import PushTicket  # noqa: E402

TOKEN = "w3-bench-token"
UPDATES = {
    "fp32": ["wire.uplink=fp32", "wire.downlink=fp32", "wire.zstd=false"],
    "int8": ["wire.uplink=int8", "wire.downlink=int8", "wire.zstd=true"],
    "sparse-clustered": ["wire.uplink=clustered", "wire.downlink=clustered", "wire.zstd=true",
                         "wire.clusters=16", "pruning.enabled=true",
                         "pruning.target_sparsity=0.9", "pruning.schedule=one-shot",
                         "pruning.start_round=1", "pruning.end_round=1"],
}
WAIT_S = 600.0


def coordinator_config(state: Path, update: str, clients: int, rounds: int,
                       extra: list[str]) -> ServerConfig:
    overrides = [f"state_dir={state}", "network.port=0", "network.metrics_port=0",
                 f"auth.shared_token={TOKEN}", "auth.max_new_clients=0",  # C ids at once
                 "evaluation.test_set=", f"round.rounds={rounds}",
                 f"round.clients_per_round={clients}", f"round.min_clients={clients}",
                 f"round.selection_timeout_s={WAIT_S}", f"round.deadline_s={WAIT_S}",
                 *UPDATES[update], *extra]
    return config_io.load(ServerConfig, overrides=overrides, environ={})


class Coord:
    """The ``-m fedserver`` child: start, wait for its endpoint, read its report."""

    def __init__(self, config: ServerConfig, work: Path, *, nice: int,
                 resumes: bool = False) -> None:
        self.state = Path(config.state_dir)
        path = work / "server.toml"
        path.write_text(config_io.to_toml(config))
        (self.state / "endpoint.json").unlink(missing_ok=True)
        self.log = open(work / "server.log", "ab")
        self.proc = subprocess.Popen(
            ["nice", "-n", str(nice), sys.executable, "-m", "fedserver", "--config", str(path),
             # the measured cell resumes the warm-up's state with its own cohort size
             *(["--accept-config-change"] if resumes else [])],
            stdout=self.log, stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"})
        self.endpoint = self._wait(lambda: _json(self.state / "endpoint.json"), 120, "endpoint")
        self.ps = psutil.Process(self.proc.pid)
        self.cpu_ready = self.cpu()

    def _wait(self, predicate: Any, timeout: float, what: str) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            if self.proc.poll() is not None:
                raise RuntimeError(f"coordinator exited ({self.proc.returncode}) waiting for {what}")
            time.sleep(0.1)
        raise TimeoutError(f"coordinator: no {what} after {timeout:.0f} s")

    def cpu(self) -> float:
        t = self.ps.cpu_times()
        return t.user + t.system

    def round_record(self, rnd: int, timeout: float) -> dict[str, Any]:
        def done() -> dict[str, Any] | None:
            report = _json(self.state / "report.json") or {}
            return next((r for r in report.get("rounds", []) if r["round"] == rnd), None)
        return self._wait(done, timeout, f"round {rnd} in report.json")

    def metrics(self) -> dict[str, float]:
        url = f"http://127.0.0.1:{self.endpoint['metrics_port']}/metrics"
        text = urllib.request.urlopen(url, timeout=10).read().decode()
        out = {}
        for line in text.splitlines():
            if line.startswith(("fedprune_updates_total", "fedprune_rejected_calls_total")):
                name, value = line.rsplit(" ", 1)
                if float(value):
                    out[name] = float(value)
        return out

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def run_drivers(port: int, clients: int, drivers: int, work: Path, prefix: str,
                per_channel: int) -> dict[str, Any]:
    share = math.ceil(clients / drivers)
    procs, outs = [], []
    for d in range(drivers):
        first, count = d * share, min(share, clients - d * share)
        if count <= 0:
            break
        out = work / f"driver{d}.json"
        outs.append(out)
        procs.append(subprocess.Popen(
            [sys.executable, str(REPO / "bench" / "scale_clients.py"), "--target",
             f"127.0.0.1:{port}", "--token", TOKEN, "--prefix", prefix, "--first", str(first),
             "--count", str(count), "--clients-per-channel", str(per_channel), "--out", str(out)],
            env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}))
    cpu = 0.0
    for p in procs:
        ps = psutil.Process(p.pid)
        while p.poll() is None:
            try:
                t = ps.cpu_times()
                last = t.user + t.system
            except psutil.NoSuchProcess:
                break
            time.sleep(0.2)
        cpu += last
        if p.wait(WAIT_S + 120) != 0:
            raise RuntimeError(f"a driver exited with {p.returncode}")
    calls: dict[str, int] = {}
    done = 0
    for out in outs:
        stats = json.loads(out.read_text())
        done += stats["done"]
        for k, v in stats["calls"].items():
            calls[k] = calls.get(k, 0) + v
    return {"calls": calls, "done": done, "driver_cpu_s": cpu}


def fold_costs(config: ServerConfig, update: str, n: int = 200) -> dict[str, float]:
    """Decode and fold cost per update with the coordinator's own runner, on a payload of
    the run's codec under the run's mask (the next round of a copy of its state folder)."""
    scratch = Path(tempfile.mkdtemp(prefix="w3-fold-"))
    try:
        shutil.copytree(config.state_dir, scratch / "state")
        cfg = replace(config, state_dir=str(scratch / "state"),
                      round=replace(config.round, rounds=config.round.rounds + 1))
        coord = Coordinator(cfg)
        try:
            open_round, instr = coord._train, coord.instructions
            assert open_round is not None
            rng = np.random.default_rng(0)
            delta = {k: (rng.standard_normal(v.shape) * 0.01).astype(np.float32)
                     * (instr.masks[k] if instr.masks and k in instr.masks else 1)
                     for k, v in coord.model.params.items()}
            wire = cfg.wire
            data = cpb.UpdatePayload(delta=encode_model(
                delta, encoding=Encoding(wire.uplink, wire.clusters, wire.zstd),
                version=coord.model.version, mask_id=instr.mask_id,
                masks=instr.masks)).SerializeToString()
            coord.runner.fix_weight_cap(open_round, 10)
            decode = fold = 0.0
            for i in range(n):
                ticket = PushTicket(f"f{i}", "t", open_round.round, coord.model.version,
                                    instr.mask_id, instr.masks, 10, b"d" * 32, False, 0.0)
                t0 = time.process_time()
                decoded = coord.runner.decode(open_round, ticket, data)
                t1 = time.process_time()
                coord.runner.add(open_round, f"f{i}", decoded, claimed_examples=10, metrics={})
                decode, fold = decode + t1 - t0, fold + time.process_time() - t1
        finally:
            coord.close()
        return {"decode_ms": 1e3 * decode / n, "fold_ms": 1e3 * fold / n,
                "payload_bytes": len(data)}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def run_cell(clients: int, update: str, args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix=f"w3-{update}-{clients}-"))
    state = work / "state"
    rnd = 1
    if update == "sparse-clustered":  # round 1 with one client makes the 90% mask
        warm = Coord(coordinator_config(state, update, 1, 1, args.set), work, nice=args.nice)
        try:
            run_drivers(int(warm.endpoint["port"]), 1, 1, work, "warm", 1)
            warm.round_record(1, 120)
        finally:
            warm.stop()
        rnd = 2
    config = coordinator_config(state, update, clients, rnd, args.set)
    with CoordinatorMemory() as memory:
        coord = Coord(config, work, nice=args.nice, resumes=rnd > 1)
        spy = None
        if args.profile:  # py-spy: where the coordinator's CPU goes (collapsed stacks)
            spy = subprocess.Popen([str(Path(sys.executable).parent / "py-spy"), "record",
                                    "--pid", str(coord.proc.pid), "--format", "raw",
                                    "--rate", "50", "--nonblocking", "--output",
                                    str(args.profile / f"{update}-{clients}.txt")],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            started = time.time()
            drivers = run_drivers(int(coord.endpoint["port"]), clients, args.drivers, work, "c",
                                  args.clients_per_channel)
            record = coord.round_record(rnd, 60)
            cpu = coord.cpu() - coord.cpu_ready
            server_counts = coord.metrics()
        finally:
            if spy is not None:
                spy.send_signal(2)  # SIGINT: py-spy writes its output and exits
                spy.wait(60)
            coord.stop()
    costs = fold_costs(config, update)
    timings = record["timings"]
    close_s = timings["wall"] - timings["selection"]
    failed = {k: v for k, v in drivers["calls"].items() if not k.endswith(" OK")}
    cell = {
        "clients": clients, "update": update, "round": rnd, "status": record["status"],
        "selected": record["selected"], "accepted": record["accepted"],
        "cohort_differs": record["selected"] != clients or record["accepted"] != clients,
        "selection_s": timings["selection"], "close_s": close_s,
        "drivers_wall_s": time.time() - started,
        "updates_per_s": record["accepted"] / close_s if close_s > 0 else float("nan"),
        "coordinator_peak_rss_mb": memory.peak_bytes / 2**20,
        "coordinator_cpu_s": cpu, "driver_cpu_s": drivers["driver_cpu_s"],
        "calls": drivers["calls"], "failed_calls": failed, "server_counts": server_counts,
        "bytes_up": record.get("bytes_up"), "bytes_down": record.get("bytes_down"), **costs,
    }
    per_update_ms = 1e3 * cpu / max(1, record["accepted"])
    cell["cpu_per_update_ms"] = per_update_ms
    cell["transport_ms"] = per_update_ms - costs["decode_ms"] - costs["fold_ms"]
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    else:
        cell["work"] = str(work)
    return cell


def line(c: dict[str, Any]) -> str:
    flag = " COHORT DIFFERS" if c["cohort_differs"] else ""
    return (f"C={c['clients']:>6} {c['update']:<16} {c['status']} {c['accepted']}/{c['selected']}"
            f"{flag} | select {c['selection_s']:.1f}s close {c['close_s']:.1f}s "
            f"{c['updates_per_s']:.0f} upd/s | RSS {c['coordinator_peak_rss_mb']:.0f} MB "
            f"CPU {c['coordinator_cpu_s']:.1f}s (drivers {c['driver_cpu_s']:.1f}s) | per update "
            f"{c['cpu_per_update_ms']:.2f} ms = transport {c['transport_ms']:.2f} + decode "
            f"{c['decode_ms']:.2f} + fold {c['fold_ms']:.2f} | failed {c['failed_calls'] or 0} "
            f"| server {c['server_counts']}")


def targets(cells: list[dict[str, Any]]) -> list[str]:
    big = [c for c in cells if c["clients"] >= 10_000]
    sparse = [c for c in cells if c["update"] == "sparse-clustered"]
    out = []

    def verdict(name: str, ok: bool | None, detail: str) -> None:
        out.append(f"target {name}: {'not run' if ok is None else 'met' if ok else 'MISSED'}"
                   f" ({detail})")
    verdict("10,000 clients, one round, zero failed calls",
            all(c["status"] == "completed" and not c["failed_calls"] and not c["cohort_differs"]
                for c in big) if big else None,
            ", ".join(f"{c['update']}: {c['accepted']}/{c['clients']}, failed "
                      f"{sum(c['failed_calls'].values())}" for c in big))
    verdict("coordinator RSS <= 600 MB", all(c["coordinator_peak_rss_mb"] <= 600 for c in cells)
            if cells else None, f"max {max((c['coordinator_peak_rss_mb'] for c in cells), default=0):.0f} MB")
    verdict(">= 1,000 updates/s sparse clustered",
            all(c["updates_per_s"] >= 1000 for c in sparse) if sparse else None,
            ", ".join(f"C={c['clients']}: {c['updates_per_s']:.0f}/s" for c in sparse))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, nargs="+", default=[100, 1000, 3000, 10000])
    ap.add_argument("--updates", nargs="+", choices=sorted(UPDATES), default=list(UPDATES))
    ap.add_argument("--drivers", type=int, default=4)
    ap.add_argument("--clients-per-channel", type=int, default=25)
    ap.add_argument("--nice", type=int, default=0, help="niceness of the coordinator")
    ap.add_argument("--set", action="append", default=[], help="extra coordinator key=value")
    ap.add_argument("--profile", type=Path, default=None,
                    help="folder for py-spy profiles of the coordinator (raw collapsed stacks)")
    ap.add_argument("--keep", action="store_true", help="keep each cell's state and logs")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "scale.json")
    args = ap.parse_args(argv)
    print(f"machine: {machine()}", flush=True)
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    cells = []
    for clients in args.clients:
        for update in args.updates:
            cell = run_cell(clients, update, args)
            cells.append(cell)
            print(line(cell), flush=True)
    for verdict in targets(cells):
        print(verdict)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"machine": machine(), "cells": cells}, indent=1))
    return 0


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


if __name__ == "__main__":
    sys.exit(main())
