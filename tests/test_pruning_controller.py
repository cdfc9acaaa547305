"""PruningController: phases, mask steps, monotone masks, regrowth, structure, schemes."""

from __future__ import annotations

import itertools
import re
from typing import Any

import numpy as np
import pytest

from fedcompression import group_scores
from fedserver.pruning.combine import TopKVote, WeightedScoreSum
from fedserver.pruning.config import PruningConfig
from fedserver.pruning.controller import MaskUpdate, PruningController

SHAPES = {"fc1": (10, 20), "conv": (8, 3, 3, 3), "fc2": (5, 10)}
PHASED: dict[str, Any] = {
    "enabled": True, "schedule": "step", "start_round": 3, "end_round": 9, "prune_every": 2,
    "refine_rounds": 3, "target_sparsity": 0.8, "initial_sparsity": 0.2}


def _params(seed: int, shapes: dict[str, tuple[int, ...]] = SHAPES) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {name: rng.normal(size=shape) for name, shape in shapes.items()}


def _train(params: dict[str, np.ndarray], masks: dict[str, np.ndarray] | None,
           rng: np.random.Generator) -> dict[str, np.ndarray]:
    """A stand-in for a federated round: noisy update, kept under the training mask."""
    out = {}
    for name, w in params.items():
        w = w + rng.normal(scale=0.3, size=w.shape)
        out[name] = w * masks[name] if masks is not None and name in masks else w
    return out


def _run(controller: PruningController, rounds: range, seed: int) -> list[tuple[str, Any]]:
    """Drive the controller like the coordinator; returns (train mask id, update) per round."""
    rng = np.random.default_rng(seed)
    params = _params(seed)
    log = []
    for t in rounds:
        mask_id, masks = controller.mask_for_training(t)
        params = _train(params, masks, rng)
        scores = None
        if controller.wants_client_scores(t):
            combiner = controller.new_combiner(t)
            for k in range(3):
                combiner.add({n: rng.uniform(0, 1, size=s)
                              for n, s in controller.score_shapes().items()}, weight=k + 1)
            scores = combiner.result()
        update = controller.update_after_aggregation(t, params, scores)
        if update is not None:
            params = {n: w * update[1][n] if n in update[1] else w for n, w in params.items()}
        log.append((mask_id, update))
    return log


def _update(c: PruningController, round: int, params: dict[str, np.ndarray],
            scores: dict[str, np.ndarray] | None) -> MaskUpdate:
    update = c.update_after_aggregation(round, params, scores)
    assert update is not None, f"round {round} should be a mask step"
    return update


def test_phase_sequence_over_twenty_rounds() -> None:
    c = PruningController(PruningConfig(**PHASED), SHAPES)
    phases = [c.phase(t) for t in range(1, 21)]
    assert phases == ["dense"] * 2 + ["prune"] * 7 + ["refine"] * 3 + ["finetune"] * 8
    steps = [t for t in range(1, 21) if c.is_mask_step(t)]
    assert steps == [3, 5, 7, 9, 10, 11, 12]
    assert not any(c.wants_client_scores(t) for t in range(1, 21))  # server-mask scheme
    client = PruningController(PruningConfig(**PHASED, scheme="client-scores"), SHAPES)
    assert [t for t in range(1, 21) if client.wants_client_scores(t)] == steps


def test_training_masks_and_updates_over_a_run() -> None:
    c = PruningController(PruningConfig(**PHASED), SHAPES)
    log = _run(c, range(1, 21), seed=0)
    ids = {t: log[t - 1][0] for t in range(1, 21)}
    updates = {t: u for t, (_, u) in enumerate(log, start=1) if u is not None}
    assert sorted(updates) == [3, 5, 7, 9, 10, 11, 12]
    assert [ids[t] for t in (1, 2, 3)] == ["", "", ""]  # first mask is published after 3
    assert ids[4] == ids[5] == updates[3][0] and ids[6] == updates[5][0]
    assert ids[10] == ids[11] == ids[12] == ""  # refine rounds train dense
    assert all(ids[t] == updates[12][0] for t in range(13, 21))  # finetune: frozen
    assert c.current()[0] == updates[12][0]
    assert len({u[0] for u in updates.values()}) == len(updates)  # every step: new id
    for t, (mask_id, masks) in updates.items():
        sparsity = c.achieved_sparsity(masks)
        assert re.fullmatch(rf"m{t}-\d\.\d{{3}}-[0-9a-f]{{8}}", mask_id)
        assert sparsity == pytest.approx(float(mask_id.split("-")[1]), abs=0.02)
    assert c.achieved_sparsity(updates[9][1]) == pytest.approx(0.8, abs=0.01)


