"""Atomic model checkpoints: a coordinator killed at any instant leaves either the old or
the new checkpoint on disk, never a torn one.

A checkpoint is one ``.npz`` (no pickle) holding named arrays under prefixes
(``param/``, ``opt/``, ``mask/``) plus a JSON document of everything else (round, version,
mask id, strategy and pruning state). It is written to a temporary file, fsynced, renamed
into place, and the folder fsynced; only then does the store record it as the latest,
with the SHA-256 of the bytes on disk (:class:`CheckpointRef`), so a later read can tell
a damaged file (truncated, overwritten, half-copied) from a good one.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

_META_KEY = "__meta__"
TMP_SUFFIX = ".tmp"  # every temporary file in the state folder ends so (orphans are removed)


class DamagedCheckpoint(ValueError):
    """A checkpoint file is missing, unreadable, or does not match its recorded digest."""


@dataclass(frozen=True)
class CheckpointRef:
    """A written checkpoint as the store records it: file name (in ``checkpoints/``), the
    round it closed, and the SHA-256 (hex) of its bytes; ``sha256 == ""`` means unknown
    (stores written before digests were recorded), checked by reading only."""

    name: str
    round: int
    sha256: str


@dataclass(frozen=True)
class Checkpoint:
    arrays: dict[str, np.ndarray]
    meta: dict[str, Any]

    def group(self, prefix: str) -> dict[str, np.ndarray]:
        """Arrays stored under ``prefix/``, with the prefix removed, in stored order."""
        start = prefix + "/"
        return {k[len(start):]: v for k, v in self.arrays.items() if k.startswith(start)}


def file_digest(path: Path) -> str:
    """SHA-256 (hex) of a file's bytes, read in blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_checkpoint(path: Path, groups: Mapping[str, Mapping[str, np.ndarray]],
                     meta: Mapping[str, Any]) -> str:
    """Write atomically; returns the SHA-256 (hex) of the file as it is on disk."""
    arrays = {f"{prefix}/{name}": np.asarray(a) for prefix, group in groups.items()
              for name, a in group.items()}
    arrays[_META_KEY] = np.frombuffer(json.dumps(meta, sort_keys=True).encode(), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=TMP_SUFFIX)
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
    return file_digest(path)


def read_checkpoint(path: Path, *, sha256: str = "") -> Checkpoint:
    """Read a checkpoint; with ``sha256``, verify the file against it first.

    Raises :class:`DamagedCheckpoint` (naming the file) for a missing file, a digest
    mismatch or any content that does not parse as a checkpoint."""
    if not path.is_file():
        raise DamagedCheckpoint(f"checkpoint {path} is missing")
    if sha256 and file_digest(path) != sha256:
        raise DamagedCheckpoint(f"checkpoint {path} does not match its recorded SHA-256 "
                                f"(truncated or overwritten)")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        meta = json.loads(arrays.pop(_META_KEY).tobytes().decode())
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise DamagedCheckpoint(f"checkpoint {path} is unreadable ({exc})") from exc
    return Checkpoint(arrays=arrays, meta=meta)
