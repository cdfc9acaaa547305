"""The client daemon's task dispatch table and its per-client update-encoder randomness."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from fedclient.config import ClientConfig
from fedclient.daemon import ClientDaemon
from fedclient.local_work import TrainOutcome
from fedclient.payloads import encode_update, encoder_seed
from fedcore.model_codec import Encoding, decode_model
from fedcore.pb import coordinator_pb2 as cpb


class _Sleeps:
    """Stands in for the daemon's stop event: records waits instead of sleeping."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def wait(self, seconds: float) -> bool:
        self.waits.append(seconds)
        return False

    def is_set(self) -> bool:
        return False

    def set(self) -> None:
        pass


@pytest.fixture()
def make_daemon():
    made: list[ClientDaemon] = []

    def make(client_id: str = "c1", seed: int = 0) -> ClientDaemon:
        # The channel is lazy: nothing connects unless a call is made.
        daemon = ClientDaemon(ClientConfig(client_id=client_id, seed=seed), worker=None)  # type: ignore[arg-type]
        daemon._stop = _Sleeps()  # type: ignore[assignment]
        made.append(daemon)
        return daemon

    yield make
    for daemon in made:
        daemon.close()


@pytest.fixture()
def handled(monkeypatch) -> list[tuple[str, str]]:
    calls: list[tuple[str, str]] = []
    monkeypatch.setattr(ClientDaemon, "_train", lambda self, task: calls.append(("train", task.task_id)))
    monkeypatch.setattr(ClientDaemon, "_evaluate",
                        lambda self, task: calls.append(("evaluate", task.task_id)))
    return calls


def test_known_kinds_go_to_their_handlers(make_daemon, handled) -> None:
    daemon = make_daemon()
    daemon._dispatch(cpb.Task(kind=cpb.TASK_KIND_TRAIN, task_id="t1"))
    daemon._dispatch(cpb.Task(kind=cpb.TASK_KIND_EVALUATE, task_id="e1"))
    daemon._dispatch(cpb.Task(kind=cpb.TASK_KIND_WAIT, retry_after_ms=250))
    daemon._dispatch(cpb.Task(kind=cpb.TASK_KIND_WAIT))  # the long poll already waited
    assert handled == [("train", "t1"), ("evaluate", "e1")]
    assert daemon._stop.waits == [0.25]


def test_unknown_kinds_wait_and_are_logged_once_per_kind(make_daemon, handled, caplog) -> None:
    daemon = make_daemon()
    with caplog.at_level(logging.WARNING, logger="fedclient"):
        for task in [cpb.Task(kind=99), cpb.Task(kind=99, retry_after_ms=500),
                     cpb.Task(kind=cpb.TASK_KIND_UNSPECIFIED), cpb.Task(kind=99)]:
            daemon._dispatch(task)
    assert handled == []
    assert daemon._stop.waits == [1.0, 0.5, 1.0, 1.0]
    warned = [r.getMessage() for r in caplog.records if "does not know" in r.getMessage()]
    assert len(warned) == 2 and "kind 99" in warned[0] and "kind 0" in warned[1]


# ------------------------------------------------------------ encoder randomness


def _outcome() -> TrainOutcome:
    rng = np.random.default_rng(0)
    delta = {"w": rng.normal(size=(64, 32)).astype(np.float32),
             "b": rng.normal(size=32).astype(np.float32)}
    return TrainOutcome(delta=delta, scores=None, num_examples=10, metrics={})


def _train_task(task_id: str = "r3-c", round: int = 3) -> cpb.Task:
    return cpb.Task(kind=cpb.TASK_KIND_TRAIN, task_id=task_id, round=round, model_version=3,
                    update_encoding=Encoding("int8").to_proto())


def _encoded(daemon: ClientDaemon, task: cpb.Task, outcome: TrainOutcome) -> bytes:
    return encode_update(task, outcome, None, client_id=daemon.config.client_id,
                         seed=daemon.config.seed).delta.SerializeToString()


def test_clients_with_the_same_seed_draw_their_own_rounding(make_daemon) -> None:
    outcome, task = _outcome(), _train_task()
    a, b = make_daemon("alice", seed=0), make_daemon("bob", seed=0)
    alice, bob = _encoded(a, task, outcome), _encoded(b, task, outcome)
    assert alice != bob
    # ... and both are honest int8 encodings of the same delta
    decoded = [decode_model(encode_update(task, outcome, None, client_id=d.config.client_id,
                                        seed=d.config.seed).delta) for d in (a, b)]
    for params in decoded:
        for name, value in outcome.delta.items():
            step = (value.max() - value.min()) / 255
            assert np.all(np.abs(params[name] - value) <= step * 1.0001)
    assert any(not np.array_equal(decoded[0][n], decoded[1][n]) for n in outcome.delta)


def test_the_same_client_and_task_reproduce_their_bytes(make_daemon) -> None:
    outcome, task = _outcome(), _train_task()
    first = _encoded(make_daemon("alice", seed=0), task, outcome)
    assert _encoded(make_daemon("alice", seed=0), task, outcome) == first  # e.g. after a restart
    assert _encoded(make_daemon("alice", seed=0), _train_task(round=4), outcome) != first
    # another run (another task id) with the same seeds encodes the same bytes
    assert _encoded(make_daemon("alice", seed=0), _train_task("run2/r3-c"), outcome) == first
    assert _encoded(make_daemon("alice", seed=1), task, outcome) != first


def test_encoder_seed_depends_on_every_component() -> None:
    base = dict(client_id="c1", seed=0, round=3, model_version=2)
    seeds = {encoder_seed(**base)}
    for key, value in [("client_id", "c2"), ("seed", 1), ("round", 4), ("model_version", 5)]:
        seeds.add(encoder_seed(**{**base, key: value}))
    assert len(seeds) == 5
    assert all(0 <= s < 1 << 64 for s in seeds)
    # the encoding is unambiguous: shifting characters between fields changes the seed
    assert encoder_seed(client_id="c1", seed=0, round=31, model_version=0) != \
        encoder_seed(client_id="c1", seed=0, round=3, model_version=10)
