"""Lightweight simulated clients for workload W3 (docs/workloads.md): many per process.

Each client is a coroutine on one grpc.aio event loop, speaking the real protocol to a
real coordinator: ``Round`` (long-poll until a TRAIN task; WAIT is retried), ``PullModel``
(every chunk assembled and checked against its header's SHA-256, the payload parsed, the
mask adopted), ``PushUpdate`` (a W1-sized update). There is no training: the update is a
fixed pseudo-random delta encoded once per (model version, mask) and process with the
task's codec, so the coordinator decodes and folds exactly what a real client of that
codec would send. Clients share one HTTP/2 connection per ``clients_per_channel`` (their
identity is the call metadata, as for real clients).

Every call outcome is counted by (method, status code), and per-call latencies kept, so a
run reports failed calls by code. Run as a script, one driver process drives a slice of
the client ids and writes its counts as JSON (``bench/scale.py`` starts several).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import Counter
from dataclasses import dataclass, field

import grpc
import numpy as np

from fedcore.model_codec import Encoding, decode_mask_message, decode_model, encode_model
from fedcore.pb import coordinator_pb2 as cpb
from fedcore.pb import coordinator_pb2_grpc
from fedcore.streaming import PayloadAssembler, make_header, split_payload

CHANNEL_OPTIONS = [("grpc.max_receive_message_length", 64 << 20),
                   ("grpc.max_send_message_length", 64 << 20),
                   # one TCP connection per channel (grpc would share one per process)
                   ("grpc.use_local_subchannel_pool", 1)]


@dataclass
class DriverStats:
    calls: Counter[str] = field(default_factory=Counter)  # "Method CODE" -> count
    latencies: dict[str, list[float]] = field(default_factory=dict)
    done: int = 0  # clients whose push was accepted
    ok: int = 0  # calls answered OK

    def record(self, method: str, code: grpc.StatusCode, seconds: float) -> None:
        self.calls[f"{method} {code.name}"] += 1
        self.latencies.setdefault(method, []).append(seconds)

    def to_json(self) -> dict[str, object]:
        return {"calls": dict(self.calls), "done": self.done,
                "latency_p50": {m: float(np.median(v)) for m, v in self.latencies.items()},
                "latency_max": {m: max(v) for m, v in self.latencies.items()}}


class UpdateFactory:
    """One encoded update per (version, mask id): a seeded delta of the model's shapes,
    zero outside the mask, in the task's codec."""

    def __init__(self, *, seed: int = 0) -> None:
        self._seed = seed
        self._cache: dict[tuple[int, str], bytes] = {}

    def payload(self, task: cpb.Task, model: cpb.ModelPayload,
                masks: dict[str, np.ndarray] | None) -> bytes:
        key = (task.model_version, task.mask_id)
        if key not in self._cache:
            params = decode_model(model.model, mask_id=task.mask_id, masks=masks)
            rng = np.random.default_rng(self._seed)
            delta = {k: (rng.standard_normal(v.shape) * 0.01).astype(np.float32)
                     for k, v in params.items()}
            for name, mask in (masks or {}).items():
                delta[name] *= mask
            encoded = encode_model(delta, encoding=Encoding.from_proto(task.update_encoding),
                                   version=task.model_version, mask_id=task.mask_id,
                                   masks=masks, seed=self._seed)
            self._cache[key] = cpb.UpdatePayload(delta=encoded).SerializeToString()
        return self._cache[key]


