"""Shared fixtures: free ports, child processes that are always stopped."""

from __future__ import annotations

import os

# Child processes (daemons started by tests) must not inherit a GPU or thread oversubscription.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
