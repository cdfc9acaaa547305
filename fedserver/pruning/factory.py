"""Building the pruning controller for a model: one place decides which tensors are pruned.

Prunable tensors are the model's weights with ``ndim >= 2`` (linear and convolution
weights; never biases or normalisation statistics), minus ``PruningConfig.exclude``. The
coordinator and the centralized baseline both build their controller here, so they prune
the same tensors.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from fedcore.params import prunable_names
from fedserver.pruning.config import PruningConfig
from fedserver.pruning.controller import PruningController


def build_controller(config: PruningConfig,
                     params: Mapping[str, np.ndarray]) -> PruningController | None:
    """The controller for ``params``, or None when pruning is disabled."""
    if not config.enabled:
        return None
    names = prunable_names(params)
    unknown = sorted(set(config.exclude) - set(names))
    if unknown:
        raise ValueError(f"pruning.exclude names {unknown}, which are not prunable weights "
                         f"(those are {names})")
    prunable = {n: tuple(params[n].shape) for n in names if n not in config.exclude}
    return PruningController(config, prunable)
