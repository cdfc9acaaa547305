"""One client's side of one secure-aggregation round (pure: no RPCs, no threads).

The daemon feeds it the payload of each step task and sends back what it returns:
``advertise()`` -> ``share_keys(key_list)`` -> ``masked_input(delivery, update)`` ->
``unmask(request)`` (messages in ``proto/fedprune/v1/secagg.proto``). Every input is
validated before the session changes; a refused input raises
:class:`~fedcore.secagg.errors.ProtocolError` and the session stays where it was.

Invariants kept for an honest client:
* secrets (the two private keys, the self-mask seed ``b_u``, the shares it holds) never
  leave the session except as encrypted shares or as the shares an unmask request may
  reveal, and never appear in ``repr``;
* it answers one unmask request per round (an identical retry gets the identical answer);
  a request naming a client both as a survivor and as dropped, naming this client as
  dropped, or listing fewer survivors than the threshold is refused (:class:`UnmaskRefused`):
  revealing both ``b_v`` and ``v``'s mask key would unmask ``v``'s input alone.
"""

from __future__ import annotations

import os

import numpy as np
from google.protobuf.message import DecodeError

from fedcore.pb import secagg_pb2 as spb
from fedcore.secagg import keys, ring, shamir
from fedcore.secagg.errors import ProtocolError, UnmaskRefused
from fedcore.secagg.fixed_point import FixedPoint
from fedcore.secure_noise import SecureGaussian

MAX_GROUP = 1 << 16  # share-group size a client accepts


def check_setup(setup: spb.SecAggSetup) -> FixedPoint:
    """The fixed-point encoding a setup asks for; refuses what an honest client cannot do."""
    try:
        encoding = FixedPoint(value_bits=setup.value_bits, ring_bits=setup.ring_bits,
                              clip_range=setup.clip_range)
    except ValueError as exc:
        raise ProtocolError(f"bad setup: {exc}") from None
    if not 2 <= setup.threshold <= setup.cohort_size <= MAX_GROUP:
        raise ProtocolError(f"bad setup: need 2 <= threshold ({setup.threshold}) <= "
                            f"cohort_size ({setup.cohort_size}) <= {MAX_GROUP}")
    if setup.cohort_size > encoding.max_clients:
        raise ProtocolError(f"bad setup: a {setup.ring_bits}-bit ring wraps for more than "
                            f"{encoding.max_clients} clients, cohort is {setup.cohort_size}")
    return encoding


