"""A client's own copies of its personal layers (FedPer): trained here, never sent.

Invariant: what leaves the client for a personal tensor is an exact-zero delta (see
:meth:`PersonalLayers.shared_delta`), whatever the client trained; the trained values stay
in this object and, when the operator gives ``personal_state``, in a file beside the
client (written atomically, so a crash leaves the previous copy), so a restarted client
resumes with its own layers instead of silently starting over from the global values.
A stored copy whose shape no longer matches the model is not used, and that is logged.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

log = logging.getLogger("fedclient.personal")

Params = dict[str, np.ndarray]


class PersonalLayers:
    def __init__(self, *, path: str | Path | None = None) -> None:
        self._path = Path(path) if path else None
        self._values: Params = {}
        if self._path is not None and self._path.exists():
            with np.load(self._path, allow_pickle=False) as stored:
                self._values = {n: stored[n] for n in stored.files}
            log.info("resumed %d personal tensors from %s", len(self._values), self._path)

    def substituted(self, params: Mapping[str, np.ndarray], names: Iterable[str]) -> Params:
        """``params`` with this client's own copy of each personal tensor it has."""
        out = dict(params)
        for name in names:
            own = self._values.get(name)
            if own is None:
                continue  # first round with personal layers: start from the global values
            if name not in out or own.shape != out[name].shape:
                log.warning("personal tensor %r: stored shape %s does not match the model; "
                            "using the global values this round", name, own.shape)
                continue
            out[name] = own
        return out

    def keep(self, local: Mapping[str, np.ndarray], names: Iterable[str]) -> None:
        """Remember the trained values of the personal tensors (and persist them)."""
        names = list(names)
        if not names:
            return
        self._values.update({n: np.array(local[n], dtype=np.float32, copy=True) for n in names})
        if self._path is not None:
            self._save(self._path)

    @staticmethod
    def shared_delta(delta: Mapping[str, np.ndarray], names: Iterable[str]) -> Params:
        """The delta to push: exact zeros for every personal tensor."""
        personal = set(names)
        return {n: (np.zeros_like(d) if n in personal else d) for n, d in delta.items()}

    def _save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                np.savez(fh, **self._values)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
