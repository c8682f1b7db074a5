"""A toy dataset: Gaussian blobs, one per class, generated from a seed."""

from __future__ import annotations

import torch

from kubenas.data.base import Dataset, DatasetInfo


def toy_blobs_info(classes: int = 3, features: int = 6, seed: int = 0) -> DatasetInfo:
    if not isinstance(classes, int) or classes < 2:
        raise ValueError(f"dataset 'toy': classes must be an integer >= 2, got {classes!r}")
    return DatasetInfo((features,), classes)


def load_toy_blobs(classes: int = 3, features: int = 6, seed: int = 0) -> Dataset:
    toy_blobs_info(classes, features, seed)
    gen = torch.Generator().manual_seed(seed)
    centres = 3 * torch.randn(classes, features, generator=gen)

    def split(n: int):
        y = torch.randint(0, classes, (n,), generator=gen)
        return centres[y] + torch.randn(n, features, generator=gen), y

    (xt, yt), (xv, yv), (xs, ys) = split(120), split(60), split(60)
    return Dataset("toy", xt, yt, xv, yv, num_classes=classes, x_test=xs, y_test=ys)
