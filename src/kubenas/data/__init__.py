"""Datasets, by name: one line per loader in ``DATASETS``."""

from __future__ import annotations

import inspect
from typing import Any, Callable

from kubenas.data.base import Dataset
from kubenas.data.builtin import load_digits, load_mnist1d
from kubenas.data.parquet import load_parquet

DATASETS: dict[str, Callable[..., Dataset]] = {
    "mnist1d": load_mnist1d,
    "digits": load_digits,
    "parquet": load_parquet,
}


def load_dataset(name: str, **options: Any) -> Dataset:
    """Load a registered dataset, e.g. ``load_dataset("mnist1d")`` or ``load_dataset("parquet", path=...)``."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; registered: {', '.join(DATASETS)}")
    loader = DATASETS[name]
    accepted = list(inspect.signature(loader).parameters)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValueError(f"dataset {name!r}: unknown option(s) {unknown}; accepted: {', '.join(accepted)}")
    return loader(**options)


__all__ = ["DATASETS", "Dataset", "load_dataset", "load_mnist1d", "load_digits", "load_parquet"]
