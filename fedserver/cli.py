"""``fedserver``: run the fedprune coordinator.

Configuration comes from a TOML file (``--config``), then ``FEDSERVER_SECTION__KEY``
environment variables, then ``--set section.key=value`` flags; the common keys also have
their own flags. Run ``fedserver --print-config`` to see every key with its value.

A state folder is resumed as it is; when it is damaged or inconsistent the coordinator
refuses to start (one line naming the file, exit 2) and the operator picks ``--new-run``
or ``--from-checkpoint PATH`` (see :mod:`fedserver.state_dir`). A state folder whose run
was started with a different config is refused naming the keys, unless
``--accept-config-change``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from fedcore.config_cli import ConfigCli
from fedcore.logs import configure_logging
from fedserver.config import ServerConfig

ENV_PREFIX = "FEDSERVER"
CLI = ConfigCli(
    prog="fedserver", description=__doc__.split("\n\n")[0], env_prefix=ENV_PREFIX,
    example="round.rounds=5",
    shortcuts={
        "state_dir": "state_dir", "host": "network.host", "port": "network.port",
        "rounds": "round.rounds", "clients_per_round": "round.clients_per_round",
        "min_clients": "round.min_clients", "deadline_s": "round.deadline_s",
        "preset": "aggregation.preset", "model": "training.model", "log_level": "log_level",
    },
    run_flags={
        "--new-run": {"action": "store_true",
                      "help": "start a new run; the state folder's current content is moved "
                              "to <state_dir>/previous/<time>/ (never deleted)"},
        "--from-checkpoint": {"metavar": "PATH", "type": Path,
                              "help": "resume from this checkpoint file (the current state "
                                      "is moved aside as with --new-run)"},
        "--accept-config-change": {
            "action": "store_true",
            "help": "continue the state folder's run although its config differs (the "
                    "changed keys are logged and recorded in the run store)"},
    },
    switches={"insecure": "network.insecure"})


def main(argv: list[str] | None = None) -> int:
    loaded = CLI.load_with_flags(ServerConfig, argv)
    if isinstance(loaded, int):
        return loaded
    config, flags = loaded
    if flags.new_run and flags.from_checkpoint is not None:
        print("fedserver: error: --new-run and --from-checkpoint exclude each other",
              file=sys.stderr)
        return 2
    configure_logging(config.log_level, config.log_format, name="fedserver")
    from fedcore.config import ConfigError
    from fedcore.tls import TlsFileError
    from fedserver.model_state import CheckpointMismatch
    from fedserver.server import BindError, serve
    from fedserver.state_dir import StartMode, StateError
    from fedserver.transport import InsecureExposure

    try:
        return serve(config, start=StartMode(
            new_run=flags.new_run, from_checkpoint=flags.from_checkpoint,
            accept_config_change=flags.accept_config_change))
    # another program's state, an unusable state folder, a taken port, an unsafe bind,
    # an unusable certificate file, a config whose model / test set / program cannot be built
    except (CheckpointMismatch, StateError, BindError, InsecureExposure, TlsFileError,
            ConfigError) as exc:
        print(f"fedserver: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
