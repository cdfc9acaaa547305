"""In-process federation: the coordinator's round runner driving the clients' own code.

No gRPC, no threads, no processes, but the same bytes: each round the model is encoded by
the coordinator's :class:`fedserver.broadcast.Broadcast` for what each client holds,
obtained by the client's :func:`fedclient.model_source.obtain_model` (inline payload,
held model, seeded initialisation or pull), trained by
:class:`fedclient.local_work.LocalWorker` from the very ``Task`` the coordinator's task
factory builds, encoded by :func:`fedclient.payloads.encode_update`, and decoded and folded
by the shared :class:`fedserver.round_runner.RoundRunner`. By default every client takes part
in every round; with ``sampling_rate`` q the cohort is Poisson-sampled from the population
(below). The centralized baseline (one client holding the union of the training sets) and the
benchmarks that sweep pruning settings run here; only the transport differs from a real
federation, so its accuracy is the federation's (for the same seeds) and its byte counts
are payload bytes (without gRPC framing, which the real federation adds). Failures are
the coordinator's too: a client whose update cannot be encoded (a diverged local model)
drops out of the round, an update the runner refuses is left out, and a round with no
update or whose aggregate the runner refuses is recorded as failed with the model unchanged.

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

from fedclient.config import AttackConfig
from fedclient.local_work import LocalWorker, NonFiniteUpdate
from fedclient.model_source import obtain_model
from fedclient.payloads import HeldState, encode_update
from fedcompression import CodecError
from fedcore.datasets import ClientData
from fedcore.models import build_model
from fedcore.params import get_parameters
from fedserver.aggregators.weighting import reference_examples
from fedserver.broadcast import Broadcast, Held, seeded_init
from fedserver.config import ServerConfig
from fedserver.instructions import RoundInstructions
from fedserver.model_state import ModelState
from fedserver.presets import build_program
from fedserver.round_plan import PhaseKind
from fedserver.round_runner import RoundFailed, RoundRunner
from fedserver.round_state import Assignment
from fedserver.tasks import TaskFactory
from fedserver.transforms.evaluation_step import Evaluator
from fedserver.transforms.privacy_accounting import PrivacyAccounting
from fedserver.updates import InvalidUpdate, PushTicket

RoundFn = Callable[[dict[str, Any]], None]
RUN_ID = "emulation"


@dataclass
class _Client:
    client_id: str
    worker: LocalWorker
    held: HeldState


class Emulation:
    """``config``'s round program over ``clients`` (one ``ClientData`` each), in-process.

    ``sampling_rate`` q (None: everyone, every round) Poisson-samples each round's cohort
    from ``clients``; ``sampling_seed`` makes that draw reproducible (experiments only, see
    the module doc)."""

    def __init__(self, config: ServerConfig, clients: Sequence[ClientData], *,
                 evaluator: Evaluator | None, client_seed: int = 0,
                 sampling_rate: float | None = None, sampling_seed: int | None = None,
                 attacks: Sequence[AttackConfig] | None = None) -> None:
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
        self._broadcast = Broadcast(wire=config.wire, init=seeded_init(config, initial),
                                    inline_bytes=config.network.inline_payload_bytes)
        if attacks is not None and len(attacks) != len(clients):
            raise ValueError(f"attacks: one per client ({len(clients)}), got {len(attacks)}")
        self._clients = [_Client(f"client-{i}", LocalWorker(data, seed=client_seed,
                                                            attack=attacks[i] if attacks else None),
                                 HeldState())
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
        failed: dict[str, str] = {}  # clients whose update could not be encoded or was refused
        for client in cohort:
            task = self._tasks.build(Assignment(
                PhaseKind.TRAIN, f"{RUN_ID}/r{round}/train/{client.client_id}", round,
                model.version, instr.mask_id, time.monotonic() + 3600.0), instr)
            task.MergeFrom(self._broadcast.task_fields(model, instr, _declared(client.held)))
            pulled: list[int] = []
            shapes = client.worker.shapes(task.model_name)
            params, client.held = obtain_model(task, client.held, shapes=shapes,
                                               pull=self._pull_for(model, instr, pulled))
            down = task.model_payload.ByteSize() + sum(pulled)
            masks = client.held.masks if task.mask_id else None
            try:
                outcome = client.worker.train(task, params, masks)
                up = encode_update(task, outcome, masks, client_id=client.client_id,
                                   seed=client.worker.seed).SerializeToString()
            except (NonFiniteUpdate, CodecError) as exc:  # a diverged local model: drops out
                failed[client.client_id] = str(exc)
                continue
            ticket = PushTicket.for_task(instr, client_id=client.client_id,
                                         task_id=task.task_id, round=round,
                                         version=model.version,
                                         num_examples=outcome.num_examples, digest=b"",
                                         started=time.monotonic())
            bytes_up, bytes_down = bytes_up + len(up), bytes_down + down
            try:  # refused as the coordinator refuses a push (e.g. one that would overflow)
                self.runner.add(open_round, client.client_id,
                                self.runner.decode(open_round, ticket, up),
                                claimed_examples=outcome.num_examples, metrics=outcome.metrics)
            except InvalidUpdate as exc:
                failed[client.client_id] = str(exc)
        try:
            candidate = self.runner.close(open_round)
        except RoundFailed as exc:  # as the coordinator: the model and every state unchanged
            candidate, failed["round"] = None, str(exc)
        if candidate is None:
            return {"round": round, "cohort": len(cohort), "failed": True,
                    "failed_clients": sorted(failed), "reason": next(iter(failed.values()), ""),
                    "bytes_up": bytes_up, "bytes_down": bytes_down,
                    "seconds": time.perf_counter() - start}
        self.runner.commit(candidate)
        losses = [m["train_loss"] for m in open_round.client_metrics.values()]
        pruning = candidate.measurements.get("pruning", {})
        return {"round": round, "cohort": len(cohort), "clip_norm": instr.clip_norm,
                "train_mask_id": instr.mask_id,
                "mask_id": candidate.model.mask_id, "sparsity": pruning.get("sparsity", 0.0),
                "kept_fraction": _kept_fraction(candidate.model), **candidate.metrics,
                "train_loss": float(np.mean(losses)), "failed_clients": sorted(failed),
                "bytes_up": bytes_up,
                "bytes_down": bytes_down, "seconds": time.perf_counter() - start}

    def evaluate_clients(self, round: int) -> dict[str, dict[str, float]]:
        """Federated evaluation of the current model by every client (as an EVALUATE task of
        ``round``, received as the client would receive it): each client's metrics, incl.
        its personalized accuracy when configured."""
        open_round = self.runner.open(round, reference_examples=self._reference)
        instr, model = open_round.instructions, self.runner.model
        out = {}
        for client in self._clients:
            task = self._tasks.build(Assignment(
                PhaseKind.EVALUATE, f"{RUN_ID}/r{round}/evaluate/{client.client_id}", round,
                model.version, model.mask_id, time.monotonic() + 3600.0), instr)
            task.MergeFrom(self._broadcast.task_fields(model, instr, _declared(client.held)))
            params, client.held = obtain_model(task, client.held,
                                               shapes=client.worker.shapes(task.model_name),
                                               pull=self._pull_for(model, instr, []))
            out[client.client_id] = client.worker.evaluate(task, params)[1]
        return out

    def _pull_for(self, model: ModelState, instr: RoundInstructions,
                  sizes: list[int]) -> Callable[[HeldState], bytes]:
        """A PullModel by function call; the size of every payload is appended to sizes."""
        def pull(held: HeldState) -> bytes:
            payload = self._broadcast.payload(model, instr, _declared(held))
            sizes.append(len(payload))
            return payload
        return pull

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


def _declared(held: HeldState) -> Held:
    return Held(mask_id=held.mask_id, model_version=held.model_version,
                model_digest=held.model_digest)


def _kept_fraction(model: ModelState) -> float:
    """Fraction of all weights (prunable, excluded and biases) that travel next round."""
    masks = model.masks or {}
    kept = sum(int(np.count_nonzero(masks[n])) if n in masks else p.size
               for n, p in model.params.items())
    return kept / sum(p.size for p in model.params.values())
