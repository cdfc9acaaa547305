"""A real client daemon process whose training returns a known update.

Used by the secure-aggregation tests over real processes: the update of client ``c`` in
round ``r`` is a deterministic vector on the fixed-point grid (multiples of 1 / scale), so
its stochastic rounding is exact and the test can compute the plain sum of the quantized
updates itself. Everything else (RPCs, the four steps, crypto, [fault] SIGKILL) is the
real daemon. Usage: ``python -m tests.secagg_client --config client.toml``.
"""

from __future__ import annotations

import hashlib
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from fedclient.config import ClientConfig
from fedclient.daemon import ClientDaemon
from fedclient.fault import FaultConfig
from fedclient.local_work import LocalWorker, TrainOutcome
from fedcore import config as config_io
from fedcore.datasets import DataSpec, load_client_data
from fedcore.logs import configure_logging
from fedcore.pb import coordinator_pb2 as cpb

SCALE = 1024.0  # tests set secagg.clip_range so that L / clip_range is exactly this


def known_delta(client_id: str, round_: int, shapes: dict[str, tuple[int, ...]],
                masks: dict[str, np.ndarray] | None) -> dict[str, np.ndarray]:
    seed = int.from_bytes(hashlib.sha256(f"{client_id}/{round_}".encode()).digest()[:8], "big")
    rng = np.random.default_rng(seed)  # test data, not a mask
    out = {}
    for name, shape in shapes.items():
        values = rng.integers(-200, 201, shape) / SCALE
        if masks and name in masks:
            values = values * masks[name]
        out[name] = values.astype(np.float32)
    return out


def clip_range(value_bits: int) -> float:
    """The ``secagg.clip_range`` at which ``value_bits`` levels quantize at exactly SCALE."""
    return ((1 << (value_bits - 1)) - 1) / SCALE


def spawn_clients(folder: Path, port: int, ids: list[str], *, token: str,
                  faults: Mapping[str, FaultConfig]) -> list[subprocess.Popen[bytes]]:
    """One known-update daemon per id (config and log in ``folder``), each on its own digits
    partition; ``faults`` gives some of them a [fault] (e.g. SIGKILL at a phase)."""
    from tests.helpers import spawn, write_config  # imports the server: not in the daemon

    procs = []
    for i, cid in enumerate(ids):
        cfg = ClientConfig(server=f"127.0.0.1:{port}", client_id=cid, token=token,
                           max_wait_ms=2000, backoff_initial_s=0.1, backoff_max_s=0.3,
                           data=DataSpec(source="digits", partition=i, num_partitions=len(ids)),
                           fault=faults.get(cid, FaultConfig()))
        procs.append(spawn("tests.secagg_client", write_config(folder / f"{cid}.toml", cfg),
                           folder / f"{cid}.log"))
    return procs


def all_serving(folder: Path, ids: list[str]) -> bool:
    """True once every daemon's log says it is serving."""
    return all("serving" in (folder / f"{c}.log").read_text() for c in ids)


def plain_sum_digest(clients: list[str], round_: int, shapes: dict[str, tuple[int, ...]],
                     ring_bits: int) -> str:
    """sha256 of the plain sum over Z_2^ring_bits of the clients' quantized known updates,
    tensor by tensor as little-endian uint64: what the coordinator's ``sum_sha256`` must be."""
    digest = hashlib.sha256()
    mask = np.uint64((1 << ring_bits) - 1)
    for name, shape in shapes.items():
        total = np.zeros(shape, dtype=np.uint64)
        for c in clients:
            q = np.rint(known_delta(c, round_, shapes, None)[name].astype(np.float64) * SCALE)
            total = (total + (q.astype(np.int64).view(np.uint64) & mask)) & mask
        digest.update(total.astype("<u8").tobytes())
    return digest.hexdigest()


class KnownUpdateWorker(LocalWorker):
    def __init__(self, client_id: str, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.client_id = client_id

    def train(self, task: cpb.Task, global_params: dict[str, np.ndarray],
              masks: dict[str, np.ndarray] | None) -> TrainOutcome:
        shapes = {n: tuple(a.shape) for n, a in global_params.items()}
        return TrainOutcome(known_delta(self.client_id, int(task.round), shapes, masks), None,
                            10, {"train_loss": 0.0})


def main() -> int:
    config = config_io.load(ClientConfig, path=sys.argv[sys.argv.index("--config") + 1])
    configure_logging(config.log_level, config.log_format, name=f"fedclient[{config.client_id}]")
    worker = KnownUpdateWorker(config.client_id, load_client_data(config.data))
    daemon = ClientDaemon(config, worker)
    signal.signal(signal.SIGTERM, lambda *_: daemon.stop())
    try:
        return daemon.run()
    finally:
        daemon.close()


if __name__ == "__main__":
    sys.exit(main())
