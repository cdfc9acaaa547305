"""W1 bytes on the wire, per category, behind a byte-counting relay (``fedprune/wiretap.py``).

Workload W1 ``digits-mlp`` (docs/workloads.md): the real coordinator and N client daemons,
each its own OS process, real gRPC over loopback, started by
``fedprune.simulate.run_simulation``; ``round.min_clients`` = the cohort, so every round
waits for all N clients (a run whose cohort differed is flagged). The clients dial a relay
that forwards every byte to the coordinator and keeps a copy; after the run the copy is
parsed (HTTP/2 frames, HPACK, gRPC messages) and every byte is put in one category:
values, masks, model control, control, gRPC prefixes, HTTP/2 headers, HTTP/2 framing.

Configurations are named by ``--preset`` (``fedprune simulate --preset``: ``compact``, the
quickstart default, or ``fedavg-dense``) plus ``--set KEY=VALUE`` overrides, so a row is
exactly what a user runs.

    python bench/transport.py --preset compact
    python bench/transport.py --preset compact --set wire.downlink_delta=false
    python bench/transport.py --preset fedavg-dense --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from fedcore import config as config_io  # noqa: E402
from fedprune.simulate import SimulationSpec, run_simulation  # noqa: E402
from fedprune.wiretap import WireTap, analyse, table  # noqa: E402
from fedserver.config import ServerConfig  # noqa: E402


def preset_overrides(name: str) -> list[str]:
    """The run preset's items; ``default`` is the coordinator's own defaults (as on commits
    from before run presets existed, where this script measured the "before" row)."""
    if name == "default":
        return []
    try:
        from fedprune.run_presets import RUN_PRESETS
    except ImportError:  # before run presets existed: the coordinator's defaults
        if name not in ("fedavg-dense", "default"):
            raise SystemExit(f"unknown preset {name!r}") from None
        return []
    return list(RUN_PRESETS[name].overrides)


def run(args: argparse.Namespace) -> dict[str, Any]:
    overrides = [*preset_overrides(args.preset), *args.set,
                 f"round.clients_per_round={args.clients}", f"round.min_clients={args.clients}",
                 f"round.rounds={args.rounds}"]
    server = config_io.load(ServerConfig, overrides=overrides)
    taps: list[WireTap] = []

    def relay(port: int) -> int:
        taps.append(WireTap(port))
        return taps[-1].port

    out = Path(args.out or tempfile.mkdtemp(prefix="fedprune-transport-"))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    report = run_simulation(SimulationSpec(out=out / "run", clients=args.clients, server=server,
                                           progress=False, overwrite=True, relay=relay))
    wall = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    taps[0].close()
    time.sleep(0.5)  # let the pump threads see the closed sockets
    breakdown = analyse([(bytes(u), bytes(d)) for u, d in taps[0].connections])
    rounds = report["rounds"]
    differed = [r["round"] for r in rounds if not r["selected"] == r["accepted"] == args.clients]
    return {"preset": args.preset, "set": args.set, "clients": args.clients,
            "rounds": args.rounds, "final_accuracy": report["totals"]["final_accuracy"],
            "coordinator_bytes_up": report["totals"]["bytes_up"],
            "coordinator_bytes_down": report["totals"]["bytes_down"],
            "dense_fp32_bytes": report["totals"].get("dense_fp32_bytes"),
            "wire_up": breakdown.total["up"], "wire_down": breakdown.total["down"],
            "categories": {f"{d}/{c}": n for (d, c), n in breakdown.bytes.items()},
            "calls": dict(breakdown.calls),
            "request_header_bytes": dict(breakdown.header_block),
            "cohort_differed": differed, "wall_s": wall,
            "cpu_s_children": (after.ru_utime + after.ru_stime)
            - (before.ru_utime + before.ru_stime),
            "table": table(breakdown), "run": str(out / "run")}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="compact")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--clients", type=int, default=10)
    p.add_argument("--rounds", type=int, default=30)
    p.add_argument("--out", help="folder for the run and result.json (default: a temp dir)")
    args = p.parse_args(argv)
    result = run(args)
    print(f"preset {args.preset} {' '.join(args.set)}: {args.clients} clients x "
          f"{args.rounds} rounds, final accuracy {result['final_accuracy']}, "
          f"cohort {'full' if not result['cohort_differed'] else result['cohort_differed']}")
    print(f"coordinator count: up {result['coordinator_bytes_up']:,} B, down "
          f"{result['coordinator_bytes_down']:,} B; on the wire: up {result['wire_up']:,} B, "
          f"down {result['wire_down']:,} B, total "
          f"{result['wire_up'] + result['wire_down']:,} B")
    print(f"calls {result['calls']}; request HPACK bytes per call "
          + ", ".join(f"{m} {result['request_header_bytes'][m] / n:.1f}"
                      for m, n in result["calls"].items()))
    print(result["table"])
    print(f"wall {result['wall_s']:.1f} s, CPU of the child processes "
          f"{result['cpu_s_children']:.1f} s; machine: nproc {os.cpu_count()}, "
          f"{platform.processor() or platform.machine()}, load average "
          f"{' / '.join(f'{x:.1f}' for x in os.getloadavg())} (shared)")
    if args.out:
        Path(args.out, "result.json").write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
