"""Client pools over real gRPC: many virtual clients in one process, locally and on Ray.

Each virtual client authenticates as itself: the coordinator holds one token per client,
and a pooled client given a wrong token is refused alone while the others finish.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from fedclient.config import ClientConfig, PoolConfig
from fedclient.daemon import EXIT_REFUSED
from fedcore import config as config_io
from fedcore.datasets import DataSpec
from tests.helpers import read_json, running_server, server_config, spawn, stop, write_config

TOKENS = {f"client-{i}": f"secret-{i}" for i in range(4)}


def _server(tmp: Path, *overrides: str):  # type: ignore[no-untyped-def]
    config = server_config(tmp / "state", "round.rounds=1", "round.clients_per_round=3",
                           "round.min_clients=3", "round.selection_timeout_s=60",
                           "evaluation.test_set=", *overrides)
    auth = dataclasses.replace(config.auth, shared_token="", tokens=TOKENS)
    return dataclasses.replace(config, auth=auth)


def pool_config(port: int, partitions: tuple[int, ...], **keys: object) -> PoolConfig:
    template = ClientConfig(server=f"127.0.0.1:{port}", client_id="pool", token="unused",
                            backoff_initial_s=0.05, backoff_max_s=0.5,
                            data=DataSpec(source="digits", num_partitions=4, alpha=None))
    return PoolConfig(client=template, partitions=partitions,
                      **{"tokens": dict(TOKENS), **keys})  # type: ignore[arg-type]


def _assert_rounds_by(state: Path, clients: list[str]) -> None:
    report = read_json(state / "report.json")
    assert report is not None and report["finished"]
    assert [(r["round"], r["status"], r["clients"]) for r in report["rounds"]] == [
        (1, "completed", clients)]


def test_pooled_virtual_clients_each_authenticate_as_themselves(tmp_path: Path) -> None:
    with running_server(_server(tmp_path)) as running:
        config = pool_config(running.port, (0, 1, 2, 3), clients_per_channel=2,
                             tokens={**TOKENS, "client-3": "wrong"})
        path = write_config(tmp_path / "pool.toml", config)
        proc = spawn("fedclient.pool_cli", path, tmp_path / "pool.log")
        try:
            code = proc.wait(120)
        finally:
            stop([proc])
        log = (tmp_path / "pool.log").read_text()
        assert code == EXIT_REFUSED, log  # client-3 was refused, and only client-3
        assert "pool of 4 virtual clients on 2 channels" in log
        assert "refused client 'client-3': UNAUTHENTICATED" in log
        _assert_rounds_by(tmp_path / "state", ["client-0", "client-1", "client-2"])


def test_pool_config_refuses_what_a_pool_cannot_do() -> None:
    with pytest.raises(ValueError, match="partitions: must be in 0..client.data"):
        pool_config(1, (0, 4))
    with pytest.raises(ValueError, match="partitions: required, without repeats"):
        pool_config(1, (1, 1))
    with pytest.raises(config_io.ConfigError, match="client.tls.cert: a client certificate"):
        config_io.build(PoolConfig, {"partitions": [0], "client": {
            "client_id": "p", "tls": {"ca": "ca.pem", "cert": "c.pem", "key": "k.pem"}}})


def test_ray_actors_host_pools_end_to_end(tmp_path: Path) -> None:
    ray = pytest.importorskip("ray", reason="ray is the optional fedprune[ray] extra; "
                                            "not installed")
    from fedprune.ray_pool import RayPools, init_ray

    init_ray()  # before this process serves gRPC (see init_ray)
    try:
        with running_server(_server(tmp_path)) as running:
            pools = RayPools.start([pool_config(running.port, (0, 1)),
                                    pool_config(running.port, (2,))], cpus_per_pool=0.5)
            try:
                assert pools.exit_codes(timeout=120) == [0, 0]
            finally:
                pools.stop()
            _assert_rounds_by(tmp_path / "state", ["client-0", "client-1", "client-2"])
    finally:
        ray.shutdown()


def test_simulate_pools_keep_each_clients_config_and_round_trip_through_toml(
        tmp_path: Path) -> None:
    from fedclient.config import AttackConfig
    from fedclient.pool import virtual_client_configs
    from fedprune.simulate import SimulationSpec, client_configs, pool_configs
    from fedprune.simulate_config import SimulateConfig

    spec = SimulationSpec(out=tmp_path, clients=7, alpha=None,
                          attack=AttackConfig(behaviour="sign_flip"), attack_fraction=0.3,
                          sim=SimulateConfig(clients_per_process=4, slow_fraction=0.3,
                                             slow_factor=10))
    pools = pool_configs(spec, 5000, "tok")
    assert [p.partitions for p in pools] == [(0, 1, 2), (3,), (4, 5, 6)]  # attackers apart
    rebuilt = [config_io.load(PoolConfig, path=write_config(tmp_path / f"p{i}.toml", p),
                              environ={}) for i, p in enumerate(pools)]
    assert rebuilt == pools  # alpha None (IID) survives the child's TOML
    virtual = [c for p in rebuilt for c in virtual_client_configs(p)]
    assert virtual == client_configs(spec, 5000, "tok")  # the same clients as processes
    assert [c.slowdown for c in virtual] == [1.0] * 4 + [10.0] * 3
    assert [bool(c.attack.behaviour) for c in virtual] == [True] * 3 + [False] * 4
