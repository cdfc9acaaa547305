"""``fedprune``: run a local federation, plot a report, export a trained model.

    fedprune simulate                      # W1: 10 clients, 30 rounds, digits, preset compact
    fedprune simulate --preset fedavg-dense    # the dense float32 FedAvg baseline
    fedprune simulate --clients 3 --rounds 5 --set wire.uplink=int8
    fedprune report runs/latest/report.json
    fedprune export runs/latest --out model.fpm --values int8 --shrink
    fedprune export runs/latest --out model.fpm --values clustered
    fedprune privacy --target-epsilon 8 --rounds 30        # noise multiplier for a budget
    fedprune certs --out certs --clients 3   # development CA, server and client certificates
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from fedcore import config as config_io
from fedprune.run_presets import DEFAULT_PRESET, RUN_PRESETS


def _simulate(ns: argparse.Namespace) -> int:
    from fedclient.config import AttackConfig
    from fedclient.fault import FaultConfig
    from fedprune.simulate import (
        RunFolderNotEmpty,
        SimulationSpec,
        check_run_folder,
        run_simulation,
        simulation_server_config,
    )
    from fedprune.simulate_config import SimulateKeys

    sim_keys = [s for s in ns.set if s.startswith("simulate.")]
    overrides = [s for s in ns.set if not s.startswith("simulate.")]
    if ns.client_pool is not None:
        sim_keys.append(f"simulate.clients_per_process={ns.client_pool}")
    if ns.ray is not None:
        sim_keys += ["simulate.ray=true", f"simulate.ray_address={ns.ray}"]
    if ns.rounds is not None:
        overrides.append(f"round.rounds={ns.rounds}")
    try:
        sim = config_io.load(SimulateKeys, overrides=sim_keys, environ={}).simulate
        server = simulation_server_config(path=ns.config, overrides=overrides,
                                          clients=ns.clients, data_source=ns.data,
                                          val_fraction=ns.val_fraction,
                                          base=RUN_PRESETS[ns.preset].overrides)
    except config_io.ConfigError as exc:
        print(f"fedprune simulate: {exc}", file=sys.stderr)
        return 2
    out = Path(ns.out or f"runs/{time.strftime('%Y%m%d-%H%M%S')}")
    spec = SimulationSpec(out=out, clients=ns.clients, server=server, data_source=ns.data,
                          alpha=None if ns.iid else ns.alpha, progress=not ns.no_progress,
                          timeout_s=ns.timeout, overwrite=ns.overwrite,
                          attack=AttackConfig(behaviour=ns.attack),
                          attack_fraction=ns.attack_fraction, val_fraction=ns.val_fraction,
                          fault=FaultConfig(die_at=ns.kill_at, die_from_round=ns.kill_round),
                          fault_fraction=ns.kill_fraction, sim=sim)
    try:  # before anything is printed or started
        check_run_folder(out, overwrite=ns.overwrite)
    except RunFolderNotEmpty as exc:
        print(f"fedprune simulate: error: {exc}", file=sys.stderr)
        return 2
    print(f"fedprune: {ns.clients} clients x {server.round.rounds} rounds, preset {ns.preset} "
          f"({RUN_PRESETS[ns.preset].summary}) -> {out}/", file=sys.stderr)
    report = run_simulation(spec)
    totals = report["totals"]
    acc = totals["final_accuracy"]
    print(f"final accuracy {acc:.4f}" if acc is not None else "no evaluation",
          f"| rounds {totals['rounds_completed']} completed, {totals['rounds_failed']} failed",
          f"| {bytes_summary(totals)}", f"| wall {totals['wall_seconds']:.1f}s")
    print(f"report: {out / 'report.json'}  plot: {out / 'report.png'}")
    return 0 if report["finished"] else 1


def bytes_summary(totals: dict[str, Any]) -> str:
    """"moved X MB (up, down); dense float32 FedAvg: Y MB (Zx)" for a report's totals."""
    moved = totals["bytes_up"] + totals["bytes_down"]
    text = (f"moved {moved / 1e6:.2f} MB (up {totals['bytes_up'] / 1e6:.2f}, down "
            f"{totals['bytes_down'] / 1e6:.2f})")
    dense = totals.get("dense_fp32_bytes") or 0
    if dense and moved:
        text += f"; dense float32 FedAvg: {dense / 1e6:.1f} MB ({dense / moved:.1f}x more)"
    return text


def _report(ns: argparse.Namespace) -> int:
    from fedprune.plot import plot_report
    from fedserver.fairness import worst_clients_lines

    path = Path(ns.report)
    if path.is_dir():
        path = path / "report.json"
    try:
        report = json.loads(path.read_text())
        if not isinstance(report, dict) or not isinstance(report.get("rounds"), list):
            raise ValueError("it is not a fedprune report (no 'rounds' list)")
    except FileNotFoundError:
        print(f"fedprune report: {path} does not exist (give a report.json or a run folder "
              f"holding one)", file=sys.stderr)
        return 2
    except (OSError, ValueError) as exc:  # unreadable, not JSON, not a report
        print(f"fedprune report: cannot read {path}: {exc}", file=sys.stderr)
        return 2
    print(plot_report(report, Path(ns.out) if ns.out else path.with_suffix(".png")))
    print("\n".join(worst_clients_lines(report)))
    return 0


