"""Credentials at rest: stored and printed only as a SHA-256 digest, compared in constant time.

Why: the run store, ``report.json``, logs and ``--print-config`` are read by more people
than should hold the tokens. Invariant: a config field whose dataclass metadata is
:data:`SECRET` leaves the process only through :func:`redacted`, which replaces each value
by ``"sha256:<hex>"``; a coordinator may be configured with such digests directly, so the
redacted dump is still a working coordinator config. A presented token is always hashed
before comparison, so knowing a digest does not let anyone authenticate.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
from typing import Any, TypeVar

__all__ = ["SECRET", "digest", "matches", "redacted"]

SECRET = {"secret": True}  # dataclasses.field(metadata=SECRET) marks a credential
PREFIX = "sha256:"
T = TypeVar("T")


def digest(secret: str) -> str:
    """``"sha256:<hex>"`` of ``secret``; a value that already is a digest stays as it is."""
    if secret.startswith(PREFIX):
        return secret
    return PREFIX + hashlib.sha256(secret.encode()).hexdigest()


def matches(presented: str, stored_digest: str) -> bool:
    """Whether ``presented`` (always hashed, even if it looks like a digest) is the secret."""
    mine = PREFIX + hashlib.sha256(presented.encode()).hexdigest()
    return hmac.compare_digest(mine.encode(), stored_digest.encode())


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return digest(value) if value else value
    if isinstance(value, dict):
        return {k: _redact_value(v) for k, v in value.items()}
    return value


def redacted(config: T) -> T:
    """A copy of the config tree with every :data:`SECRET` field replaced by its digest."""
    changes: dict[str, Any] = {}
    for f in dataclasses.fields(config):  # type: ignore[arg-type]
        value = getattr(config, f.name)
        if f.metadata.get("secret"):
            changes[f.name] = _redact_value(value)
        elif dataclasses.is_dataclass(value) and not isinstance(value, type):
            changes[f.name] = redacted(value)
    return dataclasses.replace(config, **changes)  # type: ignore[type-var]
