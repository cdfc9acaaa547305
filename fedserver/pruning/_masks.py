"""Mask plumbing for the controller: granularity per tensor, allocation, ids, serialisation.

Masks are ``bool`` arrays of the tensor's shape, ``True`` = kept. The score math itself
(group norms, uniform/global allocation) lives in ``fedcompression``; this module only
decides which granularity applies to which tensor and checks what comes back.

Granularity per tensor: ``"unstructured"`` for every tensor, or, when structured, the
configured axis (``"columns"``, ``"rows"``, ``"half-columns"``, ``"half-rows"``) for 2-D
``[out, in]`` weights and
``"channels"`` (axis 0) for convolution weights (3-D to 5-D). ``allocate_masks`` takes one
granularity, so tensors are allocated per granularity class: with ``"global"`` allocation
and a model holding both linear and convolution weights, the ranking is global within each
class *(ours)*.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Callable, Mapping
from types import MappingProxyType

import numpy as np

from fedcompression import allocate_masks, group_scores

Shapes = Mapping[str, tuple[int, ...]]

SCORE_SHAPES: Mapping[str, Callable[[tuple[int, ...]], tuple[int, ...]]] = MappingProxyType({
    "unstructured": lambda shape: shape,
    "rows": lambda shape: (shape[0],),
    "columns": lambda shape: (shape[1],),
    "half-rows": lambda shape: (shape[0], 2),
    "half-columns": lambda shape: (2, shape[1]),
    "channels": lambda shape: (shape[0],),
})


def granularity_for(name: str, shape: tuple[int, ...], *, granularity: str,
                    structured_axis: str) -> str:
    """The ``fedcompression`` granularity for one prunable tensor (see module docstring)."""
    if granularity == "unstructured":
        return "unstructured"
    if len(shape) == 2:
        return structured_axis
    if 3 <= len(shape) <= 5:
        return "channels"
    raise ValueError(f"tensor {name!r}: structured pruning needs a 2-D linear or a 3-D to 5-D "
                     f"convolution weight, got shape {shape}")


def kept_groups(mask: np.ndarray, granularity: str) -> np.ndarray:
    """``True`` for every group with at least one kept entry (score-array shape)."""
    return np.asarray(group_scores(mask.astype(np.float64), granularity)) > 0


def allocate(scores: Mapping[str, np.ndarray], sparsity: float, *, allocation: str,
             granularities: Mapping[str, str], shapes: Shapes) -> dict[str, np.ndarray]:
    """Masks at ``sparsity`` from group scores, one ``allocate_masks`` call per class."""
    masks: dict[str, np.ndarray] = {}
    for granularity in sorted(set(granularities.values())):
        names = [n for n in shapes if granularities[n] == granularity]
        got = allocate_masks({n: scores[n] for n in names}, sparsity, allocation=allocation,
                             granularity=granularity, shapes={n: shapes[n] for n in names})
        for name in names:
            mask = np.asarray(got[name])
            if mask.shape != tuple(shapes[name]) or mask.dtype != np.bool_:
                raise RuntimeError(f"tensor {name!r}: allocate_masks returned "
                                   f"{mask.dtype}{mask.shape}, expected bool{shapes[name]}")
            masks[name] = mask
    return {name: masks[name] for name in shapes}


def frozen(masks: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Read-only copies: callers can hold them without being able to change ours."""
    out = {}
    for name, mask in masks.items():
        copy = np.array(mask, dtype=np.bool_)
        copy.setflags(write=False)
        out[name] = copy
    return out


def mask_digest(masks: Mapping[str, np.ndarray]) -> str:
    """8 hex digits of SHA-256 over names, shapes and mask bits (order independent)."""
    h = hashlib.sha256()
    for name in sorted(masks):
        h.update(f"{name}\0{masks[name].shape}\0".encode())
        h.update(np.packbits(masks[name].ravel()).tobytes())
    return h.hexdigest()[:8]


def mask_to_text(mask: np.ndarray) -> str:
    """Base64 of the C-order bits, MSB first (``np.packbits``), for JSON/SQLite storage."""
    return base64.b64encode(np.packbits(mask.ravel()).tobytes()).decode("ascii")


def mask_from_text(name: str, text: object, shape: tuple[int, ...]) -> np.ndarray:
    """Inverse of ``mask_to_text``; checks length and zero padding before reshaping."""
    if not isinstance(text, str):
        raise ValueError(
            f"masks[{name!r}] must be a base64 string, got {type(text).__name__}")
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise ValueError(f"masks[{name!r}] is not valid base64") from None
    size = int(np.prod(shape, dtype=np.int64))
    if len(raw) != (size + 7) // 8:
        raise ValueError(f"masks[{name!r}] holds {len(raw)} bytes, expected {(size + 7) // 8}")
    bits = np.unpackbits(np.frombuffer(raw, dtype=np.uint8))
    if bits[size:].any():
        raise ValueError(f"masks[{name!r}] has non-zero padding bits")
    return bits[:size].astype(np.bool_).reshape(shape)
