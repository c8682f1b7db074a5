"""Fault injection for the reliability tests (``tests/e2e/test_faults.py``): named points in the steps where a test
can kill a local run as a machine losing power would, to check what a re-run finds.

Off unless ``KUBENAS_FAILPOINT`` names a point and ``KUBENAS_RUN_PID`` names the local run (``kubenas run`` sets the
latter for its tasks; nothing sets the former outside the tests).
"""

from __future__ import annotations

import os
import signal
import sys

POINTS = ("sample", "train", "commit", "export-before-registration", "export-before-alias", "export-after-alias")


def failpoint(name: str) -> None:
    """At point ``name``: SIGKILL the local run and then this task, if the test asked for this point."""
    if os.environ.get("KUBENAS_FAILPOINT") != name or not os.environ.get("KUBENAS_RUN_PID"):
        return
    sys.stdout.flush()
    os.kill(int(os.environ["KUBENAS_RUN_PID"]), signal.SIGKILL)
    os.kill(os.getpid(), signal.SIGKILL)
