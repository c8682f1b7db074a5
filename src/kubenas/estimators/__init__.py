"""Performance estimators: how a candidate's quality is measured. One module per estimator, one entry per
estimator in ``ESTIMATORS``.

An entry names the class and the field of the config's ``estimator`` section that selects it. A *base*
estimator answers a candidate (training is the default, when no other base is selected); a *wrapper* wraps
whichever base was chosen (early termination, weight inheritance). Every class builds itself from the section
with ``from_config(section, inner=None, store=None)``. Classes are loaded when first used, so that a process that
only reads a config or samples architectures imports no torch.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Mapping

# The zero-cost proxies by name (``kubenas.estimators.zero_cost.PROXIES`` computes them).
PROXIES = ("synflow", "grad_norm", "nwot", "params", "macs")


@dataclass(frozen=True)
class Entry:
    """A registered estimator: ``target`` is ``"module:Class"``; ``field`` the config field that selects it
    (None for the default base); ``wraps`` marks a wrapper around the base estimator."""

    target: str
    field: str | None
    wraps: bool = False

    def load(self) -> type:
        module, _, name = self.target.partition(":")
        return getattr(importlib.import_module(module), name)


ESTIMATORS: dict[str, Entry] = {
    "training": Entry("kubenas.estimators.training:TrainingEstimator", None),
    "table": Entry("kubenas.estimators.tabular:TabularEstimator", "table"),
    "zero_cost": Entry("kubenas.estimators.zero_cost:ZeroCostEstimator", "proxy"),
    "inherit": Entry("kubenas.estimators.inheritance:InheritingEstimator", "inherit", wraps=True),
    "early_stop": Entry("kubenas.estimators.learning_curve:EarlyTerminationEstimator", "early_stop", wraps=True),
}


def selected(section: Mapping[str, Any]) -> list[str]:
    """The registered estimators a config's ``estimator`` section selects: its base first, then its wrappers."""
    bases = [n for n, e in ESTIMATORS.items() if not e.wraps and e.field is not None and section.get(e.field) is not None]
    if len(bases) > 1:
        raise ValueError(f"estimator: set only one of {', '.join(ESTIMATORS[n].field for n in bases)}")
    base = bases or [n for n, e in ESTIMATORS.items() if e.field is None]
    return base + [n for n, e in ESTIMATORS.items() if e.wraps and section.get(e.field) is not None]


def make_estimator(section: Mapping[str, Any], store: Any = None) -> Any:
    """The estimator a config's ``estimator`` section (as a dict) describes; ``store`` keeps what an estimator
    shares between processes (an inheriting estimator's weights)."""
    estimator = None
    for name in selected(section):
        estimator = ESTIMATORS[name].load().from_config(section, inner=estimator, store=store)
    return estimator


_EXPORTS = {"Diverged": "training", "TrainingEstimator": "training", "count_macs": "training", "evaluate": "training",
            "Fidelity": "training"}

__all__ = ["ESTIMATORS", "Entry", "PROXIES", "make_estimator", "selected", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'kubenas.estimators' has no attribute {name!r}")
    return getattr(importlib.import_module(f"kubenas.estimators.{_EXPORTS[name]}"), name)
