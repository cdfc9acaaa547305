"""Tokens never leave the process in plaintext: run store, report.json, --print-config.

Threat model: docs/threat-model.md ("secrets").
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from fedclient import cli as client_cli
from fedcore import config as config_io
from fedcore.secrets import digest
from fedserver import cli as server_cli
from fedserver.config import ServerConfig
from tests.helpers import RawClient, running_server, update_for, wait_for, zero_delta

SECRET = "s3cret-token-that-must-not-leak"
PER_CLIENT = "per-client-secret-value"


def test_tokens_are_not_in_the_store_the_report_or_the_logs(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    state = tmp_path / "state"
    config = config_io.load(ServerConfig, overrides=[
        f"state_dir={state}", "network.port=0", f"auth.shared_token={SECRET}",
        f'auth.tokens={{"c2": "{PER_CLIENT}"}}', "round.rounds=1",
        "round.clients_per_round=1", "round.min_clients=1", "evaluation.test_set="],
        environ={})
    with running_server(config) as running:
        client = RawClient(running.port, token=SECRET)
        try:
            task = client.round()
            header, data = update_for(task, zero_delta(client.pull(task)))
            assert client.push_payload(header, data).accepted
            wait_for(lambda: (state / "report.json").exists(), 30, "report.json")
        finally:
            client.close()
    files = [p for p in state.rglob("*") if p.is_file()]
    assert any(p.name == "report.json" for p in files)
    assert any(p.suffix == ".sqlite" for p in files)
    for path in files:
        blob = path.read_bytes()
        assert SECRET.encode() not in blob and PER_CLIENT.encode() not in blob, path
    assert digest(SECRET) in (state / "report.json").read_text()
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert SECRET not in logged and PER_CLIENT not in logged


def test_print_config_shows_digests_that_still_authenticate(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert server_cli.main(["--set", f"auth.shared_token={SECRET}", "--print-config"]) == 0
    printed = capsys.readouterr().out
    assert SECRET not in printed and digest(SECRET) in printed
    assert client_cli.main(["--client-id", "c1", "--token", SECRET, "--print-config"]) == 0
    assert SECRET not in capsys.readouterr().out
    # the printed (redacted) config is a working coordinator config: the digest admits
    # the plaintext token, while presenting the digest itself is refused
    path = tmp_path / "printed.toml"
    path.write_text(printed)
    config = config_io.load(ServerConfig, path=path, overrides=[
        f"state_dir={tmp_path / 'state'}", "network.port=0"], environ={})
    with running_server(config) as running:
        good, bad = RawClient(running.port, token=SECRET), \
            RawClient(running.port, client_id="c2", token=digest(SECRET))
        try:
            assert good.round(max_wait_ms=200).kind >= 0
            with pytest.raises(Exception, match="UNAUTHENTICATED|bad token"):
                bad.round(max_wait_ms=200)
        finally:
            good.close()
            bad.close()
