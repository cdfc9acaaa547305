"""The docker-compose deployment, without a Docker engine.

1. ``fedcore.healthcheck`` (the container healthcheck) against a real in-process server.
2. ``docker/docker-compose.yml`` and ``docker/Dockerfile``: structure, and every service's
   environment loads into a valid ``ServerConfig`` / ``ClientConfig``.
3. The whole stack as local processes (``tests/compose_runner.py``): each service's
   ENTRYPOINT + command + environment exactly as in the files, with only the coordinator's
   port (a free one) and its state volume (a tmp folder) rewritten; the coordinator's
   healthcheck command gates the clients (``depends_on: service_healthy``).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fedclient.config import ClientConfig
from fedcore import config as config_io
from fedcore import healthcheck
from fedserver.checkpoint import read_checkpoint
from fedserver.config import ServerConfig
from fedserver.server import SERVICE_NAME
from fedserver.transport import check_exposure
from tests import compose_runner as cr
from tests.helpers import read_json, running_server, server_config, stop, wait_for

CLIENTS = ("client-0", "client-1", "client-2")
CONTAINER_PORT = 50051


@pytest.fixture()
def compose() -> Any:
    pytest.importorskip("yaml", reason="PyYAML (a test extra) parses docker-compose.yml")
    return cr.load_compose()


def _service_env(compose: dict[str, Any], name: str, shell: dict[str, str] | None = None
                 ) -> dict[str, str]:
    return cr.service_environment(compose["services"][name], shell or {})


def _server_config(env: dict[str, str]) -> ServerConfig:
    return config_io.load(ServerConfig, env_prefix="FEDSERVER", environ=env)


def _client_config(env: dict[str, str]) -> ClientConfig:
    return config_io.load(ClientConfig, env_prefix="FEDCLIENT", environ=env)


# -- 1. the health-check CLI ---------------------------------------------------------------

def test_healthcheck_cli_reports_serving_and_not_serving(tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]
                                                         ) -> None:
    with running_server(server_config(tmp_path / "state")) as running:
        address = f"127.0.0.1:{running.port}"
        assert healthcheck.main(["--address", address]) == 0
        assert healthcheck.main(["--address", address, "--service", SERVICE_NAME]) == 0
        assert "SERVING" in capsys.readouterr().out
        assert healthcheck.main(["--address", address, "--quiet", "--service", SERVICE_NAME]) == 0
        assert capsys.readouterr().out == ""
        assert healthcheck.main(["--address", address, "--service", "no.such.Service"]) == 1
        assert "NOT_FOUND" in capsys.readouterr().err
        running.enter_graceful_shutdown()  # what stop() does first
        assert healthcheck.main(["--address", address, "--service", SERVICE_NAME]) == 1
        assert "NOT_SERVING" in capsys.readouterr().err


def test_healthcheck_cli_unreachable_server_fails_within_timeout() -> None:
    with socket.socket() as sock:  # a port that nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        started = time.monotonic()
        assert healthcheck.main(["--address", f"127.0.0.1:{port}", "--timeout", "0.5"]) == 1
        assert time.monotonic() - started < 3


def test_healthcheck_module_runs_without_torch(tmp_path: Path) -> None:
    with running_server(server_config(tmp_path / "state")) as running:
        argv = ["--quiet", "--address", f"127.0.0.1:{running.port}", "--service", SERVICE_NAME]
        done = subprocess.run([sys.executable, "-m", "fedcore.healthcheck", *argv],
                              capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr
        probe = ("import sys, fedcore.healthcheck as h; rc = h.main(sys.argv[1:]); "
                 "assert 'torch' not in sys.modules, 'the probe must stay light'; sys.exit(rc)")
        done = subprocess.run([sys.executable, "-c", probe, *argv],
                              capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr


# -- 2. the files --------------------------------------------------------------------------

def test_interpolation_follows_compose_rules() -> None:
    env = {"SET": "v", "EMPTY": ""}
    cases = {"${SET}": "v", "${UNSET}": "", "${UNSET:-d}": "d", "${EMPTY:-d}": "d",
             "${EMPTY-d}": "", "${SET:-d}": "v", "$SET/x": "v/x", "$$SET": "$SET",
             "a${SET}b${UNSET-c}": "avbc"}
    for text, expected in cases.items():
        assert cr.interpolate(text, env) == expected, text
    assert cr.interpolate({"k": ["${SET}", 3, None]}, env) == {"k": ["v", 3, None]}
    with pytest.raises(cr.ComposeError, match="UNSET"):
        cr.interpolate("${UNSET:?needed}", env)


def test_compose_has_one_coordinator_and_three_clients(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"certs", "coordinator", *CLIENTS}
    assert services["coordinator"]["build"]["target"] == "server"
    assert cr.service_image(services["coordinator"]).entrypoint == ["fedserver"]
    for name in CLIENTS:
        assert services[name]["build"]["target"] == "client"
        assert cr.service_image(services[name]).entrypoint == ["fedclient"]


def test_coordinator_service(compose: dict[str, Any]) -> None:
    service = compose["services"]["coordinator"]
    env = _service_env(compose, "coordinator")
    config = _server_config(env)  # every key is real and every value valid
    assert config.state_dir == "/state"
    assert config.network.host == "0.0.0.0" and config.network.port == CONTAINER_PORT
    # mTLS by default, so the public bind needs no --insecure
    assert config.tls.enabled and config.tls.require_client_cert and not config.network.insecure
    check_exposure(config)
    mounts = cr.volume_mounts(service)
    for path in (config.tls.cert, config.tls.key, config.tls.client_ca):
        assert path.startswith("/certs/") and mounts["/certs"] == "fedprune-certs"
    assert service["depends_on"]["certs"] == {"condition": "service_completed_successfully"}
    assert config.round.rounds == 30
    assert config.round.clients_per_round == len(CLIENTS) and config.round.min_clients == 2
    assert config.auth.shared_token and not config.pruning.enabled
    # the state folder is a named volume
    volume, _, target = service["volumes"][0].partition(":")
    assert target == "/state" and volume in (compose.get("volumes") or {})
    assert any(str(p).endswith(f":{CONTAINER_PORT}") for p in service["ports"])
    # healthcheck: the Python gRPC probe of the coordinator service on the container port
    health = service["healthcheck"]
    test = health["test"]
    assert test[:4] == ["CMD", "python", "-m", "fedcore.healthcheck"]
    assert test[test.index("--address") + 1] == f"127.0.0.1:{CONTAINER_PORT}"
    assert test[test.index("--service") + 1] == SERVICE_NAME
    assert test[test.index("--ca") + 1] == config.tls.client_ca  # the probe speaks mTLS
    assert {test[test.index(f) + 1].rsplit("/", 1)[0] for f in ("--cert", "--key")} == {"/certs"}
    assert cr.duration_s(health["timeout"]) > 3  # the probe's own --timeout default
    for key in ("interval", "start_period"):
        assert cr.duration_s(health[key]) > 0
    assert health["retries"] >= 1


def test_client_services(compose: dict[str, Any]) -> None:
    services = compose["services"]
    server_env = _service_env(compose, "coordinator")
    configs = [_client_config(_service_env(compose, name)) for name in CLIENTS]
    assert sorted(c.client_id for c in configs) == list(CLIENTS)
    assert sorted(c.data.partition for c in configs) == [0, 1, 2]
    assert {c.data.num_partitions for c in configs} == {len(CLIENTS)}
    assert {c.data.source for c in configs} == {"digits"}
    assert {c.server for c in configs} == {f"coordinator:{CONTAINER_PORT}"}
    assert {c.token for c in configs} == {server_env["FEDSERVER_AUTH__SHARED_TOKEN"]}
    for config in configs:  # each client's own certificate, which names it
        assert config.tls.ca == "/certs/ca.pem"
        assert (config.tls.cert, config.tls.key) == (f"/certs/{config.client_id}.pem",
                                                     f"/certs/{config.client_id}.key")
    for name in CLIENTS:
        service = services[name]
        assert service["depends_on"] == {
            "certs": {"condition": "service_completed_successfully"},
            "coordinator": {"condition": "service_healthy"}}
        assert service["restart"] == "on-failure"
        assert cr.volume_mounts(service) == {"/certs": "fedprune-certs"}


def test_certs_service_makes_every_certificate_the_others_read(compose: dict[str, Any]) -> None:
    service = compose["services"]["certs"]
    command = service["command"]
    assert service["entrypoint"] == ["fedprune"] and command[0] == "certs"
    assert "--if-missing" in command  # a second `up` keeps the certificates in use
    assert command[command.index("--out") + 1] == "/certs"
    assert command[command.index("--san") + 1] == "coordinator"  # FEDCLIENT_SERVER's host
    names = command[command.index("--names") + 1].split(",")
    assert int(command[command.index("--clients") + 1]) == len(names)
    assert set(CLIENTS) <= set(names)
    assert cr.volume_mounts(service) == {"/certs": "fedprune-certs"}
    assert service["restart"] == "no"


def test_compose_settings_come_from_the_shell(compose: dict[str, Any]) -> None:
    shell = {"FEDPRUNE_TOKEN": "s3cret", "FEDSERVER_ROUND__ROUNDS": "7",
             "FEDSERVER_PRUNING__ENABLED": "true", "FEDSERVER_PRUNING__TARGET_SPARSITY": "0.8",
             "FEDPRUNE_NUM_PARTITIONS": "5"}
    custom = cr.load_compose(environ=shell)
    server = _server_config(_service_env(custom, "coordinator", shell))
    assert server.round.rounds == 7 and server.auth.shared_token == "s3cret"
    assert server.pruning.enabled and server.pruning.target_sparsity == 0.8
    client = _client_config(_service_env(custom, "client-2", shell))
    assert client.token == "s3cret" and client.data.num_partitions == 5
    # pass-through keys left unset in the shell are not set in the container either
    assert "FEDSERVER_PRUNING__ENABLED" not in _service_env(compose, "coordinator")


def test_dockerfile_targets() -> None:
    dockerfile = cr.REPO / "docker" / "Dockerfile"
    text = dockerfile.read_text()
    stages = cr.parse_dockerfile(dockerfile)
    for target, script in (("server", "fedserver"), ("client", "fedclient")):
        image = cr.resolve_target(stages, target)
        assert image.base == "python:3.11-slim"
        assert image.entrypoint == [script]
        assert image.user and image.user not in ("root", "0")
    assert cr.resolve_target(stages, "server").env["FEDSERVER_STATE_DIR"] == "/state"
    health = stages["server"].healthcheck
    assert health and health[:3] == ["python", "-m", "fedcore.healthcheck"]
    assert "ARG TORCH_VERSION=2.13.0" in text and "download.pytorch.org/whl/cpu" in text
    assert "pip install /src" in text
    assert (cr.REPO / "docker" / "Dockerfile.dockerignore").is_file()


# -- 3. the stack as local processes -------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


@dataclass
class _Stack:
    """What one `docker compose up` left behind, run as local processes."""
    report: dict[str, Any]
    specs: dict[str, cr.ProcessSpec]
    logs: dict[str, Path]
    state: Path
    certs: Path
    port: int
    healthy_after: float
    finished_after: float


def _run_stack(tmp_path: Path, shell: dict[str, str]) -> _Stack:
    """`docker compose up` with `shell` as the shell's environment, to the run's end.

    Checks what every run must show (the images' console scripts, the rewrites, all
    services exiting 0 after the last round) and returns the rest for the caller."""
    pytest.importorskip("yaml", reason="PyYAML (a test extra) parses docker-compose.yml")
    compose = cr.load_compose(environ=shell)
    services = compose["services"]
    coordinator = services["coordinator"]
    published = {int(str(p).rsplit(":", 1)[1]) for p in coordinator["ports"]}
    named = {v: tmp_path / "volumes" / v for svc in services.values()
             for v in cr.volume_mounts(svc).values()}
    for folder in named.values():
        folder.mkdir(parents=True)
    volumes = {target: named[v] for svc in services.values()
               for target, v in cr.volume_mounts(svc).items()}
    port = _free_port()
    rewrite = cr.Rewriter(hosts=frozenset({*services, "127.0.0.1", "localhost"}),
                          ports={p: port for p in published}, paths=volumes)
    base_env = {k: v for k, v in os.environ.items()
                if not k.startswith(("FEDSERVER_", "FEDCLIENT_"))}
    specs = {name: cr.service_process(name, services[name], shell, rewrite, base_env=base_env)
             for name in services}

    # what runs is the image's console script with the file's environment
    assert Path(specs["coordinator"].argv[0]).name == "fedserver"
    assert {Path(specs[c].argv[0]).name for c in CLIENTS} == {"fedclient"}
    assert Path(specs["certs"].argv[0]).name == "fedprune"
    for key, value in shell.items():
        if key.startswith("FEDSERVER_"):
            assert specs["coordinator"].env[key] == value
    state, certs = volumes["/state"], volumes["/certs"]
    rewritten = {(where, after) for where, _, after in rewrite.log}
    tls_paths = {("coordinator.environment.FEDSERVER_TLS__CERT", f"{certs}/server.pem"),
                 ("coordinator.environment.FEDSERVER_TLS__KEY", f"{certs}/server.key"),
                 ("coordinator.environment.FEDSERVER_TLS__CLIENT_CA", f"{certs}/ca.pem"),
                 ("certs.command", str(certs)),
                 *{("coordinator.healthcheck", f"{certs}/{f}")
                   for f in ("ca.pem", "healthcheck.pem", "healthcheck.key")},
                 *{(f"{c}.environment.FEDCLIENT_TLS__{k}", f"{certs}/{v}") for c in CLIENTS
                   for k, v in (("CA", "ca.pem"), ("CERT", f"{c}.pem"), ("KEY", f"{c}.key"))}}
    assert rewritten == {
        ("coordinator.environment.FEDSERVER_STATE_DIR", str(state)),
        ("coordinator.environment.FEDSERVER_NETWORK__PORT", str(port)),
        ("coordinator.healthcheck", f"127.0.0.1:{port}"),
        *{(f"{c}.environment.FEDCLIENT_SERVER", f"127.0.0.1:{port}") for c in CLIENTS},
        *tls_paths,
    }, rewrite.log

    logs = {name: tmp_path / f"{name}.log" for name in services}
    procs: dict[str, subprocess.Popen[bytes]] = {}
    started = time.monotonic()
    try:
        # the one-shot certs service first (service_completed_successfully), then the
        # coordinator; clients once its healthcheck passes (depends_on: service_healthy)
        procs["certs"] = cr.start(specs["certs"], logs["certs"])
        assert procs["certs"].wait(timeout=60) == 0, _tail(logs["certs"])
        assert {p.name for p in certs.iterdir()} >= {"ca.pem", "server.pem", "server.key",
                                                     *(f"{c}.key" for c in CLIENTS)}
        procs["coordinator"] = cr.start(specs["coordinator"], logs["coordinator"])
        health = coordinator["healthcheck"]
        budget = cr.duration_s(health["start_period"]) + \
            cr.duration_s(health["interval"]) * health["retries"]
        poll = min(0.5, cr.duration_s(health["interval"]))  # compose: every `interval`

        def coordinator_healthy() -> bool:
            if procs["coordinator"].poll() is not None:
                raise AssertionError("coordinator exited before it was healthy:\n"
                                     + _tail(logs["coordinator"]))
            return cr.healthy(specs["coordinator"], cr.duration_s(health["timeout"]))

        wait_for(coordinator_healthy, budget, "the coordinator's healthcheck", interval=poll)
        healthy_after = time.monotonic() - started
        for name in CLIENTS:
            procs[name] = cr.start(specs[name], logs[name])

        try:
            rc = procs["coordinator"].wait(timeout=150)
        except subprocess.TimeoutExpired:
            raise AssertionError("the run did not finish:\n" + "\n".join(
                f"--- {n}\n{_tail(logs[n])}" for n in procs)) from None
        assert rc == 0, _tail(logs["coordinator"])
        for name in CLIENTS:
            try:
                client_rc = procs[name].wait(timeout=30)
            except subprocess.TimeoutExpired:
                raise AssertionError(f"{name} still running after the coordinator exited:\n"
                                     + _tail(logs[name])) from None
            assert client_rc == 0, f"{name}:\n{_tail(logs[name])}"
    finally:
        stop(list(procs.values()))

    report = read_json(state / "report.json")
    assert report and report["finished"], report
    return _Stack(report=report, specs=specs, logs=logs, state=state, certs=certs, port=port,
                  healthy_after=healthy_after, finished_after=time.monotonic() - started)


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_compose_stack_runs_as_local_processes(tmp_path: Path) -> None:
    # `FEDSERVER_ROUND__ROUNDS=3 docker compose up`: the only setting changed for the test
    stack = _run_stack(tmp_path, {"FEDSERVER_ROUND__ROUNDS": "3"})
    report, certs = stack.report, stack.certs
    rounds = report["rounds"]
    assert [r["status"] for r in rounds] == ["completed"] * 3
    assert report["totals"]["rounds_completed"] == 3
    accuracy = [r["metrics"]["accuracy"] for r in rounds]
    assert accuracy[-1] > accuracy[0], accuracy
    assert all(sorted(r["clients"]) == list(CLIENTS) for r in rounds), rounds
    assert report["config"]["round"]["rounds"] == 3
    endpoint = read_json(stack.state / "endpoint.json")
    assert endpoint and endpoint["port"] == stack.port and endpoint["host"] == "0.0.0.0"
    assert "with mTLS" in stack.logs["coordinator"].read_text()
    # a second `up` keeps the certificates the running services use
    before = (certs / "ca.pem").read_bytes()
    spec = stack.specs["certs"]
    assert subprocess.run(spec.argv, env=spec.env, capture_output=True,
                          timeout=60).returncode == 0
    assert (certs / "ca.pem").read_bytes() == before
    print(f"compose stack: healthy after {stack.healthy_after:.1f}s, "
          f"3 rounds done after {stack.finished_after:.1f}s, accuracy {accuracy}")


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_compose_stack_runs_fedcompress(tmp_path: Path) -> None:
    """`FEDSERVER_AGGREGATION__PRESET=fedcompress docker compose up` (docker/README.md):
    clients cluster while they train, the coordinator distils and broadcasts a clustered
    model at the k it chose, over the same mTLS deployment."""
    stack = _run_stack(tmp_path, {"FEDSERVER_ROUND__ROUNDS": "2",
                                  "FEDSERVER_AGGREGATION__PRESET": "fedcompress"})
    rounds = stack.report["rounds"]
    assert [r["status"] for r in rounds] == ["completed"] * 2
    assert stack.report["config"]["aggregation"]["preset"] == "fedcompress"
    k = stack.report["config"]["fedcompress"]["clusters_min"]
    for r in rounds:
        assert sorted(r["clients"]) == list(CLIENTS), rounds
        assert r["metrics"]["clusters"] == k and r["metrics"]["representation_score"] > 1
        assert "distill_agreement" in r["metrics"]
    checkpoint = read_checkpoint(sorted((stack.state / "checkpoints").glob("round-*.npz"))[-1])
    for name, values in checkpoint.group("param").items():
        if values.ndim > 1:  # weight tensors: the broadcast is clustered at k
            assert len(np.unique(values)) <= k, name
