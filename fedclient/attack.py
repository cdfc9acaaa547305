"""Simulated adversarial client behaviour, for experiments and tests (``[attack]``).

Client-side only: the coordinator is not told who attacks, so a defence is measured against
what it can actually see. Behaviours: ``sign_flip`` (send ``-scale * delta``), ``scale``
(send ``scale * delta``), ``label_flip`` (train on ``y -> num_classes - 1 - y``),
``claim_examples`` (report ``claimed_examples`` instead of the true count). Empty: honest.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from fedclient.config import AttackConfig

Params = dict[str, np.ndarray]


class FlippedLabels(Dataset):
    """``dataset`` with every label ``y`` replaced by ``num_classes - 1 - y``."""

    def __init__(self, dataset: Dataset, *, num_classes: int) -> None:
        self.dataset, self.num_classes = dataset, num_classes

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = self.dataset[i]
        return x, self.num_classes - 1 - torch.as_tensor(y)


def training_data(attack: AttackConfig, dataset: Dataset, *, num_classes: int) -> Dataset:
    return (FlippedLabels(dataset, num_classes=num_classes)
            if attack.behaviour == "label_flip" else dataset)


def poisoned_delta(attack: AttackConfig, delta: Params) -> Params:
    factor = {"sign_flip": -attack.scale, "scale": attack.scale}.get(attack.behaviour)
    if factor is None:
        return delta
    with np.errstate(over="ignore", invalid="ignore"):  # a huge scale overflowing: the test
        return {n: (d * factor).astype(np.float32) for n, d in delta.items()}


def claimed_examples(attack: AttackConfig, num_examples: int) -> int:
    return attack.claimed_examples if attack.behaviour == "claim_examples" else num_examples
