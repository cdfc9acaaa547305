"""One-command local federation: a coordinator and N client daemons as separate processes.

Each process is the real daemon (``python -m fedserver`` / ``python -m fedclient``) with
its own TOML config written to the run folder, talking real gRPC over loopback. The
coordinator binds a free port and publishes it in ``state/endpoint.json``. Progress is read
from the coordinator's ``report.json`` (written atomically after every round); at the end
the report is copied next to a PNG plot.

Run folder layout: ``server.toml``, ``clients/client-I.toml``, ``logs/*.log``, ``state/``
(SQLite, checkpoints, report.json), ``report.json`` and ``report.png``. A non-empty run
folder is refused (:class:`RunFolderNotEmpty`) unless ``overwrite`` is set: a previous
run's results are never deleted without being asked.

Clients are ``fedclient`` processes by default, or virtual clients of client pools
(``[simulate] clients_per_process > 1``: ``clients/pool-K.toml`` each run by
``python -m fedclient.pool_cli``, or Ray actors with ``simulate.ray``), see
:mod:`fedprune.simulate_config`. The coordinator holds one gRPC worker thread per
long-polling client, so for more clients than ``network.max_workers`` the simulation sizes
its thread pool to the clients (and says so), instead of letting selection see only the
first 32.

Start-up has no fixed time limit of its own: the coordinator is waited for as long as its
process is alive, within the run's ``timeout_s`` (round 1 counts from the first check-in,
so a slow machine costs time, not clients).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fedclient.config import AttackConfig, ClientConfig, PoolConfig
from fedclient.fault import FaultConfig
from fedcore import config as config_io
from fedcore.datasets import DataSpec
from fedprune.plot import plot_report
from fedprune.simulate_config import SimulateConfig
from fedserver.cli import ENV_PREFIX as SERVER_ENV_PREFIX
from fedserver.config import ServerConfig


class RunFolderNotEmpty(Exception):
    """The run folder holds files and ``overwrite`` was not asked for."""


@dataclass(frozen=True)
class SimulationSpec:
    out: Path
    clients: int = 10
    server: ServerConfig = field(default_factory=ServerConfig)
    data_source: str = "digits"
    alpha: float | None = 0.5
    progress: bool = True
    timeout_s: float = 3600.0
    overwrite: bool = False  # replace a non-empty ``out`` (otherwise refused)
    attack: AttackConfig = field(default_factory=AttackConfig)  # for the first clients only
    attack_fraction: float = 0.0  # ceil(fraction * clients) adversarial clients
    # Given the coordinator's port, the port clients dial instead (e.g. a byte-counting
    # relay in front of the coordinator, fedprune.wiretap); None: the coordinator's own.
    relay: Callable[[int], int] | None = None
    fault: FaultConfig = field(default_factory=FaultConfig)  # for the last clients only
    fault_fraction: float = 0.0  # ceil(fraction * clients) clients SIGKILL themselves
    val_fraction: float = 0.0  # of each partition, held out for federated evaluation
    sim: SimulateConfig = field(default_factory=SimulateConfig)




def server_config_for(spec_clients: int, base: ServerConfig, out: Path,
                      host: str = "127.0.0.1") -> ServerConfig:
    """The user's config with what a local simulation must own: state dir, port, cohort.
    (A waiting client costs the asyncio coordinator no thread, so nothing else is sized.)"""
    rounds, net = base.round, base.network
    cohort = min(rounds.clients_per_round, spec_clients)
    cap = base.auth.max_new_clients  # the shared-token Sybil cap must admit our own clients
    auth = (dataclasses.replace(base.auth, max_new_clients=spec_clients)
            if 0 < cap < spec_clients else base.auth)
    return dataclasses.replace(
        base, state_dir=str(out / "state"), auth=auth,
        network=dataclasses.replace(net, host=host, port=0),
        round=dataclasses.replace(rounds, clients_per_round=cohort,
                                  min_clients=min(rounds.min_clients, cohort)))


def matching_test_set(server: ServerConfig, *, data_source: str) -> ServerConfig:
    """The server config with a test set drawn like the clients' data: ``--data
    synthetic`` evaluates on fresh synthetic samples, not on digits (an accuracy on
    another task would be meaningless). Other settings are kept."""
    if data_source == "synthetic" and server.evaluation.test_set == "digits":
        return dataclasses.replace(server, evaluation=dataclasses.replace(
            server.evaluation, test_set="synthetic"))
    return server


def simulation_server_config(*, path: str | None, overrides: list[str], clients: int,
                             data_source: str, val_fraction: float,
                             base: Sequence[str] = ()) -> ServerConfig:
    """The coordinator config of ``fedprune simulate``: the run preset's items (``base``,
    below everything else), the user's file and overrides (and ``FEDSERVER_*`` variables),
    every client in every round (a single client is its own quorum), a test set matching
    the data; ConfigError (one line) when it cannot run."""
    cohort = [f"round.clients_per_round={clients}"] + (
        ["round.min_clients=1"] if clients == 1 else [])
    server = config_io.load(ServerConfig, path=path, env_prefix=SERVER_ENV_PREFIX,
                            base=base, overrides=[*cohort, *overrides])
    check_held_out_data(server, val_fraction=val_fraction)
    return matching_test_set(server, data_source=data_source)


def check_held_out_data(server: ServerConfig, *, val_fraction: float) -> None:
    """Federated evaluation scores the model on each client's held-out split; without one
    it would report accuracy on the training data. Raises ConfigError (one line)."""
    if not 0 <= val_fraction < 1:
        raise config_io.ConfigError(f"--val-fraction must be in [0, 1), got {val_fraction}")
    every = server.round.federated_eval_every
    if every > 0 and val_fraction == 0:
        raise config_io.ConfigError(
            f"round.federated_eval_every={every} evaluates on the clients' held-out data, "
            f"but --val-fraction is 0 (no client holds any out): pass e.g. --val-fraction 0.2")


def client_configs(spec: SimulationSpec, port: int, token: str) -> list[ClientConfig]:
    adversarial = math.ceil(spec.attack_fraction * spec.clients) if spec.attack.behaviour else 0
    doomed = spec.clients - (math.ceil(spec.fault_fraction * spec.clients)
                             if spec.fault.die_at else 0)
    slow = spec.sim.slow_clients(spec.clients)
    return [ClientConfig(server=f"{_dial_host(spec.sim)}:{port}", client_id=f"client-{i}",
                         token=token, data=_data_spec(spec, i),
                         attack=spec.attack if i < adversarial else AttackConfig(),
                         personal_state=str(spec.out / "clients" / f"client-{i}.personal.npz"),
                         fault=spec.fault if i >= doomed else FaultConfig(),
                         slowdown=spec.sim.slow_factor if i in slow else 1.0)
            for i in range(spec.clients)]


def _data_spec(spec: SimulationSpec, partition: int) -> DataSpec:
    return DataSpec(source=spec.data_source, partition=partition, num_partitions=spec.clients,
                    alpha=spec.alpha, synthetic_samples=spec.sim.synthetic_samples,
                    val_fraction=spec.val_fraction)


def _dial_host(sim: SimulateConfig) -> str:
    """The address clients dial: the bind host, or this machine's when bound to all."""
    if sim.coordinator_host not in ("0.0.0.0", "::", "[::]"):
        return sim.coordinator_host
    import socket

    return socket.gethostbyname(socket.gethostname())


