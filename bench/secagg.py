"""Secure aggregation cost: time and bytes per round against plain aggregation.

Every client and the coordinator run in this process through
:func:`fedcore.secagg.local_round.run_local_round`: the real sessions, the real
cryptography, every message serialized and parsed and its bytes counted per direction.
Times are CPU seconds of this process (``time.process_time``: the machine is shared, so
wall time measures the other jobs too); the wall time of each cell is printed beside.
The update is W1's model (``mlp``, 85,002 values) with 0 / 50 / 90 % of the coordinates
pruned (the kept count is what matters: secure aggregation carries only the kept
coordinates of the public mask). A dropout rate removes clients after they shared keys,
so the unmask step reconstructs their pairwise masks.

Plain aggregation, for comparison, uploads the kept coordinates as float32 (implied-mask
sparse encoding, no index bytes): ``4 * kept`` bytes of payload per client. Both sides
also download the model, identically, which is not counted here. Bytes are serialized
protobuf sizes of the secure-aggregation messages (gRPC framing adds a few bytes per
message in a real federation).

Cohorts above 100 use the SecAgg+ graph (``--degree-large``, default 2 * ceil(log2 n)),
as Bell et al. propose for large cohorts; a complete graph at 1,000 costs each client
1,000 key agreements and 2 x 1,000 Shamir evaluations of degree t - 1, measured on one
client (always printed). The expansion factor at Bonawitz et al.'s operating point
(2^10 clients, 2^20 values of 16 bits, complete graph) is computed from one client's real
messages.

    nice -n 10 python bench/secagg.py --out bench/out/secagg
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import time
from pathlib import Path

import numpy as np

from fedcore.pb import secagg_pb2 as spb
from fedcore.secagg import keys, ring
from fedcore.secagg.client_session import ClientSession
from fedcore.secagg.fixed_point import ring_bits_for
from fedcore.secagg.keys import RoundContext
from fedcore.secagg.local_round import run_local_round

W1_VALUES = 85_002
VALUE_BITS = 16


def _setup(n: int, length: int, *, degree: int, threshold: float) -> spb.SecAggSetup:
    group = degree + 1 if degree and degree < n - 1 else n
    return spb.SecAggSetup(value_bits=VALUE_BITS, ring_bits=ring_bits_for(VALUE_BITS, n),
                           clip_range=1.0, threshold=max(2, math.ceil(threshold * group)),
                           cohort_size=n, neighbours=degree, vector_length=length)


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def cell(n: int, pruning: float, *, degree: int, dropout: float, threshold: float
         ) -> dict[str, object]:
    length = math.ceil((1 - pruning) * W1_VALUES)
    setup = _setup(n, length, degree=degree, threshold=threshold)
    rng = np.random.default_rng(0)  # benchmark inputs, not masks
    inputs = {f"client-{i:04d}": rng.normal(0, 0.05, length) for i in range(n)}
    dropped = sorted(inputs)[: math.floor(dropout * n)]
    wall, cpu = time.perf_counter(), _cpu()
    result = run_local_round(inputs, setup, drop_after={c: "share" for c in dropped})
    wall, cpu = time.perf_counter() - wall, _cpu() - cpu
    cost = result.cost
    survivors = sorted(result.survivors)
    up = np.array([cost.up[c] for c in survivors])
    down = np.array([cost.down[c] for c in survivors])
    plain_up = 4 * length
    client_s = np.array([cost.client_seconds[c] for c in survivors])
    return {
        "cohort": n, "pruning": pruning, "kept": length, "degree": degree or n - 1,
        "threshold": setup.threshold, "ring_bits": setup.ring_bits, "dropout": dropout,
        "survivors": len(survivors),
        "client_up_bytes": float(up.mean()), "client_down_bytes": float(down.mean()),
        "coordinator_in_bytes": int(sum(cost.up.values())),
        "coordinator_out_bytes": int(sum(cost.down.values())),
        "plain_client_up_bytes": plain_up, "plain_coordinator_in_bytes": plain_up * n,
        "up_expansion_vs_plain_sparse_fp32": float(up.mean()) / plain_up,
        "up_expansion_vs_dense_fp32": float(up.mean()) / (4 * W1_VALUES),
        "client_seconds_mean": float(client_s.mean()), "server_seconds": cost.server_seconds,
        "wall_seconds": wall, "cpu_seconds": cpu,
    }


def one_client(n: int, length: int) -> dict[str, object]:
    """One client's real messages and time in a complete graph of ``n`` (the others are
    only key pairs): share creation and masking dominate, and they are per client."""
    setup = _setup(n, length, degree=0, threshold=0.6)
    ctx = RoundContext("bench", 1)
    me = ClientSession(context=ctx, client_id="client-0000", setup=setup)
    others = [(f"client-{i:04d}", keys.new_private_key(), keys.new_private_key())
              for i in range(1, n)]
    key_list = spb.SecAggKeyList(threshold=setup.threshold)
    mine = me.advertise()
    key_list.peers.add(client_id="client-0000", share_index=1,
                       cipher_public_key=mine.cipher_public_key,
                       mask_public_key=mine.mask_public_key)
    for i, (cid, c, m) in enumerate(others):
        key_list.peers.add(client_id=cid, share_index=i + 2, cipher_public_key=keys.public_bytes(c),
                           mask_public_key=keys.public_bytes(m))
    start = time.process_time()
    upload = me.share_keys(key_list)
    share_s = time.process_time() - start
    # the masked input: n - 1 pairwise streams plus the self mask over ``length`` values
    start = time.process_time()
    bits = setup.ring_bits
    y = np.zeros(length, dtype=np.uint64)
    for cid, _, m in others:
        seed = keys.agree(m, mine.mask_public_key, info=ctx.info("mask", "client-0000", cid))
        y = ring.add(y, ring.expand(seed, length, bits), bits)
    mask_s = time.process_time() - start
    masked = spb.SecAggMaskedInput(vector_length=length, ring_bits=bits,
                                   values=ring.pack(y, bits), num_examples=1)
    unmask = spb.SecAggUnmaskResponse()
    for cid, _, _ in others:
        unmask.shares.add(owner=cid, self_seed_share=bytes(33))
    up = mine.ByteSize() + upload.ByteSize() + masked.ByteSize() + unmask.ByteSize()
    return {"cohort": n, "kept": length, "ring_bits": bits, "share_keys_seconds": share_s,
            "masking_seconds": mask_s, "keys_bytes": mine.ByteSize(),
            "shares_bytes": upload.ByteSize(), "masked_bytes": masked.ByteSize(),
            "unmask_bytes": unmask.ByteSize(), "client_up_bytes": up}


def bonawitz_point() -> dict[str, object]:
    """2^10 clients, 2^20 values of 16 bits, complete graph: expansion vs sending in clear."""
    n, length = 1 << 10, 1 << 20
    row = one_client(n, 4096)  # shares and keys do not depend on the length
    bits = ring_bits_for(VALUE_BITS, n)
    masked = spb.SecAggMaskedInput(vector_length=length, ring_bits=bits,
                                   values=bytes(ring.packed_size(length, bits)),
                                   num_examples=1).ByteSize()
    up = row["keys_bytes"] + row["shares_bytes"] + masked + row["unmask_bytes"]  # type: ignore[operator]
    clear = length * VALUE_BITS // 8
    return {"clients": n, "values": length, "ring_bits": bits, "client_up_bytes": up,
            "clear_bytes": clear, "expansion": up / clear, "bonawitz_reported": 1.73}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cohorts", default="10,100,1000")
    ap.add_argument("--pruning", default="0,0.5,0.9")
    ap.add_argument("--dropout", type=float, default=0.1)
    ap.add_argument("--threshold", type=float, default=0.6)
    ap.add_argument("--degree-large", type=int, default=0,
                    help="SecAgg+ degree for cohorts > 100 (0: 2 * ceil(log2 n))")
    ap.add_argument("--out", default="bench/out/secagg")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for n in [int(x) for x in args.cohorts.split(",")]:
        degree = 0
        if n > 100:
            degree = args.degree_large or 2 * math.ceil(math.log2(n))
        for p in [float(x) for x in args.pruning.split(",")]:
            row = cell(n, p, degree=degree, dropout=args.dropout, threshold=args.threshold)
            rows.append(row)
            print(json.dumps(row), flush=True)
    one = one_client(1000, W1_VALUES)
    print(json.dumps({"one_client_complete_graph": one}), flush=True)
    bon = bonawitz_point()
    print(json.dumps({"bonawitz_point": bon}), flush=True)
    (out / "results.json").write_text(json.dumps(
        {"cells": rows, "one_client_complete_1000": one, "bonawitz_point": bon,
         "machine": f"{os.cpu_count()} cores (shared)", "load": os.getloadavg()}, indent=1))


if __name__ == "__main__":
    main()
