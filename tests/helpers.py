"""Helpers for tests that talk real gRPC to a coordinator (in-process or as a process)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import grpc
import numpy as np

from fedcore import config as config_io
from fedcore.model_codec import Encoding, decode_model, encode_model
from fedcore.pb import coordinator_pb2 as cpb
from fedcore.pb import coordinator_pb2_grpc
from fedcore.streaming import PayloadAssembler, make_header, split_payload
from fedserver.config import ServerConfig
from fedserver.server import RunningServer, create_server

TOKEN = "test-token"


def server_config(state_dir: Path, *overrides: str) -> ServerConfig:
    base = [f"state_dir={state_dir}", "network.port=0", f"auth.shared_token={TOKEN}",
            "round.rounds=3", "round.clients_per_round=1", "round.min_clients=1",
            "round.deadline_s=30", "round.selection_timeout_s=5"]
    return config_io.load(ServerConfig, overrides=[*base, *overrides], environ={})


@contextlib.contextmanager
def running_server(config: ServerConfig) -> Iterator[RunningServer]:
    running = create_server(config)
    try:
        yield running
    finally:
        running.stop(grace=0.5)


class RawClient:
    """A hand-driven client: every message is built by the test, nothing is retried."""

    def __init__(self, port: int, client_id: str = "c1", token: str = TOKEN) -> None:
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        self.stub = coordinator_pb2_grpc.CoordinatorStub(self.channel)
        self.metadata: tuple[tuple[str, str], ...] = (
            ("x-fedprune-client-id", client_id), ("authorization", f"Bearer {token}"))

    def close(self) -> None:
        self.channel.close()

    def round(self, max_wait_ms: int = 5000) -> cpb.Task:
        return self.stub.Round(cpb.RoundRequest(max_wait_ms=max_wait_ms, num_examples=10),
                               metadata=self.metadata, timeout=30)

    def pull(self, task: cpb.Task, held_mask_id: str = "") -> cpb.ModelPayload:
        stream = self.stub.PullModel(cpb.PullModelRequest(task_id=task.task_id,
                                                          held_mask_id=held_mask_id),
                                     metadata=self.metadata, timeout=60)
        first = next(stream)
        assembler = PayloadAssembler(first.header, max_bytes=1 << 31)
        for chunk in stream:
            assembler.add(chunk.data)
        return cpb.ModelPayload.FromString(assembler.finish())

    def push_payload(self, header: cpb.UpdateHeader, data: bytes) -> cpb.PushAck:
        def chunks() -> Iterator[cpb.UpdateChunk]:
            yield cpb.UpdateChunk(header=header)
            for part in split_payload(data):
                yield cpb.UpdateChunk(data=part)
        return self.stub.PushUpdate(chunks(), metadata=self.metadata, timeout=60)


def update_for(task: cpb.Task, delta: dict[str, np.ndarray], *, masks: Any = None,
               encoding: Encoding = Encoding(), **header_overrides: Any
               ) -> tuple[cpb.UpdateHeader, bytes]:
    payload = cpb.UpdatePayload(delta=encode_model(delta, encoding=encoding,
                                                   version=task.model_version,
                                                   mask_id=task.mask_id, masks=masks))
    data = payload.SerializeToString()
    fields = {"task_id": task.task_id, "round": task.round, "model_version": task.model_version,
              "mask_id": task.mask_id, "num_examples": 10, "stream": make_header(data),
              **header_overrides}
    return cpb.UpdateHeader(**fields), data


def zero_delta(payload: cpb.ModelPayload) -> dict[str, np.ndarray]:
    """An all-zero update for an unpruned model."""
    return {k: np.zeros_like(v) for k, v in decode_model(payload.model).items()}


# -- real processes ------------------------------------------------------------------------

def spawn(module: str, config_path: Path, log: Path, **env: str) -> subprocess.Popen[bytes]:
    with open(log, "ab") as fh:
        return subprocess.Popen(
            [sys.executable, "-m", module, "--config", str(config_path)],
            stdout=fh, stderr=subprocess.STDOUT,
            env={**os.environ, "OMP_NUM_THREADS": "1", **env})


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def wait_for(predicate: Any, timeout: float, what: str, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def write_config(path: Path, config: Any) -> Path:
    path.write_text(config_io.to_toml(config))
    return path


def free_port() -> int:
    """A loopback port free right now (for processes that must start before their server)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def with_port(config: ServerConfig, port: int) -> ServerConfig:
    return replace(config, network=replace(config.network, port=port))
