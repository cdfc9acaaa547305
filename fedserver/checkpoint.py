"""Atomic model checkpoints: a coordinator killed at any instant leaves either the old or
the new checkpoint on disk, never a torn one.

A checkpoint is one ``.npz`` (no pickle) holding named arrays under prefixes
(``param/``, ``opt/``, ``mask/``) plus a JSON document of everything else (round, version,
mask id, strategy and pruning state). It is written to a temporary file, fsynced, renamed
into place, and the folder fsynced; only then does the store record it as the latest.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

_META_KEY = "__meta__"


@dataclass(frozen=True)
class Checkpoint:
    arrays: dict[str, np.ndarray]
    meta: dict[str, Any]

    def group(self, prefix: str) -> dict[str, np.ndarray]:
        """Arrays stored under ``prefix/``, with the prefix removed, in stored order."""
        start = prefix + "/"
        return {k[len(start):]: v for k, v in self.arrays.items() if k.startswith(start)}


def write_checkpoint(path: Path, groups: Mapping[str, Mapping[str, np.ndarray]],
                     meta: Mapping[str, Any]) -> None:
    arrays = {f"{prefix}/{name}": np.asarray(a) for prefix, group in groups.items()
              for name, a in group.items()}
    arrays[_META_KEY] = np.frombuffer(json.dumps(meta, sort_keys=True).encode(), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, allow_pickle=False, **arrays)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def read_checkpoint(path: Path) -> Checkpoint:
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    meta = json.loads(arrays.pop(_META_KEY).tobytes().decode())
    return Checkpoint(arrays=arrays, meta=meta)
