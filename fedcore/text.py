"""Bounding strings that came from the other side of the wire before echoing them.

Why: a peer controls the length of a task id, a model name or a client id; echoed in
full into a status trailer or a log line it becomes amplification and log flooding.
Invariant: :func:`clip` returns at most ``limit`` characters plus a short marker.
"""

from __future__ import annotations

__all__ = ["clip"]

LIMIT = 200


def clip(text: str, limit: int = LIMIT) -> str:
    """``text`` cut to ``limit`` characters, saying how many were dropped."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}...[{len(text) - limit} more chars]"
