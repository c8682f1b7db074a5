"""Parquet with an image column, as Hugging Face ``datasets`` writes it: a struct of ``bytes`` and ``path``, or
plain binary, holding PNG or JPEG files; integer labels; class names from the file's ``ClassLabel`` metadata when
present. Splits come from a split column, from one path per split, or from file names (``train-*.parquet``,
``validation-*``, ``test-*``, the layout ``datasets`` uploads); with none of them every row is train."""

from __future__ import annotations

import json
from collections.abc import Mapping

from kubenas.data.images import Item
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
    listing: dict[str, list[Item]] = {}
    class_names = None
    for split, target in targets.items():
        for fragment_split, shown, table, version in _tables(target, name, split_column):
            class_names = class_names or _class_names(table.schema, label_column)
            rows = _rows(table, shown, image_column, label_column, split_column, name, version)
            for row_split, item in rows:
                where = split or row_split or fragment_split or "train"
                listing.setdefault(where, []).append(item)
    top = max(item.label for items in listing.values() for item in items)
    if class_names is None:
        class_names = [str(i) for i in range(max(top + 1, num_classes or 0))]
    return image_dataset(name, listing, class_names, opts.decode, opts.val_fraction, opts.split_seed, opts.cache())


def _tables(target: str, name: str, split_column: str):
    """Each Parquet file at ``target``: its split by file name (or None), its shown path, its table, its stamp."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from pyarrow import fs

    filesys, inner = filesystem(target)
    try:
        info = filesys.get_file_info(inner)
        if info.type == fs.FileType.NotFound:
            raise ValueError(f"dataset {name!r}: {target!r} does not exist")
        files = (
            [info]
            if info.type == fs.FileType.File
            else sorted(
                (
                    i
                    for i in filesys.get_file_info(fs.FileSelector(inner, recursive=True))
                    if i.type == fs.FileType.File and i.base_name.endswith(".parquet")
                ),
                key=lambda i: i.path,
            )
        )
        if not files:
            raise ValueError(f"dataset {name!r}: no .parquet file under {target!r}")
        for f in files:
            shown = target if f.path == inner else f"{target.rstrip('/')}/{f.path[len(inner) :].lstrip('/')}"
            by_name = SPLITS.get(f.base_name.split("-")[0].split("_")[0].split(".")[0])
            yield by_name, shown, pq.read_table(f.path, filesystem=filesys), stamp(f)
    except (OSError, pa.ArrowInvalid) as exc:
        raise ValueError(f"dataset {name!r}: cannot read Parquet at {target!r}: {exc}") from None


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


def _rows(table, shown: str, image_column: str, label_column: str, split_column: str, name: str, version: str):
    import pyarrow as pa

    for column in (image_column, label_column):
        if column not in table.column_names:
            raise ValueError(
                f"dataset {name!r}: no column {column!r} in {shown} (columns: {', '.join(table.column_names)})"
            )
    col = table.column(image_column).combine_chunks()
    if pa.types.is_struct(col.type):
        if col.type.get_field_index("bytes") < 0:
            raise ValueError(f"dataset {name!r}: image column {image_column!r} in {shown} is a struct without 'bytes'")
        blobs = col.field("bytes").to_pylist()
    elif pa.types.is_binary(col.type) or pa.types.is_large_binary(col.type):
        blobs = col.to_pylist()
    else:
        raise ValueError(
            f"dataset {name!r}: image column {image_column!r} in {shown} has type {col.type}; expected binary or "
            "a struct of bytes and path (Hugging Face datasets' Image feature)"
        )
    labels = table.column(label_column)
    if not pa.types.is_integer(labels.type):
        raise ValueError(f"dataset {name!r}: label column {label_column!r} has type {labels.type}; expected integers")
    splits = [None] * len(table)
    if split_column in table.column_names:
        splits = [SPLITS.get(str(v)) or _bad_split(name, shown, v) for v in table.column(split_column).to_pylist()]
    out = []
    for i, (blob, label, split) in enumerate(zip(blobs, labels.to_pylist(), splits)):
        where = f"{shown} row {i}"
        if blob is None:
            raise ValueError(f"dataset {name!r}: {where} has no image bytes (an image stored only by path is not read)")
        if label is None:
            raise ValueError(f"dataset {name!r}: {where} has no label")
        out.append((split, Item(where, int(label), read=lambda blob=blob: blob, stamp=version)))
    return out


def _bad_split(name: str, shown: str, value) -> None:
    raise ValueError(f"dataset {name!r}: split value {value!r} in {shown}; expected train, val (validation), test")
