"""Secure aggregation between real processes, with clients SIGKILLed at every phase.

Five real client daemons (``tests/secagg_client.py``: the real daemon, with a training
step that returns a known update) against an in-process coordinator over loopback gRPC.
Round 1 loses nobody; from round 2 one client dies on receiving ADVERTISE_KEYS, from
round 3 one on SHARE_KEYS (after advertising: its keys are in, its shares never come), from
round 4 one on MASKED_TRAIN (its shares are out: its pairwise masks must be removed through
the survivors' shares of its key), from round 5 one on UNMASK: then only 1 < t = 2 survivor
reveals shares, so that round fails and the model stays as it was. ("From": a client that
a loaded machine made miss a round's cohort dies in the next one.) Every completed round's
secure sum equals, bit for bit, the plain sum of the quantized updates of exactly the
clients the coordinator accepted.
"""

from __future__ import annotations

from pathlib import Path

from fedclient.fault import FaultConfig
from fedserver.aggregators.base import find_key
from tests.helpers import (
    TOKEN,
    free_port,
    running_server,
    server_config,
    stop,
    wait_for,
    with_port,
)
from tests.secagg_client import all_serving, clip_range, plain_sum_digest, spawn_clients

DEATHS = {1: ("advertise_keys", 2), 2: ("share_keys", 3), 3: ("masked_train", 4),
          4: ("unmask", 5)}  # client index -> (phase, round)


def test_secure_sum_is_exact_with_clients_killed_at_each_phase(tmp_path: Path) -> None:
    config = server_config(
        tmp_path / "state", "secagg.enabled=true", "secagg.threshold=2",
        "secagg.value_bits=16", f"secagg.clip_range={clip_range(16)!r}",
        "secagg.step_deadline_s=4", "round.deadline_s=6", "round.selection_timeout_s=1.5",
        "round.rounds=5", "round.clients_per_round=5", "round.min_clients=2",
        "evaluation.test_set=")
    port = free_port()
    ids = [f"c{i}" for i in range(5)]
    # started first: once all are up, round 1 takes all five at once
    procs = spawn_clients(tmp_path, port, ids, token=TOKEN, faults={
        f"c{i}": FaultConfig(die_at=phase, die_from_round=rnd)
        for i, (phase, rnd) in DEATHS.items()})
    try:
        wait_for(lambda: all_serving(tmp_path, ids), 240, "five client daemons up")
        with running_server(with_port(config, port)) as server:
            coordinator = server.coordinator
            wait_for(lambda: coordinator.finished, 120, "five secure rounds")
            records = {r.round: r for r in coordinator.store.rounds()}
    finally:
        stop(procs)
    for i, (phase, _) in DEATHS.items():
        assert procs[i].returncode == -9, f"c{i} should have died by SIGKILL on {phase}"
    died = {}  # round -> phase of the death in it (each client dies once, from its round on)
    for i, (phase, _) in DEATHS.items():
        line = next(x for x in (tmp_path / f"c{i}.log").read_text().splitlines()
                    if "fault injection" in x)
        died[int(line.rsplit("round ", 1)[1])] = phase
    shapes = {n: tuple(a.shape) for n, a in coordinator.model.params.items()}
    ring_bits = 16 + 3  # ceil(log2 5)
    completed = [r for r, rec in records.items() if rec.status == "completed"]
    for rnd in completed:  # exact, whoever survived
        rec = records[rnd]
        assert find_key(rec.measurements, "sum_sha256") == plain_sum_digest(
            sorted(rec.client_metrics), rnd, shapes, ring_bits), f"round {rnd}"
    summary = {r: (rec.status, rec.reason, sorted(rec.client_metrics), died.get(r))
               for r, rec in records.items()}
    # a death after advertising, after sharing keys (pairwise masks removed through the
    # survivors' key shares) and at unmask (a survivor's b share missing) each left a round
    # that still completed, as long as t = 2 others remained
    for phase in ("advertise_keys", "share_keys", "masked_train"):
        assert any(died.get(r) == phase for r in completed), (phase, summary)
    assert coordinator.model.version == len(completed)  # failed rounds changed nothing
    failed = [r for r, rec in records.items() if rec.status == "failed"]
    for rnd in failed:  # only below the threshold t = 2 (a phase's quorum, or at unmask)
        assert "quorum 2" in records[rnd].reason or "unmask" in records[rnd].reason, summary
    # with two clients left, the one dying at unmask leaves 1 < t revealers: that round fails
    assert any(died.get(r) == "unmask" for r in failed), summary
