"""FedBuff over real processes: a coordinator process, hand-driven clients and a client pool.

A client whose update is two server steps old (``max_staleness = 1``) is refused with
FAILED_PRECONDITION / ``too_stale`` and changes nothing; the coordinator is SIGKILLed
after two server steps, resumes from its last checkpoint (the refused client's task is
unknown to it), and a pool of real daemons finishes the run: every step exactly once.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import grpc
import pytest

from fedclient.config import ClientConfig, PoolConfig
from fedclient.pool import ClientPool
from fedcore.datasets import DataSpec
from fedcore.pb import coordinator_pb2 as cpb
from fedcore.rejections import rejection_of
from tests.helpers import (
    TOKEN,
    RawClient,
    read_json,
    server_config,
    spawn,
    stop,
    update_for,
    wait_for,
    with_port,
    write_config,
    zero_delta,
)

ARGS = ("schedule.mode=fedbuff", "schedule.buffer_size=2", "schedule.max_staleness=1",
        "round.rounds=4", "round.deadline_s=60", "evaluation.test_set=")


def start_server(tmp: Path, port: int = 0):  # type: ignore[no-untyped-def]
    config = with_port(server_config(tmp / "state", *ARGS), port)
    proc = spawn("fedserver", write_config(tmp / "server.toml", config), tmp / "server.log")
    endpoint = wait_for(lambda: read_json(tmp / "state" / "endpoint.json"), 90, "endpoint")
    return proc, int(endpoint["port"])


def one_step(clients: list[RawClient]) -> None:
    """Each client takes a task on the current model and pushes: one full buffer."""
    tasks = [c.round() for c in clients]
    for c, t in zip(clients, tasks):
        assert t.kind == cpb.TASK_KIND_TRAIN, t  # at once: nobody waits for a cohort
        ack = c.push_payload(*update_for(t, zero_delta(c.pull(t))))
        assert ack.accepted and not ack.duplicate


def rounds_in(state: Path) -> list[tuple[int, str, int]]:
    report = read_json(state / "report.json")
    return [(r["round"], r["status"], r["version"]) for r in (report or {}).get("rounds", [])]


def test_fedbuff_refuses_too_stale_updates_and_resumes_after_sigkill(tmp_path: Path) -> None:
    server, port = start_server(tmp_path)
    state = tmp_path / "state"
    slow, a, b = (RawClient(port, name) for name in ("slow", "a", "b"))
    try:
        old = slow.round()
        assert (old.round, old.model_version) == (1, 0)
        header, data = update_for(old, zero_delta(slow.pull(old)))
        one_step([a, b])
        one_step([a, b])
        wait_for(lambda: len(rounds_in(state)) == 2, 30, "two server steps")
        with pytest.raises(grpc.RpcError) as err:
            slow.push_payload(header, data)
        assert err.value.code() is grpc.StatusCode.FAILED_PRECONDITION
        assert rejection_of(err.value.trailing_metadata()) == "too_stale"
        assert "staleness 2 > schedule.max_staleness 1" in err.value.details()
        assert rounds_in(state) == [(1, "completed", 1), (2, "completed", 2)]

        server.send_signal(signal.SIGKILL)
        server.wait(10)
        (state / "endpoint.json").unlink()
        server, _ = start_server(tmp_path, port)
        with pytest.raises(grpc.RpcError) as err:  # a task of the killed process
            slow.push_payload(header, data)
        assert err.value.code() is grpc.StatusCode.NOT_FOUND

        template = ClientConfig(server=f"127.0.0.1:{port}", client_id="pool", token=TOKEN,
                                backoff_initial_s=0.05, backoff_max_s=0.5,
                                data=DataSpec(source="digits", num_partitions=2, alpha=None))
        pool = ClientPool(PoolConfig(client=template, partitions=(0, 1)))
        runner = threading.Thread(target=pool.run)
        runner.start()
        runner.join(120)
        if runner.is_alive():
            pool.stop()
            runner.join(10)
            raise AssertionError("the pool did not finish the run")
        assert server.wait(30) == 0
        log = (tmp_path / "server.log").read_text()
        assert "starting at round 3 (model version 2" in log
        assert rounds_in(state) == [(r, "completed", r) for r in (1, 2, 3, 4)]
        assert sum(d.rounds_done for d in pool.daemons) >= 4  # two buffers of two
    finally:
        for c in (slow, a, b):
            c.close()
        stop([server])
