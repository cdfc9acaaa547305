"""The one exception every fedcompression decoder raises on bad input."""

from __future__ import annotations


class CodecError(ValueError):
    """A payload or argument is invalid. The message names the tensor and the problem.

    Decoders raise only this for bad input (truncated, corrupted, oversized, inconsistent
    or non-finite payloads); they never crash, hang or allocate more than their limits.
    """

    def __init__(self, tensor: str, problem: str) -> None:
        self.tensor = tensor
        self.problem = problem
        super().__init__(f"tensor {tensor!r}: {problem}")


class UnknownCodecError(CodecError):
    """A codec id that is not registered was looked up."""
