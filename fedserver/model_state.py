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

Resuming never starts over silently: the store's latest checkpoint is verified against its
recorded SHA-256; a damaged one (missing, truncated, overwritten) is skipped, with a
WARNING, for the previous recorded one (the store is rewound to it, so its later rounds run
again); when none is good, or the store records completed rounds but no checkpoint,
:class:`fedserver.state_dir.StateError` names the file and the recovery choices.
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

from fedserver.checkpoint import (
    CheckpointRef,
    DamagedCheckpoint,
    read_checkpoint,
    write_checkpoint,
)
from fedserver.state_dir import CHECKPOINTS, StateError, recovery_hint
from fedserver.store import RunStore

log = logging.getLogger("fedserver.model_state")
KEEP_CHECKPOINTS = 2  # the latest and one to fall back to
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
                     components: Mapping[str, Stateful], run_id: str) -> CheckpointRef:
    """Write ``checkpoints/round-NNNNN.npz``; the store makes it the latest (and rotates
    older ones, see :func:`remove_checkpoints`) only when the round is recorded."""
    arrays: dict[str, np.ndarray] = {}
    meta = {
        "format": FORMAT, "run_id": run_id, "round": round_, "version": model.version,
        "mask_id": model.mask_id,
        "components": {name: {"config": c.get_config(),
                              "state": _split(c.state_dict(), arrays, name)}
                       for name, c in components.items()},
    }
    name = f"round-{round_:05d}.npz"
    digest = write_checkpoint(state_dir / CHECKPOINTS / name,
                              {"param": model.params, "mask": model.masks or {},
                               "state": arrays}, meta)
    return CheckpointRef(name=name, round=round_, sha256=digest)


def remove_checkpoints(state_dir: Path, names: list[str]) -> None:
    """Delete checkpoint files the store no longer references (best effort: a file left
    behind is harmless, it is simply never read)."""
    for name in names:
        try:
            (state_dir / CHECKPOINTS / name).unlink(missing_ok=True)
        except OSError as exc:
            log.warning("could not remove rotated checkpoint %s: %s", name, exc)


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
    """The latest good checkpoint recorded in the store, or the initial model at version 0
    for a run with no completed round (see the module doc for damaged checkpoints)."""
    latest = store.get_state("latest_checkpoint")
    if latest is None:
        if store.last_completed_round() > 0:
            raise StateError(f"run store {store.path} records completed rounds but no "
                             f"checkpoint: {recovery_hint(state_dir)}")
        return ModelState(params=dict(initial), version=0)
    refs = store.checkpoints() or [CheckpointRef(name=str(latest), round=-1, sha256="")]
    damage: list[str] = []
    for ref in refs:
        try:
            ckpt = read_checkpoint(state_dir / CHECKPOINTS / ref.name, sha256=ref.sha256)
        except DamagedCheckpoint as exc:
            log.warning("%s", exc)
            damage.append(str(exc))
            continue
        if damage:
            log.warning("falling back to the previous good checkpoint %s (round %d): rounds "
                        "after it run again", ref.name, ref.round)
            store.rewind(ref)
        return _load(ref.name, ckpt, initial, components)
    raise StateError(f"{damage[0]} and no earlier good checkpoint is recorded: "
                     f"{recovery_hint(state_dir)}")


def _load(name: str, ckpt: Any, initial: dict[str, np.ndarray],
          components: Mapping[str, Stateful]) -> ModelState:
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
