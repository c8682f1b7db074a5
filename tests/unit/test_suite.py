"""The suite's own setup holds: under `--dist loadgroup` (pyproject's addopts) the tests of one `xdist_group` go to
one worker, so that a fixture they share is built once."""

from __future__ import annotations

import pytest


@pytest.mark.xdist_group("suite-check")  # itself grouped: the check has a test to look at in any selection
def test_the_tests_of_an_xdist_group_are_scheduled_together(request):
    """xdist groups a test by a suffix it appends to the test's id on each worker; where that is lost (as with
    pytest 9.2 and pytest-xdist 3.8), the group's tests are spread over the workers with no error at all."""
    config = request.config
    if not config.getoption("loadgroup", False):  # not under xdist's loadgroup (e.g. `-p no:xdist`): nothing to group
        assert config.getoption("dist", "no") != "loadgroup"
        return
    grouped = [item for item in request.session.items if item.get_closest_marker("xdist_group")]
    assert request.node in grouped
    lost = [item.nodeid for item in grouped if "@" not in item.nodeid]
    assert not lost, f"{len(lost)} test(s) of an xdist_group carry no group in their id, e.g. {lost[0]}"
