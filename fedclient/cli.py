"""``fedclient``: run a fedprune client daemon on this machine's data.

Configuration: a TOML file (``--config``), then ``FEDCLIENT_<SECTION>__<KEY>`` environment
variables, then flags. The data section chooses the source: the bundled ``digits`` set
(partition i of n, IID or Dirichlet non-IID), ``synthetic``, a ``.npz``/CSV file, or a
``package.module:function`` returning a torch Dataset.
"""

from __future__ import annotations

import argparse
import signal
import sys

from fedclient.config import ClientConfig
from fedcore import config as config_io
from fedcore.logs import configure_logging

ENV_PREFIX = "FEDCLIENT"
_SHORTCUTS = {
    "server": "server", "client_id": "client_id", "token": "token", "log_level": "log_level",
    "data_source": "data.source", "partition": "data.partition",
    "num_partitions": "data.num_partitions", "alpha": "data.alpha", "data_path": "data.path",
}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fedclient", description=__doc__.split("\n\n")[0],
                                epilog="Environment: FEDCLIENT_<SECTION>__<KEY>=value, e.g. "
                                       "FEDCLIENT_DATA__PARTITION=3.")
    p.add_argument("--config", help="TOML configuration file")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any key, e.g. --set data.alpha=0.1 (repeatable)")
    for flag, key in _SHORTCUTS.items():
        p.add_argument(f"--{flag.replace('_', '-')}", dest=flag, help=f"same as --set {key}=...")
    p.add_argument("--print-config", action="store_true", help="print the configuration and exit")
    return p


def main(argv: list[str] | None = None) -> int:
    ns = parser().parse_args(argv)
    overrides = [f"{key}={getattr(ns, flag)}" for flag, key in _SHORTCUTS.items()
                 if getattr(ns, flag) is not None] + ns.set
    try:
        config = config_io.load(ClientConfig, path=ns.config, env_prefix=ENV_PREFIX,
                                overrides=overrides)
    except config_io.ConfigError as exc:
        print(f"fedclient: {exc}", file=sys.stderr)
        return 2
    if ns.print_config:
        print(config_io.to_toml(config), end="")
        return 0
    configure_logging(config.log_level, config.log_format, name=f"fedclient[{config.client_id}]")
    from fedclient.daemon import ClientDaemon
    from fedclient.local_work import LocalWorker
    from fedcore.datasets import load_client_data

    try:
        data = load_client_data(config.data)
    except (ValueError, OSError) as exc:
        print(f"fedclient: cannot load data: {exc}", file=sys.stderr)
        return 2
    daemon = ClientDaemon(config, LocalWorker(data, seed=config.seed))
    signal.signal(signal.SIGTERM, lambda *_: daemon.stop())
    signal.signal(signal.SIGINT, lambda *_: daemon.stop())
    try:
        return daemon.run()
    finally:
        daemon.close()


if __name__ == "__main__":
    sys.exit(main())
