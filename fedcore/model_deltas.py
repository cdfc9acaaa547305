"""What the coordinator and a client compute identically for the smaller downlink forms.

A client that holds something need not receive it again: the previous global model (then
a model *delta* suffices), the task's model itself (nothing but, maybe, the mask), or the
previous mask (then only the removed positions, :class:`MaskDelta`). Both sides must end
with bit-identical arrays, so the reconstruction (:func:`apply_model_delta`) and the
digests (:func:`model_sha256`, :func:`masks_sha256`) live here, used by both. Every
decoder validates before it acts and raises a ``ValueError`` subclass, so a client falls
back to the full payload and never trains on a model it could not verify.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import numpy as np

from fedcompression import DecodeLimits, apply_mask_delta, encode_mask_delta, is_shrink
from fedcore import wire
from fedcore.model_codec import model_digest
from fedcore.pb import coordinator_pb2 as cpb

Params = Mapping[str, np.ndarray]
Masks = Mapping[str, np.ndarray]


class DeltaMismatch(ValueError):
    """A delta does not apply to what the receiver holds, or its result fails the digest."""


def model_sha256(params: Params) -> bytes:
    """The 32-byte digest of a model (:func:`fedcore.model_codec.model_digest`)."""
    return bytes.fromhex(model_digest(params))


def masks_sha256(masks: Masks) -> bytes:
    """SHA-256 over names, shapes and packed bits of ``masks`` (``MaskDelta.sha256``)."""
    h = hashlib.sha256()
    for name in sorted(masks):
        shape = "x".join(str(d) for d in masks[name].shape)
        h.update(name.encode() + b"\0" + shape.encode() + b"\0")
        h.update(np.packbits(masks[name].reshape(-1)).tobytes())
    return h.digest()


def encode_mask_delta_message(base_id: str, base: Masks, mask_id: str,
                              masks: Masks) -> cpb.MaskDelta | None:
    """The removals from ``base`` to ``masks``; None unless ``masks`` shrinks ``base``
    tensor by tensor over the same tensors (then the full mask must be sent)."""
    if set(base) != set(masks) or not all(is_shrink(base[n], masks[n]) for n in masks):
        return None
    removed = [wire.mask_tensor_to_proto(encode_mask_delta(n, base[n], masks[n]))
               for n in masks if not np.array_equal(base[n], masks[n])]
    return cpb.MaskDelta(base_mask_id=base_id, mask_id=mask_id, sha256=masks_sha256(masks),
                         removed=removed)


def apply_mask_delta_message(msg: cpb.MaskDelta, *, held_id: str, held: Masks | None,
                             limits: DecodeLimits = DecodeLimits()) -> tuple[str, dict[str, np.ndarray]]:
    """The new ``(mask_id, masks)``; raises DeltaMismatch (or CodecError) when the delta is
    not for the held mask, names unknown or repeated tensors, or fails its digest."""
    if not msg.mask_id:
        raise DeltaMismatch("mask delta has an empty mask_id")
    if held is None or msg.base_mask_id != held_id:
        raise DeltaMismatch(f"mask delta applies to {msg.base_mask_id!r}, the client holds "
                            f"{held_id!r}")
    masks = dict(held)
    seen: set[str] = set()
    for tensor in msg.removed:
        if tensor.name not in held or tensor.name in seen:
            raise DeltaMismatch(f"mask delta tensor {tensor.name!r} is unknown or repeated")
        seen.add(tensor.name)
        masks[tensor.name] = apply_mask_delta(wire.mask_tensor_from_proto(tensor), held[tensor.name],
                                              limits=limits)
    if masks_sha256(masks) != msg.sha256:
        raise DeltaMismatch(f"mask {msg.mask_id!r} rebuilt from the delta fails its digest")
    return msg.mask_id, masks


def apply_model_delta(base: Params, delta: Params, masks: Masks | None) -> dict[str, np.ndarray]:
    """``base * mask + delta`` for masked tensors, ``base + delta`` otherwise, in float32.

    The one reconstruction both sides run: the coordinator records its result as the model
    clients hold, so the two are bit-identical."""
    if list(base) != list(delta):
        raise DeltaMismatch("the delta's tensors differ from the held model's")
    out: dict[str, np.ndarray] = {}
    for name, b in base.items():
        d = np.asarray(delta[name], dtype=np.float32)
        if d.shape != b.shape:
            raise DeltaMismatch(f"delta tensor {name!r} has shape {d.shape}, held {b.shape}")
        mask = masks.get(name) if masks else None
        kept = b if mask is None else np.where(mask, b, np.float32(0))
        out[name] = (kept.astype(np.float32, copy=False) + d).astype(np.float32, copy=False)
    return out
