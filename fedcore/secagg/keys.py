"""Key agreement and share encryption: X25519, HKDF-SHA256, ChaCha20-Poly1305 (``cryptography``).

Every client makes two X25519 key pairs per round: a *cipher* pair (to encrypt the shares
it sends to each peer) and a *mask* pair (whose agreement with each peer seeds the pairwise
mask). Two clients derive one 32-byte key per purpose with HKDF over their X25519 shared
secret; the HKDF ``info`` binds the protocol, the purpose, the run, the round and the two
client ids in sorted order, so a key never serves two rounds, two pairs or two purposes.

Shares travel through the coordinator encrypted with ChaCha20-Poly1305 under the pair's
cipher key, with a fresh random 96-bit nonce and associated data naming the run, the round,
the sender and the recipient: a ciphertext replayed from another round, or re-addressed to
another client, or reflected back to its sender, fails authentication.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from fedcore.secagg import PROTOCOL
from fedcore.secagg.errors import ProtocolError

KEY_BYTES = 32
NONCE_BYTES = 12


class KeyAgreementError(ProtocolError):
    """A public key, ciphertext or derived secret is unusable."""


@dataclass(frozen=True)
class RoundContext:
    """What binds every derived key and ciphertext to one round of one run."""

    run_id: str
    round: int

    def info(self, purpose: str, a: str, b: str) -> bytes:
        low, high = sorted((a, b))
        return json.dumps([PROTOCOL, purpose, self.run_id, self.round, low, high]).encode()

    def associated_data(self, sender: str, recipient: str) -> bytes:
        return json.dumps([PROTOCOL, "share", self.run_id, self.round, sender,
                           recipient]).encode()


def new_private_key() -> X25519PrivateKey:
    return X25519PrivateKey.generate()


def public_bytes(key: X25519PrivateKey) -> bytes:
    return key.public_key().public_bytes_raw()


def private_bytes(key: X25519PrivateKey) -> bytes:
    return key.private_bytes_raw()


def private_from_bytes(data: bytes) -> X25519PrivateKey:
    if len(data) != KEY_BYTES:
        raise KeyAgreementError(f"an X25519 private key is {KEY_BYTES} bytes, got {len(data)}")
    return X25519PrivateKey.from_private_bytes(data)


def public_from_bytes(data: bytes) -> X25519PublicKey:
    if len(data) != KEY_BYTES:
        raise KeyAgreementError(f"an X25519 public key is {KEY_BYTES} bytes, got {len(data)}")
    return X25519PublicKey.from_public_bytes(data)


def agree(private: X25519PrivateKey, peer_public: bytes, *, info: bytes) -> bytes:
    """A 32-byte key shared with the owner of ``peer_public`` for the purpose in ``info``.

    An all-zero X25519 output (a low-order peer key) is refused by ``cryptography``."""
    try:
        secret = private.exchange(public_from_bytes(peer_public))
    except ValueError as exc:
        raise KeyAgreementError(f"key agreement failed: {exc}") from None
    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=info).derive(secret)


def seal(key: bytes, plaintext: bytes, *, associated_data: bytes) -> tuple[bytes, bytes]:
    """``(nonce, ciphertext)`` of ``plaintext`` under ``key``."""
    nonce = os.urandom(NONCE_BYTES)
    return nonce, ChaCha20Poly1305(key).encrypt(nonce, plaintext, associated_data)


def open_sealed(key: bytes, nonce: bytes, ciphertext: bytes, *, associated_data: bytes) -> bytes:
    if len(nonce) != NONCE_BYTES:
        raise KeyAgreementError(f"nonce must be {NONCE_BYTES} bytes")
    try:
        return ChaCha20Poly1305(key).decrypt(nonce, ciphertext, associated_data)
    except InvalidTag:
        raise KeyAgreementError("share ciphertext failed authentication (wrong key, round, sender "
                        "or recipient)") from None
