"""The coordinator's side of one secure-aggregation round (pure: no RPCs, no threads).

It relays, checks and finally unmasks; it never sees an unmasked individual input. The
caller (the coordinator's step handler, or an in-process simulation) feeds it each
client's step payload and tells it when a phase closed with which survivors:

1. ``add_keys`` per client, then ``close_advertise(U1)``: fixes the share indices (position
   in sorted U1, from 1) and the neighbour graph; ``key_list_for(u)`` is u's group.
2. ``add_shares`` per client, then ``close_share_keys(U2)``; ``delivery_for(u)`` relays the
   ciphertexts addressed to u by members of U2.
3. Masked inputs are summed elsewhere (the aggregator folds them mod M as they arrive);
   ``close_masked(U3)`` records who contributed; ``unmask_request_for(u)`` asks u for the
   self-seed shares of the survivors and the mask-key shares of the dropped clients in
   its group — never both for one client.
4. ``add_unmask`` per client, then ``correction(length)``: the total mask to subtract,
   ``sum_{u in U3} PRG(b_u)`` plus, for each dropped ``u in U2 - U3``, the pairwise masks
   its surviving neighbours added for it. Needs ``t`` shares of every secret; a
   reconstructed mask key must match the public key ``u`` advertised. Otherwise
   :class:`~fedcore.secagg.errors.UnmaskFailed`, and the round fails.

Every ``add_*`` validates the whole message first (:class:`ProtocolError`); a refused
message changes nothing.
"""

from __future__ import annotations

from collections.abc import Collection

import numpy as np

from fedcore.pb import secagg_pb2 as spb
from fedcore.secagg import keys, ring, shamir
from fedcore.secagg.errors import ProtocolError, UnmaskFailed
from fedcore.secagg.graph import neighbours

MAX_CIPHERTEXT = 1024  # bytes of one encrypted share (ids are at most 128 characters)