class LightClient:
    def __init__(self, stub: coordinator_pb2_grpc.CoordinatorStub, client_id: str, *,
                 token: str, updates: UpdateFactory, stats: DriverStats,
                 call_timeout_s: float) -> None:
        self._stub = stub
        self._id = client_id
        self._md = (("x-fedprune-client-id", client_id), ("authorization", f"Bearer {token}"))
        self._updates = updates
        self._stats = stats
        self._timeout = call_timeout_s
        self._masks: dict[str, np.ndarray] | None = None
        self._mask_id = ""

    async def _call(self, method: str, call: object) -> object:
        start = time.perf_counter()
        try:
            result = await call  # type: ignore[misc]
        except grpc.RpcError as exc:
            self._stats.record(method, exc.code(), time.perf_counter() - start)
            if sum(self._stats.calls.values()) - self._stats.ok < 5:  # the first few, in full
                print(f"{self._id} {method}: {exc.code().name} {exc.details()}", file=sys.stderr)
            raise
        self._stats.record(method, grpc.StatusCode.OK, time.perf_counter() - start)
        self._stats.ok += 1
        return result

    async def run_one_round(self, *, max_wait_ms: int = 20_000) -> bool:
        """Check in until a TRAIN task (or SHUTDOWN: False), pull, push; True if accepted."""
        while True:
            task = await self._call("Round", self._stub.Round(
                cpb.RoundRequest(max_wait_ms=max_wait_ms, num_examples=10),
                metadata=self._md, timeout=max_wait_ms / 1000 + 30))
            if task.kind == cpb.TASK_KIND_TRAIN:
                break
            if task.kind == cpb.TASK_KIND_SHUTDOWN:
                return False
            await asyncio.sleep(task.retry_after_ms / 1000)
        model = await self._call("PullModel", self._pull(task))
        data = self._updates.payload(task, model, self._masks if task.mask_id else None)
        header = cpb.UpdateHeader(task_id=task.task_id, round=task.round,
                                  model_version=task.model_version, mask_id=task.mask_id,
                                  num_examples=10, stream=make_header(data))

        async def chunks():  # type: ignore[no-untyped-def]
            yield cpb.UpdateChunk(header=header)
            for part in split_payload(data):
                yield cpb.UpdateChunk(data=part)
        ack = await self._call("PushUpdate", self._stub.PushUpdate(
            chunks(), metadata=self._md, timeout=self._timeout))
        self._stats.done += int(ack.accepted)
        return bool(ack.accepted)

    async def _pull(self, task: cpb.Task) -> cpb.ModelPayload:
        stream = self._stub.PullModel(cpb.PullModelRequest(task_id=task.task_id,
                                                           held_mask_id=self._mask_id),
                                      metadata=self._md, timeout=self._timeout)
        assembler: PayloadAssembler | None = None
        async for chunk in stream:
            if assembler is None:
                assembler = PayloadAssembler(chunk.header, max_bytes=1 << 30)
            else:
                assembler.add(chunk.data)
        if assembler is None:
            raise RuntimeError("empty model stream")
        model = cpb.ModelPayload.FromString(assembler.finish())
        if model.HasField("mask"):
            self._mask_id, self._masks = decode_mask_message(model.mask)
        return model


async def drive(target: str, client_ids: list[str], *, token: str,
                clients_per_channel: int = 25, call_timeout_s: float = 600.0,
                start_spread_s: float = 0.0) -> DriverStats:
    """Run one round for every client id against ``target``; failures are counted, not
    raised (a failed client simply does not push)."""
    stats, updates = DriverStats(), UpdateFactory()
    channels = [grpc.aio.insecure_channel(target, options=CHANNEL_OPTIONS)
                for _ in range(0, len(client_ids), clients_per_channel)]
    stubs = [coordinator_pb2_grpc.CoordinatorStub(ch) for ch in channels]

    async def one(i: int, cid: str) -> None:
        if start_spread_s:
            await asyncio.sleep(start_spread_s * i / len(client_ids))
        client = LightClient(stubs[i // clients_per_channel], cid, token=token,
                             updates=updates, stats=stats, call_timeout_s=call_timeout_s)
        try:
            await client.run_one_round()
        except grpc.RpcError:
            pass  # counted by _call
    try:
        await asyncio.gather(*(one(i, c) for i, c in enumerate(client_ids)))
    finally:
        for ch in channels:
            await ch.close()
    return stats


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", required=True)
    ap.add_argument("--token", required=True)
    ap.add_argument("--prefix", default="c")
    ap.add_argument("--first", type=int, default=0)
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--clients-per-channel", type=int, default=25)
    ap.add_argument("--start-spread-s", type=float, default=0.0)
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    ids = [f"{args.prefix}{i}" for i in range(args.first, args.first + args.count)]
    stats = asyncio.run(drive(args.target, ids, token=args.token,
                              clients_per_channel=args.clients_per_channel,
                              start_spread_s=args.start_spread_s))
    with open(args.out, "w") as fh:
        json.dump(stats.to_json(), fh)
    return 0


if __name__ == "__main__":
    sys.exit(main())
