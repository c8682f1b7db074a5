"""Datasets from Parquet: the way data larger than the built-ins reaches kubenas.

The features are either a ``fixed_shape_tensor`` column (pyarrow's canonical tensor extension type) or a
list column plus a declared ``shape``. Splits are explicit: either one table with a split column holding
``train``, ``val`` (or ``validation``) and ``test``, or one path per split.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from kubenas.core import is_int
from kubenas.data.base import Dataset, DatasetInfo, tensors
from kubenas.data.options import ImageOptions, image_loader
from kubenas.data.s3 import check_path, s3_filesystem

if TYPE_CHECKING:
    import pyarrow as pa  # imported where used: reading a config or sampling never loads pyarrow

_SPLIT_ALIASES = {"train": "train", "val": "val", "validation": "val", "valid": "val", "test": "test"}


@image_loader
def load_parquet(
    path: str | Mapping[str, str],
    label_column: str = "label",
    feature_column: str = "x",
    shape: Sequence[int] | None = None,
    split_column: str = "split",
    num_classes: int | None = None,
    name: str = "parquet",
    image_column: str | None = None,
    **options,
) -> Dataset:
    """Load a classification dataset from a Parquet file or directory, local or ``s3://``.

    With ``image_column``, the rows hold encoded images (:mod:`kubenas.data.parquet_images`) and the image
    options apply (:class:`kubenas.data.options.ImageOptions`); ``feature_column`` and ``shape`` do not.

    Args:
        path: a file or directory holding all splits (with ``split_column``), or ``{"train": ..., "val": ...,
            "test": ...}`` with one file or directory per split. ``test`` may be left out.
        label_column: integer class labels.
        feature_column: a ``fixed_shape_tensor`` column, or a list column read with ``shape``.
        shape: the per-row feature shape without the batch dim, e.g. ``[1, 40]``; required for list columns.
        num_classes: defaults to the largest label + 1.
    """
    import pyarrow as pa

    parquet_info(path, label_column, feature_column, shape, split_column, num_classes, name, image_column, **options)
    if image_column is not None:
        from kubenas.data.parquet_images import load_image_parquet

        opts = ImageOptions.parse(name, options)
        return load_image_parquet(path, image_column, label_column, split_column, num_classes, name, opts)
    if isinstance(path, Mapping):
        unknown = set(path) - set(_SPLIT_ALIASES)
        if unknown:
            raise ValueError(f"dataset {name!r}: unknown split name(s) {sorted(unknown)}; use train, val and test")
        splits = {_SPLIT_ALIASES[k]: _read(p, name) for k, p in path.items()}
    else:
        table = _read(path, name)
        if split_column not in table.column_names:
            raise ValueError(
                f"dataset {name!r}: no split column {split_column!r} in {path} (columns: "
                f"{', '.join(table.column_names)}); add one or pass one path per split"
            )
        values = table.column(split_column).to_pylist()
        bad = sorted({str(v) for v in values} - set(_SPLIT_ALIASES))
        if bad:
            raise ValueError(f"dataset {name!r}: column {split_column!r} has value(s) {bad}; expected train, val, test")
        canon = np.array([_SPLIT_ALIASES[str(v)] for v in values])
        splits = {s: table.filter(pa.array(canon == s)) for s in ("train", "val", "test") if (canon == s).any()}
    missing = [s for s in ("train", "val") if s not in splits]
    if missing:
        raise ValueError(
            f"dataset {name!r}: split(s) {missing} are missing; train and val are required, test is "
            f"needed for the final export"
        )

    arrays = {
        s: (_features(t, feature_column, shape, name, s), _labels(t, label_column, name, s)) for s, t in splits.items()
    }
    if num_classes is None:
        num_classes = int(max(y.max() for _, y in arrays.values())) + 1
    test = tensors(*arrays["test"]) if "test" in arrays else (None, None)
    return Dataset(
        name,
        *tensors(*arrays["train"]),
        *tensors(*arrays["val"]),
        num_classes=num_classes,
        x_test=test[0],
        y_test=test[1],
    )


@image_loader
def parquet_info(
    path: str | Mapping[str, str],
    label_column: str = "label",
    feature_column: str = "x",
    shape: Sequence[int] | None = None,
    split_column: str = "split",
    num_classes: int | None = None,
    name: str = "parquet",
    image_column: str | None = None,
    **options,
) -> DatasetInfo:
    """Check the options without reading data: ``s3://`` paths name a valid bucket and a key,
    columns are names, ``shape`` and ``num_classes`` are positive. That the paths exist is checked where the data
    is read, by a run's pre-flight (:func:`kubenas.data.s3.check_sources`)."""
    for field, value in (
        ("label_column", label_column),
        ("feature_column", feature_column),
        ("split_column", split_column),
        ("name", name),
    ):
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"dataset {name!r}: {field} must be a non-empty string, got {value!r}")
    if isinstance(path, Mapping):
        unknown = set(path) - set(_SPLIT_ALIASES)
        if unknown:
            raise ValueError(
                f"dataset {name!r}: unknown split name(s) {sorted(unknown)} in path; use train, val and test"
            )
        paths = list(path.values())
    elif isinstance(path, str):
        paths = [path]
    else:
        raise ValueError(f"dataset {name!r}: path must be a string or a mapping of split to path, got {path!r}")
    for p in paths:
        check_path(p, name)
    if shape is not None and (
        not isinstance(shape, (list, tuple)) or not shape or not all(is_int(d) and d > 0 for d in shape)
    ):
        raise ValueError(f"dataset {name!r}: shape must be a list of positive integers such as [1, 40], got {shape!r}")
    if num_classes is not None and (not is_int(num_classes) or num_classes < 2):
        raise ValueError(f"dataset {name!r}: num_classes must be an integer >= 2, got {num_classes!r}")
    if image_column is not None:
        if not isinstance(image_column, str) or not image_column.strip():
            raise ValueError(f"dataset {name!r}: image_column must be a non-empty string, got {image_column!r}")
        if shape is not None:
            raise ValueError(f"dataset {name!r}: shape applies to feature columns; images take resize: N instead")
        return DatasetInfo(ImageOptions.parse(name, options).shape(), num_classes, tuple(paths))
    if options:
        raise ValueError(
            f"dataset {name!r}: option(s) {sorted(options)} apply to images; set image_column to read an image column"
        )
    return DatasetInfo(tuple(shape) if shape is not None else None, num_classes, tuple(paths))


