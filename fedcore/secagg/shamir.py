"""Shamir t-of-n secret sharing of 32-byte secrets over the prime field GF(p), p = 2^256 + 297.

p is the smallest prime above 2^256, so every 32-byte string is one field element and a
secret is shared in one piece. A share is ``(x, y)`` with ``x`` in ``1..n`` (the holder's
share index, never 0) and ``y = f(x)`` for a random polynomial ``f`` of degree ``t - 1``
with ``f(0) = secret``; the coefficients come from :mod:`secrets` (the OS CSPRNG). Any
``t`` shares determine the secret (Lagrange interpolation at 0); any ``t - 1`` are
consistent with every secret, so they reveal nothing.

:func:`combine` refuses fewer than ``t`` shares; with ``verify=True`` it also checks that
every further share lies on the interpolated polynomial, so a corrupted share is an error
(:class:`ShamirError`) rather than a silently wrong secret.

>>> shares = split(bytes(31) + b"\\x07", threshold=2, xs=[1, 2, 3])
>>> combine({x: shares[x] for x in (1, 3)}, threshold=2) == bytes(31) + b"\\x07"
True
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache

PRIME = (1 << 256) + 297
SECRET_BYTES = 32
SHARE_BYTES = 33  # a field element needs 257 bits


class ShamirError(ValueError):
    """Too few shares, bad indices, or shares that do not lie on one polynomial."""


def _check_threshold(threshold: int, n: int) -> None:
    if isinstance(threshold, bool) or not 1 <= threshold <= n:
        raise ShamirError(f"threshold must be in 1..{n} (the number of shares), got {threshold!r}")


def _check_xs(xs: Sequence[int]) -> None:
    if len(set(xs)) != len(xs) or not all(0 < x < PRIME for x in xs):
        raise ShamirError("share indices must be distinct and in 1..p-1")


def split(secret: bytes, *, threshold: int, xs: Sequence[int],
          coefficient: Callable[[], int] = lambda: secrets.randbelow(PRIME)) -> dict[int, int]:
    """Shares ``{x: f(x)}`` of ``secret`` for each index in ``xs``. ``coefficient`` draws
    the random coefficients (tests pass a fixed source for known answers)."""
    if len(secret) != SECRET_BYTES:
        raise ShamirError(f"secret must be {SECRET_BYTES} bytes, got {len(secret)}")
    _check_threshold(threshold, len(xs))
    _check_xs(xs)
    coefficients = [int.from_bytes(secret, "big")] + [coefficient() % PRIME
                                                      for _ in range(threshold - 1)]
    return {x: _evaluate(coefficients, x) for x in xs}


def _evaluate(coefficients: Sequence[int], x: int) -> int:
    acc = 0
    for c in reversed(coefficients):  # Horner
        acc = (acc * x + c) % PRIME
    return acc


@lru_cache(maxsize=64)
def _coefficients_at_zero(xs: tuple[int, ...]) -> tuple[int, ...]:
    """Lagrange basis values at 0 for the points ``xs``. Cached: a server reconstructs
    every client's secrets from the same revealers, so it computes these once per round."""
    out = []
    for i, xi in enumerate(xs):
        num, den = 1, 1
        for j, xj in enumerate(xs):
            if j != i:
                num = num * -xj % PRIME
                den = den * (xi - xj) % PRIME
        out.append(num * pow(den, -1, PRIME) % PRIME)
    return tuple(out)


def combine(shares: Mapping[int, int], *, threshold: int, verify: bool = False) -> bytes:
    """The secret from at least ``threshold`` shares ``{x: y}``: interpolates the ``t``
    lowest indices; with ``verify``, every further share must lie on the same polynomial."""
    if len(shares) < threshold:
        raise ShamirError(f"{len(shares)} shares are fewer than the threshold {threshold}")
    _check_threshold(threshold, len(shares))
    points = sorted((int(x), int(y)) for x, y in shares.items())
    _check_xs([x for x, _ in points])
    if not all(0 <= y < PRIME for _, y in points):
        raise ShamirError("share values must be field elements")
    basis = points[:threshold]
    if verify:
        _verify(basis, points[threshold:])
    lam = _coefficients_at_zero(tuple(x for x, _ in basis))
    secret = sum(c * y for c, (_, y) in zip(lam, basis, strict=True)) % PRIME
    if secret >> (8 * SECRET_BYTES):
        raise ShamirError("the shares interpolate to a value that is not a 32-byte secret")
    return secret.to_bytes(SECRET_BYTES, "big")


def _verify(basis: Sequence[tuple[int, int]], extra: Sequence[tuple[int, int]]) -> None:
    for x, y in extra:
        value = 0
        for i, (xi, yi) in enumerate(basis):
            num, den = 1, 1
            for j, (xj, _) in enumerate(basis):
                if j != i:
                    num = num * (x - xj) % PRIME
                    den = den * (xi - xj) % PRIME
            value = (value + yi * num * pow(den, -1, PRIME)) % PRIME
        if value != y:
            raise ShamirError(f"share {x} does not lie on the polynomial of the others")


def share_to_bytes(y: int) -> bytes:
    return y.to_bytes(SHARE_BYTES, "big")


def share_from_bytes(data: bytes) -> int:
    if len(data) != SHARE_BYTES:
        raise ShamirError(f"a share is {SHARE_BYTES} bytes, got {len(data)}")
    y = int.from_bytes(data, "big")
    if y >= PRIME:
        raise ShamirError("share value is not a field element")
    return y