@pytest.mark.parametrize("scheme", ["server-mask", "client-scores"])
@pytest.mark.parametrize("allocation", ["uniform", "global"])
@pytest.mark.parametrize("granularity", ["unstructured", "structured"])
def test_masks_are_monotone_during_prune(scheme: Any, allocation: Any, granularity: Any) -> None:
    config = PruningConfig(**PHASED, scheme=scheme, allocation=allocation,
                           granularity=granularity, combine="vote")
    c = PruningController(config, SHAPES)
    log = _run(c, range(1, 10), seed=1)
    masks_seq = [u[1] for _, u in log if u is not None]
    sparsities = [c.achieved_sparsity(m) for m in masks_seq]
    assert sparsities == sorted(sparsities) and sparsities[-1] > 0.5
    for prev, new in itertools.pairwise(masks_seq):
        for name in SHAPES:
            assert not np.any(new[name] & ~prev[name]), f"{name} regrew during prune"


def test_regrowth_in_refine_but_not_in_prune() -> None:
    common: dict[str, Any] = {
        "enabled": True, "schedule": "one-shot", "start_round": 1, "target_sparsity": 0.5}
    shapes = {"w": (2, 4)}
    first = {"w": np.array([[8.0, 7, 6, 5], [4, 3, 2, 1]])}
    # After a dense round, pruned w[1, 3] grew large and kept w[0, 3] shrank.
    grown = {"w": np.array([[8.0, 7, 6, 0.5], [0, 0, 0, 9]])}
    refine = PruningController(PruningConfig(**common, end_round=1, refine_rounds=1), shapes)
    prune = PruningController(PruningConfig(**common, end_round=2, refine_rounds=0), shapes)
    for c in (refine, prune):
        _, masks = _update(c, 1, first, None)
        assert masks["w"].tolist() == [[True] * 4, [False] * 4]
    assert refine.phase(2) == "refine" and refine.mask_for_training(2) == ("", None)
    _, regrown = _update(refine, 2, grown, None)
    assert regrown["w"].tolist() == [[True, True, True, False], [False, False, False, True]]
    assert prune.phase(2) == "prune" and prune.mask_for_training(2)[0].startswith("m1-")
    _, kept = _update(prune, 2, grown, None)
    assert not kept["w"][1, 3]  # pruned stays pruned while pruning


@pytest.mark.parametrize(("axis", "reduce_axis"), [("columns", 0), ("rows", 1)])
def test_structured_masks_remove_whole_columns_and_channels(axis: Any, reduce_axis: int) -> None:
    config = PruningConfig(enabled=True, granularity="structured", structured_axis=axis,
                           schedule="one-shot", start_round=1, end_round=1, target_sparsity=0.5)
    c = PruningController(config, SHAPES)
    assert c.score_granularities() == {"fc1": axis, "conv": "channels", "fc2": axis}
    _, masks = _update(c, 1, _params(3), None)
    for name in ("fc1", "fc2"):
        groups = masks[name].all(axis=reduce_axis)
        assert np.array_equal(groups, masks[name].any(axis=reduce_axis)), "partial group"
        assert groups.mean() == pytest.approx(0.5, abs=0.1)
    per_channel = masks["conv"].reshape(8, -1)
    assert np.array_equal(per_channel.all(axis=1), per_channel.any(axis=1))
    assert per_channel.all(axis=1).sum() == 4


def test_score_shapes_match_group_scores() -> None:
    for granularity in ("unstructured", "structured"):
        c = PruningController(PruningConfig(enabled=True, granularity=granularity), SHAPES)
        params = _params(0)
        for name, gran in c.score_granularities().items():
            assert group_scores(params[name], gran).shape == c.score_shapes()[name]


