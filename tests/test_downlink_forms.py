"""The smaller downlink forms: mask deltas, the seeded initial model, model deltas.

Each is checked for the invariant that makes it safe: a client ends with exactly the
arrays the coordinator names (digest), anything that does not verify falls back to the
full payload, and the coordinator's memory for it stays bounded.
"""

from __future__ import annotations

import dataclasses
import sys

import numpy as np
import pytest

from fedclient.model_source import obtain_model, seeded_initial_model
from fedclient.payloads import HeldState, PayloadError, decode_model_payload
from fedcompression import CodecError, apply_mask_delta, encode_mask_delta
from fedcore.model_codec import Encoding
from fedcore.model_deltas import (
    DeltaMismatch,
    apply_mask_delta_message,
    encode_mask_delta_message,
    masks_sha256,
    model_sha256,
)
from fedcore.models import build_model
from fedcore.params import get_parameters
from fedcore.pb import coordinator_pb2 as cpb
from fedserver.broadcast import Broadcast, Held, SeededInit
from fedserver.config import WireConfig
from fedserver.instructions import RoundInstructions
from fedserver.model_state import ModelState

RNG = np.random.default_rng(7)
SHAPES = {"w": (16, 12), "b": (12,)}


def _params(scale: float = 1.0) -> dict[str, np.ndarray]:
    return {n: (RNG.normal(size=s) * scale).astype(np.float32) for n, s in SHAPES.items()}


def _shrink(mask: np.ndarray, drop: float) -> np.ndarray:
    return mask & (RNG.random(mask.shape) > drop)


def _instr(mask_id: str = "", masks: dict[str, np.ndarray] | None = None) -> RoundInstructions:
    return RoundInstructions(round=1, encoding=Encoding("int4"), mask_id=mask_id, masks=masks)


def _held(state: HeldState) -> Held:
    return Held(state.mask_id, state.model_version, state.model_digest)


def _task(version: int, mask_id: str = "", **fields: object) -> cpb.Task:
    return cpb.Task(kind=cpb.TASK_KIND_TRAIN, task_id=f"t{version}", model_version=version,
                    mask_id=mask_id, model_name="mlp", **fields)  # type: ignore[arg-type]


# -- mask deltas ----------------------------------------------------------------------------
def test_mask_delta_round_trip_is_smaller_than_the_full_mask() -> None:
    old = RNG.random((256, 256)) > 0.5
    new = _shrink(old, 0.1)
    enc = encode_mask_delta("w", old, new)
    assert np.array_equal(apply_mask_delta(enc, old), new)
    from fedcompression import encode_mask
    assert len(enc.kept.blob.data) < len(encode_mask("w", new).kept.blob.data) / 2


def test_mask_delta_refuses_growth_and_a_wrong_base() -> None:
    old = RNG.random((8, 8)) > 0.5
    grown = old.copy()
    grown[~old] = True
    with pytest.raises(CodecError, match="not a subset"):
        encode_mask_delta("w", old, grown)
    assert encode_mask_delta_message("m1", {"w": old}, "m2", {"w": grown}) is None
    enc = encode_mask_delta("w", old, _shrink(old, 0.3))
    with pytest.raises(CodecError):  # a base with another kept count: sizes do not match
        apply_mask_delta(enc, np.ones((8, 8), dtype=bool))
    with pytest.raises(CodecError, match="shape"):
        apply_mask_delta(enc, old.reshape(4, 16))


