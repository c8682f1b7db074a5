"""Shared fixtures. Every registered space and strategy gets a test configuration here, or the contract test
``test_every_registered_space_has_a_test_config`` fails: that is how a new one joins the contract tests."""

from __future__ import annotations

import pytest
import torch

from kubenas.data.base import Dataset
from kubenas.spaces import SPACES, make_space

# Constructor options per registered space; {} means the defaults.
SPACE_OPTIONS = {
    "choice": {
        "decisions": {"depth": [1, 2, 3], "op_1": ["conv3", "conv5", "skip"], "op_2": ["conv3", "skip"], "wide": [False, True]},
        "conditions": {"op_2": {"parent": "depth", "values": [2, 3]}},
    },
    "chain": {},
    "multibranch": {},
    "cell": {},
    "nb201": {},
}
BUILDABLE = [name for name in SPACE_OPTIONS if name != "choice"]


@pytest.fixture(params=sorted(SPACE_OPTIONS))
def space(request):
    return make_space(request.param, **SPACE_OPTIONS[request.param])


@pytest.fixture(params=BUILDABLE)
def buildable_space(request):
    return make_space(request.param, **SPACE_OPTIONS[request.param])


def toy_dataset(n: int = 96, shape=(1, 16), classes: int = 3, seed: int = 0, with_test: bool = True) -> Dataset:
    """A small learnable dataset: the class shifts the mean of the signal."""
    gen = torch.Generator().manual_seed(seed)

    def split(m):
        y = torch.randint(0, classes, (m,), generator=gen)
        x = torch.randn(m, *shape, generator=gen) + y.view(-1, *[1] * len(shape)).float()
        return x, y

    tr, va, te = split(n), split(n // 2), split(n // 2)
    return Dataset("toy", *tr, *va, num_classes=classes, x_test=te[0] if with_test else None,
                   y_test=te[1] if with_test else None)


@pytest.fixture
def toy():
    return toy_dataset()


def test_every_registered_space_has_a_test_config():
    assert set(SPACE_OPTIONS) == set(SPACES)
