"""An image dataset from a listing: decoded once per machine (:mod:`kubenas.data.images`), checked, split and
normalised into a :class:`~kubenas.data.base.Dataset` that carries its classes and its preprocessing."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from kubenas.core import is_int
from kubenas.data.base import Dataset, split_indices, tensors
from kubenas.data.images import Decoded, Item, Preprocess, Source, cache_key, cached_decode, decode_all, stats
from kubenas.data.options import ImageOptions


def image_dataset(name: str, source: Source, opts: ImageOptions):
    """The dataset of a format's :class:`Source`, on the path ``opts.data_path`` names (``auto``: resident when the
    decoded training images fit ``opts.memory_budget``, else streaming): a resident
    :class:`~kubenas.data.base.Dataset`, or a :class:`~kubenas.data.stream.Streamed` one."""
    if "train" not in source.splits or not source.splits["train"]:
        raise ValueError(f"dataset {name!r}: no train split (found: {', '.join(sorted(source.splits)) or 'nothing'})")
    path = opts.data_path
    if path == "auto":
        from kubenas.data.stream import decoded_bytes

        path = "resident" if decoded_bytes(name, source, opts) <= opts.budget_bytes() else "streaming"
    if path == "streaming":
        from kubenas.data.stream import Streamed

        return Streamed.open(name, source, opts)
    return resident(name, source, opts)


def resident(name: str, source: Source, opts: ImageOptions):
    """Every image decoded once per machine into the cache, checked, split and normalised: a resident
    :class:`~kubenas.data.base.Dataset`. Without a ``val`` split, a stratified ``val_fraction`` of train (by
    ``split_seed``, the same for every task) becomes it."""
    decode_opts = opts.decode
    shards = {s: [(sh.name, sh.stamp) for sh in source.splits[s]] for s in sorted(source.splits)}
    key = cache_key(name, shards, decode_opts)

    def build() -> tuple[dict[str, Decoded], list[str]]:
        listing = {s: [item for shard in source.splits[s] for item in shard.items()] for s in source.splits}
        classes = source.classes or _label_names(listing)
        check_listing(name, listing, classes)
        return {s: decode_all(items, decode_opts, name, s) for s, items in listing.items()}, classes

    (splits, classes), hit = cached_decode(key, build, opts.cache())
    notes = [f"{name}: decoded images read from the cache ({opts.cache()})"] if hit else []
    for split, d in splits.items():
        if d.converted:
            said = ", ".join(f"{n} {mode}" for mode, n in sorted(d.converted.items()))
            notes.append(f"{name}: split {split!r}: converted {said} image(s) to {decode_opts.mode}")
        if d.skipped:
            notes.append(
                f"{name}: split {split!r}: skipped {len(d.skipped)} bad image(s) (on_bad_image: skip), "
                f"e.g. {d.skipped[0]}"
            )
    train = splits["train"]
    sizes = {s: d.pixels.shape[2:] for s, d in splits.items()}
    if len(set(sizes.values())) > 1:
        raise ValueError(
            f"dataset {name!r}: the splits' images differ in size ({sizes}); set resize: N to scale them all"
        )
    if "val" not in splits:
        val_idx, train_idx = split_indices(train.labels, (opts.val_fraction,), opts.split_seed)
        splits["val"] = Decoded(train.pixels[val_idx], train.labels[val_idx])
        train = splits["train"] = Decoded(train.pixels[train_idx], train.labels[train_idx])
    check_labels(name, {s: d.labels for s, d in splits.items()}, classes)
    mean, std = stats(train.pixels)
    size = tuple(int(v) for v in train.pixels.shape[2:])
    pre = Preprocess(decode_opts.mode, size, decode_opts.resize, mean, std, tuple(classes))

    def split(s: str):
        if s not in splits:
            return None, None
        x = pre.normalise(splits[s].pixels)
        return tensors(x.numpy(), splits[s].labels)

    return Dataset(
        name,
        *split("train"),
        *split("val"),
        num_classes=len(classes),
        x_test=split("test")[0],
        y_test=split("test")[1],
        classes=tuple(classes),
        preprocess=pre,
        notes=tuple(notes),
    )


def _label_names(listing: dict[str, Sequence[Item]]) -> list[str]:
    """Class names where the data names none: the label numbers, up to the largest seen."""
    top = max((item.label for items in listing.values() for item in items if is_int(item.label)), default=-1)
    return [str(i) for i in range(top + 1)]


def check_listing(name: str, listing: dict[str, Sequence[Item]], classes: Sequence[str]) -> None:
    """Before any decoding: train is listed, every split has images, and every label indexes ``classes``."""
    if "train" not in listing:
        raise ValueError(f"dataset {name!r}: no train split (found: {', '.join(sorted(listing)) or 'nothing'})")
    if len(classes) < 2:
        raise ValueError(f"dataset {name!r}: needs at least 2 classes, found {len(classes)} ({list(classes)})")
    for split, items in listing.items():
        if not items:
            raise ValueError(f"dataset {name!r}: split {split!r} has no images")
        for item in items:
            if not is_int(item.label) or not 0 <= item.label < len(classes):
                raise ValueError(
                    f"dataset {name!r}: {item.key} has label {item.label!r}, outside the {len(classes)} classes "
                    f"0..{len(classes) - 1}"
                )


def check_labels(name: str, labels: dict[str, np.ndarray], classes: Sequence[str]) -> None:
    """Every split holds at least two classes; val's and test's classes are a subset of train's."""
    seen = {s: set(np.unique(y).tolist()) for s, y in labels.items()}
    for split, present in seen.items():
        if not present:
            raise ValueError(
                f"dataset {name!r}: split {split!r} is empty (val_fraction of {len(labels['train'])} train images "
                "leaves none per class); raise val_fraction, or give a val split"
            )
        if len(present) < 2:
            raise ValueError(
                f"dataset {name!r}: split {split!r} holds one class ({classes[next(iter(present))]!r}); "
                "a classifier is trained and measured on at least two"
            )
    for split in ("val", "test"):
        missing = sorted(seen.get(split, set()) - seen["train"])
        if missing:
            raise ValueError(
                f"dataset {name!r}: split {split!r} has class(es) {[classes[i] for i in missing]} that train does "
                "not have; val and test classes must be a subset of train's"
            )
