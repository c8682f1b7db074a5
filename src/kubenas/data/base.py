"""A dataset is three explicit splits of tensors plus the number of classes.

The test split is never read during search: ``search`` hands estimators ``dataset.without_test()``, and only
the final export touches ``test``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

from kubenas.core import is_int

if TYPE_CHECKING:
    import torch

    from kubenas.data.images import Preprocess


@dataclass(frozen=True)
class DatasetInfo:
    """What a config check needs to know of a dataset without loading it: the per-sample input shape and the
    number of classes (None where only the data can tell: a Parquet table without a declared ``shape``), and the
    local paths or ``s3://`` URIs it reads (none for a generated dataset)."""

    input_shape: tuple[int, ...] | None
    num_classes: int | None
    sources: tuple[str, ...] = ()


def require_resident(data, what: str) -> None:
    """Raise ValueError when ``data`` is streamed: ``what`` reads the data as tensors in memory."""
    if getattr(data, "streamed", False):
        raise ValueError(
            f"{what} reads the data in memory; dataset {data.name!r} is on the streaming path: set its option "
            "data_path: resident (with a memory_budget that holds it), or train candidates instead"
        )


def check_seed(dataset: str, field: str, value) -> None:
    if not is_int(value) or not 0 <= value < 2**32:
        raise ValueError(f"dataset {dataset!r}: {field} must be an integer in 0..2**32-1, got {value!r}")


@dataclass(frozen=True)
class Dataset:
    """Inputs are float32 tensors shaped (N, F), (N, C, L) or (N, C, H, W); labels are int64 in [0, num_classes).

    An image dataset also names its ``classes`` and carries the ``preprocess`` that made its inputs from raw images
    (mode, size, normalisation), which the model keeps for serving; ``notes`` are what loading it has to say
    once (conversions, skipped images, a cache hit)."""

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    num_classes: int
    x_test: torch.Tensor | None = None
    y_test: torch.Tensor | None = None
    classes: tuple[str, ...] | None = None
    preprocess: Preprocess | None = None
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        splits = [("train", self.x_train, self.y_train), ("val", self.x_val, self.y_val)]
        if self.x_test is not None or self.y_test is not None:
            splits.append(("test", self.x_test, self.y_test))
        shape = tuple(self.x_train.shape[1:])
        for split, x, y in splits:
            if x is None or y is None:
                raise ValueError(f"dataset {self.name!r}: split {split!r} needs both inputs and labels")
            if len(x) != len(y) or len(x) == 0:
                raise ValueError(f"dataset {self.name!r}: split {split!r} has {len(x)} inputs and {len(y)} labels")
            if tuple(x.shape[1:]) != shape:
                raise ValueError(
                    f"dataset {self.name!r}: split {split!r} inputs have shape {tuple(x.shape[1:])}, train has {shape}"
                )
            if y.min() < 0 or y.max() >= self.num_classes:
                raise ValueError(
                    f"dataset {self.name!r}: split {split!r} labels must lie in 0..{self.num_classes - 1}, "
                    f"found {int(y.min())}..{int(y.max())}"
                )

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    @property
    def has_test(self) -> bool:
        return self.x_test is not None

    def without_test(self) -> Dataset:
        """The same dataset with the test split removed, for anything that runs during search."""
        return replace(self, x_test=None, y_test=None)

    def shard(self, rank: int, world_size: int) -> Dataset:
        """This dataset as rank ``rank`` of ``world_size`` trains on it (data-parallel training): every
        ``world_size``-th training example from ``rank``; validation and test stay whole."""
        if not (is_int(rank) and is_int(world_size) and 0 <= rank < world_size):
            raise ValueError(f"dataset {self.name!r}: rank must be in 0..world_size-1, got {rank} of {world_size}")
        return replace(self, x_train=self.x_train[rank::world_size], y_train=self.y_train[rank::world_size])

    def splits(self) -> dict[str, int]:
        """The split sizes."""
        out = {"train": len(self.x_train), "val": len(self.x_val)}
        if self.x_test is not None:
            out["test"] = len(self.x_test)
        return out

    def class_names(self) -> list[str]:
        """The classes' names: the dataset's own, else the label numbers."""
        return list(self.classes) if self.classes else [str(i) for i in range(self.num_classes)]

    def class_counts(self) -> dict[str, dict[str, int]]:
        """Examples per class in each split, by class name."""
        import torch

        names = self.class_names()
        out = {}
        for split, y in (("train", self.y_train), ("val", self.y_val), ("test", self.y_test)):
            if y is not None:
                counts = torch.bincount(y, minlength=self.num_classes).tolist()
                out[split] = dict(zip(names, counts))
        return out

    def digest(self) -> str:
        """A short fingerprint of the data (MLflow's dataset digest): every split's shape, and its first 10,000
        examples and labels, hashed (bounded work on a large dataset); computed once per dataset object."""
        return self._digest

    @cached_property
    def _digest(self) -> str:
        import hashlib

        rows = 10_000
        h = hashlib.sha256()
        for x, y in ((self.x_train, self.y_train), (self.x_val, self.y_val), (self.x_test, self.y_test)):
            if x is None:
                continue
            h.update(repr((tuple(x.shape), tuple(y.shape), str(x.dtype))).encode())
            h.update(x[:rows].contiguous().numpy().tobytes())
            h.update(y[:rows].contiguous().numpy().tobytes())
        return h.hexdigest()[:8]

    def describe(self) -> str:
        test = len(self.x_test) if self.x_test is not None else 0
        return (
            f"{self.name}: input {self.input_shape}, {self.num_classes} classes, "
            f"{len(self.x_train)} train / {len(self.x_val)} val / {test} test"
        )


def tensors(x: np.ndarray, y: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Torch-owned copies of numpy arrays, in freshly allocated tensors with canonical strides.

    CPU kernels pick their code path from the input's layout, and their results differ in the last bits
    between paths. A numpy view can carry any stride on a size-1 axis (``x[:, None, :]``) and any buffer
    alignment, and which one it has depended on whether the data was generated or read from a cache. That
    flipped a validation prediction now and then and made searches irreproducible, so every dataset tensor
    is a new allocation: standard strides, 64-byte alignment.
    """
    import torch

    out_x = torch.empty(np.shape(x), dtype=torch.float32)
    out_x.copy_(torch.from_numpy(np.asarray(x, dtype=np.float32)))
    out_y = torch.empty(np.shape(y), dtype=torch.int64)
    out_y.copy_(torch.from_numpy(np.asarray(y, dtype=np.int64)))
    return out_x, out_y


def split_indices(y: np.ndarray, fractions: tuple[float, ...], seed: int) -> list[np.ndarray]:
    """Stratified split of indices into parts of the given fractions (the last part takes the rest)."""
    rng = np.random.default_rng(seed)
    parts: list[list[int]] = [[] for _ in range(len(fractions) + 1)]
    for label in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == label))
        start = 0
        for p, frac in enumerate(fractions):
            stop = start + int(round(frac * len(idx)))
            parts[p].extend(idx[start:stop])
            start = stop
        parts[-1].extend(idx[start:])
    return [np.sort(np.asarray(p, dtype=np.int64)) for p in parts]


def check_fraction(name: str, field: str, value: float) -> float:
    if not isinstance(value, (int, float)) or not 0 < value < 1:
        raise ValueError(f"dataset {name!r}: {field} must be a number strictly between 0 and 1, got {value!r}")
    return float(value)
