"""In-process federation: the coordinator's round runner driving the clients' own code.

No gRPC, no threads, no processes, but the same bytes: each round the model is encoded by
:func:`fedserver.downlink.encode_model_payload`, decoded by the client's
:func:`fedclient.payloads.decode_model_payload`, trained by
:class:`fedclient.local_work.LocalWorker` from the very ``Task`` the coordinator's task
factory builds, encoded by :func:`fedclient.payloads.encode_update`, and decoded and folded
by the shared :class:`fedserver.round_runner.RoundRunner`. By default every client takes part
in every round; with ``sampling_rate`` q the cohort is Poisson-sampled from the population
(below). The centralized baseline (one client holding the union of the training sets) and the
benchmarks that sweep pruning settings run here; only the transport differs from a real
federation, so its accuracy is the federation's (for the same seeds) and its byte counts
are payload bytes (without gRPC framing, which the real federation adds).

**Poisson cohorts** (``sampling_rate=q``): each round every client of the population is
included independently with probability q, drawn with :class:`secrets.SystemRandom`; a
``sampling_seed`` switches to a seeded :class:`random.Random` so benchmarks and tests are
reproducible — for experiments only, since a predictable draw is no sampling for privacy.
Because the cohort truly is Poisson-sampled, the privacy accountant of a DP program
(:class:`fedserver.transforms.privacy_accounting.PrivacyAccounting`) is given ``q`` and
claims amplification by sampling; nothing else may do this (the coordinator's cohort is
whoever is waiting, so it keeps q = 1). A round in which nobody is sampled is skipped: the
model is unchanged and nothing is composed, as for an empty round of the coordinator. (The
skip itself reveals an empty draw, an event of probability (1 - q)^P: negligible for
W4's P = 1000, q = 0.1, not for a tiny population.) With DP, set ``dp.expected_clients`` to
q times the population: the fixed denominator of the mean.
"""

from __future__ import annotations

import random
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from fedclient.local_work import LocalWorker
from fedclient.payloads import HeldMask, decode_model_payload, encode_update
from fedcore.datasets import ClientData
from fedcore.models import build_model
from fedcore.params import get_parameters
from fedserver.aggregators.weighting import reference_examples
from fedserver.config import ServerConfig
from fedserver.downlink import encode_model_payload
from fedserver.model_state import ModelState
from fedserver.presets import build_program
from fedserver.round_plan import PhaseKind
from fedserver.round_runner import RoundRunner
from fedserver.round_state import Assignment
from fedserver.tasks import TaskFactory
from fedserver.transforms.evaluation_step import Evaluator
from fedserver.transforms.privacy_accounting import PrivacyAccounting
from fedserver.updates import PushTicket

RoundFn = Callable[[dict[str, Any]], None]
RUN_ID = "emulation"


@dataclass
class _Client:
    client_id: str
    worker: LocalWorker
    held: HeldMask


