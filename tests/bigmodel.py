"""A 25M-parameter (100 MB float32) model for the chunked-streaming test (entry point)."""

from torch import nn


def build() -> nn.Module:
    return nn.Sequential(nn.Linear(5000, 5000, bias=False))
