"""Opening the coordinator's state folder for a run, or refusing to.

The state folder is the run: the store (``fedprune.sqlite``), the checkpoints
(``checkpoints/``) and the report. A coordinator must never start over at round 1 by
itself because part of it was lost, so :func:`open_run_store` refuses, with a
:class:`StateError` naming the file and the recovery choices, when

* the store is empty (0 bytes) or is not a database;
* the store is missing or holds no run while the folder holds a previous run's files
  (checkpoints, report, write-ahead log).

* the store's run was started with a different configuration (the keys are named; see
  :mod:`fedserver.run_config`), unless ``--accept-config-change`` is given.

The operator then chooses explicitly: ``--new-run`` starts a fresh run and
``--from-checkpoint PATH`` resumes from one checkpoint file; both first move the whole
current state into ``previous/<timestamp>/`` inside the folder (nothing is ever deleted).
Temporary files left by a kill inside an atomic write (``*.tmp``) are removed here, at
start-up, when no writer can own them.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fedserver.checkpoint import (
    TMP_SUFFIX,
    CheckpointRef,
    DamagedCheckpoint,
    file_digest,
    read_checkpoint,
)
from fedserver.run_config import change_record, config_drift, defaults, describe
from fedserver.store import STORE_NAME, RunStore, StoreError

log = logging.getLogger("fedserver.state_dir")
CHECKPOINTS = "checkpoints"
PREVIOUS = "previous"
_EVIDENCE = ("report.json", STORE_NAME + "-wal")


class StateError(Exception):
    """The state folder cannot be resumed as it is; the message (one line) names the file
    and how to recover."""


@dataclass(frozen=True)
class StartMode:
    """How to treat an existing state folder: resume (default), start a new run, or resume
    from one checkpoint file; the last two move the current state aside first."""

    new_run: bool = False
    from_checkpoint: Path | None = None
    accept_config_change: bool = False  # continue the stored run under a changed config


def recovery_hint(state_dir: Path) -> str:
    """The operator's choices, with an intact checkpoint file to resume from if any."""
    example = "PATH"
    for path in sorted((state_dir / CHECKPOINTS).glob("round-*.npz"), reverse=True)[:3]:
        try:
            read_checkpoint(path)
        except DamagedCheckpoint:
            continue
        example = str(path)
        break
    return (f"restart with --from-checkpoint {example} to resume from a checkpoint file, "
            f"or with --new-run to start a new run (the current state is moved to "
            f"{state_dir / PREVIOUS}/, nothing is deleted)")


def remove_orphan_temp_files(state_dir: Path) -> None:
    """Remove ``*.tmp`` files a kill inside an atomic write left behind."""
    for folder in (state_dir, state_dir / CHECKPOINTS):
        for path in sorted(folder.glob("*" + TMP_SUFFIX)):
            if path.is_file():
                path.unlink()
                log.info("removed orphan temporary file %s", path)


def move_aside(state_dir: Path) -> Path | None:
    """Move everything in the folder (but earlier moved-aside states) to
    ``previous/<timestamp>/``; returns that folder, or None when there was nothing."""
    entries = [p for p in state_dir.iterdir() if p.name != PREVIOUS]
    if not entries:
        return None
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    target = state_dir / PREVIOUS / stamp
    n = 1
    while target.exists():
        n += 1
        target = state_dir / PREVIOUS / f"{stamp}-{n}"
    target.mkdir(parents=True)
    for entry in entries:
        entry.rename(target / entry.name)
    log.warning("moved the previous state of %s to %s", state_dir, target)
    return target


def _previous_run_files(state_dir: Path) -> list[Path]:
    found = sorted((state_dir / CHECKPOINTS).glob("round-*.npz"))
    return found + [state_dir / n for n in _EVIDENCE if (state_dir / n).exists()]


def _refuse(path: Path, problem: str, state_dir: Path) -> StateError:
    return StateError(f"{path} {problem}: {recovery_hint(state_dir)}")


def open_run_store(state_dir: Path, *, mode: StartMode, config: dict[str, Any],
                   run_id: str) -> RunStore:
    """The run store of ``state_dir``, checked (see the module doc) or freshly started."""
    state_dir.mkdir(parents=True, exist_ok=True)
    remove_orphan_temp_files(state_dir)
    seed = None
    if mode.from_checkpoint is not None:
        source = mode.from_checkpoint.resolve()
        try:
            meta = read_checkpoint(source).meta
        except DamagedCheckpoint as exc:
            raise StateError(f"--from-checkpoint: {exc}") from exc
        seed = (source.read_bytes(), meta)
    if mode.new_run or seed is not None:
        move_aside(state_dir)
    db = state_dir / STORE_NAME
    previous = _previous_run_files(state_dir)
    if db.exists() and db.stat().st_size == 0:
        raise _refuse(db, "is empty (0 bytes)", state_dir)
    if not db.exists() and previous:
        raise _refuse(db, f"is missing but the folder holds a previous run ({previous[0]})",
                      state_dir)
    try:
        store = RunStore(db)
        has_run = store.run_info() is not None
    except StoreError as exc:
        raise _refuse(db, f"is damaged ({exc.__cause__ or exc})", state_dir) from exc
    if not has_run and previous:
        store.close()
        raise _refuse(db, f"holds no run but the folder holds a previous run ({previous[0]})",
                      state_dir)
    if seed is not None:
        _install_seed(state_dir, store, *seed, config=config)
    elif has_run:
        try:
            _check_config_reuse(state_dir, store, config, accept=mode.accept_config_change)
        except BaseException:
            store.close()
            raise
    store.ensure_run(run_id, config)
    return store


def _check_config_reuse(state_dir: Path, store: RunStore, config: dict[str, Any], *,
                        accept: bool) -> None:
    """Refuse to continue the stored run under a different configuration unless
    ``accept``; an accepted change is logged and recorded (see the module doc)."""
    info = store.run_info()
    assert info is not None
    run_id, _created, stored = info
    drift = config_drift(stored, config, defaults())
    if not drift:
        return
    if not accept:
        raise StateError(
            f"{store.path} holds run {run_id}, started with a different config "
            f"({describe(drift)}): restart with that config, or with --accept-config-change "
            f"to continue the run under the new one, or with --new-run to start a new run "
            f"(the current state is moved to {state_dir / PREVIOUS}/, nothing is deleted)")
    store.stage_config_change(config, change=change_record(drift))  # committed on resume
    log.warning("run %s continues under a changed config (--accept-config-change): %s",
                run_id, describe(drift))


def _install_seed(state_dir: Path, store: RunStore, data: bytes, meta: dict[str, Any], *,
                  config: dict[str, Any]) -> None:
    """Make a copy of a checkpoint file the run's latest, continuing its run and round."""
    round_ = int(meta["round"])
    path = state_dir / CHECKPOINTS / f"round-{round_:05d}.npz"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + TMP_SUFFIX)
    tmp.write_bytes(data)
    tmp.replace(path)
    store.ensure_run(str(meta.get("run_id") or "seeded"), config)
    store.rewind(CheckpointRef(name=path.name, round=round_, sha256=file_digest(path)))
    log.warning("resuming from checkpoint %s: round %d, model version %s", path, round_,
                meta.get("version"))
