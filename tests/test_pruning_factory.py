"""Which tensors get pruned: weights with ndim >= 2, minus pruning.exclude."""

from __future__ import annotations

import numpy as np
import pytest

from fedcore.models import build_model
from fedcore.params import get_parameters
from fedserver.pruning.config import PruningConfig
from fedserver.pruning.factory import build_controller


def test_disabled_gives_none_and_exclude_keeps_tensors_dense() -> None:
    params = get_parameters(build_model("mlp"))
    assert build_controller(PruningConfig(), params) is None
    cfg = PruningConfig(enabled=True, granularity="structured", target_sparsity=0.8,
                        exclude=("fc1.weight",))
    controller = build_controller(cfg, params)
    assert controller is not None
    assert set(controller.score_shapes()) == {"fc2.weight", "fc3.weight"}
    update = None
    for rnd in range(1, 11):
        update = controller.update_after_aggregation(rnd, params, None) or update
    assert update is not None
    _, masks = update
    assert "fc1.weight" not in masks
    assert np.mean(~np.all(masks["fc2.weight"], axis=0)) == pytest.approx(0.8, abs=0.01)


def test_unknown_exclude_is_named() -> None:
    params = get_parameters(build_model("mlp"))
    with pytest.raises(ValueError, match="fc9.weight"):
        build_controller(PruningConfig(enabled=True, exclude=("fc9.weight",)), params)