def test_mask_delta_message_checks_base_id_tensors_and_digest() -> None:
    old = {"w": RNG.random((16, 12)) > 0.3}
    new = {"w": _shrink(old["w"], 0.2)}
    msg = encode_mask_delta_message("m1", old, "m2", new)
    assert msg is not None and msg.sha256 == masks_sha256(new)
    mask_id, got = apply_mask_delta_message(msg, held_id="m1", held=old)
    assert mask_id == "m2" and np.array_equal(got["w"], new["w"])
    with pytest.raises(DeltaMismatch, match="applies to"):
        apply_mask_delta_message(msg, held_id="m0", held=old)
    tampered = cpb.MaskDelta()
    tampered.CopyFrom(msg)
    tampered.sha256 = bytes(32)
    with pytest.raises(DeltaMismatch, match="digest"):
        apply_mask_delta_message(tampered, held_id="m1", held=old)
    tampered.CopyFrom(msg)
    tampered.removed[0].name = "other"
    with pytest.raises(DeltaMismatch, match="unknown"):
        apply_mask_delta_message(tampered, held_id="m1", held=old)


def test_a_client_falls_back_to_the_full_mask_when_the_delta_does_not_apply() -> None:
    old = {"w": RNG.random(SHAPES["w"]) > 0.3}
    new = {"w": _shrink(old["w"], 0.2)}
    broadcast = Broadcast(wire=WireConfig(downlink="int4"))
    model = ModelState(params={n: np.where(new.get(n, True), p, 0).astype(np.float32)
                               for n, p in _params().items()}, version=3)
    broadcast.payload(model, _instr("m1", old), Held())  # the coordinator saw mask m1
    instr = _instr("m2", new)
    # the client claims m1 but holds a different mask under that id (corrupted state)
    lying = HeldState(mask_id="m1", masks={"w": ~old["w"]})
    pulls: list[Held] = []

    def pull(state: HeldState) -> bytes:
        pulls.append(_held(state))
        return broadcast.payload(model, instr, _held(state))

    task = _task(3, "m2", model_digest=broadcast.digest(model, instr))
    params, held = obtain_model(task, lying, shapes=SHAPES, pull=pull)
    assert [p.mask_id for p in pulls] == ["m1", ""], "delta first, then the full mask"
    assert held.mask_id == "m2" and np.array_equal(held.masks["w"], new["w"])  # type: ignore[index]
    first = cpb.ModelPayload.FromString(broadcast.payload(model, instr, pulls[0]))
    assert first.HasField("mask_delta") and not first.HasField("mask")


# -- the seeded initial model ---------------------------------------------------------------
def _initial() -> dict[str, np.ndarray]:
    return get_parameters(build_model("mlp", seed=0))


def test_a_matching_seeded_model_is_built_locally_without_a_pull() -> None:
    initial = _initial()
    task = _task(0, init_seed=0, init_digest=model_sha256(initial),
                 model_digest=model_sha256(initial))
    shapes = {n: p.shape for n, p in initial.items()}

    def pull(state: HeldState) -> bytes:
        raise AssertionError("no pull expected")

    params, held = obtain_model(task, HeldState(), shapes=shapes, pull=pull)
    assert held.model_version == 0 and held.model_digest == model_sha256(initial)
    assert all(np.array_equal(params[n], initial[n]) for n in initial)


def test_a_seeded_model_that_does_not_match_the_digest_is_pulled_instead() -> None:
    initial = _initial()
    model = ModelState(params=initial, version=0)
    broadcast = Broadcast(wire=WireConfig(downlink="fp32"),
                          init=SeededInit(seed=0, digest=model_sha256(initial)))
    instr = _instr()
    fields = broadcast.task_fields(model, instr, Held())
    assert not fields.HasField("model_payload"), "the client is expected to build it"
    wrong = cpb.Task()
    wrong.CopyFrom(_task(0))
    wrong.MergeFrom(fields)
    wrong.init_seed = 1  # another seed builds another model: its digest cannot match
    pulls: list[Held] = []

    def pull(state: HeldState) -> bytes:
        pulls.append(_held(state))
        return broadcast.payload(model, instr, _held(state))

    shapes = {n: p.shape for n, p in initial.items()}
    params, held = obtain_model(wrong, HeldState(), shapes=shapes, pull=pull)
    assert pulls == [Held()], "pulled once, declaring nothing"
    assert held.model_digest == model_sha256(initial)
    assert all(np.array_equal(params[n], initial[n]) for n in initial)


