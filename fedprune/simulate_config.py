"""``[simulate]``: how ``fedprune simulate`` hosts its clients (``--set simulate.KEY=VALUE``).

These keys shape the simulation, not the federation: the coordinator never sees them.
``clients_per_process = 1`` (the default) runs one ``fedclient`` OS process per client, as
a deployment would; above 1, clients are virtual clients of client pools
(:mod:`fedclient.pool`), ``ceil(clients / clients_per_process)`` pool processes, or Ray
actors with ``ray = true`` (``fedprune simulate --ray [ADDRESS]``, the ``fedprune[ray]``
extra). ``slow_fraction`` of the clients (the last ``ceil(slow_fraction * clients)``; the
attack, when asked for, takes the first ones) stretch each local training
``slow_factor`` times (:attr:`fedclient.config.ClientConfig.slowdown`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field


def _check(ok: bool, key: str, message: str) -> None:
    if not ok:
        raise ValueError(f"{key}: {message}")


@dataclass(frozen=True)
class SimulateConfig:
    clients_per_process: int = 1  # > 1: client pools of this many virtual clients
    clients_per_channel: int = 100  # virtual clients sharing one gRPC connection
    ray: bool = False  # host the pools as Ray actors
    ray_address: str = ""  # "" starts a local Ray; "auto" or "ray://host:port" joins one
    ray_cpus_per_pool: float = 1.0  # CPUs Ray reserves for each pool actor
    coordinator_host: str = "127.0.0.1"  # where the coordinator listens (and clients dial)
    slow_fraction: float = 0.0
    slow_factor: float = 1.0
    synthetic_samples: int = 1000  # size of the synthetic set (data source synthetic)

    def __post_init__(self) -> None:
        _check(self.clients_per_process >= 1, "clients_per_process", "must be >= 1")
        _check(self.clients_per_channel >= 1, "clients_per_channel", "must be >= 1")
        _check(0 < self.ray_cpus_per_pool < math.inf, "ray_cpus_per_pool", "must be > 0")
        _check(0 <= self.slow_fraction <= 1, "slow_fraction", "must be in [0, 1]")
        _check(1 <= self.slow_factor < math.inf, "slow_factor", "must be finite and >= 1")
        _check(self.synthetic_samples >= 1, "synthetic_samples", "must be >= 1")
        _check(bool(self.coordinator_host), "coordinator_host", "must not be empty")

    @property
    def pooled(self) -> bool:
        return self.ray or self.clients_per_process > 1

    def slow_clients(self, clients: int) -> range:
        """The partitions that run slowed down (the last ones, see the module doc)."""
        k = math.ceil(self.slow_fraction * clients) if self.slow_factor > 1 else 0
        return range(clients - k, clients)


@dataclass(frozen=True)
class SimulateKeys:
    """The ``simulate.*`` keys as a section of their own, so an error names the dotted key."""

    simulate: SimulateConfig = field(default_factory=SimulateConfig)
