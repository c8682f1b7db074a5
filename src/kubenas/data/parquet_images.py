"""Parquet with an image column, as Hugging Face ``datasets`` writes it: a struct of ``bytes`` and ``path``, or
plain binary, holding PNG or JPEG files; integer labels; class names from the file's ``ClassLabel`` metadata when
present. Splits come from a split column, from one path per split, or from file names (``train-*.parquet``,
``validation-*``, ``test-*``, the layout ``datasets`` uploads); with none of them every row is train."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from functools import partial

import pyarrow as pa
import pyarrow.parquet as pq
from pyarrow import fs

from kubenas.data.images import Item, Shard, Source
from kubenas.data.imageset import image_dataset
from kubenas.data.options import ImageOptions
from kubenas.data.s3 import filesystem, stamp

SPLITS = {"train": "train", "val": "val", "validation": "val", "valid": "val", "test": "test"}


def load_image_parquet(
    path: str | Mapping[str, str],
    image_column: str,
    label_column: str,
    split_column: str,
    num_classes: int | None,
    name: str,
    opts: ImageOptions,
):
    targets = {SPLITS[k]: v for k, v in path.items()} if isinstance(path, Mapping) else {None: path}
    splits: dict[str, list[Shard]] = {}
    classes = None
    for split, target in targets.items():
        for filesys, f, shown in _files(target, name):
            try:
                meta = pq.ParquetFile(f.path, filesystem=filesys)
                schema = meta.schema_arrow
            except (OSError, pa.ArrowInvalid) as exc:
                raise ValueError(f"dataset {name!r}: cannot read Parquet at {shown!r}: {exc}") from None
            _check_columns(schema, shown, image_column, label_column, name)
            classes = classes or _class_names(schema, label_column)
            if split is not None:
                parts = {split: meta.metadata.num_rows}
            elif split_column in schema.names:
                values = pq.read_table(f.path, columns=[split_column], filesystem=filesys).column(0).to_pylist()
                parts = Counter(SPLITS.get(str(v)) or _bad_split(name, shown, v) for v in values)
            else:
                by_name = SPLITS.get(f.base_name.split("-")[0].split("_")[0].split(".")[0]) or "train"
                parts = {by_name: meta.metadata.num_rows}
            columns = (
                image_column,
                label_column,
                split_column if split is None and split_column in schema.names else None,
            )
            for part, count in parts.items():
                rows = partial(_rows, filesys, f.path, shown, columns, part if columns[2] else None, name)
                splits.setdefault(part, []).append(Shard(f"{shown} ({part})", stamp(f), f.size or 0, rows, count))
    if classes is None and num_classes is not None:
        classes = [str(i) for i in range(num_classes)]
    return image_dataset(name, Source(splits, classes), opts)


def _files(target: str, name: str):
    """Each Parquet file at ``target``: (filesystem, FileInfo, shown path)."""
    filesys, inner = filesystem(target)
    try:
        info = filesys.get_file_info(inner)
        if info.type == fs.FileType.NotFound:
            raise ValueError(f"dataset {name!r}: {target!r} does not exist")
        if info.type == fs.FileType.File:
            return [(filesys, info, target)]
        found = sorted(
            (
                i
                for i in filesys.get_file_info(fs.FileSelector(inner, recursive=True))
                if i.type == fs.FileType.File and i.base_name.endswith(".parquet")
            ),
            key=lambda i: i.path,
        )
    except OSError as exc:
        raise ValueError(f"dataset {name!r}: cannot list {target!r}: {exc}") from None
    if not found:
        raise ValueError(f"dataset {name!r}: no .parquet file under {target!r}")
    return [(filesys, i, f"{target.rstrip('/')}/{i.path[len(inner) :].lstrip('/')}") for i in found]


def _class_names(schema, label_column: str) -> list[str] | None:
    """The ``ClassLabel`` names that ``datasets`` keeps in the schema's ``huggingface`` metadata."""
    raw = (schema.metadata or {}).get(b"huggingface")
    if not raw:
        return None
    try:
        feature = json.loads(raw)["info"]["features"][label_column]
    except (ValueError, KeyError, TypeError):
        return None
    names = feature.get("names") if isinstance(feature, dict) else None
    return [str(n) for n in names] if isinstance(names, list) and len(names) >= 2 else None


def _check_columns(schema, shown: str, image_column: str, label_column: str, name: str) -> None:
    for column in (image_column, label_column):
        if column not in schema.names:
            raise ValueError(f"dataset {name!r}: no column {column!r} in {shown} (columns: {', '.join(schema.names)})")
    kind = schema.field(image_column).type
    if pa.types.is_struct(kind):
        if kind.get_field_index("bytes") < 0:
            raise ValueError(f"dataset {name!r}: image column {image_column!r} in {shown} is a struct without 'bytes'")
    elif not (pa.types.is_binary(kind) or pa.types.is_large_binary(kind)):
        raise ValueError(
            f"dataset {name!r}: image column {image_column!r} in {shown} has type {kind}; expected binary or "
            "a struct of bytes and path (Hugging Face datasets' Image feature)"
        )
    if not pa.types.is_integer(schema.field(label_column).type):
        raise ValueError(
            f"dataset {name!r}: label column {label_column!r} has type {schema.field(label_column).type}; "
            "expected integers"
        )


def _rows(filesys, path: str, shown: str, columns: tuple, split: str | None, name: str):
    """The file's images of ``split`` (all, when it has no split column), read a record batch at a time."""
    image_column, label_column, split_column = columns
    wanted = [c for c in columns if c]
    row = 0
    for batch in pq.ParquetFile(path, filesystem=filesys).iter_batches(batch_size=256, columns=wanted):
        col = batch.column(image_column)
        blobs = col.field("bytes").to_pylist() if pa.types.is_struct(col.type) else col.to_pylist()
        labels = batch.column(label_column).to_pylist()
        parts = batch.column(split_column).to_pylist() if split_column else [None] * len(labels)
        for blob, label, part in zip(blobs, labels, parts):
            where = f"{shown} row {row}"
            row += 1
            if split is not None and SPLITS.get(str(part)) != split:
                continue
            if blob is None:
                raise ValueError(
                    f"dataset {name!r}: {where} has no image bytes (an image stored only by path is not read)"
                )
            if label is None:
                raise ValueError(f"dataset {name!r}: {where} has no label")
            yield Item(where, int(label), read=lambda blob=blob: blob)


def _bad_split(name: str, shown: str, value) -> str:
    raise ValueError(f"dataset {name!r}: split value {value!r} in {shown}; expected train, val (validation), test")
