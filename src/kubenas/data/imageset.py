"""An image dataset from a listing: decoded once per machine (:mod:`kubenas.data.images`), checked, split and
normalised into a :class:`~kubenas.data.base.Dataset` that carries its classes and its preprocessing."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from kubenas.core import is_int
from kubenas.data.base import Dataset, split_indices, tensors
from kubenas.data.images import Decoded, DecodeOptions, Item, Preprocess, cache_key, cached_decode, decode_all, stats


def image_dataset(
    name: str,
    listing: dict[str, Sequence[Item]],
    classes: Sequence[str],
    opts: DecodeOptions,
    val_fraction: float = 0.1,
    split_seed: int = 0,
    cache: Path | None = None,
    extra_key: dict | None = None,
):
    """A :class:`~kubenas.data.base.Dataset` of the listed images: ``listing`` maps ``train`` and optionally
    ``val`` and ``test`` to items whose labels index ``classes``. Without ``val``, a stratified ``val_fraction`` of
    train (by ``split_seed``, so the same for every task) becomes it. Decoded once per machine into ``cache``."""
    check_listing(name, listing, classes)
    key = cache_key(name, listing, opts, extra_key)
    splits, hit = cached_decode(
        key, lambda: {s: decode_all(items, opts, name, s) for s, items in listing.items()}, cache
    )
    notes = [f"{name}: decoded images read from the cache ({cache})"] if hit else []
    for split, d in splits.items():
        if d.converted:
            said = ", ".join(f"{n} {mode}" for mode, n in sorted(d.converted.items()))
            notes.append(f"{name}: split {split!r}: converted {said} image(s) to {opts.mode}")
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
        val_idx, train_idx = split_indices(train.labels, (val_fraction,), split_seed)
        splits["val"] = Decoded(train.pixels[val_idx], train.labels[val_idx])
        train = splits["train"] = Decoded(train.pixels[train_idx], train.labels[train_idx])
    check_labels(name, {s: d.labels for s, d in splits.items()}, classes)
    mean, std = stats(train.pixels)
    pre = Preprocess(opts.mode, tuple(int(v) for v in train.pixels.shape[2:]), opts.resize, mean, std, tuple(classes))

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