def test_an_entry_point_is_never_built_for_the_seeded_initialisation() -> None:
    task = _task(0, init_seed=0, init_digest=bytes(32))
    task.model_name = "tests.foreign_model:build"
    before = set(sys.modules)
    assert seeded_initial_model(task) is None
    assert "tests.foreign_model" not in set(sys.modules) - before


# -- model deltas ---------------------------------------------------------------------------
def test_downlink_deltas_reconstruct_exactly_with_bounded_memory() -> None:
    wire = WireConfig(downlink="int4", downlink_delta=True)
    broadcast = Broadcast(wire=wire)
    server = _params()
    masks = {"w": np.ones(SHAPES["w"], dtype=bool)}
    client = HeldState()
    late = HeldState()  # pulls at version 0 only, then once at the end
    kinds = []
    for version in range(6):
        mask_id = f"m{version}"
        instr = _instr(mask_id, dict(masks))
        model = ModelState(params={n: np.where(masks.get(n, True), p, 0).astype(np.float32)
                                   for n, p in server.items()}, version=version)
        task = _task(version, mask_id, model_digest=broadcast.digest(model, instr))
        payload = broadcast.payload(model, instr, _held(client))
        kinds.append(cpb.ModelPayload.FromString(payload).form)
        params, client = decode_model_payload(payload, task, shapes=SHAPES, held=client)
        assert client.model_digest == broadcast.digest(model, instr) == model_sha256(params)
        if version == 0:
            late = client
        chain, entry = 0, broadcast._current  # bounded: the current entry and its base only
        while entry is not None:
            chain, entry = chain + 1, entry.base
        assert chain <= 2
        masks = {"w": _shrink(masks["w"], 0.1)}
        server = {n: p + RNG.normal(size=p.shape).astype(np.float32) * 0.01
                  for n, p in server.items()}
    assert kinds == [cpb.MODEL_FORM_FULL] + [cpb.MODEL_FORM_DELTA] * 5
    # a client that missed rounds gets the full model, losslessly the same arrays
    full = broadcast.payload(model, instr, _held(late))
    assert cpb.ModelPayload.FromString(full).form == cpb.MODEL_FORM_FULL
    got, state = decode_model_payload(full, task, shapes=SHAPES, held=late)
    assert state.model_digest == client.model_digest
    assert all(np.array_equal(got[n], params[n]) for n in params)
    # the residual the int4 delta left is small and not lost: the server keeps M_v
    err = max(float(np.abs(model.params[n] - params[n]).max()) for n in params)
    assert 0 < err < 0.05


def test_a_tampered_delta_fails_its_digest_and_the_client_pulls_the_full_model() -> None:
    broadcast = Broadcast(wire=WireConfig(downlink="int8", downlink_delta=True))
    v0 = ModelState(params=_params(), version=0)
    instr = _instr()
    _, held = decode_model_payload(broadcast.payload(v0, instr, Held()), _task(0),
                                   shapes=SHAPES, held=HeldState())
    v1 = ModelState(params={n: p + 0.1 for n, p in v0.params.items()}, version=1)
    task = _task(1, model_digest=broadcast.digest(v1, instr))
    corrupted = dataclasses.replace(held, params={n: p + 1 for n, p in held.params.items()})
    with pytest.raises(PayloadError, match="digest"):
        decode_model_payload(broadcast.payload(v1, instr, _held(held)), task, shapes=SHAPES,
                             held=corrupted)
    pulls: list[Held] = []

    def pull(state: HeldState) -> bytes:
        pulls.append(_held(state))
        return broadcast.payload(v1, instr, _held(state))

    params, state = obtain_model(task, corrupted, shapes=SHAPES, pull=pull)
    assert [p.model_digest for p in pulls] == [held.model_digest, b""]
    assert state.model_digest == broadcast.digest(v1, instr)
