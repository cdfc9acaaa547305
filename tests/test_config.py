"""Configuration: TOML < env < flags, errors that name the key, print-config round trip."""

from __future__ import annotations

from pathlib import Path

import pytest

from fedclient.config import ClientConfig
from fedcore import config as config_io
from fedserver.cli import main as fedserver_main
from fedserver.config import ServerConfig


def test_precedence_toml_env_flags(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text('state_dir = "from-file"\n[round]\nrounds = 5\ndeadline_s = 9.5\n')
    env = {"FEDSERVER_ROUND__ROUNDS": "7", "FEDSERVER_WIRE__ZSTD": "false", "OTHER": "x"}
    cfg = config_io.load(ServerConfig, path=path, env_prefix="FEDSERVER", environ=env,
                         overrides=["round.rounds=8"])
    assert (cfg.state_dir, cfg.round.rounds, cfg.round.deadline_s, cfg.wire.zstd) == (
        "from-file", 8, 9.5, False)


@pytest.mark.parametrize("override,message", [
    ("round.roundz=3", "unknown config key 'round.roundz'"),
    ("round.rounds=three", "config key 'round.rounds': expected int"),
    ("round.rounds=2.5", "config key 'round.rounds': expected int"),
    ("round.min_clients=99", "min_clients"),
    ("wire.uplink=int3", "uplink"),
    ("aggregation.preset=fedmagic", "preset"),
    ("pruning.target_sparsity=1.5", "target_sparsity"),
    ("wire.zstd=maybe", "config key 'wire.zstd': expected bool"),
    ("round=3", "expected a table"),
    ("novalue", "must look like section.key=value"),
    ("network.stream_slot_wait_s=0", "stream_slot_wait_s: must be > 0"),
])
def test_bad_values_name_the_key(override: str, message: str) -> None:
    with pytest.raises(config_io.ConfigError, match=message.replace(".", r"\.")
                       .replace("(", r"\(")):
        config_io.load(ServerConfig, overrides=[override], environ={})


def test_bad_toml_and_missing_file(tmp_path: Path) -> None:
    (tmp_path / "bad.toml").write_text("[round\nrounds=")
    with pytest.raises(config_io.ConfigError, match="not valid TOML"):
        config_io.load(ServerConfig, path=tmp_path / "bad.toml", environ={})
    with pytest.raises(config_io.ConfigError, match="does not exist"):
        config_io.load(ServerConfig, path=tmp_path / "missing.toml", environ={})


def test_print_config_round_trips(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    overrides = ["round.rounds=4", "auth.tokens={\"a\": \"x\"}", "pruning.enabled=true",
                 "pruning.schedule=cubic", "pruning.end_round=4"]
    cfg = config_io.load(ServerConfig, overrides=overrides, environ={})
    path = tmp_path / "c.toml"
    path.write_text(config_io.to_toml(cfg))
    assert config_io.load(ServerConfig, path=path, environ={}) == cfg
    assert fedserver_main(["--print-config", "--rounds", "4"]) == 0
    assert "rounds = 4" in capsys.readouterr().out


def test_cli_reports_bad_config(capsys: pytest.CaptureFixture[str]) -> None:
    assert fedserver_main(["--set", "network.port=70000"]) == 2
    assert "port" in capsys.readouterr().err


def test_client_config_requires_id() -> None:
    with pytest.raises(config_io.ConfigError, match="client_id"):
        config_io.load(ClientConfig, environ={})
    cfg = config_io.load(ClientConfig, environ={"FEDCLIENT_CLIENT_ID": "c9",
                                                "FEDCLIENT_DATA__ALPHA": "none"},
                         env_prefix="FEDCLIENT")
    assert cfg.client_id == "c9" and cfg.data.alpha is None


@pytest.mark.parametrize("value", ['["fc1.weight", "fc3.weight"]', "fc1.weight,fc3.weight"])
def test_list_values_from_flags(value: str) -> None:
    cfg = config_io.load(ServerConfig, overrides=[f"pruning.exclude={value}"], environ={})
    assert cfg.pruning.exclude == ("fc1.weight", "fc3.weight")
