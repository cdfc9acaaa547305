"""The global model's durable state and the checkpoint of the round program's components.

After every completed round the coordinator writes ``checkpoints/round-NNNNN.npz``
atomically: the parameters, the model's masks (its support), its version, and a mapping of
named stateful components (aggregator, optimizer, pruning, ...), each saved as
``{"config": get_config(), "state": state_dict()}``. Array leaves go into the npz, the rest
into its JSON document, so no pickle is ever read back.

Resuming refuses, with :class:`CheckpointMismatch` naming the component, a checkpoint whose
set of components or whose configuration of a component differs from the running program:
silently loading a FedAdam state into FedYogi, or a mask computed under another schedule,
would corrupt the run.
"""

from __future__ import annotations

import base64
import dataclasses
import json
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
FORMAT = "fedprune.checkpoint/v2"


class Stateful(Protocol):
    def state_dict(self) -> dict[str, Any]: ...
    def load_state_dict(self, state: Mapping[str, Any]) -> None: ...
    def get_config(self) -> dict[str, Any]: ...


class CheckpointMismatch(ValueError):
    """A checkpoint was written by another program (components or their configs differ)."""


@dataclass(frozen=True)
class ModelState:
    """Parameters, version, and the support masks (``None`` = dense) of the global model."""

    params: dict[str, np.ndarray]
    version: int
    mask_id: str = ""
    masks: dict[str, np.ndarray] | None = None

    def replace(self, **changes: Any) -> ModelState:
        return dataclasses.replace(self, **changes)


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
    if isinstance(tree, np.generic):
        return tree.item()
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


def save_model_state(state_dir: Path, round_: int, model: ModelState,
                     components: Mapping[str, Stateful], run_id: str) -> str:
    arrays: dict[str, np.ndarray] = {}
    meta = {
        "format": FORMAT, "run_id": run_id, "round": round_, "version": model.version,
        "mask_id": model.mask_id,
        "components": {name: {"config": c.get_config(),
                              "state": _split(c.state_dict(), arrays, name)}
                       for name, c in components.items()},
    }
    name = f"round-{round_:05d}.npz"
    folder = state_dir / "checkpoints"
    write_checkpoint(folder / name, {"param": model.params, "mask": model.masks or {},
                                     "state": arrays}, meta)
    for old in sorted(folder.glob("round-*.npz"))[:-KEEP_CHECKPOINTS]:
        old.unlink(missing_ok=True)
    return name


def _check_components(name: str, saved: Mapping[str, Any],
                      components: Mapping[str, Stateful]) -> None:
    if set(saved) != set(components):
        raise CheckpointMismatch(
            f"checkpoint {name} holds components {sorted(saved)}, the configured program has "
            f"{sorted(components)}: use a new state_dir for a different program")
    for key, component in components.items():
        want = _split(component.get_config(), {}, key)
        if json.dumps(saved[key]["config"], sort_keys=True) != json.dumps(want, sort_keys=True):
            raise CheckpointMismatch(
                f"checkpoint {name}: component {key!r} was configured as "
                f"{saved[key]['config']}, now {component.get_config()}: use a new state_dir "
                f"or restore the old configuration")


def restore_model_state(state_dir: Path, store: RunStore, initial: dict[str, np.ndarray],
                        components: Mapping[str, Stateful]) -> ModelState:
    """The latest checkpoint recorded in the store, or the initial model at version 0."""
    name = store.get_state("latest_checkpoint")
    if name is None:
        return ModelState(params=dict(initial), version=0)
    ckpt = read_checkpoint(state_dir / "checkpoints" / name)
    if ckpt.meta.get("format") != FORMAT:
        raise CheckpointMismatch(f"checkpoint {name} has format {ckpt.meta.get('format')!r}, "
                                 f"expected {FORMAT!r}: use a new state_dir")
    params = ckpt.group("param")
    if {k: v.shape for k, v in params.items()} != {k: v.shape for k, v in initial.items()}:
        raise CheckpointMismatch(f"checkpoint {name} does not match the configured model")
    saved = ckpt.meta["components"]
    _check_components(name, saved, components)
    arrays = ckpt.group("state")
    for key, component in components.items():
        component.load_state_dict(_join(saved[key]["state"], arrays))
    masks = {k: v.astype(bool) for k, v in ckpt.group("mask").items()} or None
    log.info("restored %s: round %d, model version %d", name, ckpt.meta["round"],
             ckpt.meta["version"])
    return ModelState(params={k: v.astype(np.float32) for k, v in params.items()},
                      version=int(ckpt.meta["version"]), mask_id=str(ckpt.meta["mask_id"]),
                      masks=masks)
