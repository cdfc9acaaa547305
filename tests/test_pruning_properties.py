"""Property test: controller invariants hold over random pruning configurations."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from fedserver.pruning.config import PruningConfig
from fedserver.pruning.controller import PruningController

SHAPES = {"fc": (6, 8), "conv": (4, 2, 3, 3)}
ORDER = ["dense", "prune", "refine", "finetune"]

configs: st.SearchStrategy[dict[str, Any]] = st.builds(
    dict,
    schedule=st.sampled_from(["one-shot", "step", "cubic"]),
    start_round=st.integers(1, 4), steps=st.integers(1, 3), prune_every=st.integers(1, 3),
    refine_rounds=st.integers(0, 3), target_sparsity=st.sampled_from([0.25, 0.5, 0.75]),
    scheme=st.sampled_from(["server-mask", "client-scores"]),
    combine=st.sampled_from(["weighted-sum", "vote"]),
    allocation=st.sampled_from(["uniform", "global"]),
    granularity=st.sampled_from(["unstructured", "structured"]),
)


def _config(d: dict[str, Any]) -> PruningConfig:
    d = dict(d)
    end = d["start_round"] + d.pop("steps") * d["prune_every"]
    return PruningConfig(enabled=True, end_round=end, **d)


@settings(max_examples=30, deadline=None)
@given(raw=configs, seed=st.integers(0, 2**16))
def test_controller_invariants(raw: dict[str, Any], seed: int) -> None:
    config = _config(raw)
    c = PruningController(config, SHAPES)
    rng = np.random.default_rng(seed)
    params = {n: rng.normal(size=s) for n, s in SHAPES.items()}
    phases, ids, published = [], [], []
    for t in range(1, config.end_round + config.refine_rounds + 4):
        phases.append(c.phase(t))
        train_id, train_masks = c.mask_for_training(t)
        assert (train_id == "") == (train_masks is None)
        ids.append(train_id)
        params = {n: w + rng.normal(scale=0.5, size=w.shape) for n, w in params.items()}
        if train_masks is not None:
            params = {n: w * train_masks[n] for n, w in params.items()}
        scores = None
        if c.wants_client_scores(t):
            scores = {n: rng.uniform(0, 1, size=s) for n, s in c.score_shapes().items()}
        update = c.update_after_aggregation(t, params, scores)
        assert (update is not None) == c.is_mask_step(t)
        if update is not None:
            published.append((phases[-1], update))
            params = {n: w * update[1][n] for n, w in params.items()}
    assert [ORDER.index(p) for p in phases] == sorted(ORDER.index(p) for p in phases)
    assert len({u[0] for _, u in published}) == len(published)  # fresh id per step
    prune_masks = [u[1] for phase, u in published if phase == "prune"]
    for prev, new in itertools.pairwise(prune_masks):
        assert all(not np.any(new[n] & ~prev[n]) for n in SHAPES)
    final_id = published[-1][1][0]
    assert c.achieved_sparsity(published[-1][1][1]) >= config.target_sparsity - 0.1
    assert all(i == final_id for p, i in zip(phases, ids, strict=True) if p == "finetune")
    assert all(i == "" for p, i in zip(phases, ids, strict=True) if p in ("dense", "refine"))
