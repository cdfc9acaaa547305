"""Argument checks shared by fedcore modules (they name the bad argument)."""

from __future__ import annotations


def check_int(name: str, value: object, *, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
