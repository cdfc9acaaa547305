"""The global model's durable state: parameters, version, server optimizer and pruning.

Saved after every completed round (``checkpoints/round-NNNNN.npz``, atomically) and
restored at start-up, so a coordinator killed at any instant resumes from its last
completed round. Stateful parts contribute their ``state_dict()``; array leaves go into the
npz, everything else into its JSON document, so no pickle is ever read back.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from fedserver.checkpoint import read_checkpoint, write_checkpoint
from fedserver.store import RunStore

log = logging.getLogger("fedserver.model_state")
KEEP_CHECKPOINTS = 2


class Stateful(Protocol):
    def state_dict(self) -> dict[str, Any]: ...
    def load_state_dict(self, state: Mapping[str, Any]) -> None: ...


@dataclass(frozen=True)
class ModelState:
    params: dict[str, np.ndarray]
    version: int


def _split(tree: Any, arrays: dict[str, np.ndarray], path: str) -> Any:
    """Replace array leaves by references into ``arrays`` and bytes by base64."""
    if isinstance(tree, np.ndarray):
        arrays[path] = tree
        return {"__array__": path}
    if isinstance(tree, (bytes, bytearray)):
        return {"__bytes__": base64.b64encode(tree).decode()}
    if isinstance(tree, Mapping):
        return {str(k): _split(v, arrays, f"{path}/{k}") for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return [_split(v, arrays, f"{path}/{i}") for i, v in enumerate(tree)]
    return tree


def _join(tree: Any, arrays: Mapping[str, np.ndarray]) -> Any:
    if isinstance(tree, dict):
        if set(tree) == {"__array__"}:
            return arrays[tree["__array__"]]
        if set(tree) == {"__bytes__"}:
            return base64.b64decode(tree["__bytes__"])
        return {k: _join(v, arrays) for k, v in tree.items()}
    if isinstance(tree, list):
        return [_join(v, arrays) for v in tree]
    return tree


def save_model_state(state_dir: Path, round_: int, model: ModelState, optimizer: Stateful,
                     pruning: Stateful | None, run_id: str) -> str:
    arrays: dict[str, np.ndarray] = {}
    meta = {
        "run_id": run_id, "round": round_, "version": model.version,
        "optimizer": _split(optimizer.state_dict(), arrays, "optimizer"),
        "pruning": _split(pruning.state_dict(), arrays, "pruning") if pruning else None,
    }
    name = f"round-{round_:05d}.npz"
    folder = state_dir / "checkpoints"
    write_checkpoint(folder / name, {"param": model.params, "state": arrays}, meta)
    for old in sorted(folder.glob("round-*.npz"))[:-KEEP_CHECKPOINTS]:
        old.unlink(missing_ok=True)
    return name


def restore_model_state(state_dir: Path, store: RunStore, initial: dict[str, np.ndarray],
                        optimizer: Stateful, pruning: Stateful | None) -> ModelState:
    """The latest checkpoint recorded in the store, or the initial model at version 0."""
    name = store.get_state("latest_checkpoint")
    if name is None:
        return ModelState(params=dict(initial), version=0)
    ckpt = read_checkpoint(state_dir / "checkpoints" / name)
    params = ckpt.group("param")
    if {k: v.shape for k, v in params.items()} != {k: v.shape for k, v in initial.items()}:
        raise ValueError(f"checkpoint {name} does not match the configured model")
    arrays = ckpt.group("state")
    optimizer.load_state_dict(_join(ckpt.meta["optimizer"], arrays))
    if pruning is not None and ckpt.meta.get("pruning") is not None:
        pruning.load_state_dict(_join(ckpt.meta["pruning"], arrays))
    log.info("restored %s: round %d, model version %d", name, ckpt.meta["round"],
             ckpt.meta["version"])
    return ModelState(params={k: v.astype(np.float32) for k, v in params.items()},
                      version=int(ckpt.meta["version"]))
