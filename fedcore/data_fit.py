"""Does a data set fit a model? Checked once, before any round depends on the answer.

A client whose local data has another feature count than the model (or labels the model
has no output for) would otherwise crash inside its first training step, after it was
selected; a coordinator evaluating on such a test set would crash inside its first round
close. :func:`check_data_fits` runs the model on one example in eval mode, without
gradients, and raises :class:`DataModelMismatch` (one line naming the data, the model and
what differs) when the forward pass fails or the model has fewer outputs than the data has
classes. It works for any model (no assumption about its first layer) and costs one
forward pass.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import Dataset, TensorDataset

from fedcore.text import clip

__all__ = ["DataModelMismatch", "check_data_fits"]


class DataModelMismatch(ValueError):
    """The data's examples or labels do not fit the model's input or output."""


def _max_label(dataset: Dataset, first_label: torch.Tensor) -> int:
    if isinstance(dataset, TensorDataset) and len(dataset.tensors) >= 2:
        return int(dataset.tensors[1].max())
    return int(first_label)


def check_data_fits(model: nn.Module, dataset: Dataset, *, data: str, model_name: str) -> None:
    """Raise :class:`DataModelMismatch` if ``model`` cannot take ``dataset``'s examples or
    has no output for one of its labels; ``data`` and ``model_name`` name them in the
    message. An empty dataset fits trivially (nothing will be fed)."""
    if len(dataset) == 0:  # type: ignore[arg-type]
        return
    x, y = dataset[0]
    x = torch.as_tensor(x)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(x.unsqueeze(0))
    except (RuntimeError, ValueError, IndexError) as exc:
        detail = clip(str(exc).splitlines()[0] if str(exc) else type(exc).__name__, 120)
        raise DataModelMismatch(
            f"{data} has examples of shape {tuple(x.shape)}, which model {model_name!r} "
            f"cannot take ({detail})") from None
    finally:
        model.train(was_training)
    if out.ndim != 2:
        raise DataModelMismatch(f"model {model_name!r} returns outputs of shape "
                                f"{tuple(out.shape)}, expected (batch, classes)")
    top = _max_label(dataset, torch.as_tensor(y))
    if top >= out.shape[1]:
        raise DataModelMismatch(f"{data} has label {top}, but model {model_name!r} has "
                                f"{out.shape[1]} outputs (labels 0..{out.shape[1] - 1})")