def _read(path: str, name: str) -> pa.Table:
    import pyarrow as pa
    import pyarrow.dataset as pads

    try:
        if path.startswith("s3://"):
            return pads.dataset(path[len("s3://") :], format="parquet", filesystem=s3_filesystem()).to_table()
        return pads.dataset(path, format="parquet").to_table()
    except (FileNotFoundError, pa.ArrowInvalid, OSError) as exc:
        raise ValueError(f"dataset {name!r}: cannot read Parquet at {path!r}: {exc}") from exc


def _features(table: pa.Table, column: str, shape: Sequence[int] | None, name: str, split: str) -> np.ndarray:
    import pyarrow as pa
    import pyarrow.compute as pc

    if column not in table.column_names:
        raise ValueError(
            f"dataset {name!r}: no feature column {column!r} in split {split!r} "
            f"(columns: {', '.join(table.column_names)})"
        )
    col = table.column(column).combine_chunks()
    if isinstance(col.type, pa.FixedShapeTensorType):
        array = col.to_numpy_ndarray()
        if shape is not None and tuple(array.shape[1:]) != tuple(shape):
            raise ValueError(
                f"dataset {name!r}: column {column!r} holds tensors of shape {array.shape[1:]}, "
                f"but shape={list(shape)} was declared"
            )
        return array.astype(np.float32)
    if pa.types.is_list(col.type) or pa.types.is_large_list(col.type) or pa.types.is_fixed_size_list(col.type):
        if shape is None:
            raise ValueError(
                f"dataset {name!r}: column {column!r} is a list column; declare the per-row shape, e.g. shape=[1, 40]"
            )
        per_row = int(np.prod(shape))
        lengths = pc.list_value_length(col).to_numpy(zero_copy_only=False)
        if (lengths != per_row).any():
            row = int(np.flatnonzero(lengths != per_row)[0])
            raise ValueError(
                f"dataset {name!r}: row {row} of {column!r} in split {split!r} has {lengths[row]} values; "
                f"shape {list(shape)} needs {per_row}"
            )
        flat = col.flatten().to_numpy(zero_copy_only=False).astype(np.float32)
        return flat.reshape((len(col), *shape))
    raise ValueError(f"dataset {name!r}: column {column!r} has type {col.type}; expected fixed_shape_tensor or a list")


def _labels(table: pa.Table, column: str, name: str, split: str) -> np.ndarray:
    import pyarrow as pa

    if column not in table.column_names:
        raise ValueError(
            f"dataset {name!r}: no label column {column!r} in split {split!r} "
            f"(columns: {', '.join(table.column_names)})"
        )
    col = table.column(column)
    if not pa.types.is_integer(col.type):
        raise ValueError(f"dataset {name!r}: label column {column!r} has type {col.type}; expected integers")
    if col.null_count:
        raise ValueError(f"dataset {name!r}: label column {column!r} in split {split!r} has {col.null_count} nulls")
    return col.to_numpy().astype(np.int64)
