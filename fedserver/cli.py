"""``fedserver``: run the fedprune coordinator.

Configuration comes from a TOML file (``--config``), then ``FEDSERVER_SECTION__KEY``
environment variables, then ``--set section.key=value`` flags; the common keys also have
their own flags. Run ``fedserver --print-config`` to see every key with its value.
"""

from __future__ import annotations

import sys

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
    switches={"insecure": "network.insecure"})


def main(argv: list[str] | None = None) -> int:
    config = CLI.load_for_run(ServerConfig, argv)
    if isinstance(config, int):
        return config
    configure_logging(config.log_level, config.log_format, name="fedserver")
    from fedcore.tls import TlsFileError
    from fedserver.model_state import CheckpointMismatch
    from fedserver.server import serve
    from fedserver.transport import InsecureExposure

    try:
        return serve(config)
    # the state folder belongs to another program; an unsafe bind; an unusable cert file
    except (CheckpointMismatch, InsecureExposure, TlsFileError) as exc:
        print(f"fedserver: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
