"""Aggregators: streaming, explicitly stateful folds of client contributions.

See :mod:`fedserver.aggregators.base` for the contract every aggregator and wrapper keeps.
"""

from fedserver.aggregators.base import (
    Aggregator,
    Contribution,
    Output,
    RejectedContribution,
    RoundSpec,
)
from fedserver.aggregators.mean import UnweightedMean, WeightedMean
from fedserver.aggregators.sum import Sum

__all__ = ["Aggregator", "Contribution", "Output", "RejectedContribution", "RoundSpec", "Sum",
           "UnweightedMean", "WeightedMean"]
