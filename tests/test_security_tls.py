"""Transport security over real gRPC: TLS, mTLS identity, refusal of unsafe public binds.

Threat model: docs/threat-model.md ("network attacker", "malicious clients").
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import grpc
import pytest

from fedclient.config import ClientConfig
from fedcore import healthcheck
from fedcore.datasets import DataSpec
from fedcore.pb import coordinator_pb2 as cpb
from fedcore.pb import coordinator_pb2_grpc
from fedcore.tls import ClientTls, open_channel
from fedprune.certs import CertSet, make_certs
from fedserver import cli as server_cli
from fedserver.config import ServerConfig
from fedserver.server import SERVICE_NAME
from fedserver.transport import InsecureExposure, check_exposure
from tests.helpers import (
    TOKEN,
    read_json,
    running_server,
    server_config,
    spawn,
    stop,
    wait_for,
    write_config,
)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> CertSet:
    return make_certs(tmp_path_factory.mktemp("certs"), clients=("client-0", "client-1"))


@pytest.fixture(scope="module")
def foreign(tmp_path_factory: pytest.TempPathFactory) -> CertSet:
    """A second CA, unknown to the coordinator, with a client of the same name."""
    return make_certs(tmp_path_factory.mktemp("foreign"), clients=("client-0",),
                      ca_name="someone else's CA")


def _tls_config(tmp: Path, certs: CertSet, *overrides: str, mtls: bool = False) -> ServerConfig:
    tls = [f"tls.cert={certs.server_cert}", f"tls.key={certs.server_key}"]
    if mtls:
        tls += [f"tls.client_ca={certs.ca}", "tls.require_client_cert=true"]
    return server_config(tmp / "state", *tls, *overrides)


def _client_tls(certs: CertSet, name: str | None = None) -> ClientTls:
    cert, key = certs.clients[name] if name else ("", "")
    return ClientTls(ca=str(certs.ca), cert=str(cert), key=str(key))


def _stub(port: int, tls: ClientTls) -> tuple[grpc.Channel, coordinator_pb2_grpc.CoordinatorStub]:
    channel = open_channel(f"localhost:{port}", tls)
    return channel, coordinator_pb2_grpc.CoordinatorStub(channel)


def _round(stub: coordinator_pb2_grpc.CoordinatorStub, *metadata: tuple[str, str]) -> cpb.Task:
    return stub.Round(cpb.RoundRequest(max_wait_ms=3000, num_examples=10),
                      metadata=metadata, timeout=10)


def _token_metadata(client_id: str) -> tuple[tuple[str, str], ...]:
    return (("x-fedprune-client-id", client_id), ("authorization", f"Bearer {TOKEN}"))


def _code(call: object) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as info:
        call()  # type: ignore[operator]
    return info.value.code()


def test_plaintext_client_cannot_talk_to_a_tls_coordinator(tmp_path: Path, certs: CertSet) -> None:
    with running_server(_tls_config(tmp_path, certs)) as running:
        channel, stub = _stub(running.port, ClientTls())
        with channel:
            assert _code(lambda: _round(stub, *_token_metadata("c1"))) \
                == grpc.StatusCode.UNAVAILABLE
        channel, stub = _stub(running.port, _client_tls(certs))  # the right CA: works
        with channel:
            assert _round(stub, *_token_metadata("c1")).kind == cpb.TASK_KIND_TRAIN


def test_health_check_speaks_tls(tmp_path: Path, certs: CertSet,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    with running_server(_tls_config(tmp_path, certs, mtls=True)) as running:
        address = f"127.0.0.1:{running.port}"  # an IP the certificate carries as SAN
        cert, key = certs.clients["client-0"]
        argv = ["--address", address, "--service", SERVICE_NAME, "--timeout", "2"]
        assert healthcheck.main([*argv, "--ca", str(certs.ca), "--cert", str(cert),
                                 "--key", str(key)]) == 0
        assert healthcheck.main(argv) == 1  # plaintext probe of a TLS server
        assert healthcheck.main([*argv, "--ca", str(certs.ca)]) == 1  # no client certificate
        assert healthcheck.main([*argv, "--ca", str(tmp_path / "missing.pem")]) == 1
        assert "tls.ca: cannot read" in capsys.readouterr().err


def test_mtls_identity_is_the_certificate_and_metadata_cannot_override_it(
        tmp_path: Path, certs: CertSet) -> None:
    with running_server(_tls_config(tmp_path, certs, mtls=True)) as running:
        ch0, as_client0 = _stub(running.port, _client_tls(certs, "client-0"))
        ch1, as_client1 = _stub(running.port, _client_tls(certs, "client-1"))
        with ch0, ch1:
            # client-0's certificate claiming client-1's id in metadata: refused
            assert _code(lambda: _round(as_client0, *_token_metadata("client-1"))) \
                == grpc.StatusCode.UNAUTHENTICATED
            # no token needed: the certificate is the credential, and names the client
            task = _round(as_client0)
            assert task.kind == cpb.TASK_KIND_TRAIN
            pull = cpb.PullModelRequest(task_id=task.task_id)
            # client-1, even claiming to be client-0, cannot take client-0's task
            assert _code(lambda: next(as_client1.PullModel(
                pull, metadata=_token_metadata("client-0"), timeout=10))) \
                == grpc.StatusCode.UNAUTHENTICATED
            assert _code(lambda: next(as_client1.PullModel(pull, timeout=10))) in \
                {grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.NOT_FOUND}
            assert next(as_client0.PullModel(pull, timeout=10)).WhichOneof("part") == "header"


def test_client_certificate_from_another_ca_is_refused(tmp_path: Path, certs: CertSet,
                                                       foreign: CertSet) -> None:
    with running_server(_tls_config(tmp_path, certs, mtls=True)) as running:
        cert, key = foreign.clients["client-0"]
        tls = ClientTls(ca=str(certs.ca), cert=str(cert), key=str(key))  # trusts the server
        channel, stub = _stub(running.port, tls)
        with channel:
            assert _code(lambda: _round(stub, *_token_metadata("client-0"))) \
                == grpc.StatusCode.UNAVAILABLE
        channel, stub = _stub(running.port, _client_tls(certs))  # and no certificate at all
        with channel:
            assert _code(lambda: _round(stub, *_token_metadata("client-0"))) \
                == grpc.StatusCode.UNAVAILABLE


def test_public_bind_needs_tls_and_an_own_token_or_insecure(tmp_path: Path, certs: CertSet,
                                                            capsys: pytest.CaptureFixture[str]
                                                            ) -> None:
    state = f"state_dir={tmp_path / 'state'}"
    for argv in (["--host", "0.0.0.0", "--set", state, "--set", "auth.shared_token=mine"],
                 ["--host", "0.0.0.0", "--set", state, "--set", f"tls.cert={certs.server_cert}",
                  "--set", f"tls.key={certs.server_key}"]):  # TLS but the built-in token
        assert server_cli.main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "--insecure" in err[0], err
    assert not (tmp_path / "state").exists()  # refused before anything was written
    base = server_config(tmp_path / "s", "network.host=0.0.0.0")
    with pytest.raises(InsecureExposure):
        check_exposure(base)
    check_exposure(dataclasses.replace(base, network=dataclasses.replace(base.network,
                                                                         insecure=True)))
    check_exposure(_tls_config(tmp_path, certs, "network.host=0.0.0.0"))  # TLS + own token
    check_exposure(server_config(tmp_path / "s", "network.host=::1"))  # loopback


def test_missing_certificate_file_is_one_line_naming_the_key(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--set", f"state_dir={tmp_path / 'state'}", "--set", "network.port=0",
            "--set", f"tls.cert={tmp_path / 'nope.pem'}", "--set", f"tls.key={tmp_path / 'k'}"]
    assert server_cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "tls.key" in err[0] and "Traceback" not in err[0], err


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_federation_over_mtls_with_real_processes(tmp_path: Path, certs: CertSet) -> None:
    """A coordinator process and two client daemons, TLS + client certificates only."""
    config = _tls_config(tmp_path, certs, "round.rounds=2", "round.clients_per_round=2",
                         "round.min_clients=2", "evaluation.test_set=", mtls=True)
    server_toml = write_config(tmp_path / "server.toml", config)
    procs = [spawn("fedserver", server_toml, tmp_path / "server.log")]
    try:
        state = Path(config.state_dir)
        endpoint = wait_for(lambda: read_json(state / "endpoint.json"), 60, "the endpoint")
        for i, name in enumerate(("client-0", "client-1")):
            cert, key = certs.clients[name]
            client = ClientConfig(server=f"localhost:{endpoint['port']}", client_id=name,
                                  token="unused-with-mtls", max_wait_ms=2000,
                                  data=DataSpec(source="digits", partition=i, num_partitions=2),
                                  tls=ClientTls(ca=str(certs.ca), cert=str(cert), key=str(key)))
            path = write_config(tmp_path / f"{name}.toml", client)
            procs.append(spawn("fedclient", path, tmp_path / f"{name}.log"))
        assert procs[0].wait(timeout=180) == 0, (tmp_path / "server.log").read_text()[-3000:]
        for p in procs[1:]:
            assert p.wait(timeout=30) == 0
    finally:
        stop(procs)
    report = read_json(state / "report.json")
    assert report and report["finished"]
    assert [r["status"] for r in report["rounds"]] == ["completed"] * 2
    assert all(sorted(r["clients"]) == ["client-0", "client-1"] for r in report["rounds"])
    assert "with mTLS" in (tmp_path / "server.log").read_text()




def test_client_ca_and_require_client_cert_go_together(tmp_path: Path, certs: CertSet) -> None:
    from fedcore.config import ConfigError

    tls = [f"tls.cert={certs.server_cert}", f"tls.key={certs.server_key}"]
    with pytest.raises(ConfigError, match="require_client_cert"):
        server_config(tmp_path, *tls, f"tls.client_ca={certs.ca}")
    with pytest.raises(ConfigError, match="cert/key"):
        server_config(tmp_path, f"tls.cert={certs.server_cert}")


def test_client_refuses_a_coordinator_certified_by_another_ca(tmp_path: Path, certs: CertSet,
                                                              foreign: CertSet) -> None:
    """A spoofed coordinator (certificate from a CA the client does not trust)."""
    with running_server(_tls_config(tmp_path, foreign)) as running:
        channel, stub = _stub(running.port, _client_tls(certs))
        with channel:
            assert _code(lambda: _round(stub, *_token_metadata("c1"))) \
                == grpc.StatusCode.UNAVAILABLE


def test_certs_if_missing_keeps_certificates_in_use(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """The compose deployment's one-shot `certs` service runs on every `up`."""
    from fedprune.cli import main

    argv = ["certs", "--out", str(tmp_path), "--clients", "1", "--if-missing"]
    assert main(argv) == 0
    ca = (tmp_path / "ca.pem").read_bytes()
    assert main(argv) == 0
    assert "kept the certificates" in capsys.readouterr().out
    assert (tmp_path / "ca.pem").read_bytes() == ca
    assert main(argv[:-1]) == 0  # without the flag: a new CA
    assert (tmp_path / "ca.pem").read_bytes() != ca
