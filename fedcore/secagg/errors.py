"""Errors of the secure-aggregation protocol, by who detects what."""

from __future__ import annotations


class ProtocolError(ValueError):
    """A protocol message is malformed or inconsistent with the round (the receiver
    refuses it and nothing of its state changes)."""


class UnmaskRefused(ProtocolError):
    """An honest client refuses an unmask request that would reveal an individual input
    (both secrets of one client, or too few survivors)."""


class UnmaskFailed(RuntimeError):
    """The coordinator cannot remove the masks (fewer than t shares of some secret, or
    shares that reconstruct a key other than the one advertised): the round fails."""
