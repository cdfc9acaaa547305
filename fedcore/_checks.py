"""Argument checks shared by fedcore modules (they name the bad argument)."""

from __future__ import annotations


def check_int(name: str, value: object, *, low: int, high: int | None = None) -> None:
    """Raise ``ValueError`` unless ``value`` is an int (not bool) in ``[low, high]``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    if high is not None and value > high:
        raise ValueError(f"{name} must be an int <= {high}, got {value!r}")
