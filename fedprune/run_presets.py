"""Named run configurations of ``fedprune simulate --preset``: what the quickstart runs.

A run preset is a list of coordinator ``key=value`` items applied *under* everything the
user gives (``--config`` file < environment < ``--set``), so any key stays one flag away.
``compact`` is the default because it is what fedprune is for: W1 at >= 0.95 accuracy on
a few MB instead of the ~204 MB of dense float32 FedAvg (docs/benchmarks.md measures it).
``fedavg-dense`` is the dense baseline (the coordinator's own defaults: FedAvg, float32
values, zstd framing).

* ``compact``: FedAvg + server-mask unstructured pruning, cubic schedule from 52% to 80%
  sparsity over rounds 1-28 (a new mask every 3 rounds), int4 values both ways, zstd;
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
    "pruning.prune_every=3", "pruning.refine_rounds=0", "pruning.initial_sparsity=0.52",
    "pruning.target_sparsity=0.8",
    "wire.uplink=int4", "wire.downlink=int4", "wire.zstd=true",
)

RUN_PRESETS: Mapping[str, RunPreset] = {
    "compact": RunPreset("FedAvg, 80% pruned (cubic, rounds 1-28), int4 both ways", COMPACT),
    "fedavg-dense": RunPreset("FedAvg, dense float32 both ways (coordinator defaults)", ()),
}
DEFAULT_PRESET = "compact"