class Emulation:
    """``config``'s round program over ``clients`` (one ``ClientData`` each), in-process.

    ``sampling_rate`` q (None: everyone, every round) Poisson-samples each round's cohort
    from ``clients``; ``sampling_seed`` makes that draw reproducible (experiments only, see
    the module doc)."""

    def __init__(self, config: ServerConfig, clients: Sequence[ClientData], *,
                 evaluator: Evaluator | None, client_seed: int = 0,
                 sampling_rate: float | None = None, sampling_seed: int | None = None) -> None:
        if not clients:
            raise ValueError("an emulation needs at least one client")
        if sampling_rate is not None and not 0 < sampling_rate <= 1:
            raise ValueError(f"sampling_rate must be in (0, 1], got {sampling_rate!r}")
        if sampling_seed is not None and sampling_rate is None:
            raise ValueError("sampling_seed needs a sampling_rate")
        self.sampling_rate = sampling_rate
        self._sampler: random.Random = (secrets.SystemRandom() if sampling_seed is None
                                        else random.Random(sampling_seed))
        self.config = config
        initial = get_parameters(build_model(config.training.model, seed=config.training.seed))
        self.program = build_program(config, initial=initial, evaluator=evaluator)
        if sampling_rate is not None:  # a truly Poisson-sampled cohort: amplification holds
            for transform in self.program.transforms:
                if isinstance(transform, PrivacyAccounting):
                    transform.accountant.q = float(sampling_rate)
        self.runner = RoundRunner(self.program, model=ModelState(params=initial, version=0))
        self._clients = [_Client(f"client-{i}", LocalWorker(data, seed=client_seed), HeldMask())
                         for i, data in enumerate(clients)]
        self._tasks = TaskFactory(config, run_id=RUN_ID, clock=time.monotonic)
        self._reference = reference_examples(len(d.train) for d in clients)  # type: ignore[arg-type]
        self.stop_reason: str | None = None

    def cohort(self) -> list[_Client]:
        """This round's clients: everyone, or a Poisson sample at ``sampling_rate``."""
        q = self.sampling_rate
        if q is None:
            return list(self._clients)
        return [c for c in self._clients if self._sampler.random() < q]

    def run_round(self, round: int) -> dict[str, Any]:
        start = time.perf_counter()
        cohort = self.cohort()
        if not cohort:  # nobody sampled: skipped, the model and the privacy spent unchanged
            return {"round": round, "cohort": 0, "skipped": True,
                    **self._privacy_metrics(), "seconds": time.perf_counter() - start}
        open_round = self.runner.open(round, reference_examples=self._reference)
        instr, model = open_round.instructions, self.runner.model
        bytes_up = bytes_down = 0
        payloads: dict[bool, bytes] = {}  # the broadcast, encoded once per (with mask?)
        for client in cohort:
            task = self._tasks.build(Assignment(
                PhaseKind.TRAIN, f"{RUN_ID}/r{round}/train/{client.client_id}", round,
                model.version, instr.mask_id, time.monotonic() + 3600.0), instr)
            with_mask = client.held.mask_id != instr.mask_id
            if with_mask not in payloads:
                payloads[with_mask] = encode_model_payload(model, instr, wire=self.config.wire,
                                                           include_mask=with_mask)
            down = payloads[with_mask]
            shapes = client.worker.shapes(task.model_name)
            params, client.held = decode_model_payload(down, task, shapes=shapes,
                                                       held=client.held)
            masks = client.held.masks if task.mask_id else None
            outcome = client.worker.train(task, params, masks)
            up = encode_update(task, outcome, masks, client_id=client.client_id,
                               seed=client.worker.seed).SerializeToString()
            ticket = PushTicket.for_task(instr, client_id=client.client_id,
                                         task_id=task.task_id, round=round,
                                         version=model.version,
                                         num_examples=outcome.num_examples, digest=b"",
                                         started=time.monotonic())
            self.runner.add(open_round, client.client_id, self.runner.decode(open_round, ticket, up),
                            claimed_examples=outcome.num_examples, metrics=outcome.metrics)
            bytes_up, bytes_down = bytes_up + len(up), bytes_down + len(down)
        candidate = self.runner.close(open_round)
        assert candidate is not None  # every cohort client contributed
        self.runner.commit(candidate)
        losses = [m["train_loss"] for m in open_round.client_metrics.values()]
        pruning = candidate.measurements.get("pruning", {})
        return {"round": round, "cohort": len(cohort), "clip_norm": instr.clip_norm,
                "train_mask_id": instr.mask_id,
                "mask_id": candidate.model.mask_id, "sparsity": pruning.get("sparsity", 0.0),
                "kept_fraction": _kept_fraction(candidate.model), **candidate.metrics,
                "train_loss": float(np.mean(losses)), "bytes_up": bytes_up,
                "bytes_down": bytes_down, "seconds": time.perf_counter() - start}

    def run(self, rounds: int, *, on_round: RoundFn | None = None) -> list[dict[str, Any]]:
        """Up to ``rounds`` rounds; stops early when the program refuses a round (budget)."""
        records: list[dict[str, Any]] = []
        for t in range(1, rounds + 1):
            self.stop_reason = self.program.admits(t)
            if self.stop_reason is not None:
                break
            records.append(self.run_round(t))
            if on_round is not None:
                on_round(records[-1])
        return records

    def _privacy_metrics(self) -> dict[str, float]:
        for transform in self.program.transforms:
            if isinstance(transform, PrivacyAccounting):
                return {"epsilon": transform.accountant.epsilon(),
                        "delta": transform.accountant.delta}
        return {}


def _kept_fraction(model: ModelState) -> float:
    """Fraction of all weights (prunable, excluded and biases) that travel next round."""
    masks = model.masks or {}
    kept = sum(int(np.count_nonzero(masks[n])) if n in masks else p.size
               for n, p in model.params.items())
    return kept / sum(p.size for p in model.params.values())
