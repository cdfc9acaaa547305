"""The secure-aggregation protocol in one process: exact sums, dropouts, attacks, uniformity."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from fedcore.pb import secagg_pb2 as spb
from fedcore.secagg import ring
from fedcore.secagg.client_session import ClientSession
from fedcore.secagg.errors import ProtocolError, UnmaskFailed, UnmaskRefused
from fedcore.secagg.fixed_point import FixedPoint, ring_bits_for
from fedcore.secagg.keys import RoundContext
from fedcore.secagg.local_round import PHASES, run_local_round
from fedcore.secagg.server_session import ServerSession
from fedcore.secure_noise import SecureGaussian

VALUE_BITS, LENGTH = 12, 64


def _setup(n: int, *, threshold: int, neighbours: int = 0) -> spb.SecAggSetup:
    bits = ring_bits_for(VALUE_BITS, n)
    # clip range L / 2^6: the scale is 64 exactly, so inputs k / 64 quantize without rounding
    levels = (1 << (VALUE_BITS - 1)) - 1
    return spb.SecAggSetup(value_bits=VALUE_BITS, ring_bits=bits, clip_range=levels / 64,
                           threshold=threshold, cohort_size=n, neighbours=neighbours,
                           vector_length=LENGTH)


def _inputs(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)  # test data only; masks and rounding are cryptographic
    levels = (1 << (VALUE_BITS - 1)) - 1
    return {f"c{i:02d}": rng.integers(-levels, levels + 1, LENGTH) / 64 for i in range(n)}


def _plain_sum(inputs: dict[str, np.ndarray], survivors: frozenset[str],
               setup: spb.SecAggSetup) -> np.ndarray:
    fp = FixedPoint(value_bits=setup.value_bits, ring_bits=setup.ring_bits,
                    clip_range=setup.clip_range)
    total = np.zeros(LENGTH, dtype=np.uint64)
    for c in survivors:
        total = ring.add(total, fp.encode(inputs[c], SecureGaussian()), setup.ring_bits)
    return total


@pytest.mark.parametrize("phase", PHASES)
@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.3])
@pytest.mark.parametrize("degree", [0, 6])
def test_secure_sum_equals_the_plain_sum_of_the_survivors(phase: str, fraction: float,
                                                          degree: int) -> None:
    n = 10
    setup = _setup(n, threshold=4 if degree else 6, neighbours=degree)
    inputs = _inputs(n)
    dropped = sorted(inputs)[: math.ceil(fraction * n)]
    result = run_local_round(inputs, setup, drop_after={c: phase for c in dropped})
    expected = set(inputs) - set(dropped) if phase != "masked" else set(inputs)
    assert result.survivors == expected
    assert np.array_equal(result.total, _plain_sum(inputs, result.survivors, setup))
    fp = FixedPoint(value_bits=VALUE_BITS, ring_bits=setup.ring_bits,
                    clip_range=setup.clip_range)
    assert np.array_equal(fp.decode_sum(result.total),
                          sum(inputs[c] for c in result.survivors))


def test_below_threshold_the_round_fails() -> None:
    n = 6
    setup = _setup(n, threshold=4)
    inputs = _inputs(n)
    with pytest.raises(UnmaskFailed, match="are needed"):
        # 3 of 6 send masked input and then vanish: their seeds have only 3 < 4 shares
        run_local_round(inputs, setup, drop_after={c: "masked" for c in sorted(inputs)[:3]})


def _keys_shared(n: int, setup: spb.SecAggSetup
                 ) -> tuple[ServerSession, dict[str, ClientSession]]:
    ctx = RoundContext("run", 1)
    server = ServerSession(context=ctx, setup=setup, cohort=[f"c{i}" for i in range(n)])
    clients = {c: ClientSession(context=ctx, client_id=c, setup=setup) for c in server.cohort}
    for c, s in clients.items():
        server.add_keys(c, s.advertise())
    server.close_advertise(list(clients))
    for c, s in clients.items():
        server.add_shares(c, s.share_keys(server.key_list_for(c)))
    server.close_share_keys(list(clients))
    return server, clients


def _three_phases(n: int, setup: spb.SecAggSetup
                  ) -> tuple[ServerSession, dict[str, ClientSession]]:
    server, clients = _keys_shared(n, setup)
    for c, s in clients.items():
        s.masked_input(server.delivery_for(c), np.zeros(LENGTH))
    return server, clients


def test_an_honest_client_refuses_to_reveal_both_secrets_of_one_client() -> None:
    """The attack: a curious coordinator claims c1 dropped (asking its mask key) while also
    asking its self-mask seed; with both it could strip every mask from c1's input."""
    server, clients = _three_phases(5, _setup(5, threshold=3))
    for victim_holder in ("c0", "c2"):
        attack = spb.SecAggUnmaskRequest(survivors=["c0", "c1", "c2", "c3", "c4"],
                                         dropped=["c1"])
        with pytest.raises(UnmaskRefused, match="both secrets"):
            clients[victim_holder].unmask(attack)
    # two consistent-looking but different requests: the second is refused too
    first = spb.SecAggUnmaskRequest(survivors=["c0", "c1", "c2", "c3"], dropped=["c4"])
    second = spb.SecAggUnmaskRequest(survivors=["c0", "c2", "c3", "c4"], dropped=["c1"])
    assert clients["c0"].unmask(first) == clients["c0"].unmask(first)  # idempotent retry
    with pytest.raises(UnmaskRefused, match="already answered"):
        clients["c0"].unmask(second)
    with pytest.raises(UnmaskRefused, match="dropped"):
        clients["c2"].unmask(spb.SecAggUnmaskRequest(survivors=["c0", "c1", "c3"],
                                                     dropped=["c2"]))
    with pytest.raises(UnmaskRefused, match="fewer than the threshold"):
        clients["c3"].unmask(spb.SecAggUnmaskRequest(survivors=["c3", "c4"]))


