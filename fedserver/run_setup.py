"""Building a run's parts from its configuration before anything is written.

The initial model (``training.model``), the server-side evaluator
(``evaluation.test_set``) and the round program (preset, pruning, privacy) are built
before the coordinator opens its state folder, so a configuration that cannot run (a
model entry point that does not exist, a test set file that is missing or for another
model, a ``pruning.exclude`` name that is no weight of the model) is refused with one
:class:`fedcore.config.ConfigError` line naming the key, and leaves no run recorded with
the bad config.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from fedcore.config import ConfigError
from fedcore.models import build_model
from fedcore.params import get_parameters
from fedserver.config import ServerConfig
from fedserver.presets import build_program
from fedserver.round_program import RoundProgram
from fedserver.transforms.evaluation_step import Evaluator


def initial_parameters(config: ServerConfig) -> dict[str, np.ndarray]:
    """The initial global weights of ``training.model`` (seeded by ``training.seed``)."""
    try:
        model = build_model(config.training.model, seed=config.training.seed)
    except (ValueError, ImportError) as exc:  # unknown name, missing entry point, bad plugin
        raise ConfigError(f"training.model: {exc}") from None
    return get_parameters(model)


def server_evaluator(config: ServerConfig) -> Evaluator | None:
    """The evaluator of ``evaluation.test_set`` (None when it is ""), already checked
    against the model; see :mod:`fedserver.evaluation`."""
    if not config.evaluation.test_set:
        return None
    from fedserver.evaluation import ServerEvaluator

    initial_parameters(config)  # a bad training.model is named as such, not as the test set
    try:
        return ServerEvaluator(model_name=config.training.model,
                               test_set=config.evaluation.test_set,
                               batch_size=config.evaluation.batch_size)
    except (ValueError, ImportError, OSError) as exc:
        raise ConfigError(f"evaluation.test_set: {exc}") from None


def round_program(config: ServerConfig, *, initial: Mapping[str, np.ndarray],
                  evaluator: Evaluator | None) -> RoundProgram:
    """:func:`fedserver.presets.build_program`, its ValueError as a ConfigError (the
    messages name their keys, e.g. ``pruning.exclude names [...]``)."""
    try:
        return build_program(config, initial=initial, evaluator=evaluator)
    except ValueError as exc:
        raise ConfigError(f"cannot build the round program: {exc}") from None
