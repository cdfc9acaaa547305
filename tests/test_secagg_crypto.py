"""Secure aggregation's building blocks: Shamir (known answers), keys, ring, fixed point."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from fedcore.pb import secagg_pb2 as spb
from fedcore.secagg import keys, ring, shamir
from fedcore.secagg.client_session import check_setup
from fedcore.secagg.errors import ProtocolError
from fedcore.secagg.fixed_point import FixedPoint, ring_bits_for
from fedcore.secagg.graph import neighbours
from fedcore.secure_noise import SecureGaussian

SECRET = bytes(range(32))


def _miller_rabin(n: int) -> bool:
    d, r = n - 1, 0
    while d % 2 == 0:
        d, r = d // 2, r + 1
    for a in (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41):
        x = pow(a, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(r - 1):
            x = pow(x, 2, n)
            if x == n - 1:
                break
        else:
            return False
    return True


def test_field_is_the_smallest_prime_above_2_256() -> None:
    assert _miller_rabin(shamir.PRIME)
    assert not any(_miller_rabin((1 << 256) + k) for k in range(1, 297, 2))


def test_shamir_known_answer() -> None:
    """f(x) = s + 5x + 7x^2 mod p: shares are exactly f(1), f(2), f(3), f(4)."""
    coefficients = iter([5, 7])
    shares = shamir.split(SECRET, threshold=3, xs=[1, 2, 3, 4],
                          coefficient=lambda: next(coefficients))
    s = int.from_bytes(SECRET, "big")
    assert shares == {x: (s + 5 * x + 7 * x * x) % shamir.PRIME for x in (1, 2, 3, 4)}
    # hand-computed Lagrange basis at 0 for x = 2, 3, 4: 6, -8, 3
    assert (6 * shares[2] - 8 * shares[3] + 3 * shares[4]) % shamir.PRIME == s
    assert shamir.combine({x: shares[x] for x in (2, 3, 4)}, threshold=3) == SECRET


def test_any_t_shares_reconstruct_and_fewer_fail() -> None:
    top = bytes([0xFF] * 32)  # the largest secret: a field element below p
    for secret in (SECRET, top, bytes(32)):
        shares = shamir.split(secret, threshold=3, xs=[1, 2, 3, 4, 5])
        for subset in itertools.combinations(shares, 3):
            assert shamir.combine({x: shares[x] for x in subset}, threshold=3) == secret
        assert shamir.combine(shares, threshold=3, verify=True) == secret
        with pytest.raises(shamir.ShamirError, match="fewer than the threshold"):
            shamir.combine({x: shares[x] for x in (1, 2)}, threshold=3)


def test_t_minus_one_shares_fit_every_secret() -> None:
    """Two shares of a 3-of-n sharing are consistent with any secret: for a guessed secret
    there is a third point making the guess the interpolated value."""
    shares = shamir.split(SECRET, threshold=3, xs=[1, 2, 3])
    guess = bytes(32)
    # the polynomial through (0, guess), (1, y1), (2, y2) evaluated at 3
    pts = [(0, 0), (1, shares[1]), (2, shares[2])]
    y3 = 0
    for i, (xi, yi) in enumerate(pts):
        num = den = 1
        for j, (xj, _) in enumerate(pts):
            if j != i:
                num, den = num * (3 - xj), den * (xi - xj)
        y3 = (y3 + yi * num * pow(den, -1, shamir.PRIME)) % shamir.PRIME
    assert shamir.combine({1: shares[1], 2: shares[2], 3: y3}, threshold=3) == guess


def test_a_corrupted_share_is_detected_with_verify() -> None:
    shares = shamir.split(SECRET, threshold=2, xs=[1, 2, 3])
    shares[3] = (shares[3] + 1) % shamir.PRIME
    with pytest.raises(shamir.ShamirError, match="does not lie"):
        shamir.combine(shares, threshold=2, verify=True)


def test_share_bytes_are_checked() -> None:
    with pytest.raises(shamir.ShamirError):
        shamir.share_from_bytes(bytes(32))
    with pytest.raises(shamir.ShamirError):
        shamir.share_from_bytes(shamir.PRIME.to_bytes(33, "big"))
    with pytest.raises(shamir.ShamirError):
        shamir.split(SECRET, threshold=2, xs=[0, 1])


def test_key_agreement_is_symmetric_and_bound_to_its_context() -> None:
    a, b = keys.new_private_key(), keys.new_private_key()
    ctx = keys.RoundContext("run", 3)
    k_ab = keys.agree(a, keys.public_bytes(b), info=ctx.info("mask", "u", "v"))
    assert k_ab == keys.agree(b, keys.public_bytes(a), info=ctx.info("mask", "v", "u"))
    assert k_ab != keys.agree(a, keys.public_bytes(b), info=ctx.info("share", "u", "v"))
    assert k_ab != keys.agree(a, keys.public_bytes(b),
                              info=keys.RoundContext("run", 4).info("mask", "u", "v"))
    with pytest.raises(keys.KeyAgreementError):
        keys.agree(a, bytes(32), info=b"x")  # low-order point: all-zero secret refused


def test_share_box_binds_round_sender_and_recipient() -> None:
    key = bytes(range(32))
    ad = keys.RoundContext("run", 1).associated_data("u", "v")
    nonce, ct = keys.seal(key, b"share", associated_data=ad)
    assert keys.open_sealed(key, nonce, ct, associated_data=ad) == b"share"
    for other in (keys.RoundContext("run", 2).associated_data("u", "v"),
                  keys.RoundContext("run", 1).associated_data("v", "u"),
                  keys.RoundContext("run", 1).associated_data("u", "w")):
        with pytest.raises(keys.KeyAgreementError, match="authentication"):
            keys.open_sealed(key, nonce, ct, associated_data=other)


def test_mask_stream_is_the_chacha20_keystream_reduced_mod_m() -> None:
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

    seed = bytes(range(32))
    raw = Cipher(algorithms.ChaCha20(seed, bytes(16)), mode=None).encryptor().update(bytes(80))
    words = np.frombuffer(raw, dtype="<u8")
    assert np.array_equal(ring.expand(seed, 10, 20), words & np.uint64((1 << 20) - 1))
    assert not np.array_equal(ring.expand(seed, 10, 20), ring.expand(bytes(32), 10, 20))


@pytest.mark.parametrize("bits", [2, 8, 20, 33, 62])
@pytest.mark.parametrize("count", [0, 1, 101, 70_001])
def test_ring_packing_round_trips_and_checks(bits: int, count: int) -> None:
    values = ring.expand(bytes(32), count, bits)
    data = ring.pack(values, bits)
    assert len(data) == math.ceil(count * bits / 8)
    assert np.array_equal(ring.unpack(data, bits, count), values)
    if count:
        with pytest.raises(ring.RingError):
            ring.unpack(data[:-1], bits, count)
        with pytest.raises(ring.RingError, match="Z_2"):
            ring.pack(values | np.uint64(1 << bits) if bits < 62 else values + np.uint64(1 << 62),
                      bits)
    if (count * bits) % 8:
        bad = bytearray(data)
        bad[-1] |= 0x80
        with pytest.raises(ring.RingError, match="padding"):
            ring.unpack(bytes(bad), bits, count)


def test_ring_packing_known_answer() -> None:
    """3-bit values 1, 2, 3, 7: stream bits 100 010 110 111 (LSB first) -> 0xd1, 0x0e."""
    assert ring.pack(np.array([1, 2, 3, 7], dtype=np.uint64), 3) == bytes([0xD1, 0x0E])


def test_fixed_point_clips_and_rounds_stochastically_without_bias() -> None:
    fp = FixedPoint(value_bits=8, ring_bits=12, clip_range=1.0)
    rng = SecureGaussian()
    q = fp.quantize(np.array([5.0, -5.0, 0.0]), rng)
    assert q.tolist() == [127, -127, 0]
    x = np.full(200_000, 0.3 / fp.scale)  # 0.3 of one step
    mean = fp.quantize(x, rng).mean()
    assert abs(mean - 0.3) < 0.01  # E[q] = 0.3; sd of the mean ~ 0.001
    with pytest.raises(ValueError, match="non-finite"):
        fp.quantize(np.array([np.nan]), rng)


@pytest.mark.parametrize("clients", [1, 2, 3, 8, 10, 1000])
def test_the_sum_of_n_extreme_values_never_wraps_at_the_boundary(clients: int) -> None:
    value_bits = 6
    bits = ring_bits_for(value_bits, clients)
    fp = FixedPoint(value_bits=value_bits, ring_bits=bits, clip_range=1.0)
    assert fp.max_clients >= clients
    for sign in (1.0, -1.0):
        encoded = fp.encode(np.full(1, sign), SecureGaussian())
        total = np.zeros(1, dtype=np.uint64)
        for _ in range(clients):
            total = ring.add(total, encoded, bits)
        assert fp.centred(total)[0] == sign * clients * fp.levels
        assert fp.decode_sum(total)[0] == pytest.approx(sign * clients)
    if clients > 1:  # one bit less and the extreme sum wraps (the bound is tight)
        small = FixedPoint(value_bits=value_bits, ring_bits=bits - 1, clip_range=1.0)
        encoded = small.encode(np.ones(1), SecureGaussian())
        total = np.zeros(1, dtype=np.uint64)
        for _ in range(clients):
            total = ring.add(total, encoded, bits - 1)
        wraps = clients * small.levels > (1 << (bits - 2)) - 1
        assert (small.centred(total)[0] != clients * small.levels) == wraps
        assert small.max_clients < clients or not wraps


def test_clients_refuse_a_setup_whose_ring_would_wrap() -> None:
    setup = spb.SecAggSetup(value_bits=16, ring_bits=19, clip_range=1.0, threshold=6,
                            cohort_size=10)  # needs 16 + ceil(log2 10) = 20 bits
    with pytest.raises(ProtocolError, match="wraps"):
        check_setup(setup)
    setup.ring_bits = 20
    check_setup(setup)
    setup.threshold = 1
    with pytest.raises(ProtocolError, match="threshold"):
        check_setup(setup)


def test_harary_graph_is_symmetric_and_regular() -> None:
    ids = [f"c{i}" for i in range(11)]
    graph = neighbours(ids, degree=4)
    assert all(len(g) == 4 and c not in g for c, g in graph.items())
    assert all(c in graph[v] for c, g in graph.items() for v in g)
    complete = neighbours(ids, degree=0)
    assert all(complete[c] == set(ids) - {c} for c in ids)
    with pytest.raises(ValueError, match="even"):
        neighbours(ids, degree=3)
