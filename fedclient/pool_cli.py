"""``python -m fedclient.pool_cli --config pool.toml``: run a client pool in this process.

Same configuration rules as ``fedclient`` (TOML < ``FEDCLIENT_POOL_<SECTION>__<KEY>`` <
``--set``), with the :class:`fedclient.config.PoolConfig` layout: the virtual clients'
template under ``[client]``, the partitions they take at the top level.
"""

from __future__ import annotations

import signal
import sys

from fedclient.config import PoolConfig
from fedcore.config_cli import ConfigCli
from fedcore.logs import configure_logging

CLI = ConfigCli(prog="fedclient-pool", description=__doc__.split("\n\n")[0],
                env_prefix="FEDCLIENT_POOL", example="clients_per_channel=50", shortcuts={})


def main(argv: list[str] | None = None) -> int:
    config = CLI.load_for_run(PoolConfig, argv)
    if isinstance(config, int):
        return config
    client = config.client
    configure_logging(client.log_level, client.log_format, name=f"fedclient[{client.client_id}]")
    from fedclient.pool import ClientPool
    from fedcore.tls import TlsFileError

    try:
        pool = ClientPool(config)
    except (ValueError, OSError, TlsFileError) as exc:
        print(f"fedclient-pool: cannot start: {exc}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, lambda *_: pool.stop())
    signal.signal(signal.SIGINT, lambda *_: pool.stop())
    return pool.run()


if __name__ == "__main__":
    sys.exit(main())
