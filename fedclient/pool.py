"""A client pool: one OS process hosting many virtual clients, each a full daemon loop.

Why: a client daemon is a whole Python process with torch (hundreds of MB), so one machine
runs a few dozen; a simulation of a thousand clients needs them to share a process. Each
virtual client is a :class:`fedclient.daemon.ClientDaemon` with its own identity (client
id, token), data partition, model instance, held mask, RNG seeds and backoff state,
running the daemon's loop unchanged in its own thread and talking real gRPC to the
coordinator. What the pool shares is only what carries no identity: the process, torch's
thread pool (one intra-op thread: virtual clients run side by side, not one client on
every core) and gRPC channels (``clients_per_channel`` clients multiplex one HTTP/2
connection; every call still sends its own client's id and token, so each authenticates
as itself). A client certificate names one client, so mTLS pools are refused at config
time (:class:`fedclient.config.PoolConfig`).

Invariant: the pool's exit code is 0 only if every virtual client ended cleanly; a client
the coordinator refuses ends alone (:data:`fedclient.daemon.EXIT_REFUSED`), the others go
on. ``stop()`` asks every client to stop; ``run`` returns once their loops have ended.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from pathlib import Path

import grpc

from fedclient.channel import open_channel
from fedclient.config import ClientConfig, PoolConfig
from fedclient.daemon import ClientDaemon
from fedclient.local_work import LocalWorker
from fedclient.personal_layers import PersonalLayers
from fedcore.datasets import load_client_data

log = logging.getLogger("fedclient.pool")


def virtual_client_configs(config: PoolConfig) -> list[ClientConfig]:
    """The configuration of each virtual client (see :class:`PoolConfig`)."""
    base, slow = config.client, frozenset(config.slow_partitions)
    out = []
    for p in config.partitions:
        cid = f"{config.id_prefix}{p}"
        personal = (str(Path(base.personal_state).with_name(f"{cid}.personal.npz"))
                    if base.personal_state else "")  # one file per virtual client
        out.append(dataclasses.replace(
            base, client_id=cid, token=config.tokens.get(cid, base.token),
            data=dataclasses.replace(base.data, partition=p),
            slowdown=config.slowdown if p in slow else base.slowdown, personal_state=personal))
    return out


class ClientPool:
    def __init__(self, config: PoolConfig) -> None:
        import torch

        torch.set_num_threads(1)  # see the module doc
        self.config = config
        configs = virtual_client_configs(config)
        per = config.clients_per_channel
        self._channels: list[grpc.Channel] = [
            open_channel(config.client.server, tls=config.client.tls, own_connection=True)
            for _ in range(0, len(configs), per)]
        self.daemons = [
            ClientDaemon(cfg, LocalWorker(load_client_data(cfg.data), seed=cfg.seed,
                                          allowed_models=cfg.allowed_models, attack=cfg.attack,
                                          personal=PersonalLayers(
                                              path=cfg.personal_state or None)),
                         channel=self._channels[i // per], log_prefix=f"{cfg.client_id}: ")
            for i, cfg in enumerate(configs)]
        self._codes: list[int] = [0] * len(self.daemons)
        self._threads = [threading.Thread(target=self._run_one, args=(i,), daemon=True,
                                          name=f"vclient-{d.config.client_id}")
                         for i, d in enumerate(self.daemons)]

    def _run_one(self, index: int) -> None:
        try:
            self._codes[index] = self.daemons[index].run()
        except Exception:  # one client's bug must not take the others down silently
            log.exception("virtual client %s crashed", self.daemons[index].config.client_id)
            self._codes[index] = 1

    def run(self) -> int:
        """Run every virtual client until each ends; the largest exit code among them."""
        log.info("pool of %d virtual clients on %d channels to %s", len(self.daemons),
                 len(self._channels), self.config.client.server)
        for t in self._threads:
            t.start()
        try:
            for t in self._threads:
                while t.is_alive():
                    t.join(timeout=0.5)  # stays responsive to signals in the main thread
        finally:
            self.stop()
            for t in self._threads:
                t.join(timeout=10)
            self.close()
        done = sum(d.rounds_done for d in self.daemons)
        log.info("pool finished: %d tasks done by %d clients", done, len(self.daemons))
        return max(self._codes)

    def stop(self) -> None:
        """Ask every virtual client to stop (safe from a signal handler; ``run`` joins)."""
        for d in self.daemons:
            d.stop()

    def close(self) -> None:
        for channel in self._channels:
            channel.close()
