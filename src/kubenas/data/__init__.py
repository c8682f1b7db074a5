"""Datasets, by name: one line per loader in ``DATASETS``."""

from __future__ import annotations

from typing import Any, Callable

from kubenas.data.base import Dataset, DatasetInfo
from kubenas.registry import check, create
from kubenas.data.builtin import digits_info, load_digits, load_mnist1d, mnist1d_info
from kubenas.data.parquet import load_parquet, parquet_info

DATASETS: dict[str, Callable[..., Dataset]] = {
    "mnist1d": load_mnist1d,
    "digits": load_digits,
    "parquet": load_parquet,
}

# Each loader's check: the same options, checked without loading anything; returns the shape a config check needs.
DATASET_INFO: dict[str, Callable[..., DatasetInfo]] = {
    "mnist1d": mnist1d_info,
    "digits": digits_info,
    "parquet": parquet_info,
}


def dataset_info(name: str, **options: Any) -> DatasetInfo:
    """Check a dataset's name, option names and option values without loading it; its shape where known."""
    check(DATASETS, "dataset", name, options)
    try:
        return DATASET_INFO[name](**options)
    except TypeError as exc:  # a required option is missing
        raise ValueError(f"dataset {name!r}: {exc}") from None


def check_source(name: str, **options: Any) -> None:
    """Check that the data a dataset reads exists where it is read (this machine, or S3: a run's pre-flight, which
    may contact S3); raises ValueError naming the path. Built-in datasets read nothing."""
    if name == "parquet":
        from kubenas.data.parquet import check_readable

        check_readable(options["path"], options.get("name", "parquet"))


def load_dataset(name: str, **options: Any) -> Dataset:
    """Load a registered dataset, e.g. ``load_dataset("mnist1d")`` or ``load_dataset("parquet", path=...)``."""
    return create(DATASETS, "dataset", name, **options)


__all__ = ["DATASETS", "DATASET_INFO", "Dataset", "DatasetInfo", "dataset_info", "check_source", "load_dataset", "load_mnist1d", "load_digits", "load_parquet"]
