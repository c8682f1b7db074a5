"""Datasets, by name: one module per kind of dataset, one line per dataset in ``DATASETS``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubenas.data.base import Dataset, DatasetInfo
from kubenas.data.builtin import digits_info, load_digits, load_mnist1d, mnist1d_info
from kubenas.data.cifar import cifar10_info, cifar100_info, load_cifar10, load_cifar100
from kubenas.data.imagefolder import imagefolder_info, load_imagefolder
from kubenas.data.parquet import load_parquet, parquet_info
from kubenas.data.s3 import check_sources
from kubenas.data.shapes import load_shapes, shapes_info
from kubenas.data.webdataset import load_webdataset, webdataset_info
from kubenas.registry import check


@dataclass(frozen=True)
class Loader:
    """A registered dataset: ``load(**options)`` builds it; ``info(**options)`` checks the same options without
    loading anything and returns its shape and the paths or ``s3://`` URIs it reads."""

    load: Callable[..., Dataset]
    info: Callable[..., DatasetInfo]


DATASETS: dict[str, Loader] = {
    "mnist1d": Loader(load_mnist1d, mnist1d_info),
    "digits": Loader(load_digits, digits_info),
    "parquet": Loader(load_parquet, parquet_info),
    "shapes": Loader(load_shapes, shapes_info),
    "imagefolder": Loader(load_imagefolder, imagefolder_info),
    "webdataset": Loader(load_webdataset, webdataset_info),
    "cifar10": Loader(load_cifar10, cifar10_info),
    "cifar100": Loader(load_cifar100, cifar100_info),
}


def _loader(name: str, options: dict[str, Any]) -> Loader:
    check({n: loader.load for n, loader in DATASETS.items()}, "dataset", name, options)
    return DATASETS[name]


def dataset_info(name: str, **options: Any) -> DatasetInfo:
    """Check a dataset's name, option names and option values without loading it; its shape where known."""
    try:
        return _loader(name, options).info(**options)
    except TypeError as exc:  # a required option is missing
        raise ValueError(f"dataset {name!r}: {exc}") from None


def check_source(name: str, **options: Any) -> None:
    """Check that the data a dataset reads exists where it is read (this machine, or S3: a run's pre-flight, which
    may contact S3); raises ValueError naming the path. Generated datasets read nothing."""
    check_sources(dataset_info(name, **options).sources, options.get("name", name))


def load_dataset(name: str, **options: Any) -> Dataset:
    """Load a registered dataset, e.g. ``load_dataset("mnist1d")`` or ``load_dataset("parquet", path=...)``."""
    return _loader(name, options).load(**options)


__all__ = [
    "DATASETS",
    "Dataset",
    "DatasetInfo",
    "Loader",
    "check_source",
    "dataset_info",
    "load_dataset",
    "load_digits",
    "load_mnist1d",
    "load_parquet",
]
