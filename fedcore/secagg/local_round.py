"""One secure-aggregation round run in one process, message by message.

The benchmark and the protocol tests use it to exercise the two sessions exactly as the
coordinator and the daemons do, minus the RPCs: every message is serialized and parsed,
its size counted per direction, and a client listed in ``drop_after`` stops after the
named phase (``"none"`` = drops before advertising; ``"advertise"``, ``"share"``,
``"masked"`` = after sending that phase's message). Phase survivors are the clients whose
message arrived, as on the coordinator. Times are CPU seconds (``time.process_time``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from fedcore.pb import secagg_pb2 as spb
from fedcore.secagg import ring
from fedcore.secagg.client_session import ClientSession
from fedcore.secagg.keys import RoundContext
from fedcore.secagg.server_session import ServerSession

PHASES = ("none", "advertise", "share", "masked")


@dataclass
class RoundCost:
    up: dict[str, int] = field(default_factory=dict)  # client -> bytes sent
    down: dict[str, int] = field(default_factory=dict)  # client -> bytes received
    client_seconds: dict[str, float] = field(default_factory=dict)
    server_seconds: float = 0.0

    def count(self, client: str, *, up: int = 0, down: int = 0) -> None:
        self.up[client] = self.up.get(client, 0) + up
        self.down[client] = self.down.get(client, 0) + down


@dataclass
class LocalRoundResult:
    total: np.ndarray  # unmasked ring sum of the survivors' encoded inputs
    survivors: frozenset[str]
    cost: RoundCost


def _timed(cost: RoundCost, client: str, fn, *args):  # type: ignore[no-untyped-def]
    start = time.process_time()
    out = fn(*args)
    cost.client_seconds[client] = cost.client_seconds.get(client, 0.0) + (
        time.process_time() - start)
    return out


def run_local_round(inputs: Mapping[str, np.ndarray], setup: spb.SecAggSetup, *,
                    drop_after: Mapping[str, str] | None = None,
                    context: RoundContext = RoundContext("local", 1)) -> LocalRoundResult:
    drop = dict(drop_after or {})
    cost = RoundCost()
    server = ServerSession(context=context, setup=setup, cohort=inputs)
    sessions = {c: ClientSession(context=context, client_id=c, setup=setup) for c in inputs}
    alive = [c for c in sorted(inputs) if drop.get(c) != "none"]
    setup_bytes = setup.ByteSize()
    for c in inputs:
        cost.count(c, down=setup_bytes)
    for c in alive:
        msg = spb.SecAggPublicKeys.FromString(
            _timed(cost, c, sessions[c].advertise).SerializeToString())
        cost.count(c, up=msg.ByteSize())
        _server(cost, server.add_keys, c, msg)
    _server(cost, server.close_advertise, alive)
    alive = [c for c in alive if drop.get(c) != "advertise"]
    for c in alive:
        key_list = server.key_list_for(c)
        upload = _timed(cost, c, sessions[c].share_keys, key_list)
        cost.count(c, down=key_list.ByteSize(), up=upload.ByteSize())
        _server(cost, server.add_shares, c, spb.SecAggShareUpload.FromString(
            upload.SerializeToString()))
    _server(cost, server.close_share_keys, alive)
    alive = [c for c in alive if drop.get(c) != "share"]
    total = np.zeros(setup.vector_length, dtype=np.uint64)
    bits = setup.ring_bits
    for c in alive:
        delivery = server.delivery_for(c)
        y = _timed(cost, c, sessions[c].masked_input, delivery, inputs[c])
        msg = spb.SecAggMaskedInput(vector_length=y.size, ring_bits=bits,
                                    values=ring.pack(y, bits))
        cost.count(c, down=delivery.ByteSize(), up=msg.ByteSize())
        total = _server(cost, _fold, total, msg)
    _server(cost, server.close_masked, alive)
    alive = [c for c in alive if drop.get(c) != "masked"]
    for c in alive:
        request = server.unmask_request_for(c)
        response = _timed(cost, c, sessions[c].unmask, request)
        cost.count(c, down=request.ByteSize(), up=response.ByteSize())
        _server(cost, server.add_unmask, c, response)
    correction = _server(cost, server.correction, int(setup.vector_length))
    return LocalRoundResult(ring.sub(total, correction, bits), server.survivors, cost)


def _fold(total: np.ndarray, msg: spb.SecAggMaskedInput) -> np.ndarray:
    return ring.add(total, ring.unpack(msg.values, msg.ring_bits, msg.vector_length),
                    msg.ring_bits)


def _server(cost: RoundCost, fn, *args):  # type: ignore[no-untyped-def]
    start = time.process_time()
    out = fn(*args)
    cost.server_seconds += time.process_time() - start
    return out