class ClientSession:
    def __init__(self, *, context: keys.RoundContext, client_id: str,
                 setup: spb.SecAggSetup) -> None:
        self.context, self.client_id = context, client_id
        self.encoding = check_setup(setup)
        self.setup = setup
        self._cipher_key = keys.new_private_key()
        self._mask_key = keys.new_private_key()
        self._seed = os.urandom(ring.SEED_BYTES)
        self._group: dict[str, spb.SecAggPeer] = {}
        self._held: dict[str, tuple[int, int]] = {}  # owner -> (mask key share, seed share)
        self._partners: tuple[str, ...] = ()  # U2 members this client masked against
        self._answered: tuple[bytes, spb.SecAggUnmaskResponse] | None = None

    def __repr__(self) -> str:
        return f"ClientSession({self.client_id!r}, round {self.context.round})"

    # -- phase 1: advertise keys -------------------------------------------------------
    def advertise(self) -> spb.SecAggPublicKeys:
        return spb.SecAggPublicKeys(cipher_public_key=keys.public_bytes(self._cipher_key),
                                    mask_public_key=keys.public_bytes(self._mask_key))

    # -- phase 2: share keys -------------------------------------------------------------
    def share_keys(self, key_list: spb.SecAggKeyList) -> spb.SecAggShareUpload:
        group = self._check_key_list(key_list)
        xs = [p.share_index for p in group.values()]
        t = self.setup.threshold
        mask_shares = shamir.split(keys.private_bytes(self._mask_key), threshold=t, xs=xs)
        seed_shares = shamir.split(self._seed, threshold=t, xs=xs)
        upload = spb.SecAggShareUpload()
        for peer_id, peer in group.items():
            x = peer.share_index
            if peer_id == self.client_id:
                continue
            plain = spb.SecAggShare(
                sender=self.client_id, recipient=peer_id, round=self.context.round,
                share_index=x, mask_key_share=shamir.share_to_bytes(mask_shares[x]),
                self_seed_share=shamir.share_to_bytes(seed_shares[x]))
            key = keys.agree(self._cipher_key, peer.cipher_public_key,
                             info=self.context.info("share", self.client_id, peer_id))
            nonce, ct = keys.seal(key, plain.SerializeToString(),
                                  associated_data=self.context.associated_data(
                                      self.client_id, peer_id))
            upload.shares.add(sender=self.client_id, recipient=peer_id, nonce=nonce,
                              ciphertext=ct)
        own = group[self.client_id].share_index
        self._group = group
        self._held = {self.client_id: (mask_shares[own], seed_shares[own])}
        return upload

    def _check_key_list(self, key_list: spb.SecAggKeyList) -> dict[str, spb.SecAggPeer]:
        if self._group:
            raise ProtocolError("keys were already shared in this round")
        group = {p.client_id: p for p in key_list.peers}
        me = group.get(self.client_id)
        mine = self.advertise()
        if me is None or (me.cipher_public_key, me.mask_public_key) != (
                mine.cipher_public_key, mine.mask_public_key):
            raise ProtocolError("the key list does not hold this client's own keys")
        indices = {p.share_index for p in group.values()}
        public = [k for p in group.values() for k in (p.cipher_public_key, p.mask_public_key)]
        if (len(group) != len(key_list.peers) or len(indices) != len(group)
                or 0 in indices or len(set(public)) != len(public)
                or any(len(k) != keys.KEY_BYTES for k in public)):
            raise ProtocolError("key list must hold unique ids, indices >= 1 and distinct "
                                "32-byte keys")
        if key_list.threshold != self.setup.threshold or len(group) < self.setup.threshold:
            raise ProtocolError(f"share group of {len(group)} with threshold "
                                f"{key_list.threshold}; setup said {self.setup.threshold}")
        return group

    # -- phase 3: masked input --------------------------------------------------------------
    def masked_input(self, delivery: spb.SecAggShareDelivery, update: np.ndarray, *,
                     rng: SecureGaussian | None = None) -> np.ndarray:
        """``y_u`` for the float vector ``update`` (kept coordinates, in order)."""
        if not self._group or self._partners:
            raise ProtocolError("masked input is due once, after the keys were shared")
        x = np.asarray(update, dtype=np.float64).ravel()
        if x.size != self.setup.vector_length:
            raise ProtocolError(f"update has {x.size} kept coordinates, the round "
                                f"expects {self.setup.vector_length}")
        held = self._open_delivery(delivery)
        bits, n = self.encoding.ring_bits, x.size
        y = ring.add(self.encoding.encode(x, rng or SecureGaussian()),
                     ring.expand(self._seed, n, bits), bits)
        for peer_id in sorted(held):
            seed = keys.agree(self._mask_key, self._group[peer_id].mask_public_key,
                              info=self.context.info("mask", self.client_id, peer_id))
            stream = ring.expand(seed, n, bits)
            y = ring.add(y, stream, bits) if self.client_id < peer_id else ring.sub(y, stream, bits)
        self._held.update(held)
        self._partners = tuple(sorted(held))
        return y

    def _open_delivery(self, delivery: spb.SecAggShareDelivery) -> dict[str, tuple[int, int]]:
        held: dict[str, tuple[int, int]] = {}
        for enc in delivery.shares:
            peer = self._group.get(enc.sender)
            if peer is None or enc.sender == self.client_id or enc.recipient != self.client_id:
                raise ProtocolError(f"a delivered share from {enc.sender[:64]!r} is not from "
                                    f"this client's share group")
            if enc.sender in held:
                raise ProtocolError(f"two shares from {enc.sender[:64]!r}")
            key = keys.agree(self._cipher_key, peer.cipher_public_key,
                             info=self.context.info("share", self.client_id, enc.sender))
            plain = keys.open_sealed(key, enc.nonce, enc.ciphertext,
                                     associated_data=self.context.associated_data(
                                         enc.sender, self.client_id))
            held[enc.sender] = self._check_share(plain, enc.sender)
        if len(held) + 1 < self.setup.threshold:
            raise ProtocolError(f"only {len(held) + 1} members of the share group shared "
                                f"keys; threshold is {self.setup.threshold}")
        return held

    def _check_share(self, plain: bytes, sender: str) -> tuple[int, int]:
        try:
            share = spb.SecAggShare.FromString(plain)
            values = (shamir.share_from_bytes(share.mask_key_share),
                      shamir.share_from_bytes(share.self_seed_share))
        except (DecodeError, shamir.ShamirError) as exc:
            raise ProtocolError(f"share from {sender[:64]!r} is malformed: {exc}") from None
        own = self._group[self.client_id].share_index
        if (share.sender, share.recipient, share.round, share.share_index) != (
                sender, self.client_id, self.context.round, own):
            raise ProtocolError(f"share from {sender[:64]!r} names another sender, recipient, "
                                f"round or index")
        return values

    # -- phase 4: unmask -----------------------------------------------------------------
    def unmask(self, request: spb.SecAggUnmaskRequest) -> spb.SecAggUnmaskResponse:
        key = request.SerializeToString(deterministic=True)
        if self._answered is not None:
            if self._answered[0] == key:
                return self._answered[1]
            raise UnmaskRefused("this client already answered an unmask request this round")
        if not self._partners and len(self._held) <= 1:
            raise UnmaskRefused("no masked input was sent this round")
        survivors, dropped = list(request.survivors), list(request.dropped)
        if len(set(survivors)) != len(survivors) or len(set(dropped)) != len(dropped):
            raise UnmaskRefused("unmask request lists a client twice")
        both = set(survivors) & set(dropped)
        if both:
            raise UnmaskRefused(f"unmask request asks for both secrets of "
                                f"{sorted(both)[0][:64]!r}: that would reveal its input")
        if self.client_id in dropped or self.client_id not in survivors:
            raise UnmaskRefused("unmask request calls this client dropped; it sent its input")
        if len(survivors) < self.setup.threshold:
            raise UnmaskRefused(f"{len(survivors)} survivors are fewer than the threshold "
                                f"{self.setup.threshold}")
        response = spb.SecAggUnmaskResponse()
        for owner in survivors:
            if owner in self._held:
                response.shares.add(owner=owner, self_seed_share=shamir.share_to_bytes(
                    self._held[owner][1]))
        for owner in dropped:
            if owner in self._held:
                response.shares.add(owner=owner, mask_key_share=shamir.share_to_bytes(
                    self._held[owner][0]))
        self._answered = (key, response)
        return response
