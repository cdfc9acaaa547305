"""Environment variables are configuration only in the documented form, strictly."""

from __future__ import annotations

import pytest

import fedserver.cli as server_cli
from fedclient.config import ClientConfig
from fedcore import config as config_io
from fedserver.config import ServerConfig


def load(**environ: str) -> ServerConfig:
    return config_io.load(ServerConfig, env_prefix="FEDSERVER", environ=environ)


def test_section_keys_top_level_keys_and_tables() -> None:
    cfg = load(FEDSERVER_ROUND__CLIENTS_PER_ROUND="4", FEDSERVER_STATE_DIR="/srv/state",
               FEDSERVER_AGGREGATION__NORM_BOUND__MAX_NORM="2.5",
               FEDSERVER_AGGREGATION__PRESET="robust_fedavg",
               FEDSERVER_AUTH__TOKENS='{"c1": "t1"}', OTHER_ROUND__ROUNDS="x")
    assert cfg.round.clients_per_round == 4 and cfg.state_dir == "/srv/state"
    assert cfg.aggregation.norm_bound.max_norm == 2.5 and cfg.auth.tokens == {"c1": "t1"}


def test_container_platform_service_variables_are_not_configuration() -> None:
    """What Kubernetes injects for a Service named ``fedserver`` is skipped."""
    cfg = load(FEDSERVER_PORT="tcp://10.0.0.7:50051", FEDSERVER_SERVICE_HOST="10.0.0.7",
               FEDSERVER_SERVICE_PORT="50051", FEDSERVER_SERVICE_PORT_GRPC="50051",
               FEDSERVER_PORT_50051_TCP="tcp://10.0.0.7:50051",
               FEDSERVER_PORT_50051_TCP_ADDR="10.0.0.7", FEDSERVER_PORT_50051_TCP_PORT="50051",
               FEDSERVER_PORT_50051_TCP_PROTO="tcp")
    assert cfg == ServerConfig()


@pytest.mark.parametrize(("environ", "message"), [
    ({"FEDSERVER_PORT": "50051"}, "environment variable FEDSERVER_PORT: 'port' is not a "
                                  "config key (no 'port' in the top level; did you mean "
                                  "network.port?)"),
    ({"FEDSERVER_ROUNDS__CLIENTS_PER_ROUND": "3"},
     "environment variable FEDSERVER_ROUNDS__CLIENTS_PER_ROUND: 'rounds.clients_per_round' "
     "is not a config key (no 'rounds' in the top level"),
    ({"FEDSERVER_ROUND__CLIENTS": "3"}, "no 'clients' in section 'round'"),
    ({"FEDSERVER_round__rounds": "3"}, "environment variable FEDSERVER_round__rounds: "
                                       "malformed"),
    ({"FEDSERVER_ROUND___ROUNDS": "3"}, "FEDSERVER_ROUND___ROUNDS: malformed"),
    ({"FEDSERVER_ROUND__": "3"}, "FEDSERVER_ROUND__: malformed"),
    ({"FEDSERVER_ROUND": "3"}, "FEDSERVER_ROUND: 'round' is a section"),
    ({"FEDSERVER_ROUND__ROUNDS__MAX": "3"}, "'round.rounds' is not a section"),
    ({"FEDSERVER_ROUND__ROUNDS": "three"},
     "environment variable FEDSERVER_ROUND__ROUNDS: config key 'round.rounds': expected int"),
    ({"FEDSERVER_ROUND__DEADLINE_S": "inf"}, "FEDSERVER_ROUND__DEADLINE_S: config key "
                                             "'round.deadline_s': expected a finite number"),
])
def test_a_bad_variable_is_named(environ: dict[str, str], message: str) -> None:
    with pytest.raises(config_io.ConfigError) as info:
        config_io.load(ServerConfig, env_prefix="FEDSERVER", environ=environ)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_client_variables_and_the_daemon_exit(monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    cfg = config_io.load(ClientConfig, env_prefix="FEDCLIENT",
                         environ={"FEDCLIENT_CLIENT_ID": "c3", "FEDCLIENT_DATA__PARTITION": "2",
                                  "FEDCLIENT_DATA__NUM_PARTITIONS": "4"})
    assert (cfg.client_id, cfg.data.partition) == ("c3", 2)
    monkeypatch.setenv("FEDSERVER_PORT", "50051")
    assert server_cli.main(["--print-config"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("fedserver: environment variable FEDSERVER_PORT: ")