def test_structured_rejects_tensors_without_structure() -> None:
    with pytest.raises(ValueError, match="'bias'"):
        PruningController(PruningConfig(enabled=True, granularity="structured"), {"bias": (4,)})


def test_client_scores_choose_the_mask() -> None:
    config = PruningConfig(enabled=True, scheme="client-scores", schedule="one-shot",
                           start_round=1, end_round=1, target_sparsity=0.5, combine="vote")
    c = PruningController(config, {"w": (4,)})
    combiner = c.new_combiner(1)
    assert isinstance(combiner, TopKVote)  # votes for the top 1 − 0.5 by default
    combiner.add({"w": np.array([0.0, 1.0, 3.0, 2.0])}, weight=1)
    combiner.add({"w": np.array([5.0, 0.0, 1.0, 2.0])}, weight=1)
    # votes [1, 0, 1, 2]; the 1-1 tie between 0 and 2 goes to the higher mean score (0)
    _, masks = _update(c, 1, {}, combiner.result())
    assert masks["w"].tolist() == [True, False, False, True]
    with pytest.raises(ValueError, match="does not collect"):
        c.new_combiner(2)


def test_scheme_input_errors() -> None:
    client = PruningController(PruningConfig(enabled=True, scheme="client-scores"), SHAPES)
    with pytest.raises(ValueError, match="client_scores are required"):
        client.update_after_aggregation(1, _params(0), None)
    with pytest.raises(ValueError, match="'fc2'.*missing"):
        client.update_after_aggregation(1, {}, {"fc1": np.ones(200), "conv": np.ones(216)})
    assert isinstance(client.new_combiner(1), WeightedScoreSum)
    server = PruningController(PruningConfig(enabled=True), SHAPES)
    with pytest.raises(ValueError, match="must be None"):
        server.update_after_aggregation(1, _params(0), {"fc1": np.ones(200)})
    bad = _params(0)
    bad["conv"] = bad["conv"][:4]
    with pytest.raises(ValueError, match="'conv'.*shape"):
        server.update_after_aggregation(1, bad, None)
    del bad["conv"]
    with pytest.raises(ValueError, match="'conv'.*missing"):
        server.update_after_aggregation(1, bad, None)
    assert server.current() == ("", None)  # rejected inputs change nothing


def test_rounds_are_processed_once_in_order() -> None:
    c = PruningController(PruningConfig(**PHASED), SHAPES)
    c.update_after_aggregation(3, _params(0), None)
    for t in (3, 2):
        with pytest.raises(ValueError, match="last processed round 3"):
            c.update_after_aggregation(t, _params(0), None)
    with pytest.raises(ValueError, match="^round"):
        c.phase(0)


def test_masks_are_read_only_and_not_shared() -> None:
    c = PruningController(PruningConfig(**PHASED), SHAPES)
    _, masks = _update(c, 3, _params(0), None)
    with pytest.raises(ValueError):
        masks["fc1"][0, 0] = False
    masks.pop("fc1")
    assert "fc1" in (c.current()[1] or {})


def test_disabled_controller_is_always_dense() -> None:
    c = PruningController(PruningConfig(), SHAPES)
    for t in range(1, 15):
        assert c.phase(t) == "dense" and c.mask_for_training(t) == ("", None)
        assert c.update_after_aggregation(t, _params(t), None) is None


def test_same_inputs_give_same_mask_ids() -> None:
    config = PruningConfig(**PHASED, granularity="structured", allocation="global")
    a = _run(PruningController(config, SHAPES), range(1, 16), seed=5)
    b = _run(PruningController(config, SHAPES), range(1, 16), seed=5)
    assert [x[0] for x in a] == [y[0] for y in b]


def test_achieved_sparsity_checks_masks() -> None:
    c = PruningController(PruningConfig(**PHASED), {"a": (2, 2), "b": (4,)})
    masks = {"a": np.array([[True, False], [False, False]]), "b": np.ones(4, dtype=bool)}
    assert c.achieved_sparsity(masks) == 0.375
    assert c.achieved_sparsity(None) == 0.0
    with pytest.raises(ValueError, match="'b'"):
        c.achieved_sparsity({"a": masks["a"], "b": np.ones(4)})
    with pytest.raises(ValueError, match="exactly the prunable"):
        c.achieved_sparsity({"a": masks["a"]})
