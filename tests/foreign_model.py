"""A model entry point a coordinator may name; importing it leaves a marker file.

``FEDPRUNE_FOREIGN_MARKER`` (set only in client processes started by
tests/test_security_models.py) names the file, so a test can tell whether a client
imported this module.
"""

from __future__ import annotations

import os
from pathlib import Path

from torch import nn

from fedcore.models import build_model

_MARKER = os.environ.get("FEDPRUNE_FOREIGN_MARKER")
if _MARKER:
    Path(_MARKER).write_text(str(os.getpid()))


def build() -> nn.Module:
    return build_model("mlp")
