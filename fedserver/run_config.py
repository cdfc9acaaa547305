"""May a reused state folder continue its run under the configuration given now?

A run's configuration (redacted: tokens as digests) is stored with the run at its first
start. Restarting on the same state folder with a different configuration would mix two
experiments in one model and one report, so :func:`config_drift` lists the dotted keys whose
values differ. :func:`fedserver.state_dir.open_run_store` refuses a drift unless the
operator passed ``--accept-config-change``; an accepted drift is logged with its keys and
recorded in the store (state key ``config_changes``), never applied silently.

Keys that say how to operate the coordinator rather than what the run computes may change
freely (:data:`OPERATIONAL`): addresses, credentials, certificates, logging, the state
folder's own path, deadlines, the evaluation batch size, and ``round.rounds`` (extending a
run is a normal operation). A key the stored run does not have (a newer fedprune added it)
counts as its default.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

from fedcore.text import clip

OPERATIONAL = frozenset({
    "state_dir", "log_level", "log_format", "network", "auth", "tls", "round.rounds",
    "round.deadline_s", "round.selection_timeout_s", "round.eval_deadline_s",
    "evaluation.batch_size",
})
_VALUE_CHARS = 40  # per value in the refusal line


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        dotted = f"{prefix}.{key}" if prefix else str(key)
        if any(dotted == op or dotted.startswith(op + ".") for op in OPERATIONAL):
            continue
        if isinstance(value, Mapping) and value:
            flat.update(_flatten(value, dotted))
        else:
            flat[dotted] = json.loads(json.dumps(value))  # tuples and lists compare equal
    return flat


def config_drift(stored: Mapping[str, Any], current: Mapping[str, Any],
                 defaults: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """``{dotted key: (stored value, current value)}`` for every run-defining key that
    differs; a key missing from ``stored`` is compared as its value in ``defaults``."""
    old, new, base = _flatten(stored), _flatten(current), _flatten(defaults)
    drift = {}
    for key in sorted(set(old) | set(new)):
        before = old.get(key, base.get(key))
        after = new.get(key, base.get(key))
        if before != after:
            drift[key] = (before, after)
    return drift


def describe(drift: Mapping[str, tuple[Any, Any]]) -> str:
    return ", ".join(f"{key} {clip(json.dumps(a), _VALUE_CHARS)} -> "
                     f"{clip(json.dumps(b), _VALUE_CHARS)}" for key, (a, b) in drift.items())


def defaults() -> dict[str, Any]:
    """The default configuration in the stored (redacted, plain-data) form."""
    from fedcore import config as config_io
    from fedcore.secrets import redacted
    from fedserver.config import ServerConfig

    return config_io.to_dict(redacted(ServerConfig()))


def change_record(drift: Mapping[str, tuple[Any, Any]]) -> dict[str, Any]:
    """One entry of the store's ``config_changes`` list."""
    return {"time": time.time(), "changes": {k: [a, b] for k, (a, b) in drift.items()}}
