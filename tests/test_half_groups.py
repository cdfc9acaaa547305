"""The paper's half-row and half-column groups: scores, masks, the server's masks and
client-scores shapes, and what export and reduced training make of them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fedcompression import group_scores, mask_from_scores, structured_granularity
from fedcore.models import build_model
from fedcore.params import get_parameters
from fedprune.export import Artifact, shrunk
from fedserver.pruning.config import PruningConfig
from fedserver.pruning.controller import PruningController

W = np.arange(15.0).reshape(3, 5)  # odd width and height: the first half is the larger


def test_half_row_and_half_column_scores_are_half_norms() -> None:
    rows = group_scores(W, "half-rows")
    assert rows.shape == (3, 2)
    np.testing.assert_allclose(rows[1], [np.linalg.norm(W[1, :3]), np.linalg.norm(W[1, 3:])])
    cols = group_scores(W, "half-columns")
    assert cols.shape == (2, 5)
    np.testing.assert_allclose(cols[:, 4], [np.linalg.norm(W[:2, 4]), np.linalg.norm(W[2:, 4])])
    with pytest.raises(ValueError, match="2-D"):
        group_scores(np.ones((2, 2, 3)), "half-rows")


def test_half_masks_prune_whole_halves() -> None:
    mask = mask_from_scores(group_scores(W, "half-rows"), 0.5, "half-rows", W.shape)
    assert mask.tolist() == [[False] * 5, [False, False, False, True, True], [True] * 5]
    assert structured_granularity(mask) == "half-rows"
    mask = mask_from_scores(group_scores(W, "half-columns"), 0.6, "half-columns", W.shape)
    assert structured_granularity(mask) == "half-columns"
    assert structured_granularity(np.eye(3, dtype=bool)) == "unstructured"
    assert structured_granularity(np.ones((4, 2, 3, 3), bool)) == "channels"


@pytest.mark.parametrize("axis,score_shape", [("half-rows", (10, 2)), ("half-columns", (2, 20))])
def test_server_masks_and_client_score_shapes(axis: str, score_shape: tuple[int, int]) -> None:
    config = PruningConfig(enabled=True, granularity="structured", structured_axis=axis,
                           schedule="one-shot", start_round=1, end_round=1,
                           target_sparsity=0.5, scheme="client-scores", score_kind="saliency")
    controller = PruningController(config, {"fc": (10, 20), "conv": (8, 3, 3, 3)})
    assert controller.score_granularities() == {"fc": axis, "conv": "channels"}
    assert controller.score_shapes()["fc"] == score_shape
    rng = np.random.default_rng(0)
    scores = {"fc": rng.random(score_shape), "conv": rng.random(8)}
    _, masks = controller.update_after_aggregation(1, {}, scores)  # type: ignore[misc]
    assert structured_granularity(masks["fc"]) == axis
    assert masks["fc"].mean() == pytest.approx(0.5)


def test_export_and_training_remove_a_neuron_only_when_both_halves_are_gone() -> None:
    params = get_parameters(build_model("mlp"))
    w = params["fc2.weight"]
    split = (w.shape[1] + 1) // 2
    w[:40, :split] = 0  # first halves of 40 rows...
    w[:20, split:] = 0  # ...of which 20 lose their second half too: constant units
    artifact = Artifact("mlp", params)
    small = shrunk(artifact)
    widths = [s.args["out_features"] for s in small.specs if s.kind == "linear"]
    assert widths == [256, 236, 10]
    x = torch.rand(16, 64, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        np.testing.assert_allclose(small.to_torch()(x).numpy(), artifact.to_torch()(x).numpy(),
                                   atol=1e-5)
