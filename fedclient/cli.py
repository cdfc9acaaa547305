"""``fedclient``: run a fedprune client daemon on this machine's data.

Configuration: a TOML file (``--config``), then ``FEDCLIENT_<SECTION>__<KEY>`` environment
variables, then flags. The data section chooses the source: the bundled ``digits`` set
(partition i of n, IID or Dirichlet non-IID), ``synthetic``, a ``.npz``/CSV file, or a
``package.module:function`` returning a torch Dataset.
"""

from __future__ import annotations

import signal
import sys

from fedclient.config import ClientConfig
from fedcore.config_cli import ConfigCli
from fedcore.logs import configure_logging

ENV_PREFIX = "FEDCLIENT"
CLI = ConfigCli(
    prog="fedclient", description=__doc__.split("\n\n")[0], env_prefix=ENV_PREFIX,
    example="data.partition=3",
    shortcuts={
        "server": "server", "client_id": "client_id", "token": "token", "log_level": "log_level",
        "data_source": "data.source", "partition": "data.partition",
        "num_partitions": "data.num_partitions", "alpha": "data.alpha", "data_path": "data.path",
    })


def data_label(config: ClientConfig) -> str:
    """How errors name this client's data: by its file, else by its source."""
    data = config.data
    if data.path:
        return f"data.path {data.path!r}"
    return f"data.entrypoint {data.entrypoint!r}" if data.entrypoint else \
        f"data.source {data.source!r}"


def main(argv: list[str] | None = None) -> int:
    config = CLI.load_for_run(ClientConfig, argv)
    if isinstance(config, int):
        return config
    configure_logging(config.log_level, config.log_format, name=f"fedclient[{config.client_id}]")
    from fedclient.daemon import ClientDaemon
    from fedclient.local_work import LocalWorker
    from fedclient.personal_layers import PersonalLayers
    from fedcore.datasets import load_client_data
    from fedcore.tls import TlsFileError

    try:
        data = load_client_data(config.data)
    except (ValueError, OSError) as exc:
        print(f"fedclient: cannot load data: {exc}", file=sys.stderr)
        return 2
    try:
        personal = PersonalLayers(path=config.personal_state or None)
    except (ValueError, OSError) as exc:
        print(f"fedclient: personal_state {config.personal_state!r}: unreadable ({exc})",
              file=sys.stderr)
        return 2
    try:
        daemon = ClientDaemon(config, LocalWorker(data, seed=config.seed,
                                                  allowed_models=config.allowed_models,
                                                  attack=config.attack, personal=personal,
                                                  data_label=data_label(config)))
    except TlsFileError as exc:
        print(f"fedclient: {exc}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, lambda *_: daemon.stop())
    signal.signal(signal.SIGINT, lambda *_: daemon.stop())
    try:
        return daemon.run()
    finally:
        daemon.close()


if __name__ == "__main__":
    sys.exit(main())
