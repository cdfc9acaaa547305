"""PruningController.state_dict / load_state_dict: exact resume, rejected bad states."""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from fedserver.pruning.config import PruningConfig
from fedserver.pruning.controller import PruningController
from fedserver.pruning.state import REQUIRED_KEYS

SHAPES = {"fc": (6, 10), "conv": (4, 2, 3, 3)}
CONFIG = PruningConfig(enabled=True, scheme="client-scores", combine="vote", schedule="cubic",
                       start_round=2, end_round=8, prune_every=2, refine_rounds=2,
                       target_sparsity=0.7, granularity="structured", allocation="global")


def _step(c: PruningController, t: int, rng: np.random.Generator) -> Any:
    scores = None
    if c.wants_client_scores(t):
        combiner = c.new_combiner(t)
        for k in range(2):
            combiner.add({n: rng.uniform(0, 1, size=s) for n, s in c.score_shapes().items()},
                         weight=k + 1)
        scores = combiner.result()
    return c.mask_for_training(t)[0], c.update_after_aggregation(t, {}, scores)


def _same(a: Any, b: Any) -> bool:
    if (a[1] is None) != (b[1] is None):
        return False
    if a[1] is None:
        return bool(a[0] == b[0])
    return a[0] == b[0] and a[1][0] == b[1][0] and all(
        np.array_equal(a[1][1][n], b[1][1][n]) for n in SHAPES)


@pytest.mark.parametrize("kill_after", [0, 1, 3, 4, 9, 11])
def test_resume_mid_run_gives_identical_masks(kill_after: int) -> None:
    original = PruningController(CONFIG, SHAPES)
    rng = np.random.default_rng(7)
    for t in range(1, kill_after + 1):
        _step(original, t, rng)
    stored = json.dumps(original.state_dict())  # what the coordinator writes to SQLite
    resumed = PruningController(CONFIG, SHAPES)
    resumed.load_state_dict(json.loads(stored))
    assert resumed.state_dict() == original.state_dict()
    assert resumed.current()[0] == original.current()[0]
    seed = int(rng.integers(1 << 30))
    rng_a, rng_b = np.random.default_rng(seed), np.random.default_rng(seed)
    for t in range(kill_after + 1, 15):
        assert _same(_step(original, t, rng_a), _step(resumed, t, rng_b)), f"round {t}"


def _valid_state() -> dict[str, Any]:
    c = PruningController(CONFIG, SHAPES)
    rng = np.random.default_rng(0)
    for t in range(1, 5):
        _step(c, t, rng)
    state = json.loads(json.dumps(c.state_dict()))
    assert state["masks"] is not None
    return state


def _flip_first_bit(state: dict[str, Any]) -> None:
    raw = bytearray(base64.b64decode(state["masks"]["fc"]))
    raw[0] ^= 0x80
    state["masks"]["fc"] = base64.b64encode(bytes(raw)).decode()


BAD: dict[str, tuple[Callable[[dict[str, Any]], Any], str]] = {
    "mechanism": (lambda s: s.update(mechanism="opacus.rdp"), "^mechanism"),
    "version": (lambda s: s.update(version=2), "^mechanism"),
    "config": (lambda s: s["config"].update(target_sparsity=0.5), "^config.target_sparsity"),
    "prunable": (lambda s: s["prunable"].update(fc=[6, 11]), "^prunable"),
    "last_round": (lambda s: s.update(last_round=-1), "^last_round"),
    "sparsity": (lambda s: s.update(sparsity=1.5), "^sparsity"),
    "base64": (lambda s: s["masks"].update(fc="not base64!"), "'fc'.*base64"),
    "length": (lambda s: s["masks"].update(fc="AAAA"), "'fc'.*bytes"),
    "digest": (_flip_first_bit, "^mask_id"),
    "missing mask": (lambda s: s["masks"].pop("conv"), "^masks"),
    "id without masks": (lambda s: s.update(masks=None), "^mask_id"),
    "empty": (lambda s: s.clear(), "^mechanism: missing"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_state_is_rejected_and_changes_nothing(case: str) -> None:
    mutate, match = BAD[case]
    state = _valid_state()
    mutate(state)
    c = PruningController(CONFIG, SHAPES)
    before = c.state_dict()
    with pytest.raises(ValueError, match=match):
        c.load_state_dict(state)
    assert c.state_dict() == before


@pytest.mark.parametrize("key", REQUIRED_KEYS)
def test_each_required_key_is_named(key: str) -> None:
    state = _valid_state()
    del state[key]
    with pytest.raises(ValueError, match=f"^{key}: missing"):
        PruningController(CONFIG, SHAPES).load_state_dict(state)


def test_non_mapping_state_is_rejected() -> None:
    with pytest.raises(ValueError, match="^state must be a mapping"):
        PruningController(CONFIG, SHAPES).load_state_dict([])  # type: ignore[arg-type]


def test_state_is_not_aliased() -> None:
    state = _valid_state()
    c = PruningController(CONFIG, SHAPES)
    c.load_state_dict(copy.deepcopy(state))
    out = c.state_dict()
    out["masks"]["fc"] = "AAAA"
    assert c.state_dict()["masks"]["fc"] == state["masks"]["fc"]
