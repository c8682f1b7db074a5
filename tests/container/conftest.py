"""The containerized tests run the pipeline in the built component image (``images/build.sh``), through podman
or docker. They are left out of the default run (``-m "not container"`` in pyproject.toml): they need the image,
which takes minutes to build. ``.ci/run`` builds it and runs them with ``python -m pytest -q -m container``.

``KUBENAS_TEST_IMAGE`` names the image (default ``localhost/kubenas:<version>``, what ``.ci/run`` builds)."""

from __future__ import annotations

import os

import pytest

from kubenas import __version__, containers
from tests.e2e.conftest import local_stack, stack_env  # noqa: F401 - the session's stack, for the store checks

IMAGE = os.environ.get("KUBENAS_TEST_IMAGE", f"localhost/kubenas:{__version__}")


@pytest.fixture(scope="session")
def engine(tmp_path_factory):
    """A container engine for the session (a podman service of its own), stopped at its end."""
    started = containers.start_engine(tmp_path_factory.mktemp("engine") / "podman.log")
    try:
        client = started.client()
        try:
            client.images.get(IMAGE)  # not there: build it first (.ci/run does), or name it in KUBENAS_TEST_IMAGE
        finally:
            client.close()
        yield started
    finally:
        started.stop()


@pytest.fixture(autouse=True)
def own_environment():
    """`kubenas run` in-process leaves its stack's addresses in os.environ (a CLI process ends there): each test
    starts from the environment it was given."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)
