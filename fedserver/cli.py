"""``fedserver``: run the fedprune coordinator.

Configuration comes from a TOML file (``--config``), then ``FEDSERVER_SECTION__KEY``
environment variables, then ``--set section.key=value`` flags; the common keys also have
their own flags. Run ``fedserver --print-config`` to see every key with its value.
"""

from __future__ import annotations

import argparse
import sys

from fedcore import config as config_io
from fedcore.logs import configure_logging
from fedserver.config import ServerConfig

ENV_PREFIX = "FEDSERVER"
_SHORTCUTS = {  # flag -> dotted key
    "state_dir": "state_dir", "host": "network.host", "port": "network.port",
    "rounds": "round.rounds", "clients_per_round": "round.clients_per_round",
    "min_clients": "round.min_clients", "deadline_s": "round.deadline_s",
    "strategy": "strategy.name", "model": "training.model", "log_level": "log_level",
}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fedserver", description=__doc__.split("\n\n")[0],
                                epilog="Environment: FEDSERVER_<SECTION>__<KEY>=value, "
                                       "e.g. FEDSERVER_ROUND__ROUNDS=5.")
    p.add_argument("--config", help="TOML configuration file")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any key, e.g. --set wire.uplink=int8 (repeatable)")
    for flag, key in _SHORTCUTS.items():
        p.add_argument(f"--{flag.replace('_', '-')}", dest=flag, metavar=key.upper().split(".")[-1],
                       help=f"same as --set {key}=...")
    p.add_argument("--print-config", action="store_true",
                   help="print the effective configuration as TOML and exit")
    return p


def load_config(argv: list[str] | None = None) -> tuple[ServerConfig, argparse.Namespace]:
    ns = parser().parse_args(argv)
    overrides = [f"{key}={getattr(ns, flag)}" for flag, key in _SHORTCUTS.items()
                 if getattr(ns, flag) is not None] + ns.set
    return config_io.load(ServerConfig, path=ns.config, env_prefix=ENV_PREFIX,
                          overrides=overrides), ns


def main(argv: list[str] | None = None) -> int:
    try:
        config, ns = load_config(argv)
    except config_io.ConfigError as exc:
        print(f"fedserver: {exc}", file=sys.stderr)
        return 2
    if ns.print_config:
        print(config_io.to_toml(config), end="")
        return 0
    configure_logging(config.log_level, config.log_format, name="fedserver")
    from fedserver.server import serve

    return serve(config)


if __name__ == "__main__":
    sys.exit(main())
