"""Client authentication from gRPC metadata (``x-fedprune-client-id`` + bearer token)."""

from __future__ import annotations

import hmac
from collections.abc import Mapping

from fedserver.config import AuthConfig

CLIENT_ID_KEY = "x-fedprune-client-id"
AUTHORIZATION_KEY = "authorization"


class AuthError(Exception):
    """``unauthenticated`` is False when the credentials are fine but the client is unknown."""

    def __init__(self, message: str, *, unauthenticated: bool = True) -> None:
        super().__init__(message)
        self.unauthenticated = unauthenticated


class Authenticator:
    def __init__(self, config: AuthConfig) -> None:
        self._tokens = dict(config.tokens)
        self._shared = config.shared_token

    def authenticate(self, metadata: Mapping[str, str]) -> str:
        """Return the client id, or raise AuthError."""
        client_id = metadata.get(CLIENT_ID_KEY, "")
        auth = metadata.get(AUTHORIZATION_KEY, "")
        if not client_id or not auth.startswith("Bearer "):
            raise AuthError("missing x-fedprune-client-id or 'authorization: Bearer <token>'")
        if len(client_id) > 128 or not client_id.isprintable():
            raise AuthError("client id must be 1..128 printable characters")
        token = auth[len("Bearer "):]
        expected = self._tokens.get(client_id)
        if expected is not None:
            if hmac.compare_digest(token.encode(), expected.encode()):
                return client_id
            raise AuthError(f"bad token for client {client_id!r}")
        if self._shared:
            if hmac.compare_digest(token.encode(), self._shared.encode()):
                return client_id
            raise AuthError(f"bad token for client {client_id!r}")
        raise AuthError(f"unknown client {client_id!r}", unauthenticated=False)
