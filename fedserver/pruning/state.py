"""The persisted form of ``PruningController`` state, for resume after a kill.

The state is a JSON-ready ``dict`` (the coordinator stores it in SQLite/JSON):

- ``mechanism`` (``MECHANISM``) and ``version`` (``STATE_VERSION``): what wrote it;
- ``config``: ``PruningConfig.to_dict()``; ``prunable``: name → shape as a list;
- ``last_round``: last round passed to ``update_after_aggregation`` (``0`` = none);
- ``sparsity``: the sparsity the current mask aimed at;
- ``mask_id`` and ``masks``: ``""`` / ``None`` when dense, else name → base64 of the
  ``np.packbits`` bits of the mask in C order.

Loading checks every key before anything is used: the mechanism and version, the presence
of each required key (the error names it), that the configuration and the model shapes
equal the loading controller's (resuming under different settings would silently change
the run), and that the masks decode to exactly the digest in their id.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from fedserver.pruning import _masks
from fedserver.pruning.config import MAX_SPARSITY, PruningConfig

MECHANISM = "fedserver.pruning.PruningController"
STATE_VERSION = 1
REQUIRED_KEYS = ("mechanism", "version", "config", "prunable", "last_round", "sparsity",
                 "mask_id", "masks")


@dataclass(frozen=True)
class ControllerState:
    last_round: int
    sparsity: float
    mask_id: str
    masks: dict[str, np.ndarray] | None


def controller_state(*, config: PruningConfig, shapes: Mapping[str, tuple[int, ...]],
                     last_round: int, sparsity: float, mask_id: str,
                     masks: Mapping[str, np.ndarray] | None) -> dict[str, Any]:
    return {
        "mechanism": MECHANISM, "version": STATE_VERSION, "config": config.mask_settings(),
        "prunable": {name: list(shape) for name, shape in shapes.items()},
        "last_round": last_round, "sparsity": sparsity, "mask_id": mask_id,
        "masks": None if masks is None else {n: _masks.mask_to_text(m) for n, m in masks.items()},
    }


def _check_header(d: Mapping[str, Any], config: PruningConfig,
                  shapes: Mapping[str, tuple[int, ...]]) -> None:
    if not isinstance(d, Mapping):
        raise ValueError(
            f"state must be a mapping, got {type(d).__name__}")
    for key in REQUIRED_KEYS:
        if key not in d:
            raise ValueError(f"{key}: missing from the pruning state")
    if d["mechanism"] != MECHANISM or d["version"] != STATE_VERSION:
        raise ValueError(f"mechanism: state is from {d['mechanism']!r} v{d['version']!r}, "
                         f"expected {MECHANISM!r} v{STATE_VERSION}")
    mine, theirs = config.mask_settings(), d["config"]
    if not isinstance(theirs, Mapping):
        raise ValueError("config: must be a mapping")
    for key in sorted(set(mine) | set(theirs)):
        if mine.get(key) != theirs.get(key):
            raise ValueError(f"config.{key}: state has {theirs.get(key)!r}, "
                             f"controller has {mine.get(key)!r}")
    prunable = d["prunable"]
    try:
        same = {n: tuple(s) for n, s in prunable.items()} == dict(shapes)
    except (AttributeError, TypeError):
        same = False
    if not same:
        raise ValueError("prunable: tensor names or shapes differ from the controller's")


def _parse_masks(d: Mapping[str, Any],
                 shapes: Mapping[str, tuple[int, ...]]) -> dict[str, np.ndarray] | None:
    mask_id, encoded = d["mask_id"], d["masks"]
    if not isinstance(mask_id, str):
        raise ValueError("mask_id: must be a string")
    if encoded is None:
        if mask_id:
            raise ValueError(f"mask_id: {mask_id!r} given without masks")
        return None
    if not isinstance(encoded, Mapping) or set(encoded) != set(shapes):
        raise ValueError(f"masks: must map exactly the prunable tensors {sorted(shapes)}")
    masks = _masks.frozen({n: _masks.mask_from_text(n, encoded[n], s) for n, s in shapes.items()})
    if not (mask_id.startswith("m") and mask_id.endswith("-" + _masks.mask_digest(masks))):
        raise ValueError(f"mask_id: {mask_id!r} does not match the digest of the masks")
    return masks


def parse_controller_state(d: Mapping[str, Any], *, config: PruningConfig,
                           shapes: Mapping[str, tuple[int, ...]]) -> ControllerState:
    """Validate ``d`` completely and return the restored values."""
    _check_header(d, config, shapes)
    last_round, sparsity = d["last_round"], d["sparsity"]
    if isinstance(last_round, bool) or not isinstance(last_round, int) or last_round < 0:
        raise ValueError(f"last_round: must be an integer >= 0, got {last_round!r}")
    if isinstance(sparsity, bool) or not isinstance(sparsity, (int, float)) or not (
        0 <= sparsity <= MAX_SPARSITY
    ):
        raise ValueError(f"sparsity: must be a number in [0, {MAX_SPARSITY}], got {sparsity!r}")
    masks = _parse_masks(d, shapes)
    return ControllerState(last_round=last_round, sparsity=float(sparsity),
                           mask_id=d["mask_id"], masks=masks)
