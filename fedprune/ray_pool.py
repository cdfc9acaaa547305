"""Client pools as Ray actors: spread thousands of virtual clients over a Ray cluster.

Each actor hosts one :class:`fedclient.pool.ClientPool` (its virtual clients talk real gRPC
to the coordinator, exactly as in a pool process); Ray only places the actors and keeps
them alive. An actor receives its :class:`fedclient.config.PoolConfig` as plain data (the
config's dict form, rebuilt and re-validated by :func:`fedcore.config.build` on the
worker; no pickled code of ours crosses) and loads its clients' data itself from their
data specs, which determine the same samples on every machine. Every node needs fedprune
installed (``pip install fedprune[ray]``) and must reach the coordinator's address.

``address`` "" starts a local Ray (``ray.init()``, what the tests do); "auto" or
``ray://host:port`` joins a running cluster. ``stop`` kills the actors and, for a Ray
:meth:`RayPools.start` joined or started, shuts it down.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from fedclient.config import PoolConfig
from fedcore import config as config_io


class RayUnavailable(RuntimeError):
    """``ray`` is not installed (it is the optional ``fedprune[ray]`` extra)."""


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise RayUnavailable("simulate.ray needs Ray: pip install 'fedprune[ray]'") from None
    return ray


def _run_pool(config: dict[str, Any], log_level: str) -> int:
    """Body of an actor's ``run``: the pool, rebuilt from plain data, until it ends."""
    from fedclient.pool import ClientPool
    from fedcore.logs import configure_logging

    pool_config = config_io.build(PoolConfig, config)
    configure_logging(log_level, pool_config.client.log_format,
                      name=f"fedclient[{pool_config.client.client_id}]")
    return ClientPool(pool_config).run()


def init_ray(address: str = "") -> None:
    """Join (or start, for ``""``) a Ray. Do it before this process serves gRPC itself:
    Ray forks its local services, and a fork while gRPC threads run can hang them."""
    ray = _ray()
    # local workers must import this very fedprune (a checkout on PYTHONPATH too)
    env = {k: os.environ[k] for k in ("PYTHONPATH", "OMP_NUM_THREADS") if k in os.environ}
    ray.init(address=address or None, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": env} if env else None)


class RayPools:
    def __init__(self, ray: Any, actors: list[Any], runs: list[Any], *, owns_ray: bool) -> None:
        self._ray, self.actors, self.runs, self._owns_ray = ray, actors, runs, owns_ray

    @classmethod
    def start(cls, pools: Sequence[PoolConfig], *, address: str = "",
              cpus_per_pool: float = 1.0) -> RayPools:
        """Actors for ``pools`` on the Ray at ``address`` (joined or started here unless
        this process already joined one, see :func:`init_ray`)."""
        ray = _ray()
        owns = not ray.is_initialized()
        if owns:
            init_ray(address)
        actor_cls = ray.remote(num_cpus=cpus_per_pool)(PoolActor)
        actors = [actor_cls.remote() for _ in pools]
        runs = [a.run.remote(config_io.to_dict(p), p.client.log_level)
                for a, p in zip(actors, pools)]
        return cls(ray, actors, runs, owns_ray=owns)

    def exit_codes(self, timeout: float | None = None) -> list[int]:
        """Each pool's exit code once all have ended (raises on timeout or a dead actor)."""
        return [int(c) for c in self._ray.get(self.runs, timeout=timeout)]

    def stop(self) -> None:
        for actor in self.actors:
            self._ray.kill(actor)
        if self._owns_ray:
            self._ray.shutdown()


class PoolActor:
    """A Ray actor (made one by :meth:`RayPools.start`) hosting one client pool."""

    def run(self, config: dict[str, Any], log_level: str) -> int:
        return _run_pool(config, log_level)
