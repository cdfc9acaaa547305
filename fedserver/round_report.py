"""Per-round records and the run report (``report.json`` in the state folder).

The time split of a round, all in seconds:
* ``wall``: from the step opening to the end of aggregation, evaluation and checkpoint;
* ``training``: the slowest accepted client's local training time (the critical path);
* ``transfer``: the largest pull + push time among accepted clients;
* ``aggregation``: coordinator time spent decoding, folding, stepping, evaluating, saving;
* ``waiting``: the rest (selection, stragglers, scheduling);
* ``overhead``: ``wall - training``, what the coordinator and the network add per round;
* ``close``: the round close under the coordinator's lock (aggregate, transforms including
  server evaluation, checkpoint write and fsync), during which check-ins and pushes wait;
  the round record and report rewrite that follow are in the coordinator's log line.
Bytes are the serialized sizes of every request and response message, per direction.
``totals.dense_fp32_bytes`` is what a dense float32 FedAvg run of the same rounds would
have moved: one dense float32 model message down and one up per accepted update, and one
down per federated evaluation (control messages, under 0.1% of such a run, left out).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

from fedserver.fairness import with_fairness
from fedserver.round_state import ClosedStep
from fedserver.store import RoundRecord, RunStore

REPORT_NAME = "report.json"
DENSE_MODEL_BYTES = "dense_model_bytes"  # store state: one dense fp32 model message


def dense_model_bytes(params: Mapping[str, Any]) -> int:
    """Serialized size of ``params`` as one dense float32 ``Model`` message."""
    from fedcore.model_codec import Encoding, encode_model

    return encode_model(params, encoding=Encoding("fp32"), version=1).ByteSize()


class RoundTimer:
    """Turns state-machine clock readings into wall-clock records."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock

    def to_unix(self, t: float) -> float:
        return time.time() - (self._clock() - t)

    def round_record(self, closed: ClosedStep, *, succeeded: bool, reason: str, version: int,
                     mask_id: str, accepted: Mapping[str, Mapping[str, float]],
                     opened_at: float, server_seconds: float, close_seconds: float,
                     bytes_up: int, bytes_down: int,
                     metrics: dict[str, float], measurements: dict[str, Any]) -> RoundRecord:
        """``opened_at``: when the round's first phase opened (a plan may have several)."""
        step = closed.step
        now = self._clock()
        wall = now - opened_at
        training = max((m.get("train_seconds", 0.0) for m in accepted.values()), default=0.0)
        transfer = max((m.get("pull_seconds", 0.0) + m.get("push_seconds", 0.0)
                        for m in accepted.values()), default=0.0)
        timings = {
            "wall": wall, "training": training, "transfer": transfer,
            "aggregation": server_seconds,
            "waiting": max(0.0, wall - training - transfer - server_seconds),
            "selection": (step.selected_at or now) - step.opened_at,
            "close": close_seconds,
            "overhead": wall - training,
        }
        losses = [m["train_loss"] for m in accepted.values() if "train_loss" in m]
        if losses:
            metrics = {**metrics, "train_loss": sum(losses) / len(losses)}
        return RoundRecord(
            round=step.round, status="completed" if succeeded else "failed",
            reason=reason, version=version, mask_id=mask_id,
            started=self.to_unix(opened_at), closed=self.to_unix(now),
            selected=len(step.selected), accepted=len(accepted), bytes_up=bytes_up,
            bytes_down=bytes_down, timings=timings, metrics=metrics, clients=sorted(accepted),
            client_metrics={c: dict(m) for c, m in accepted.items()},
            measurements=_json_ready(measurements))


def _json_ready(tree: Any) -> Any:
    """Measurements as JSON values (numpy scalars become floats, arrays are dropped)."""
    if isinstance(tree, Mapping):
        return {str(k): _json_ready(v) for k, v in tree.items() if not hasattr(v, "shape")
                or getattr(v, "shape", None) == ()}
    if isinstance(tree, (list, tuple)):
        return [_json_ready(v) for v in tree]
    if hasattr(tree, "item"):
        return tree.item()
    return tree


def build_report(store: RunStore, *, finished: bool) -> dict[str, Any]:
    info = store.run_info()
    rounds = [asdict(r) for r in store.rounds()]
    completed = [r for r in rounds if r["status"] == "completed"]
    evaluated = [r for r in completed if "accuracy" in r["metrics"]]
    report = {
        "format": "fedprune.report/v1",
        "run_id": info[0] if info else "",
        "created": info[1] if info else 0.0,
        "config": info[2] if info else {},
        "finished": finished,
        "finish_reason": store.get_state("finish_reason", ""),
        "rounds": rounds,
        "totals": {
            "rounds_completed": len(completed),
            "rounds_failed": len(rounds) - len(completed),
            "bytes_up": sum(r["bytes_up"] for r in rounds),
            "bytes_down": sum(r["bytes_down"] for r in rounds),
            "wall_seconds": (rounds[-1]["closed"] - rounds[0]["started"]) if rounds else 0.0,
            "final_accuracy": evaluated[-1]["metrics"]["accuracy"] if evaluated else None,
            "dense_fp32_bytes": int(store.get_state(DENSE_MODEL_BYTES, 0)) * sum(
                2 * r["accepted"] + int(r["metrics"].get("federated_eval_clients", 0))
                for r in rounds),
        },
    }
    return with_fairness(report)


def write_report(state_dir: Path, store: RunStore, *, finished: bool) -> Path:
    """Write report.json atomically so a reader never sees a partial file."""
    path = state_dir / REPORT_NAME
    fd, tmp = tempfile.mkstemp(dir=state_dir, prefix=REPORT_NAME, suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        json.dump(build_report(store, finished=finished), fh, indent=1)
    os.replace(tmp, path)
    return path
