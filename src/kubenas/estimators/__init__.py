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
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# The zero-cost proxies by name (``kubenas.estimators.zero_cost.PROXIES`` computes them).
PROXIES = ("synflow", "grad_norm", "nwot", "params", "macs")


@dataclass(frozen=True)
class Entry:
    """A registered estimator: ``target`` is ``"module:Class"``; ``field`` the config field that selects it
    (None for the default base); ``wraps`` marks a wrapper around the base estimator; ``metrics`` the scalar
    metrics a successful result reports (a wrapper's add to its base's), which an objective or a constraint may
    name. The contract test checks them against real results. ``reads_data``: False for a base that answers
    without the dataset (a table): its task is given ``dataset=None`` and neither loads the data nor imports
    torch for it."""

    target: str
    field: str | None
    wraps: bool = False
    metrics: tuple[str, ...] = ()
    reads_data: bool = True

    def load(self) -> type:
        module, _, name = self.target.partition(":")
        return getattr(importlib.import_module(module), name)


_TRAINED = ("val_acc", "val_loss", "params", "macs", "train_seconds", "latency_ms", "epochs")

ESTIMATORS: dict[str, Entry] = {
    "training": Entry("kubenas.estimators.training:TrainingEstimator", None, metrics=_TRAINED),
    "table": Entry(
        "kubenas.estimators.tabular:TabularEstimator",
        "table",
        metrics=("val_acc", "params", "macs", "train_seconds", "latency_ms", "epochs"),
        reads_data=False,
    ),
    "zero_cost": Entry(
        "kubenas.estimators.zero_cost:ZeroCostEstimator", "proxy", metrics=("zc_score", "params", "macs")
    ),
    "inherit": Entry(
        "kubenas.estimators.inheritance:InheritingEstimator", "inherit", wraps=True, metrics=("epochs_trained",)
    ),
    "early_stop": Entry(
        "kubenas.estimators.learning_curve:EarlyTerminationEstimator",
        "early_stop",
        wraps=True,
        metrics=("epochs_trained", "lc_epochs_saved"),
    ),
}

# What a one-shot search's rows report: the architecture's accuracy with the shared weights.
ONESHOT_METRICS = ("val_acc",)


def reported_metrics(section: Mapping[str, Any]) -> list[str]:
    """The scalar metrics every successful result of the estimators a config section selects reports."""
    names: list[str] = []
    for entry in selected(section):
        names += [m for m in ESTIMATORS[entry].metrics if m not in names]
    return names


def selected(section: Mapping[str, Any]) -> list[str]:
    """The registered estimators a config's ``estimator`` section selects: its base first, then its wrappers."""
    bases = [
        n for n, e in ESTIMATORS.items() if not e.wraps and e.field is not None and section.get(e.field) is not None
    ]
    if len(bases) > 1:
        raise ValueError(f"estimator: set only one of {', '.join(ESTIMATORS[n].field for n in bases)}")
    base = bases or [n for n, e in ESTIMATORS.items() if e.field is None]
    return base + [n for n, e in ESTIMATORS.items() if e.wraps and section.get(e.field) is not None]


def reads_data(section: Mapping[str, Any]) -> bool:
    """Whether the estimators a config section selects look at the dataset (the base decides: a wrapper passes
    the data on to it)."""
    return ESTIMATORS[selected(section)[0]].reads_data


def make_estimator(section: Mapping[str, Any], store: Any = None) -> Any:
    """The estimator a config's ``estimator`` section (as a dict) describes; ``store`` keeps what an estimator
    shares between processes (an inheriting estimator's weights)."""
    estimator = None
    for name in selected(section):
        estimator = ESTIMATORS[name].load().from_config(section, inner=estimator, store=store)
    return estimator


_EXPORTS = {
    "Diverged": "training",
    "TrainingEstimator": "training",
    "count_macs": "training",
    "evaluate": "training",
    "Fidelity": "training",
}

__all__ = [
    "ESTIMATORS",
    "Entry",
    "ONESHOT_METRICS",
    "PROXIES",
    "make_estimator",
    "reads_data",
    "reported_metrics",
    "selected",
    *_EXPORTS,
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'kubenas.estimators' has no attribute {name!r}")
    return getattr(importlib.import_module(f"kubenas.estimators.{_EXPORTS[name]}"), name)
