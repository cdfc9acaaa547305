"""Export a trained global model as a compact artifact, loadable back into torch.

Artifact layout (``.fpm``): the 8 bytes ``FEDPRUNE``, a little-endian uint32 length, a
UTF-8 JSON header (format version, model name, layer specs when the model was shrunk),
then one serialized ``fedprune.v1.Model`` message — the same tensor formats as on the wire,
with explicit positions (bitmap or delta varints, whichever is smaller) so the file is
self-contained. No pickle is written or read.
"""

from __future__ import annotations

import dataclasses
import json
import struct
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from fedcompression import DecodeLimits, TensorEncoding, decode_tensor, encode_tensor
from fedcore import wire
from fedcore.models import build_model
from fedcore.params import get_parameters, set_parameters
from fedcore.pb import tensor_pb2 as pb
from fedcore.weight_clustering import clustered_names
from fedprune.shrink import LayerSpec, build_from_specs, shrink_sequential
from fedserver.checkpoint import read_checkpoint
from fedserver.store import RunStore

MAGIC = b"FEDPRUNE"
FORMAT = 1
Params = dict[str, np.ndarray]


@dataclass(frozen=True)
class Artifact:
    model_name: str
    params: Params
    specs: list[LayerSpec] | None = None

    def to_torch(self) -> nn.Module:
        model = build_from_specs(self.specs) if self.specs else build_model(self.model_name)
        set_parameters(model, self.params)
        return model.eval()


def load_run_model(state_dir: Path) -> Artifact:
    """The latest checkpointed global model of a run's state folder."""
    store = RunStore(state_dir / "fedprune.sqlite")
    try:
        name = store.get_state("latest_checkpoint")
        info = store.run_info()
    finally:
        store.close()
    if name is None or info is None:
        raise FileNotFoundError(f"{state_dir} holds no completed round to export")
    params = read_checkpoint(state_dir / "checkpoints" / name).group("param")
    return Artifact(model_name=info[2]["training"]["model"], params=params)


def tensor_encodings(params: Params, *, values: str, clusters: int,
                     zstd: bool) -> dict[str, TensorEncoding]:
    """Per tensor: ``values``, except for ``clustered``: weight tensors (the rule of
    :func:`fedcore.weight_clustering.clustered_names`) as codebook + indices of at most
    ``clusters`` centroids (lossless for a FedCompress model, whose clustered tensors hold
    at most k values), everything else (biases, small layers) as fp32."""
    dense = TensorEncoding(values="fp32" if values == "clustered" else values,
                           positions="auto", zstd=zstd)
    if values != "clustered":
        return {n: dense for n in params}
    shapes = {n: a.shape for n, a in params.items()}
    chosen = set(clustered_names(shapes, clusters=clusters))

    def clustered(array: np.ndarray) -> TensorEncoding:
        # a pruned tensor sent densely needs 0.0 as one more centroid to stay lossless
        k = min(clusters + 1, 256) if not array.all() else clusters
        return TensorEncoding(values="clustered", clusters=k, positions="auto", zstd=zstd)

    return {n: clustered(a) if n in chosen else dense for n, a in params.items()}


def write_artifact(artifact: Artifact, path: Path, *, values: str = "fp32",
                   zstd: bool = True, clusters: int = 256) -> int:
    """Write ``artifact``; returns the file size in bytes."""
    encodings = tensor_encodings(artifact.params, values=values, clusters=clusters, zstd=zstd)
    rng = np.random.default_rng(0)
    model = pb.Model(tensors=[
        wire.tensor_to_proto(encode_tensor(n, a, encodings[n], rng=rng))
        for n, a in artifact.params.items()])
    header = {"format": FORMAT, "model_name": artifact.model_name,
              "specs": [dataclasses.asdict(s) for s in artifact.specs] if artifact.specs else None}
    head = json.dumps(header).encode()
    data = MAGIC + struct.pack("<I", len(head)) + head + model.SerializeToString()
    path.write_bytes(data)
    return len(data)


def read_artifact(path: Path, *, limits: DecodeLimits = DecodeLimits()) -> Artifact:
    data = path.read_bytes()
    if data[:8] != MAGIC or len(data) < 12:
        raise ValueError(f"{path} is not a fedprune artifact")
    (size,) = struct.unpack("<I", data[8:12])
    if 12 + size > len(data):
        raise ValueError(f"{path}: truncated header")
    header = json.loads(data[12:12 + size])
    if header.get("format") != FORMAT:
        raise ValueError(f"{path}: unsupported artifact format {header.get('format')}")
    model = pb.Model.FromString(data[12 + size:])
    params = {t.name: decode_tensor(wire.tensor_from_proto(t), limits=limits)
              for t in model.tensors}
    specs = [LayerSpec(**s) for s in header["specs"]] if header.get("specs") else None
    return Artifact(model_name=header["model_name"], params=params, specs=specs)


def shrunk(artifact: Artifact) -> Artifact:
    small, specs = shrink_sequential(artifact.to_torch())
    return Artifact(artifact.model_name, get_parameters(small), specs)


def count(params: Params) -> dict[str, int]:
    return {"parameters": int(sum(a.size for a in params.values())),
            "nonzero": int(sum(np.count_nonzero(a) for a in params.values()))}


def latency_ms(model: nn.Module, *, features: int, batch: int, repeats: int = 200) -> float:
    """Median CPU forward time for one batch, single thread."""
    x = torch.randn(batch, features, generator=torch.Generator().manual_seed(0))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.inference_mode():
            for _ in range(10):
                model(x)
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                model(x)
                times.append(time.perf_counter() - start)
    finally:
        torch.set_num_threads(threads)
    return float(np.median(times) * 1000)


def export_run(state_dir: Path, out: Path, *, values: str = "fp32", shrink: bool = False,
               features: int = 64, clusters: int = 256) -> dict[str, Any]:
    """Export, re-load, verify and measure; returns the numbers the CLI prints.

    ``values = "clustered"`` writes weight tensors as codebook + packed indices (at most
    ``clusters`` centroids each) and reports the largest codebook (``max_distinct``)."""
    dense = load_run_model(state_dir)
    artifact = shrunk(dense) if shrink else dense
    size = write_artifact(artifact, out, values=values, clusters=clusters)
    loaded = read_artifact(out).to_torch()
    dense_model = dense.to_torch()
    x = torch.randn(32, features, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        max_diff = float((loaded(x) - dense_model(x)).abs().max())
    dense_bytes = sum(a.nbytes for a in dense.params.values())
    weights = clustered_names({n: a.shape for n, a in artifact.params.items()}, clusters=1)
    return {
        "artifact": str(out), "artifact_bytes": size, "dense_fp32_bytes": dense_bytes,
        "model_compression_ratio": dense_bytes / size,
        "max_distinct": max((len(np.unique(artifact.params[n])) for n in weights), default=0),
        "values": values, "shrunk": shrink, "dense": count(dense.params),
        "exported": count(artifact.params), "max_output_difference": max_diff,
        "latency_ms": {f"batch{b}": {"dense": latency_ms(dense_model, features=features, batch=b),
                                     "exported": latency_ms(loaded, features=features, batch=b)}
                       for b in (1, 256)},
    }
