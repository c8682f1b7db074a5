"""Datasets, by name: one line per loader in ``DATASETS``."""

from __future__ import annotations

from typing import Any, Callable

from kubenas.data.base import Dataset
from kubenas.registry import create
from kubenas.data.builtin import load_digits, load_mnist1d
from kubenas.data.parquet import load_parquet

DATASETS: dict[str, Callable[..., Dataset]] = {
    "mnist1d": load_mnist1d,
    "digits": load_digits,
    "parquet": load_parquet,
}


def load_dataset(name: str, **options: Any) -> Dataset:
    """Load a registered dataset, e.g. ``load_dataset("mnist1d")`` or ``load_dataset("parquet", path=...)``."""
    return create(DATASETS, "dataset", name, **options)


__all__ = ["DATASETS", "Dataset", "load_dataset", "load_mnist1d", "load_digits", "load_parquet"]
