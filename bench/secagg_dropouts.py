"""Secure aggregation with 0 %, 10 % and 30 % of the cohort SIGKILLed at each phase, between
real processes: is the secure sum still exact, and what does a death cost?

One cell = one federation of ``--clients`` real client daemons (``tests/secagg_client.py``:
the real daemon whose training returns a known update, so the plain sum of the quantized
updates is computable here) against a coordinator on loopback gRPC, two rounds. Round 1
loses nobody (the 0 % cell); from round 2, ``round(fraction * clients)`` of them die by
SIGKILL on receiving the phase's step (``[fault] die_at``). Each completed round's
``sum_sha256`` is compared with the plain sum of exactly the inputs the coordinator took:

- ``advertise_keys`` / ``share_keys`` / ``masked_train``: the dead never sent a masked
  input; after ``share_keys`` their pairwise masks are removed through the survivors'
  shares of their keys;
- ``unmask``: the dead did send a masked input, so it is in the sum; their self-masks are
  removed through the survivors' shares.

A cell whose round 2 did not complete, or whose cohort differs from the configured one, is
reported as such (never silently compared). Prints a markdown table and writes
``results.json``; docs/privacy.md records a run.

    OMP_NUM_THREADS=1 nice -n 10 python bench/secagg_dropouts.py --out bench/out/secagg-dropouts
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the known-update client daemon lives with the tests

from fedclient.fault import FaultConfig  # noqa: E402
from fedcore.secagg.fixed_point import ring_bits_for  # noqa: E402
from fedserver.aggregators.base import find_key  # noqa: E402
from tests import helpers as th  # noqa: E402
from tests import secagg_client as known  # noqa: E402

PHASES = ("advertise_keys", "share_keys", "masked_train", "unmask")
VALUE_BITS = 16


def run_cell(*, workdir: Path, clients: int, threshold: int, phase: str, fraction: float,
             step_deadline_s: float) -> dict[str, Any]:
    killed = round(fraction * clients)
    config = th.server_config(
        workdir / "state", "secagg.enabled=true", f"secagg.threshold={threshold}",
        f"secagg.value_bits={VALUE_BITS}", f"secagg.clip_range={known.clip_range(VALUE_BITS)!r}",
        f"secagg.step_deadline_s={step_deadline_s}", f"round.deadline_s={3 * step_deadline_s}",
        "round.selection_timeout_s=5", "round.rounds=2", f"round.clients_per_round={clients}",
        f"round.min_clients={threshold}", "evaluation.test_set=")
    port = th.free_port()
    ids = [f"c{i}" for i in range(clients)]
    doomed = set(ids[:killed])
    procs = known.spawn_clients(workdir, port, ids, token=th.TOKEN, faults={
        cid: FaultConfig(die_at=phase, die_from_round=2) for cid in doomed})
    try:
        th.wait_for(lambda: known.all_serving(workdir, ids), 600,
                    f"{clients} client daemons up")
        with th.running_server(th.with_port(config, port)) as server:
            coordinator = server.coordinator
            th.wait_for(lambda: coordinator.finished, 600, "two secure rounds")
            records = {r.round: r for r in coordinator.store.rounds()}
            shapes = {n: tuple(a.shape) for n, a in coordinator.model.params.items()}
            version = coordinator.model.version
    finally:
        th.stop(procs)
    died = sorted(c for c, p in zip(ids, procs, strict=True) if p.returncode == -9)
    ring_bits = ring_bits_for(VALUE_BITS, clients)
    rows = []
    for rnd in (1, 2):
        rec = records.get(rnd)
        row: dict[str, Any] = {"round": rnd, "killed": 0 if rnd == 1 else killed,
                               "phase": "" if rnd == 1 else phase}
        if rec is None:
            row.update(status="missing")
        else:
            taken = sorted(rec.client_metrics)
            row.update(status=rec.status, reason=rec.reason, selected=rec.selected,
                       inputs=len(taken), seconds=round(rec.closed - rec.started, 2),
                       bytes_up=rec.bytes_up, bytes_down=rec.bytes_down,
                       up_per_input=rec.bytes_up // max(1, len(taken)))
            if rec.status == "completed":
                row["exact"] = find_key(rec.measurements, "sum_sha256") == \
                    known.plain_sum_digest(taken, rnd, shapes, ring_bits)
            # the cohort the cell is about: all clients, minus the dead where they sent
            # nothing (``selected`` counts a phase's survivors, so it shrinks with deaths)
            expected_inputs = clients - (row["killed"] if phase != "unmask" else 0)
            row["cohort_as_configured"] = len(taken) == expected_inputs and (
                rec.selected == clients if rnd == 1 else set(died) == doomed)
        rows.append(row)
    return {"phase": phase, "fraction": fraction, "clients": clients, "threshold": threshold,
            "died": died, "final_version": version, "rounds": rows}


def _table(cells: list[dict[str, Any]]) -> str:
    lines = ["| killed at | killed | inputs summed | status | secure sum = plain sum | "
             "round s | up / client | cohort as configured |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    seen_baseline = False
    for cell in cells:
        for row in cell["rounds"]:
            if row["round"] == 1 and seen_baseline:
                continue  # one 0 % row: every cell's round 1 is the same experiment
            seen_baseline = seen_baseline or row["round"] == 1
            where = row["phase"] or "(nobody)"
            pct = f"{row['killed']} of {cell['clients']} ({100 * row['killed'] // cell['clients']} %)"
            exact = {True: "yes", False: "**NO**", None: "-"}[row.get("exact")]
            up = f"{row['up_per_input'] / 1e3:.1f} kB" if "up_per_input" in row else "-"
            lines.append(f"| {where} | {pct} | {row.get('inputs', '-')} | {row['status']} | {exact} | "
                         f"{row.get('seconds', '-')} | {up} | "
                         f"{'yes' if row.get('cohort_as_configured') else '**no**'} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--threshold", type=int, default=5,
                        help="t: shares needed to reconstruct (default 5 of 10)")
    parser.add_argument("--fractions", default="0.1,0.3")
    parser.add_argument("--phases", default=",".join(PHASES))
    parser.add_argument("--step-deadline-s", type=float, default=8.0)
    parser.add_argument("--out", type=Path, default=Path("bench/out/secagg-dropouts"))
    args = parser.parse_args(argv)
    phases = [p for p in args.phases.split(",") if p]
    unknown = sorted(set(phases) - set(PHASES))
    if unknown:
        parser.error(f"--phases: unknown {unknown}; choose from {list(PHASES)}")
    fractions = [float(f) for f in args.fractions.split(",") if f]
    args.out.mkdir(parents=True, exist_ok=True)
    cells = []
    for phase in phases:
        for fraction in fractions:
            started = time.monotonic()
            workdir = args.out / f"{phase}-{int(100 * fraction)}"
            if workdir.exists() and any(workdir.iterdir()):
                parser.error(f"--out: {workdir} is not empty; choose another --out")
            workdir.mkdir(parents=True)
            cell = run_cell(workdir=workdir, clients=args.clients, threshold=args.threshold,
                            phase=phase, fraction=fraction,
                            step_deadline_s=args.step_deadline_s)
            cell["wall_s"] = round(time.monotonic() - started, 1)
            cells.append(cell)
            r2 = cell["rounds"][1]
            print(f"{phase:>15} {int(100 * fraction):>3} %: round 2 {r2['status']}, "
                  f"exact={r2.get('exact')}, died={cell['died']}, {cell['wall_s']} s",
                  flush=True)
            (args.out / "results.json").write_text(json.dumps(cells, indent=2))
    print(_table(cells))
    bad = [c for c in cells for r in c["rounds"] if r.get("exact") is False]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
