"""Identity limits over real gRPC: the shared-token warning, the new-id cap (Sybil),
failed authentication throttled per peer, and per-client call slots.

Threat model: docs/threat-model.md ("malicious clients", "network attacker").
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import grpc
import pytest

from fedcore.config import ConfigError
from fedcore.pb import coordinator_pb2 as cpb
from fedcore.rejections import AUTH_THROTTLED, REGISTRATION_CAPPED, TOO_MANY_CALLS, rejection_of
from fedserver.client_calls import ClientCallLimit
from fedserver.peer_limits import FailedAuthLimiter, peer_key
from fedserver.registration import NewClientCap
from fedserver.throttling import Throttled
from tests.helpers import RawClient, running_server, server_config


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _refusal(call: object) -> tuple[grpc.StatusCode, str | None, str]:
    with pytest.raises(grpc.RpcError) as info:
        call()  # type: ignore[operator]
    exc = info.value
    return exc.code(), rejection_of(exc.trailing_metadata()), exc.details()


def test_shared_token_is_a_loud_warning_and_own_tokens_are_not(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="fedserver.server"):
        with running_server(server_config(tmp_path / "a")):
            pass
    shared = [r.getMessage() for r in caplog.records if "SHARED TOKEN" in r.getMessage()]
    assert len(shared) == 1 and "NOT authenticated" in shared[0] and "auth.tokens" in shared[0]
    assert "test-token" not in caplog.text  # the warning never quotes the token
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="fedserver.server"):
        with running_server(server_config(tmp_path / "b", "auth.shared_token=",
                                          'auth.tokens={"c1": "own"}')):
            pass
    assert "SHARED TOKEN" not in caplog.text


def test_new_client_ids_are_capped_per_window_in_shared_token_mode(tmp_path: Path) -> None:
    config = server_config(tmp_path / "state", "auth.max_new_clients=3",
                           'auth.tokens={"vip": "vip-token"}', "round.clients_per_round=5",
                           "round.min_clients=5", "round.selection_timeout_s=60")
    with running_server(config) as running:
        clients = {cid: RawClient(running.port, client_id=cid) for cid in ("a", "b", "c", "d")}
        vip = RawClient(running.port, client_id="vip", token="vip-token")
        try:
            for cid in "abc":
                assert clients[cid].round(max_wait_ms=0).kind  # registered (WAIT)
            code, reason, details = _refusal(lambda: clients["d"].round(max_wait_ms=0))
            assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and reason == REGISTRATION_CAPPED
            assert "auth.max_new_clients" in details and "3 per 60 s" in details
            assert clients["a"].round(max_wait_ms=0).kind  # a registered id is never refused
            assert vip.round(max_wait_ms=0).kind  # a per-client token is not a Sybil risk
            code, reason, _ = _refusal(lambda: clients["d"].round(max_wait_ms=0))
            assert reason == REGISTRATION_CAPPED  # the refusal registered nothing
            assert not running.coordinator.is_registered("d")
        finally:
            for c in (*clients.values(), vip):
                c.close()


def test_new_client_cap_window_reopens_and_zero_disables_it() -> None:
    clock = FakeClock()
    cap = NewClientCap(max_new=2, window_s=10, clock=clock)
    cap.admit("x", known=False)
    cap.admit("y", known=False)
    with pytest.raises(Throttled) as info:
        cap.admit("z", known=False)
    assert info.value.retry_after_s == pytest.approx(10)
    cap.admit("x", known=True)
    clock.now = 10.5
    cap.admit("z", known=False)
    unlimited = NewClientCap(max_new=0, window_s=10, clock=clock)
    for i in range(1000):
        unlimited.admit(str(i), known=False)


def test_failed_authentication_is_throttled_per_peer_before_any_token_check(
        tmp_path: Path) -> None:
    config = server_config(tmp_path / "state", "auth.max_failures=3",
                           "auth.failure_window_s=1")
    with running_server(config) as running:
        guesser = RawClient(running.port, client_id="c1", token="guess")
        honest = RawClient(running.port, client_id="c1")  # same address, right token
        try:
            for _ in range(3):
                code, reason, _ = _refusal(lambda: guesser.round(max_wait_ms=0))
                assert code == grpc.StatusCode.UNAUTHENTICATED and reason is None
            started = time.monotonic()
            for who in (guesser, honest):  # refused without looking at the token
                code, reason, details = _refusal(lambda who=who: who.round(max_wait_ms=0))
                assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and reason == AUTH_THROTTLED
                assert "failed authentications" in details
            assert time.monotonic() - started < 1
            time.sleep(1.2)  # the window ends: the peer may try again
            assert honest.round(max_wait_ms=0).kind
        finally:
            guesser.close()
            honest.close()


def test_failed_auth_table_is_bounded_and_keys_peers_without_their_port() -> None:
    clock = FakeClock()
    limiter = FailedAuthLimiter(max_failures=2, window_s=60, max_peers=100, clock=clock)
    for i in range(10_000):
        limiter.record_failure(f"ipv4:10.{i // 65536}.{i // 256 % 256}.{i % 256}")
    assert limiter.tracked_peers == 100
    assert peer_key("ipv4:127.0.0.1:53211") == peer_key("ipv4:127.0.0.1:40000") \
        == "ipv4:127.0.0.1"
    assert peer_key("ipv6:[::1]:5000") == "ipv6:[::1]"
    assert peer_key("ipv4:1.2.3.4:5", {"x509_common_name": [b"client-0"]}) == "cert:client-0"


def test_a_client_id_holds_at_most_its_call_slots(tmp_path: Path) -> None:
    config = server_config(tmp_path / "state", "network.max_calls_per_client=2",
                           "round.clients_per_round=5", "round.min_clients=5",
                           "round.selection_timeout_s=60")
    with running_server(config) as running:
        hog = RawClient(running.port, client_id="hog")
        other = RawClient(running.port, client_id="other")
        try:
            polls = [hog.stub.Round.future(_request(1500),
                                           metadata=hog.metadata, timeout=30) for _ in range(2)]
            time.sleep(0.5)  # both long-polls are in progress
            code, reason, details = _refusal(lambda: hog.round(max_wait_ms=0))
            assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and reason == TOO_MANY_CALLS
            assert "network.max_calls_per_client" in details
            assert other.round(max_wait_ms=0).kind  # other ids are not affected
            for p in polls:
                assert p.result().kind
            assert hog.round(max_wait_ms=0).kind  # slots are returned when calls end
        finally:
            hog.close()
            other.close()


def _request(max_wait_ms: int) -> cpb.RoundRequest:
    return cpb.RoundRequest(max_wait_ms=max_wait_ms, num_examples=10)


def test_call_slots_are_released_on_errors_and_forgotten_at_zero() -> None:
    calls = ClientCallLimit(limit=1)
    with pytest.raises(RuntimeError), calls.hold("c"):
        raise RuntimeError("handler failed")
    assert calls.in_progress("c") == 0
    with calls.hold("c"), pytest.raises(Throttled):
        with calls.hold("c"):
            pass


@pytest.mark.parametrize("override", ["auth.max_new_clients=-1", "auth.new_client_window_s=0",
                                      "auth.max_failures=0", "auth.failure_window_s=inf",
                                      "auth.max_tracked_peers=0",
                                      "network.max_calls_per_client=0"])
def test_limit_keys_are_validated(tmp_path: Path, override: str) -> None:
    with pytest.raises(ConfigError, match=override.split("=")[0].split(".")[1]):
        server_config(tmp_path, override)
