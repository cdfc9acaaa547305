"""W2 `codec-10M`: size, entropy ratio and throughput of the fedcompression codecs.

Workload (W2 ``codec-10M``, docs/workloads.md): a ~10M-parameter float32 "model" of 4
conv and 3 linear tensors, weights N(0, 0.05), seed 0; magnitude pruning (uniform per
tensor) to sparsity {0, 0.5, 0.9, 0.99}; formats dense fp32 / fp16 / int8, sparse (explicit
positions, fp32 values), sparse with the mask implied, sparse + clustered k=16
(explicit and implied), each with and without zstd; plus "sparse int8" (explicit
positions, int8 values), which is what ``positions="auto"`` picks for pruned int8 tensors.

Per cell: bytes, bits per parameter, ratio vs dense fp32, ratio of the bytes to the
empirical entropy bound of the transmitted symbols (fedcompression.entropy_bound_bits;
implied masks cost 0 bits), and encode / decode throughput in MB/s of dense-equivalent
float32 (4 bytes per parameter) on one core (best of --repeats).

Bytes are the serialized protobuf size of every Tensor message when
``fedcore.wire.tensor_to_proto`` exists, else the sum of blob payload bytes
(``payload_nbytes``); the output says which. Implied-mask cells do not include the
mask itself, which the receiver already holds (its one-off size is printed).

    python bench/codecs.py            # full W2 (10M parameters)
    python bench/codecs.py --quick    # 1M parameters
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import zstandard

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import fedcompression as fc

FULL_SHAPES = {
    "conv1": (64, 3, 7, 7), "conv2": (128, 64, 3, 3), "conv3": (256, 128, 3, 3),
    "conv4": (512, 256, 3, 3), "fc1": (2048, 3072), "fc2": (1000, 2048), "fc3": (100, 1000),
}
QUICK_SHAPES = {
    "conv1": (32, 3, 5, 5), "conv2": (64, 32, 3, 3), "conv3": (128, 64, 3, 3),
    "conv4": (256, 128, 3, 3), "fc1": (1024, 512), "fc2": (100, 1024), "fc3": (10, 100),
}
SPARSITIES = (0.0, 0.5, 0.9, 0.99)
# name -> (values codec, positions mode, discrete symbols?)
FORMATS = {
    "dense fp32": ("fp32", "dense", False),
    "dense fp16": ("fp16", "dense", False),
    "dense int8": ("int8", "dense", True),
    "sparse fp32": ("fp32", "explicit", False),
    "sparse int8": ("int8", "explicit", True),  # beyond W2's list: int8 as pruned tensors go
    "sparse fp32 implied": ("fp32", "implied", False),
    "sparse clustered16": ("clustered", "explicit", True),
    "sparse clustered16 implied": ("clustered", "implied", True),
}
MASK_ID = "w2-mask"


@dataclass
class Cell:
    sparsity: float
    fmt: str
    zstd: bool
    nbytes: int
    entropy_bits: float
    encode_s: float
    decode_s: float
    max_abs_err: float


def make_model(shapes: dict[str, tuple[int, ...]]) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {n: rng.normal(0.0, 0.05, s).astype(np.float32) for n, s in shapes.items()}


def prune(model: dict[str, np.ndarray], sparsity: float
          ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    scores = {n: fc.magnitude_scores(w) for n, w in model.items()}
    masks = fc.allocate_masks(scores, sparsity, shapes={n: w.shape for n, w in model.items()})
    return {n: np.where(masks[n], w, np.float32(0)) for n, w in model.items()}, masks


def byte_counter() -> tuple[Callable[[fc.EncodedTensor], int], str]:
    """Serialized protobuf size via fedcore.wire when available, else blob payload bytes."""
    try:
        from fedcore.wire import tensor_to_proto  # type: ignore[import-not-found]
    except ImportError:
        return fc.payload_nbytes, "payload_nbytes (sum of blob data; fedcore.wire not found)"
    return (lambda enc: tensor_to_proto(enc).ByteSize()), \
        "serialized protobuf Tensor size (fedcore.wire.tensor_to_proto(...).ByteSize())"


def best_time(fn: Callable[[], object], repeats: int) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def run_cell(model: dict[str, np.ndarray], masks: dict[str, np.ndarray], sparsity: float,
             fmt: str, zstd: bool, repeats: int, count_bytes: Callable) -> Cell:
    values, positions, _ = FORMATS[fmt]
    encoding = fc.TensorEncoding(values=values, clusters=16, positions=positions, zstd=zstd)
    mask_id = MASK_ID if positions == "implied" else ""

    def encode() -> list[fc.EncodedTensor]:
        return [fc.encode_tensor(n, w, encoding, mask=masks[n], mask_id=mask_id, seed=0)
                for n, w in model.items()]

    def decode() -> list[np.ndarray]:
        return [fc.decode_tensor(e, mask=masks[e.name]) for e in encoded]

    encode_s, encoded = best_time(encode, max(1, repeats - 1) if values == "clustered"
                                  else repeats)
    decode_s, decoded = best_time(decode, repeats)
    err = max(float(np.max(np.abs(d - model[e.name]), initial=0.0))
              for e, d in zip(encoded, decoded))
    return Cell(sparsity, fmt, zstd, sum(count_bytes(e) for e in encoded),
                sum(fc.entropy_bound_bits(e) for e in encoded), encode_s, decode_s, err)


def machine() -> str:
    def sh(cmd: str) -> str:
        try:
            return subprocess.run(cmd, shell=True, capture_output=True, text=True,
                                  check=False).stdout.strip()
        except OSError:
            return "?"
    cpu = sh("lscpu | grep 'Model name' | sed 's/Model name:\\s*//'") or platform.processor()
    mem = sh("free -h | awk '/Mem:/ {print $2}'")
    return (f"nproc={sh('nproc')} (benchmark pinned to one core), CPU: {cpu}, "
            f"memory {mem} (free -h); "
            f"Python {platform.python_version()}, numpy {np.__version__}, "
            f"zstandard {zstandard.__version__} (libzstd {zstandard.ZSTD_VERSION})")


def table(cells: list[Cell], numel: int, dense_bytes: int) -> str:
    dense_mb = numel * 4 / 1e6
    lines = [("| sparsity | format | zstd | bytes | bits/param | vs dense fp32 | bytes / entropy"
              " bound | encode MB/s | decode MB/s | max abs err |"),
             "|---:|---|:-:|---:|---:|---:|---:|---:|---:|---:|"]
    for c in cells:
        lines.append(
            f"| {c.sparsity:g} | {c.fmt} | {'yes' if c.zstd else 'no'} | {c.nbytes:,} | "
            f"{8 * c.nbytes / numel:.3f} | {dense_bytes / c.nbytes:.1f}x | "
            f"{8 * c.nbytes / c.entropy_bits:.3f} | {dense_mb / c.encode_s:,.0f} | "
            f"{dense_mb / c.decode_s:,.0f} | {c.max_abs_err:.2g} |")
    return "\n".join(lines)


def targets(cells: list[Cell], numel: int, dense_bytes: int) -> list[str]:
    def find(fmt: str, zstd: bool, s: float = 0.9) -> Cell:
        return next(c for c in cells if (c.fmt, c.zstd, c.sparsity) == (fmt, zstd, s))

    out = []
    for fmt, limit in (("sparse clustered16 implied", 60), ("sparse clustered16", 25)):
        for zstd in (True, False):
            c = find(fmt, zstd)
            ok = c.nbytes * limit <= dense_bytes
            out.append(f"- {'MET' if ok else 'MISSED'}: 90%-sparse {fmt}, zstd={zstd}: "
                       f"{dense_bytes / c.nbytes:.1f}x smaller than dense fp32 "
                       f"(target >= {limit}x)")
    discrete = [c for c in cells if FORMATS[c.fmt][2] and c.zstd]
    for c in discrete:
        ratio = 8 * c.nbytes / c.entropy_bits if c.entropy_bits else float("inf")
        out.append(f"- {'MET' if ratio <= 1.15 else 'MISSED'}: {c.fmt} zstd at sparsity "
                   f"{c.sparsity:g}: {ratio:.3f}x its entropy bound (target <= 1.15x)")
    slow = [c for c in cells if numel * 4 / 1e6 / c.decode_s < 500]
    out.append(f"- {'MET' if not slow else 'MISSED'}: decode >= 500 MB/s dense-equivalent in "
               f"{len(cells) - len(slow)}/{len(cells)} cells"
               + ("" if not slow else "; below: " + ", ".join(
                   f"{c.fmt}{' zstd' if c.zstd else ''} @{c.sparsity:g} "
                   f"({numel * 4 / 1e6 / c.decode_s:.0f})" for c in slow)))
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1M parameters instead of 10M")
    parser.add_argument("--repeats", type=int, default=3, help="timing repeats (best of)")
    args = parser.parse_args(argv)
    host = machine()  # before pinning, so nproc reports the machine
    if hasattr(os, "sched_setaffinity"):  # W2 measures one core
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    model = make_model(QUICK_SHAPES if args.quick else FULL_SHAPES)
    numel = sum(w.size for w in model.values())
    count_bytes, how = byte_counter()
    cells, mask_bytes = [], {}
    for sparsity in SPARSITIES:
        pruned, masks = prune(model, sparsity)
        mask_bytes[sparsity] = sum(fc.payload_nbytes(fc.encode_mask(n, m))
                                   for n, m in masks.items())
        for fmt in FORMATS:
            for zstd in (False, True):
                cells.append(run_cell(pruned, masks, sparsity, fmt, zstd, args.repeats,
                                      count_bytes))
                print(f"  done {sparsity:g} {fmt} zstd={zstd}", file=sys.stderr)
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    dense_bytes = next(c.nbytes for c in cells if c.fmt == "dense fp32" and not c.zstd)
    print(f"## W2 codec-10M ({'quick, ' if args.quick else ''}{numel:,} parameters)\n")
    print(f"Command: `python bench/codecs.py{' --quick' if args.quick else ''}`  ")
    print(f"Machine: {host}; load average at the end of the run "
          f"{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (1 / 5 / 15 min)  ")
    print(f"Bytes: {how}. Dense fp32 reference: {dense_bytes:,} bytes.  ")
    print("Implied-mask cells exclude the mask, which the receiver holds; sending it once "
          + "costs (encode_mask, zstd): "
          + ", ".join(f"{s:g}: {b:,} B" for s, b in mask_bytes.items()) + ".\n")
    print(table(cells, numel, dense_bytes))
    print("\nTargets:\n" + "\n".join(targets(cells, numel, dense_bytes)))


if __name__ == "__main__":
    main()
