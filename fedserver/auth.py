"""Who is calling: a verified client certificate (mTLS), else metadata and a bearer token.

Why: with a shared token any holder can claim any id, so a certificate's name is the
stronger identity and must win. Invariants: a call whose TLS peer presented a verified
certificate is that certificate's client (subject CN, else first SAN); a metadata
``x-fedprune-client-id`` naming anyone else is refused, never obeyed. Tokens are held
only as SHA-256 digests (:mod:`fedcore.secrets`) and compared in constant time; error
messages never contain a token.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from fedcore.secrets import digest, matches
from fedserver.config import AuthConfig

CLIENT_ID_KEY = "x-fedprune-client-id"
AUTHORIZATION_KEY = "authorization"
PeerAuth = Mapping[str, Sequence[bytes]]  # grpc's ServicerContext.auth_context()


class AuthError(Exception):
    """``unauthenticated`` is False when the credentials are fine but the client is unknown."""

    def __init__(self, message: str, *, unauthenticated: bool = True) -> None:
        super().__init__(message)
        self.unauthenticated = unauthenticated


def certificate_identity(peer: PeerAuth) -> str:
    """The client name of a verified peer certificate ("" when the peer presented none).

    grpc fills ``x509_common_name`` / ``x509_subject_alternative_name`` only for a
    certificate that verified against the server's ``client_ca``."""
    for key in ("x509_common_name", "x509_subject_alternative_name"):
        values = peer.get(key) or ()
        if values:
            return values[0].decode("utf-8", "replace")
    return ""


@dataclass(frozen=True)
class Caller:
    """An authenticated caller; ``shared`` when only the shared token vouches for its id
    (any holder of that token could have claimed it)."""

    client_id: str
    shared: bool = False


class Authenticator:
    def __init__(self, config: AuthConfig) -> None:
        self._tokens = {cid: digest(tok) for cid, tok in config.tokens.items()}
        self._shared = digest(config.shared_token) if config.shared_token else ""

    def authenticate(self, metadata: Mapping[str, str], *, peer: PeerAuth | None = None) -> str:
        """Return the client id, or raise AuthError."""
        return self.identify(metadata, peer=peer).client_id

    def identify(self, metadata: Mapping[str, str], *, peer: PeerAuth | None = None) -> Caller:
        """Return the caller, or raise AuthError."""
        claimed = metadata.get(CLIENT_ID_KEY, "")
        certified = certificate_identity(peer or {})
        if certified:
            if claimed and claimed != certified:
                raise AuthError(f"client id in metadata does not match the client certificate "
                                f"({certified!r})")
            return Caller(certified)
        auth = metadata.get(AUTHORIZATION_KEY, "")
        if not claimed or not auth.startswith("Bearer "):
            raise AuthError("missing x-fedprune-client-id or 'authorization: Bearer <token>'")
        if len(claimed) > 128 or not claimed.isprintable():
            raise AuthError("client id must be 1..128 printable characters")
        token = auth[len("Bearer "):]
        own = self._tokens.get(claimed)
        expected = own or self._shared
        if not expected:
            raise AuthError(f"unknown client {claimed!r}", unauthenticated=False)
        if matches(token, expected):
            return Caller(claimed, shared=not own)
        raise AuthError(f"bad token for client {claimed!r}")