class ServerSession:
    def __init__(self, *, context: keys.RoundContext, setup: spb.SecAggSetup,
                 cohort: Collection[str]) -> None:
        self.context, self.setup = context, setup
        self.cohort = frozenset(cohort)
        self._keys: dict[str, spb.SecAggPublicKeys] = {}
        self._groups: dict[str, frozenset[str]] = {}  # u -> N(u) | {u}
        self._index: dict[str, int] = {}
        self._inbox: dict[str, dict[str, spb.SecAggEncryptedShare]] = {}  # recipient -> sender
        self._u2: frozenset[str] = frozenset()
        self._u3: frozenset[str] = frozenset()
        self._revealed: dict[str, dict[str, int]] = {}  # owner -> {x: share}

    # -- phase 1 -------------------------------------------------------------------------
    def add_keys(self, client: str, msg: spb.SecAggPublicKeys) -> None:
        self._member(client, self.cohort)
        pair = (msg.cipher_public_key, msg.mask_public_key)
        if any(len(k) != keys.KEY_BYTES for k in pair) or pair[0] == pair[1]:
            raise ProtocolError("public keys must be two distinct 32-byte X25519 keys")
        seen = {k for m in self._keys.values() for k in (m.cipher_public_key, m.mask_public_key)}
        if seen & set(pair):
            raise ProtocolError("a public key another client advertised was replayed")
        self._keys[client] = msg

    def close_advertise(self, survivors: Collection[str], *,
                        order: list[str] | None = None) -> None:
        u1 = sorted(set(survivors) & set(self._keys))
        self._keys = {c: self._keys[c] for c in u1}
        self._index = {c: i + 1 for i, c in enumerate(u1)}
        graph = neighbours(u1, degree=self.setup.neighbours, order=order)
        self._groups = {c: graph[c] | {c} for c in u1}

    def group(self, client: str) -> frozenset[str]:
        return self._groups[client]

    def key_list_for(self, client: str) -> spb.SecAggKeyList:
        out = spb.SecAggKeyList(threshold=self.setup.threshold)
        for peer in sorted(self._groups[client]):
            k = self._keys[peer]
            out.peers.add(client_id=peer, share_index=self._index[peer],
                          cipher_public_key=k.cipher_public_key,
                          mask_public_key=k.mask_public_key)
        return out

    # -- phase 2 -------------------------------------------------------------------------
    def add_shares(self, client: str, msg: spb.SecAggShareUpload) -> None:
        self._member(client, self._groups)
        wanted = self._groups[client] - {client}
        recipients = [s.recipient for s in msg.shares]
        if sorted(recipients) != sorted(wanted):
            raise ProtocolError(f"shares must go to exactly the {len(wanted)} other members "
                                f"of the sender's group, once each")
        for s in msg.shares:
            if s.sender != client or len(s.nonce) != keys.NONCE_BYTES or not (
                    0 < len(s.ciphertext) <= MAX_CIPHERTEXT):
                raise ProtocolError("each share must name its sender and carry a 12-byte "
                                    f"nonce and at most {MAX_CIPHERTEXT} bytes of ciphertext")
        for s in msg.shares:
            self._inbox.setdefault(s.recipient, {})[client] = s

    def close_share_keys(self, survivors: Collection[str]) -> None:
        self._u2 = frozenset(survivors) & frozenset(self._groups)

    def delivery_for(self, client: str) -> spb.SecAggShareDelivery:
        inbox = self._inbox.get(client, {})
        return spb.SecAggShareDelivery(shares=[inbox[s] for s in sorted(inbox) if s in self._u2])

    def partners(self, client: str) -> frozenset[str]:
        """The members of U2 whose pairwise masks ``client`` added (its group in U2)."""
        return (self._groups[client] & self._u2) - {client}

    # -- phase 3 -------------------------------------------------------------------------
    def close_masked(self, survivors: Collection[str]) -> None:
        self._u3 = frozenset(survivors) & self._u2

    @property
    def survivors(self) -> frozenset[str]:
        return self._u3

    def unmask_request_for(self, client: str) -> spb.SecAggUnmaskRequest:
        group = self._groups[client]
        return spb.SecAggUnmaskRequest(survivors=sorted(group & self._u3),
                                       dropped=sorted((group & self._u2) - self._u3))

    # -- phase 4 -------------------------------------------------------------------------
    def add_unmask(self, client: str, msg: spb.SecAggUnmaskResponse) -> None:
        self._member(client, self._u3)
        request = self.unmask_request_for(client)
        survivors, dropped = set(request.survivors), set(request.dropped)
        owners = [s.owner for s in msg.shares]
        if len(set(owners)) != len(owners):
            raise ProtocolError("a revealed share is listed twice")
        values = {}
        for s in msg.shares:
            kind = s.WhichOneof("share")
            if not ((kind == "self_seed_share" and s.owner in survivors)
                    or (kind == "mask_key_share" and s.owner in dropped)):
                raise ProtocolError(f"share of {s.owner[:64]!r} was not requested of this "
                                    f"client in that form")
            try:
                values[s.owner] = shamir.share_from_bytes(getattr(s, kind))
            except shamir.ShamirError as exc:
                raise ProtocolError(str(exc)) from None
        x = self._index[client]
        for owner, y in values.items():
            self._revealed.setdefault(owner, {})[x] = y

    def correction(self, length: int) -> np.ndarray:
        """The total mask that the sum of the survivors' masked inputs carries."""
        bits, t = self.setup.ring_bits, self.setup.threshold
        total = np.zeros(length, dtype=np.uint64)
        for owner in sorted(self._u3):
            seed = self._reconstruct(owner, t)
            total = ring.add(total, ring.expand(seed, length, bits), bits)
        for owner in sorted(self._u2 - self._u3):
            private = keys.private_from_bytes(self._reconstruct(owner, t))
            if keys.public_bytes(private) != self._keys[owner].mask_public_key:
                raise UnmaskFailed(f"the shares of {owner[:64]!r} reconstruct a mask key "
                                   f"other than the one it advertised")
            for peer in sorted(self.partners(owner) & self._u3):
                seed = keys.agree(private, self._keys[peer].mask_public_key,
                                  info=self.context.info("mask", owner, peer))
                stream = ring.expand(seed, length, bits)
                # peer added +PRG if peer < owner, else -PRG: the correction carries the same
                total = ring.add(total, stream, bits) if peer < owner else ring.sub(total,
                                                                                     stream, bits)
        return total

    def _reconstruct(self, owner: str, threshold: int) -> bytes:
        shares = self._revealed.get(owner, {})
        if len(shares) < threshold:
            raise UnmaskFailed(f"{len(shares)} shares of {owner[:64]!r}'s secret arrived; "
                               f"{threshold} are needed")
        try:
            return shamir.combine(shares, threshold=threshold)
        except shamir.ShamirError as exc:
            raise UnmaskFailed(f"cannot reconstruct {owner[:64]!r}'s secret: {exc}") from None

    @staticmethod
    def _member(client: str, allowed: Collection[str]) -> None:
        if client not in allowed:
            raise ProtocolError(f"client {client[:64]!r} is not in this phase's cohort")
