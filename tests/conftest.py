"""Shared fixtures. The space fixtures run the contract tests over every registered space, with its options here
(the defaults when it has none: a space that builds with its defaults joins the contract tests with no line here)."""

from __future__ import annotations

import os

import pytest
import torch

from kubenas.data.base import Dataset
from kubenas.spaces import SPACES, make_space

# Constructor options of the registered spaces that need some.
SPACE_OPTIONS = {
    "choice": {
        "decisions": {
            "depth": [1, 2, 3],
            "op_1": ["conv3", "conv5", "skip"],
            "op_2": ["conv3", "skip"],
            "wide": [False, True],
        },
        "conditions": {"op_2": {"parent": "depth", "values": [2, 3]}},
    },
}


def space_for_tests(name: str):
    """A registered space with its test options."""
    return make_space(name, **SPACE_OPTIONS.get(name, {}))


def builds(space) -> bool:
    """Whether the space builds networks (a ``choice`` space without a builder does not)."""
    try:
        space.build(space.sample(0), (1, 8), 2)
    except NotImplementedError:
        return False
    return True


@pytest.fixture(params=sorted(SPACES))
def space(request):
    return space_for_tests(request.param)


@pytest.fixture(params=[name for name in sorted(SPACES) if builds(space_for_tests(name))])
def buildable_space(request):
    return space_for_tests(request.param)


def toy_dataset(n: int = 96, shape=(1, 16), classes: int = 3, seed: int = 0, with_test: bool = True) -> Dataset:
    """A small learnable dataset: the class shifts the mean of the signal."""
    gen = torch.Generator().manual_seed(seed)

    def split(m):
        y = torch.randint(0, classes, (m,), generator=gen)
        x = torch.randn(m, *shape, generator=gen) + y.view(-1, *[1] * len(shape)).float()
        return x, y

    tr, va, te = split(n), split(n // 2), split(n // 2)
    return Dataset(
        "toy", *tr, *va, num_classes=classes, x_test=te[0] if with_test else None, y_test=te[1] if with_test else None
    )


@pytest.fixture
def toy():
    return toy_dataset()


def pytest_configure(config):
    """Under xdist each worker takes its share of the cores: that many torch threads in the worker, and
    `KUBENAS_CPUS` for the tasks of the searches it runs. Measured on two cores: 604 s without this against about
    570 s with it, and the Katib DARTS e2e test in 47 s against 67 s (more threads than cores slow torch badly)."""
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if workers:
        share = max(1, len(os.sched_getaffinity(0)) // int(workers))
        torch.set_num_threads(share)
        os.environ["KUBENAS_CPUS"] = str(share)


# The longest tests start first, so that the two workers end together instead of one waiting on the other's last
# long test (measured with --durations; the rest keep their order: end-to-end, then components, then unit). This
# needs `--maxschedchunk=1` (pyproject's addopts): xdist's default hands each worker a quarter of its share of
# the list at once, which would give the first worker every slow test.
SLOW_FIRST = (
    "tests/e2e/test_faults.py::test_a_sigkill_of_the_whole_run_at_every_stage",
    "tests/e2e/test_tabular_pipelines.py::test_successive_halving",
    "tests/e2e/test_local_run.py::test_run_resume_and_pull",
    "tests/e2e/test_estimator_pipelines.py::test_learning_curve",
    "tests/e2e/test_image_formats.py",
    "tests/e2e/test_estimator_pipelines.py",
    "tests/e2e/test_faults.py",
    "tests/e2e/test_tabular_pipelines.py",
    "tests/e2e/test_readme_and_status.py",
    "tests/e2e/test_lifecycle.py",
)


def pytest_collection_modifyitems(config, items):
    def rank(item) -> tuple[int, int]:
        for i, prefix in enumerate(SLOW_FIRST):
            if item.nodeid.startswith(prefix):
                return (0, i)
        kind = item.nodeid.split("/")[1] if "/" in item.nodeid else ""
        return ({"e2e": 1, "components": 2}.get(kind, 3), 0)

    items.sort(key=rank)  # stable: within a rank, the collection order