def test_the_server_refuses_replayed_or_misaddressed_messages() -> None:
    setup = _setup(4, threshold=3)
    ctx = RoundContext("run", 1)
    server = ServerSession(context=ctx, setup=setup, cohort=["a", "b", "c", "d"])
    sessions = {c: ClientSession(context=ctx, client_id=c, setup=setup) for c in server.cohort}
    server.add_keys("a", sessions["a"].advertise())
    with pytest.raises(ProtocolError, match="replayed"):
        server.add_keys("b", sessions["a"].advertise())
    with pytest.raises(ProtocolError, match="cohort"):
        server.add_keys("zz", sessions["b"].advertise())
    for c in "bcd":
        server.add_keys(c, sessions[c].advertise())
    server.close_advertise(list("abcd"))
    upload = sessions["a"].share_keys(server.key_list_for("a"))
    with pytest.raises(ProtocolError, match="shares must go to exactly"):
        server.add_shares("b", upload)  # a's shares claimed by b
    with pytest.raises(ProtocolError, match="already shared"):
        sessions["a"].share_keys(server.key_list_for("a"))


def test_a_share_relayed_from_another_round_fails_authentication() -> None:
    setup = _setup(3, threshold=2)
    old, new = RoundContext("run", 1), RoundContext("run", 2)
    peers = {}
    for ctx in (old, new):
        server = ServerSession(context=ctx, setup=setup, cohort=["a", "b", "c"])
        sessions = {c: ClientSession(context=ctx, client_id=c, setup=setup) for c in "abc"}
        for c, s in sessions.items():
            server.add_keys(c, s.advertise())
        server.close_advertise(list("abc"))
        for c, s in sessions.items():
            server.add_shares(c, s.share_keys(server.key_list_for(c)))
        server.close_share_keys(list("abc"))
        peers[ctx.round] = (server, sessions)
    server_new, sessions_new = peers[2]
    delivery = server_new.delivery_for("a")
    # swap in the ciphertext b sent a in round 1: same sender and recipient, other round
    delivery.shares[0].CopyFrom(peers[1][0].delivery_for("a").shares[0])
    with pytest.raises(ProtocolError):
        sessions_new["a"].masked_input(delivery, np.zeros(LENGTH))


def test_one_masked_input_is_indistinguishable_from_uniform() -> None:
    """The coordinator's view of one client's masked input, for a highly structured input
    (all zeros), passes a chi-square test of uniformity over Z_M (in 64 bins) and its
    values are uncorrelated with the input."""
    n, length = 4, 20_000
    setup = _setup(n, threshold=3)
    setup.vector_length = length
    server, clients = _keys_shared(n, setup)
    ramp = np.linspace(-1, 1, length)
    y = clients["c0"].masked_input(server.delivery_for("c0"), ramp)
    m = 1 << setup.ring_bits
    counts = np.bincount((y * 64 // m).astype(np.int64), minlength=64)
    assert stats.chisquare(counts).pvalue > 1e-3
    assert abs(stats.pearsonr(y.astype(np.float64), ramp).statistic) < 0.05
    assert stats.kstest(y.astype(np.float64) / m, "uniform").pvalue > 1e-3


class _FixedMask:
    def __init__(self, mask: dict[str, np.ndarray]) -> None:
        self.mask, self.taken = mask, 0

    def take_correction(self, round: int) -> dict[str, np.ndarray]:
        self.taken += 1
        return self.mask


def test_secure_sum_aggregator_unmasks_validates_and_merges() -> None:
    from fedserver.aggregators.base import Contribution, RejectedContribution, RoundSpec
    from fedserver.aggregators.mean import UnweightedMean
    from fedserver.aggregators.secure_sum import SecureSum

    fp = FixedPoint(value_bits=8, ring_bits=10, clip_range=127 / 4)  # scale 4 exactly
    shapes = {"w": (3,)}
    pads = [ring.expand(bytes([i]) * 32, 3, 10) for i in (1, 2)]
    plain = [np.array([1.0, -2.0, 0.25]), np.array([0.5, 0.5, -3.0])]
    masked = [ring.add(fp.encode(x, SecureGaussian()), p, 10) for x, p in zip(plain, pads)]
    unmasker = _FixedMask({"w": ring.add(pads[0], pads[1], 10)})
    agg = UnweightedMean(value_sum=SecureSum(encoding=fp, unmasker=unmasker))
    state = agg.initialize(shapes)
    acc = agg.begin(state, RoundSpec(1, shapes))
    acc.add(Contribution("a", {"w": masked[0].astype(np.float64)}))
    for bad in (np.array([0.5, 1, 2]), np.array([1024.0, 0, 0]), np.array([-1.0, 0, 0])):
        with pytest.raises(RejectedContribution, match="integers"):
            acc.add(Contribution("x", {"w": bad}))
    other = agg.begin(state, RoundSpec(1, shapes))
    other.add(Contribution("b", {"w": masked[1].astype(np.float64)}))
    acc.merge(other)
    out = agg.finalize(state, acc)
    np.testing.assert_array_equal(out.result["w"], ((plain[0] + plain[1]) / 2).astype(np.float32))
    assert out.measurements["value_sum"]["count"] == 2 and unmasker.taken == 1
    empty = agg.finalize(state, agg.begin(state, RoundSpec(1, shapes)))
    assert empty.result is None and unmasker.taken == 1  # nothing to unmask
