"""Named run configurations of ``fedprune simulate --preset``: what the quickstart runs.

A run preset is a list of coordinator ``key=value`` items applied *under* everything the
user gives (``--config`` file < environment < ``--set``), so any key stays one flag away.
``compact`` is the default because it is what fedprune is for: W1 at >= 0.95 accuracy on
a few MB instead of the ~204 MB of dense float32 FedAvg (docs/benchmarks.md measures it).
``fedavg-dense`` is the dense baseline (the coordinator's own defaults: FedAvg, float32
values, zstd framing).

* ``compact``: FedAvg + server-mask unstructured pruning, cubic schedule from 49% to 75%
  sparsity over rounds 1-28 (a new mask every 3 rounds); updates in int4; the downlink as
  deltas against the previous broadcast model, clustered to k = 4 (2-bit indices); zstd;
* ``fedavg-dense``: FedAvg, dense float32 both ways, zstd (the coordinator defaults).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class RunPreset:
    summary: str
    overrides: tuple[str, ...]


COMPACT = (
    "pruning.enabled=true", "pruning.scheme=server-mask", "pruning.granularity=unstructured",
    "pruning.schedule=cubic", "pruning.start_round=1", "pruning.end_round=28",
    "pruning.prune_every=3", "pruning.refine_rounds=0", "pruning.initial_sparsity=0.49",
    "pruning.target_sparsity=0.75",
    "wire.uplink=int4", "wire.downlink=clustered", "wire.clusters=4", "wire.downlink_delta=true",
    "wire.zstd=true",
)

RUN_PRESETS: Mapping[str, RunPreset] = {
    "compact": RunPreset("FedAvg, 75% pruned (cubic, rounds 1-28), int4 updates, 2-bit "
                         "clustered model deltas down", COMPACT),
    "fedavg-dense": RunPreset("FedAvg, dense float32 both ways (coordinator defaults)", ()),
}
DEFAULT_PRESET = "compact"
