"""Does a downlink delta pay? W1 in-process (``fedprune.emulation``), payload bytes.

Workload W1 ``digits-mlp`` (docs/workloads.md), all 10 clients every round, 30 rounds, run
in one process by the shared round runner with the clients' own code
(``fedprune.emulation``: the same payload bytes as a real federation, without gRPC
framing). Each variant is ``fedprune simulate``'s ``compact`` run preset plus ``--set``
style overrides; it prints final / best accuracy and the payload bytes per direction.

    python bench/downlink_delta.py
    python bench/downlink_delta.py --variant "delta-int4=wire.downlink_delta=true"
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from fedcore import config as config_io  # noqa: E402
from fedprune.run_presets import RUN_PRESETS  # noqa: E402
from fedserver.config import ServerConfig  # noqa: E402

VARIANTS = {
    "compact": (),
    "full-clustered4": ("wire.downlink_delta=false",),
    "delta-int4": ("wire.downlink=int4",),
    "full-int4": ("wire.downlink=int4", "wire.downlink_delta=false"),
    "delta-int8": ("wire.downlink=int8",),
}


def emulate(overrides: tuple[str, ...], *, clients: int, rounds: int) -> dict[str, float]:
    from fedcore.datasets import DataSpec, load_client_data
    from fedprune.emulation import Emulation
    from fedserver.evaluation import ServerEvaluator

    config = config_io.load(ServerConfig, base=RUN_PRESETS["compact"].overrides,
                            overrides=[*overrides, f"round.rounds={rounds}",
                                       f"round.clients_per_round={clients}"])
    data = [load_client_data(DataSpec(partition=i, num_partitions=clients, alpha=0.5))
            for i in range(clients)]
    records = Emulation(config, data, evaluator=ServerEvaluator(model_name="mlp",
                                                                test_set="digits")).run(rounds)
    acc = [r["accuracy"] for r in records]
    return {"final": acc[-1], "best": max(acc), "up": sum(r["bytes_up"] for r in records),
            "down": sum(r["bytes_down"] for r in records)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clients", type=int, default=10)
    p.add_argument("--rounds", type=int, default=30)
    p.add_argument("--variant", action="append", default=[],
                   help="NAME=KEY=VALUE[,KEY=VALUE] (default: the built-in variants)")
    args = p.parse_args(argv)
    variants = dict(VARIANTS)
    if args.variant:
        variants = {v.split("=", 1)[0]: tuple(v.split("=", 1)[1].split(","))
                    for v in args.variant}
    print("| variant | overrides on `compact` | final acc | best acc | payload up | "
          "payload down | total | CPU s |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for name, overrides in variants.items():
        cpu = resource.getrusage(resource.RUSAGE_SELF)
        r = emulate(overrides, clients=args.clients, rounds=args.rounds)
        now = resource.getrusage(resource.RUSAGE_SELF)
        spent = now.ru_utime + now.ru_stime - cpu.ru_utime - cpu.ru_stime
        print(f"| {name} | {' '.join(overrides) or '-'} | {r['final']:.4f} | {r['best']:.4f} | "
              f"{r['up']:,} | {r['down']:,} | {r['up'] + r['down']:,} | {spent:.0f} |",
              flush=True)
    print(f"machine: nproc {os.cpu_count()}, load average "
          f"{' / '.join(f'{x:.1f}' for x in os.getloadavg())} (shared); {time.strftime('%F %T')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