def pool_configs(spec: SimulationSpec, port: int, token: str) -> list[PoolConfig]:
    """The client pools hosting ``spec.clients`` virtual clients, ``clients_per_process``
    each; a pool's virtual client p is exactly what ``client_configs`` gives client p."""
    configs = client_configs(spec, port, token)
    per, adversarial = spec.sim.clients_per_process, {c.client_id for c in configs
                                                        if c.attack.behaviour}
    pools = []
    for start in range(0, spec.clients, per):
        part = range(start, min(start + per, spec.clients))
        # the attack is per pool: keep honest and adversarial clients in separate pools
        for group in _split_by(part, lambda i: configs[i].client_id in adversarial):
            template = dataclasses.replace(configs[group[0]], client_id=f"pool-{group[0]}")
            pools.append(PoolConfig(
                client=template, partitions=tuple(group),
                slow_partitions=tuple(i for i in group if configs[i].slowdown > 1),
                slowdown=spec.sim.slow_factor, clients_per_channel=spec.sim.clients_per_channel))
    return pools


def _split_by(items: range, key: Any) -> list[list[int]]:
    groups: dict[bool, list[int]] = {}
    for i in items:
        groups.setdefault(bool(key(i)), []).append(i)
    return [g for g in groups.values() if g]


class _Processes:
    """Child processes that are always terminated on exit, whatever happens."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, module: str, config_path: Path) -> subprocess.Popen[bytes]:
        log = open(self.logs / f"{name}.log", "wb")
        # N trainers share this machine's cores: one intra-op thread each avoids thrashing.
        env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
        proc = subprocess.Popen([sys.executable, "-m", module, "--config", str(config_path)],
                                stdout=log, stderr=subprocess.STDOUT, env=env)
        log.close()
        self.procs[name] = proc
        return proc

    def stop_all(self, timeout: float = 10.0) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + timeout
        for proc in self.procs.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def check_run_folder(out: Path, *, overwrite: bool) -> bool:
    """Raise :class:`RunFolderNotEmpty` for a non-empty ``out`` unless ``overwrite``;
    True when ``out`` holds something (that ``overwrite`` allows replacing)."""
    used = out.exists() and (not out.is_dir() or any(out.iterdir()))
    if used and not overwrite:
        raise RunFolderNotEmpty(f"run folder {out} is not empty: choose another --out or "
                                f"pass --overwrite to replace it")
    return used


def prepare_run_folder(out: Path, *, overwrite: bool) -> None:
    """Create ``out`` empty; refuse a non-empty one unless ``overwrite``."""
    if check_run_folder(out, overwrite=overwrite):
        if out.is_dir():
            shutil.rmtree(out)
        else:
            out.unlink()
    (out / "clients").mkdir(parents=True)
    (out / "logs").mkdir()


def _wait_for_endpoint(state: Path, server: subprocess.Popen[bytes], *, deadline: float) -> int:
    path = state / "endpoint.json"
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"coordinator exited with code {server.returncode}; see its log")
        if path.exists():
            return int(json.loads(path.read_text())["port"])
        time.sleep(0.1)
    raise TimeoutError("coordinator did not publish its endpoint in time")


def _read_report(state: Path) -> dict[str, Any] | None:
    try:
        return json.loads((state / "report.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def run_simulation(spec: SimulationSpec) -> dict[str, Any]:
    """Run the federation to completion; returns the final report."""
    out = spec.out
    prepare_run_folder(out, overwrite=spec.overwrite)
    started = time.monotonic()
    server_cfg = server_config_for(spec.clients, spec.server, out, spec.sim.coordinator_host)
    (out / "server.toml").write_text(config_io.to_toml(server_cfg))
    procs = _Processes(out / "logs")
    ray_pools = None
    try:
        server = procs.start("server", "fedserver", out / "server.toml")
        port = _wait_for_endpoint(Path(server_cfg.state_dir), server,
                                  deadline=started + spec.timeout_s)
        token = server_cfg.auth.shared_token or next(iter(server_cfg.auth.tokens.values()))
        dial = spec.relay(port) if spec.relay is not None else port
        if spec.sim.ray:
            from fedprune.ray_pool import RayPools

            ray_pools = RayPools.start(pool_configs(spec, dial, token),
                                       address=spec.sim.ray_address,
                                       cpus_per_pool=spec.sim.ray_cpus_per_pool)
        else:
            _start_clients(spec, procs, dial, token)
        report = _follow(spec, server, Path(server_cfg.state_dir), server_cfg.round.rounds)
    finally:
        if ray_pools is not None:
            ray_pools.stop()
        procs.stop_all()
    (out / "report.json").write_text(json.dumps(report, indent=1))
    plot_report(report, out / "report.png")
    return report


def _start_clients(spec: SimulationSpec, procs: _Processes, port: int, token: str) -> None:
    """One process per client, or one per pool (configs written to ``clients/``)."""
    configs: list[tuple[str, str, Any]] = (
        [(c.client.client_id, "fedclient.pool_cli", c) for c in pool_configs(spec, port, token)]
        if spec.sim.pooled else
        [(c.client_id, "fedclient", c) for c in client_configs(spec, port, token)])
    for name, module, cfg in configs:
        path = spec.out / "clients" / f"{name}.toml"
        path.write_text(config_io.to_toml(cfg))
        procs.start(name, module, path)


def _follow(spec: SimulationSpec, server: subprocess.Popen[bytes], state: Path,
            rounds: int) -> dict[str, Any]:
    """Show progress until the coordinator exits; this loop is outside the round path."""
    from tqdm import tqdm

    bar = tqdm(total=rounds, unit="round", disable=not spec.progress, file=sys.stderr)
    deadline = time.monotonic() + spec.timeout_s
    report: dict[str, Any] | None = None
    try:
        while server.poll() is None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"simulation exceeded {spec.timeout_s:.0f}s")
            report = _read_report(state) or report
            if report and report["rounds"]:
                _update_bar(bar, report)
            time.sleep(0.25)
        report = _read_report(state) or report
        if report:
            _update_bar(bar, report)
    finally:
        bar.close()
    if server.returncode != 0 or report is None:
        raise RuntimeError(f"coordinator exited with code {server.returncode}; see logs/server.log")
    return report


def _update_bar(bar: Any, report: dict[str, Any]) -> None:
    last = report["rounds"][-1]
    totals = report["totals"]
    bar.n = min(bar.total, last["round"])
    acc = last["metrics"].get("accuracy")
    parts = [f"acc={acc:.3f}"] if acc is not None else []
    parts += [f"up={totals['bytes_up'] / 1e6:.1f}MB", f"down={totals['bytes_down'] / 1e6:.1f}MB"]
    bar.set_postfix_str(" ".join(parts))
    bar.refresh()
