"""Schedules: when the model moves, chosen by ``[schedule] mode`` (a registry, no branches).

``sync`` is the round state machine (:class:`fedserver.round_state.RoundStateMachine`):
select a cohort, wait for it, close the round. ``fedbuff`` is buffered asynchronous
aggregation (:class:`fedserver.fedbuff.FedBuffScheduler`). Both keep the
:class:`Scheduler` interface the coordinator drives, so adding a schedule is one module
and one entry here; what a schedule changes in the round program (FedBuff's staleness
weighting) is composed by :mod:`fedserver.presets`.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from fedserver.fedbuff import FedBuffScheduler
from fedserver.round_plan import PhaseKind, RoundPlan
from fedserver.round_state import Assignment, ClosedStep, RoundStateMachine, Shutdown, Step, Wait

if TYPE_CHECKING:
    from fedserver.config import ServerConfig


class Scheduler(Protocol):
    """What the coordinator calls, always under its lock (see :mod:`fedserver.round_state`)."""

    step: Step
    finished: bool

    @property
    def waiting_count(self) -> int: ...
    @property
    def active_count(self) -> int: ...
    def client_waiting(self, client_id: str) -> None: ...
    def client_left(self, client_id: str) -> None: ...
    def poll(self, client_id: str) -> Assignment | Wait | Shutdown: ...
    def check_result(self, client_id: str, task_id: str, *, kind: PhaseKind, round: int,
                     version: int | None, mask_id: str | None, digest: bytes) -> bool: ...
    def record_result(self, client_id: str, digest: bytes) -> None: ...
    def record_failure(self, client_id: str, digest: bytes) -> None: ...
    def task_round(self, client_id: str, task_id: str) -> int: ...
    def folding_round(self, task_round: int) -> int: ...
    def result_reports(self, client_id: str) -> dict[str, float]: ...
    def close_if_due(self) -> ClosedStep | None: ...
    def upcoming(self, closed: ClosedStep) -> tuple[int, int] | None: ...
    def start_next(self, closed: ClosedStep, *, version: int, mask_id: str) -> None: ...
    def next_deadline(self) -> float | None: ...


def _sync(config: ServerConfig, *, population: Callable[[], Collection[str]],
          **common: Any) -> Scheduler:
    return RoundStateMachine(config.round, population=population, **common)


def _fedbuff(config: ServerConfig, *, population: Callable[[], Collection[str]],
             **common: Any) -> Scheduler:
    return FedBuffScheduler(config.round, config.schedule, **common)


SCHEDULES: Mapping[str, Callable[..., Scheduler]] = {"sync": _sync, "fedbuff": _fedbuff}


def build_scheduler(config: ServerConfig, *, run_id: str, first_round: int, version: int,
                    mask_id: str, clock: Callable[[], float], plan: RoundPlan,
                    population: Callable[[], Collection[str]]) -> Scheduler:
    """The scheduler ``schedule.mode`` names, starting at ``first_round`` on ``version``."""
    return SCHEDULES[config.schedule.mode](
        config, run_id=run_id, first_round=first_round, version=version, mask_id=mask_id,
        clock=clock, plan=plan, population=population)
