"""Process groups kubenas starts and stops (the stack's servers, a run's watchdog, a podman service): started in
a session of their own, stopped by their group id only, never by a name pattern."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def stop_group(pgid: int, grace: float = 2.0) -> None:
    """Stop a process group kubenas started (a server, a watchdog): SIGTERM the group, wait up to ``grace``
    seconds, then SIGKILL it; reap the leader if it is our child."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            reap(pgid)  # an unreaped leader would keep the group "alive" as a zombie
            if not group_alive(pgid):
                return
            time.sleep(0.05)


def reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def spawn(cmd: list[str], log: Path, env: dict[str, str], cwd: Path | None = None) -> int:
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "ab") as out:
        proc = subprocess.Popen(
            cmd,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
            umask=0o077,
            cwd=cwd,
        )
    return proc.pid  # with a new session, the pid is also the process group id
