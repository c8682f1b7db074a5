"""A real local stack (SeaweedFS + MLflow on loopback) for the whole session, stopped at its end."""

from __future__ import annotations

import pytest

from kubenas import stack


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory):
    s = stack.start(tmp_path_factory.mktemp("kubenas-home"), quiet=True)
    try:
        yield s
    finally:
        s.stop()
        assert not s.pgids


@pytest.fixture
def stack_env(local_stack, monkeypatch):
    """Point boto3, pyarrow and MLflow at the session's stack."""
    for key, value in local_stack.env().items():
        monkeypatch.setenv(key, value)
    return local_stack
