"""The global model as clients hold it, and the smallest payload each client needs.

A client declares what it holds (a mask id; a model version and its digest), and gets:

* nothing but, maybe, the mask when it holds the task's model already (``MODEL_FORM_HELD``;
  this is how the seeded initial model costs no download);
* a **model delta** when ``wire.downlink_delta`` is on and it holds the previous broadcast
  model: ``global - previous``, encoded with the downlink codec under the round's mask;
* the full model otherwise;
* the mask as **removals** from the mask it holds when the new mask is a subset of it
  (``MaskDelta``), else the full mask, and no mask when it holds the task's one.

Invariant (drift): every client of version ``v`` holds exactly the same arrays ``B_v``,
and this object holds them too. With deltas, ``B_v = B_prev * mask + decode(encode(M_v -
B_prev))`` computed by :func:`fedcore.model_deltas.apply_model_delta`, the very function
clients run, and full payloads carry ``B_v`` losslessly (fp32), so a client that pulls the
whole model holds the same ``B_v`` as one that applied the delta. The coordinator's own
model ``M_v`` keeps the quantization residual ``M_v - B_v`` (clients' updates are deltas
against ``B_v`` and are added to ``M_v``), so the residual is sent with a later delta
instead of being lost (error feedback). Without deltas ``B_v`` is the decoded full
payload, as before. Every payload names the digest of the model the client ends with.

Memory: the current and the previous broadcast model and the masks of the last two mask
ids, i.e. O(model); a client holding anything older gets the full payload. After a
restart the history is empty: ``B_v`` restarts as ``M_v`` and every client pulls once.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from fedcore.model_codec import Encoding, decode_model, encode_mask_message, encode_model
from fedcore.model_deltas import apply_model_delta, encode_mask_delta_message, model_sha256
from fedcore.models import model_names
from fedcore.pb import coordinator_pb2 as cpb
from fedcore.pb import tensor_pb2 as pb
from fedcore.weight_clustering import clustered_names
from fedserver.config import ServerConfig, WireConfig
from fedserver.instructions import RoundInstructions
from fedserver.model_state import ModelState

LOSSLESS = "fp32"  # full payloads under downlink deltas: B_v exactly
KEEP_MASKS = 2


@dataclass(frozen=True)
class Held:
    """What a client declares it holds (``RoundRequest`` / ``PullModelRequest``)."""

    mask_id: str = ""
    model_version: int = 0
    model_digest: bytes = b""


@dataclass
class _Entry:
    """One broadcast version: ``params`` are B_v, what every client of it holds."""

    version: int
    mask_id: str
    params: dict[str, np.ndarray]
    digest: bytes
    accepted: frozenset[bytes]  # digests of models a client may hold instead (B_v, M_v)
    full: pb.Model
    delta: pb.Model | None = None
    base: _Entry | None = None
    cache: dict[tuple[str, str], bytes] = field(default_factory=dict)


@dataclass(frozen=True)
class SeededInit:
    """Version 0 is registry model ``Task.model_name`` built with torch seed ``seed``."""

    seed: int
    digest: bytes


class Broadcast:
    def __init__(self, *, wire: WireConfig, init: SeededInit | None = None,
                 inline_bytes: int = 0) -> None:
        self._wire = wire
        self._init = init
        self._inline_bytes = inline_bytes
        self._codec = Encoding(wire.downlink, wire.clusters, wire.zstd)
        self._current: _Entry | None = None
        self._previous: _Entry | None = None
        self._masks: OrderedDict[str, dict[str, np.ndarray]] = OrderedDict()

    def digest(self, model: ModelState, instr: RoundInstructions) -> bytes:
        """Digest of the model clients of ``model.version`` hold (``Task.model_digest``)."""
        return self._entry(model, instr).digest

    def payload(self, model: ModelState, instr: RoundInstructions, held: Held) -> bytes:
        """The serialized ``ModelPayload`` for a client holding ``held``."""
        entry = self._entry(model, instr)
        form = self._form(entry, held)
        mask = self._mask_form(instr, held)
        key = (form if form != "held" else "held:" + held.model_digest.hex(), mask)
        if key not in entry.cache:
            entry.cache[key] = self._build(entry, instr, form, mask, held).SerializeToString()
        return entry.cache[key]

    def task_fields(self, model: ModelState, instr: RoundInstructions, held: Held) -> cpb.Task:
        """The model fields of a TRAIN / EVALUATE task for a client holding ``held``: the
        model's digest, the seeded initialisation of version 0, and the payload inline when
        the client needs one, cannot build it itself, and it fits ``inline_bytes``."""
        entry = self._entry(model, instr)
        out = cpb.Task(model_digest=entry.digest)
        seeded = model.version == 0 and self._init is not None
        if seeded:
            assert self._init is not None
            out.init_seed, out.init_digest = self._init.seed, self._init.digest
        holds_all = self._form(entry, held) == "held" and self._mask_form(instr, held) == "none"
        if holds_all or (seeded and not held.model_digest):  # nothing to send / built locally
            return out
        payload = self.payload(model, instr, held)
        if len(payload) <= self._inline_bytes:
            out.model_payload.ParseFromString(payload)
        return out

    # -- forms ----------------------------------------------------------------------------
    def _form(self, entry: _Entry, held: Held) -> str:
        if held.model_version == entry.version and held.model_digest in entry.accepted:
            return "held"
        base = entry.base
        if (entry.delta is not None and base is not None and held.model_version == base.version
                and held.model_digest == base.digest):
            return "delta"
        return "full"

    def _mask_form(self, instr: RoundInstructions, held: Held) -> str:
        if not instr.mask_id or held.mask_id == instr.mask_id:
            return "none"
        base = self._masks.get(held.mask_id)
        if base is not None and instr.masks is not None and encode_mask_delta_message(
                held.mask_id, base, instr.mask_id, instr.masks) is not None:
            return "delta:" + held.mask_id
        return "full"

    def _build(self, entry: _Entry, instr: RoundInstructions, form: str, mask: str,
               held: Held) -> cpb.ModelPayload:
        msg = cpb.ModelPayload(model_digest=entry.digest)
        if form == "held":
            msg.form = cpb.MODEL_FORM_HELD
            msg.model.CopyFrom(pb.Model(version=entry.version, mask_id=entry.mask_id))
            msg.model_digest = held.model_digest
        elif form == "delta":
            assert entry.delta is not None and entry.base is not None
            msg.form, msg.base_version = cpb.MODEL_FORM_DELTA, entry.base.version
            msg.model.CopyFrom(entry.delta)
        else:
            msg.model.CopyFrom(entry.full)
        if mask == "full":
            msg.mask.CopyFrom(encode_mask_message(instr.mask_id, instr.masks or {}))
        elif mask.startswith("delta:"):
            base_id = mask.removeprefix("delta:")
            delta = encode_mask_delta_message(base_id, self._masks[base_id], instr.mask_id,
                                              instr.masks or {})
            assert delta is not None
            msg.mask_delta.CopyFrom(delta)
        return msg

    # -- versions -------------------------------------------------------------------------
    def _entry(self, model: ModelState, instr: RoundInstructions) -> _Entry:
        if instr.mask_id and instr.masks is not None:
            self._remember_mask(instr.mask_id, instr.masks)
        cur = self._current
        if cur is not None and cur.version == model.version and cur.mask_id == instr.mask_id:
            return cur
        if cur is not None and cur.version != model.version:
            # the new previous needs no base of its own: memory stays two models
            cur.base, cur.delta, cur.cache = None, None, {}
            self._previous = cur
        base = self._previous if self._wire.downlink_delta else None
        self._current = self._delta_entry(model, instr, base) if base is not None \
            else self._full_entry(model, instr)
        return self._current

    def _remember_mask(self, mask_id: str, masks: dict[str, np.ndarray]) -> None:
        self._masks[mask_id] = masks
        self._masks.move_to_end(mask_id)
        while len(self._masks) > KEEP_MASKS:
            self._masks.popitem(last=False)

    def _full_entry(self, model: ModelState, instr: RoundInstructions) -> _Entry:
        exact = self._wire.downlink_delta  # deltas need every client on the same B_v
        codec = Encoding(LOSSLESS, zstd=self._wire.zstd) if exact else self._codec
        clustered = _clustered_tensors(model, instr, zstd=self._wire.zstd)
        full = encode_model(model.params, encoding=codec, version=model.version,
                            mask_id=instr.mask_id, masks=instr.masks, per_tensor=clustered)
        params = dict(model.params) if exact and not clustered else decode_model(
            full, mask_id=instr.mask_id, masks=instr.masks)
        params = {n: np.asarray(p, dtype=np.float32) for n, p in params.items()}
        digest = model_sha256(params)
        return _Entry(model.version, instr.mask_id, params, digest,
                      frozenset({digest, model_sha256(model.params)}), full)

    def _delta_entry(self, model: ModelState, instr: RoundInstructions, base: _Entry) -> _Entry:
        diff = {n: (np.asarray(p, dtype=np.float32) - base.params[n]).astype(np.float32)
                for n, p in model.params.items()}
        delta = encode_model(diff, encoding=self._codec, version=model.version,
                             mask_id=instr.mask_id, masks=instr.masks, seed=model.version)
        decoded = decode_model(delta, mask_id=instr.mask_id, masks=instr.masks)
        params = apply_model_delta(base.params, decoded, instr.masks)
        full = encode_model(params, encoding=Encoding(LOSSLESS, zstd=self._wire.zstd),
                            version=model.version, mask_id=instr.mask_id, masks=instr.masks)
        digest = model_sha256(params)
        return _Entry(model.version, instr.mask_id, params, digest, frozenset({digest}), full,
                      delta=delta, base=base)


def _clustered_tensors(model: ModelState, instr: RoundInstructions, *,
                       zstd: bool) -> dict[str, Encoding]:
    """FedCompress (``instr.downlink_clusters = k > 0``: the model was distilled into a
    clustered student): the tensors clustered at ``k`` go as codebook + packed indices; B_v
    is what clients decode from them."""
    k = instr.downlink_clusters
    if k <= 0:
        return {}
    shapes = {n: tuple(a.shape) for n, a in model.params.items()}
    encoding = Encoding("clustered", k, zstd)
    return {n: encoding for n in clustered_names(shapes, clusters=k, masks=instr.masks)}


def seeded_init(config: ServerConfig, initial: Mapping[str, np.ndarray]) -> SeededInit | None:
    """Clients may build version 0 themselves when it is a registry model built from the
    configured seed (never an entry point: a client imports no code a coordinator names)."""
    if config.training.model not in model_names():
        return None
    return SeededInit(seed=config.training.seed, digest=model_sha256(initial))
