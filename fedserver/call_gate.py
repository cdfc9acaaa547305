"""What every Coordinator call passes before its request is even parsed.

Why: the cheap checks must come before the expensive ones, and a refused caller must
cost the coordinator as little as possible. Order (the invariant): (1) a peer that failed
authentication too often is refused without its metadata being read
(:mod:`fedserver.peer_limits`); (2) the caller is authenticated — a certificate, a
per-client token or the shared token (:mod:`fedserver.auth`), a failure counting against
the peer; (3) on a check-in, a client id never seen before, vouched for only by the
shared token, must fit the new-id cap (:mod:`fedserver.registration`); (4) the client id
takes one of its few call slots for the rest of the call (:mod:`fedserver.client_calls`).
Only then does the servicer parse the request bytes. Every refusal is an exception the
servicer's status table maps (:mod:`fedserver.status`).

The gate reads ``context.peer()``, ``context.auth_context()`` and
``context.invocation_metadata()`` only, which the synchronous and the asyncio servers
both offer, and never blocks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from fedserver.auth import Authenticator, AuthError
from fedserver.client_calls import ClientCallLimit
from fedserver.config import ServerConfig
from fedserver.peer_limits import FailedAuthLimiter, peer_key
from fedserver.registration import NewClientCap


class CallGate:
    def __init__(self, *, authenticator: Authenticator, failed_auth: FailedAuthLimiter,
                 new_clients: NewClientCap, calls: ClientCallLimit,
                 is_registered: Callable[[str], bool]) -> None:
        self._auth = authenticator
        self._failed_auth = failed_auth
        self._new_clients = new_clients
        self._calls = calls
        self._is_registered = is_registered

    @classmethod
    def from_config(cls, config: ServerConfig, *,
                    is_registered: Callable[[str], bool]) -> CallGate:
        auth = config.auth
        return cls(authenticator=Authenticator(auth),
                   failed_auth=FailedAuthLimiter(max_failures=auth.max_failures,
                                                 window_s=auth.failure_window_s,
                                                 max_peers=auth.max_tracked_peers),
                   new_clients=NewClientCap(max_new=auth.max_new_clients,
                                            window_s=auth.new_client_window_s),
                   calls=ClientCallLimit(limit=config.network.max_calls_per_client),
                   is_registered=is_registered)

    @contextmanager
    def admit(self, context: Any, *, registers: bool = False) -> Iterator[str]:
        """The caller's client id, holding one of its call slots until the block ends.

        ``registers``: this call may register a new client id (a check-in)."""
        auth_context = context.auth_context()
        peer = peer_key(context.peer() or "", auth_context)
        self._failed_auth.check(peer)
        try:
            caller = self._auth.identify(dict(context.invocation_metadata()),
                                         peer=auth_context)
        except AuthError:
            self._failed_auth.record_failure(peer)
            raise
        if registers and caller.shared:
            self._new_clients.admit(caller.client_id,
                                    known=self._is_registered(caller.client_id))
        with self._calls.hold(caller.client_id):
            yield caller.client_id
