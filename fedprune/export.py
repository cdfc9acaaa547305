"""Export a trained global model as a compact artifact, loadable back into torch.

Artifact layout (``.fpm``): the 8 bytes ``FEDPRUNE``, a little-endian uint32 length, a
UTF-8 JSON header (format version, model name, and when the model was shrunk its layer
specs and carries, :mod:`fedcore.layer_specs` / :mod:`fedcore.reduced_model`), then one
serialized ``fedprune.v1.Model`` message — the same tensor formats as on the wire,
with explicit positions (bitmap or delta varints, whichever is smaller) so the file is
self-contained. No pickle is written or read.

Loading never runs code the file names: the header's model name is only data. Rebuilding
the module (:meth:`Artifact.to_torch`) takes a registry name, layer specs (built from a
fixed table of torch layers), or an entry point the *loader* lists in ``allowed_models``
— an entry point named only by the file is refused before anything is imported.
"""

from __future__ import annotations

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
from fedcore.layer_specs import LayerSpec
from fedcore.models import build_model
from fedcore.params import get_parameters, set_parameters
from fedcore.pb import tensor_pb2 as pb
from fedcore.reduced_model import CarrySpec, ReducedSequential
from fedcore.weight_clustering import clustered_names
from fedprune.shrink import shrink_sequential
from fedserver.checkpoint import read_checkpoint
from fedserver.store import RunStore

MAGIC = b"FEDPRUNE"
FORMAT = 2  # 1: linear/relu/identity specs only, as {kind, in_features, out_features}
Params = dict[str, np.ndarray]


@dataclass(frozen=True)
class Artifact:
    model_name: str
    params: Params
    specs: tuple[LayerSpec, ...] | None = None
    carries: tuple[CarrySpec, ...] = ()
    own_config: bool = False  # model_name comes from the operator's run config, not a file

    def to_torch(self, *, allowed_models: tuple[str, ...] = ()) -> nn.Module:
        """The torch module with these weights; ``allowed_models``: the entry points the
        caller trusts (a name read from a file is not trusted by itself)."""
        allowed = None if self.own_config else allowed_models
        model = (ReducedSequential(self.specs, self.carries) if self.specs
                 else build_model(self.model_name, allowed=allowed, named_by="the artifact"))
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
    return Artifact(model_name=info[2]["training"]["model"], params=params, own_config=True)


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
              "specs": [s.to_dict() for s in artifact.specs] if artifact.specs else None,
              "carries": [c.to_dict() for c in artifact.carries]}
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
    try:
        header = json.loads(data[12:12 + size])
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ValueError(f"{path}: the header is not JSON") from None
    if not isinstance(header, dict) or header.get("format") not in (1, FORMAT):
        raise ValueError(f"{path}: unsupported artifact format "
                         f"{header.get('format') if isinstance(header, dict) else None}")
    _check_header(path, header)
    model = pb.Model.FromString(data[12 + size:])
    params = {t.name: decode_tensor(wire.tensor_from_proto(t), limits=limits)
              for t in model.tensors}
    try:
        specs = _read_specs(header)
        carries = tuple(CarrySpec.from_dict(c) for c in header.get("carries") or ())
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: bad layer specs in the header: {exc}") from None
    return Artifact(model_name=header["model_name"], params=params, specs=specs,
                    carries=carries)


def _check_header(path: Path, header: dict[str, Any]) -> None:
    """Types and key sets only: the values are data, never resolved to code here (layer
    specs are built from a fixed table of torch layers, which refuses unknown kinds and
    arguments when the model is built)."""
    spec_keys = ({"kind", "in_features", "out_features"} if header["format"] == 1
                 else {"name", "kind", "args"})
    specs, carries = header.get("specs"), header.get("carries")
    ok = (isinstance(header.get("model_name"), str)
          and (specs is None or (isinstance(specs, list) and all(
              isinstance(s, dict) and set(s) <= spec_keys and isinstance(s.get("kind"), str)
              and isinstance(s.get("args", {}), dict) for s in specs)))
          and (carries is None or (isinstance(carries, list)
                                   and all(isinstance(c, dict) for c in carries))))
    if not ok:
        raise ValueError(f"{path}: malformed artifact header")


def _read_specs(header: dict[str, Any]) -> tuple[LayerSpec, ...] | None:
    if not header.get("specs"):
        return None
    if header["format"] == 1:  # unnamed Linear/ReLU chains: names are the positions
        return tuple(LayerSpec(str(i), s["kind"], {"in_features": s["in_features"],
                                                    "out_features": s["out_features"],
                                                    "bias": True} if s["kind"] == "linear"
                               else {}) for i, s in enumerate(header["specs"]))
    return tuple(LayerSpec(str(s["name"]), str(s["kind"]), dict(s["args"]))
                 for s in header["specs"])


def shrunk(artifact: Artifact, *, input_shape: tuple[int, ...] = (64,)) -> Artifact:
    """``artifact`` with its dead and constant units removed (``input_shape``: one sample)."""
    small = shrink_sequential(artifact.to_torch(), input_shape=input_shape)
    return Artifact(artifact.model_name, get_parameters(small), small.layer_specs,
                    small.carry_specs, artifact.own_config)


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
    artifact = shrunk(dense, input_shape=(features,)) if shrink else dense
    size = write_artifact(artifact, out, values=values, clusters=clusters)
    loaded = read_artifact(out).to_torch(allowed_models=(dense.model_name,))  # the run's own
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