def _export(ns: argparse.Namespace) -> int:
    import json

    from fedprune.export import export_run

    state = Path(ns.run)
    if (state / "state").is_dir():
        state = state / "state"
    try:
        result = export_run(state, Path(ns.out), values=ns.values, shrink=ns.shrink,
                            clusters=ns.clusters)
    except (FileNotFoundError, ValueError) as exc:
        print(f"fedprune export: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=1))
    return 0


def _privacy(ns: argparse.Namespace) -> int:
    from fedserver.privacy import accountant as acc

    given = [ns.noise_multiplier is not None, ns.rounds is not None,
             ns.target_epsilon is not None]
    if sum(given) != 2:
        print("fedprune privacy: give exactly two of --noise-multiplier, --rounds, "
              "--target-epsilon", file=sys.stderr)
        return 2
    if not 0 < ns.delta < 1 or not 0 < ns.sampling_rate <= 1:
        print("fedprune privacy: --delta must be in (0, 1) and --sampling-rate in (0, 1]",
              file=sys.stderr)
        return 2
    where = f"delta {ns.delta:g}, sampling rate {ns.sampling_rate:g} (RDP, dp-accounting)"
    if ns.target_epsilon is None:
        eps = acc.epsilon_of([(ns.noise_multiplier, ns.sampling_rate)] * ns.rounds, ns.delta)
        print(f"epsilon {eps:.4f} after {ns.rounds} rounds at noise multiplier "
              f"{ns.noise_multiplier:g}; {where}")
    elif ns.noise_multiplier is None:
        z = acc.noise_for_epsilon(ns.target_epsilon, rounds=ns.rounds, delta=ns.delta,
                                  q=ns.sampling_rate)
        print(f"noise multiplier {z:.4f} keeps {ns.rounds} rounds within epsilon "
              f"{ns.target_epsilon:g}; {where}")
    else:
        n = acc.rounds_for_epsilon(ns.target_epsilon, noise_multiplier=ns.noise_multiplier,
                                   delta=ns.delta, q=ns.sampling_rate)
        print(f"{n} rounds at noise multiplier {ns.noise_multiplier:g} stay within epsilon "
              f"{ns.target_epsilon:g}; {where}")
    return 0


def _certs(ns: argparse.Namespace) -> int:
    from fedprune.certs import make_certs

    names = tuple(ns.names.split(",")) if ns.names else \
        tuple(f"client-{i}" for i in range(ns.clients))
    if ns.names and len(names) != ns.clients:
        print(f"fedprune certs: --names lists {len(names)} names for --clients {ns.clients}",
              file=sys.stderr)
        return 2
    if ns.if_missing and (Path(ns.out) / "ca.pem").exists():
        print(f"fedprune certs: {ns.out}/ca.pem exists; kept the certificates there")
        return 0
    try:
        made = make_certs(Path(ns.out), clients=names, server_sans=tuple(ns.san))
    except OSError as exc:
        print(f"fedprune certs: cannot write {ns.out!r}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    print(f"CA {made.ca}; coordinator {made.server_cert} + {made.server_key}; "
          f"clients {', '.join(made.clients) or '(none)'} in {ns.out}/")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fedprune", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    sub = p.add_subparsers(dest="command", required=True)
    sim = sub.add_parser("simulate", help="run a coordinator and N client daemons locally")
    sim.add_argument("--clients", type=int, default=10, help="number of client daemons (10)")
    sim.add_argument("--rounds", type=int, help="rounds to run (config default: 30)")
    sim.add_argument("--preset", default=DEFAULT_PRESET, choices=sorted(RUN_PRESETS),
                     help=f"named configuration under --config/--set ({DEFAULT_PRESET}: "
                          f"{RUN_PRESETS[DEFAULT_PRESET].summary}; fedavg-dense: "
                          f"{RUN_PRESETS['fedavg-dense'].summary})")
    sim.add_argument("--client-pool", type=int, metavar="N",
                     help="host N virtual clients per OS process (same as --set "
                          "simulate.clients_per_process=N; default: one process per client)")
    sim.add_argument("--ray", nargs="?", const="", metavar="ADDRESS",
                     help="run the client pools as Ray actors (pip install fedprune[ray]); "
                          "ADDRESS joins a cluster (auto, ray://host:port), none starts Ray "
                          "locally")
    sim.add_argument("--config", help="coordinator TOML config (see fedserver --print-config)")
    sim.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                     help="override a coordinator config key, or a simulate.* key "
                          "(fedprune/simulate_config.py; repeatable)")
    sim.add_argument("--data", default="digits", choices=["digits", "synthetic"],
                     help="client data source (digits)")
    sim.add_argument("--alpha", type=float, default=0.5, help="Dirichlet non-IID alpha (0.5)")
    sim.add_argument("--iid", action="store_true", help="IID partitions instead of Dirichlet")
    sim.add_argument("--val-fraction", type=float, default=0.0, metavar="F",
                     help="fraction of each client's partition held out for federated "
                          "evaluation (0; needed with round.federated_eval_every > 0)")
    sim.add_argument("--out", help="run folder (default runs/<timestamp>); must be empty")
    sim.add_argument("--overwrite", action="store_true",
                     help="replace a non-empty --out folder (its previous run is deleted)")
    sim.add_argument("--timeout", type=float, default=3600.0, help="abort after seconds (3600)")
    sim.add_argument("--no-progress", action="store_true", help="no progress bar")
    sim.add_argument("--attack", default="", choices=["sign_flip", "scale", "label_flip",
                                                      "claim_examples"],
                     help="adversarial behaviour of the first ceil(F * N) clients")
    sim.add_argument("--attack-fraction", type=float, default=0.0, metavar="F",
                     help="fraction of adversarial clients (with --attack)")
    sim.add_argument("--kill-at", default="", choices=["train", "advertise_keys", "share_keys",
                                                       "masked_train", "unmask"],
                     help="SIGKILL the last ceil(F * N) clients on receiving this task kind")
    sim.add_argument("--kill-fraction", type=float, default=0.0, metavar="F",
                     help="fraction of clients killed (with --kill-at)")
    sim.add_argument("--kill-round", type=int, default=1, metavar="R",
                     help="they die at the first such task from round R on (default 1)")
    sim.set_defaults(func=_simulate)
    rep = sub.add_parser("report", help="plot a run's report.json as PNG")
    rep.add_argument("report", help="report.json or a run/state folder holding one")
    rep.add_argument("--out", help="PNG path (default: next to the report)")
    rep.set_defaults(func=_report)
    exp = sub.add_parser("export", help="write a run's final model as a compact artifact")
    exp.add_argument("run", help="run folder (from simulate) or a coordinator state folder")
    exp.add_argument("--out", default="model.fpm", help="artifact path (model.fpm)")
    exp.add_argument("--values", default="fp32",
                     choices=["fp32", "fp16", "bf16", "int8", "int4", "clustered"],
                     help="value format of the artifact (fp32); clustered: weight tensors "
                          "as codebook + packed indices (a FedCompress model, losslessly)")
    exp.add_argument("--clusters", type=int, default=256, choices=range(1, 257),
                     metavar="K", help="clustered: at most K centroids per tensor (256)")
    exp.add_argument("--shrink", action="store_true",
                     help="remove neurons that structured pruning made dead (Linear/ReLU chains)")
    exp.set_defaults(func=_export)
    prv = sub.add_parser("privacy", help="plan a DP run: epsilon, rounds or noise multiplier",
                         description="Give two of noise multiplier, rounds and target "
                         "epsilon; prints the third (user-level DP, RDP accountant).")
    prv.add_argument("--noise-multiplier", type=float, help="dp.noise_multiplier")
    prv.add_argument("--rounds", type=int, help="training rounds")
    prv.add_argument("--target-epsilon", type=float, help="dp.target_epsilon")
    prv.add_argument("--delta", type=float, default=1e-5, help="dp.delta (1e-5)")
    prv.add_argument("--sampling-rate", type=float, default=1.0,
                     help="Poisson sampling rate q of the population (1.0, no amplification: "
                     "what the coordinator's cohort selection gives today)")
    prv.set_defaults(func=_privacy)
    crt = sub.add_parser("certs", help="create a development CA, coordinator and client certs")
    crt.add_argument("--out", default="certs", help="folder to write PEM files into (certs)")
    crt.add_argument("--clients", type=int, default=0,
                     help="client certificates client-0..client-(N-1) (0)")
    crt.add_argument("--names", help="comma-separated client names instead of client-i")
    crt.add_argument("--san", action="append", default=[], metavar="NAME",
                     help="extra coordinator host name or IP (repeatable; localhost and "
                          "127.0.0.1 are always included)")
    crt.add_argument("--if-missing", action="store_true",
                     help="do nothing if the folder already holds ca.pem (a one-shot "
                          "container that must not replace certificates in use)")
    crt.set_defaults(func=_certs)
    return p


def main(argv: list[str] | None = None) -> int:
    ns = parser().parse_args(argv)
    if getattr(ns, "clients", 1) < (0 if ns.command == "certs" else 1):
        print("fedprune: --clients must be >= 1", file=sys.stderr)
        return 2
    return int(ns.func(ns))


if __name__ == "__main__":
    sys.exit(main())
