"""Performance estimators: how a candidate's quality is measured.

Loaded when first used, so that a process that only reads a config or samples architectures imports no torch.
"""

from __future__ import annotations

import importlib
from typing import Any

# The zero-cost proxies by name (``kubenas.estimators.zero_cost.PROXIES`` computes them).
PROXIES = ("synflow", "grad_norm", "nwot", "params", "macs")

_EXPORTS = {"Diverged": "training", "TrainingEstimator": "training", "count_macs": "training", "evaluate": "training",
            "Fidelity": "training"}

__all__ = ["PROXIES", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'kubenas.estimators' has no attribute {name!r}")
    return getattr(importlib.import_module(f"kubenas.estimators.{_EXPORTS[name]}"), name)
