"""The search's lease: one run writes a search at a time.

``lease.json`` in the search's folder names the pipeline run that holds it, the MLflow parent run bound to it, and
where that run lives (host, pid, pid namespace). *init* takes it, *sample*, *update* and *export* renew it, the
export releases it. A lease ends by expiring, by its local run dying on this machine, or by its release.
"""

from __future__ import annotations

import json
import os
import socket
import time
from typing import Any

from kubenas.store import SearchStore, StoreError

KEY = "lease.json"
SECONDS = 6 * 3600.0  # renewed by every sample, update and export: longer than any step takes


class LeaseHeld(StoreError):
    """Another run holds the search's lease."""


class Lease:
    """The lease of the search in ``store``."""

    def __init__(self, store: SearchStore):
        self.store = store

    def read(self) -> dict[str, Any] | None:
        return self.store.get_json(KEY)

    def acquire(self, holder: str, info: dict[str, Any] | None = None, ttl: float = SECONDS) -> str | None:
        """Take the lease for the pipeline run ``holder`` (its KFP run id: the same for every retry of its tasks).
        A conditional write creates it; the same holder renews it. Another holder's lease is refused with
        :class:`LeaseHeld` unless it expired, or its holder was a local run on this machine that has died. Returns
        a note when it took over such a lease."""
        store, now = self.store, time.time()
        lease = {"holder": holder, **(info or {}), "renewed": now, "expires": now + ttl}
        if store.blobs.create(store.key(KEY), json.dumps(lease).encode()):
            return None
        current = self.read() or {}
        if current.get("holder") == holder:  # a retried init of the same run
            store.put_json(KEY, {**current, "renewed": now, "expires": now + ttl})
            return None
        why = stale(current, now)
        if why is None:
            raise LeaseHeld(self._held_message(current))
        store.put_json(KEY, lease)
        if (self.read() or {}).get("holder") != holder:  # another run took it over at the same moment
            raise LeaseHeld(f"search {store.search!r}: another run took over the expired lease at the same time")
        return f"took over the lease of {holder_text(current)}: {why}"

    def check(self) -> None:
        """Raise :class:`LeaseHeld` when another run holds the lease now (a pre-flight, before a run starts: any
        live lease is another run's)."""
        current = self.read()
        if current is not None and stale(current, time.time()) is None:
            raise LeaseHeld(self._held_message(current))

    def _held_message(self, current: dict[str, Any]) -> str:
        return (
            f"search {self.store.search!r} is being run by {holder_text(current)} (lease renewed "
            f"{_ago(current.get('renewed'), time.time())}, expires {_at(current.get('expires'))}). Two runs must "
            f"not write one search: wait for it to end, or run this one under another name. If that run is gone, "
            f"its lease expires by itself; or delete {self.store.uri}/{KEY}"
        )

    def bind(self, holder: str, parent_run_id: str) -> None:
        """Record the MLflow parent run of the lease's holder: the later steps know their run by it."""
        current = self.read() or {}
        if current.get("holder") != holder:
            raise LeaseHeld(
                f"search {self.store.search!r}: the lease of run {holder!r} was taken by {holder_text(current)}"
            )
        self.store.put_json(KEY, {**current, "parent_run_id": parent_run_id})

    def renew(self, parent_run_id: str, ttl: float = SECONDS) -> None:
        """Check that the run of ``parent_run_id`` still holds the lease, and extend it; raises :class:`LeaseHeld`
        when another run took it over (this run's lease expired), so that a stale run stops instead of writing.
        A search without a lease goes on."""
        current = self.read()
        if current is None:
            return
        if current.get("parent_run_id") not in (None, parent_run_id):
            raise LeaseHeld(
                f"search {self.store.search!r} is now run by {holder_text(current)}: this run's lease "
                "expired and was taken over, so this run stops without writing"
            )
        now = time.time()
        if now - float(current.get("renewed") or 0) > ttl / 36:  # a write every 10 min at most, not every step
            self.store.put_json(KEY, {**current, "renewed": now, "expires": now + ttl})

    def release(self, parent_run_id: str | None = None, pid: int | None = None) -> bool:
        """Give the lease up: the run of ``parent_run_id``, or the local run ``pid`` (after a failure). Returns
        whether it was held (and is now released)."""
        current = self.read()
        if current is None:
            return False
        if (parent_run_id is not None and current.get("parent_run_id") == parent_run_id) or (
            pid is not None and current.get("pid") == pid and current.get("host") == socket.gethostname()
        ):
            self.store.blobs.delete([self.store.key(KEY)])
            return True
        return False


def pid_namespace() -> str | None:
    """This process's pid namespace (Linux), e.g. ``pid:[4026531836]``: a pid means something only inside it."""
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return None


def info() -> dict[str, Any]:
    """Who takes a lease: this machine, and the local run (``kubenas run``'s pid, in the run's pid namespace: a task
    in a container is in another), else this process. On a cluster the pid is a pod's and the host its name: such
    a lease ends by expiring (or by its run's export)."""
    if os.environ.get("KUBENAS_RUN_PID"):
        return {
            "host": socket.gethostname(),
            "pid": int(os.environ["KUBENAS_RUN_PID"]),
            "pidns": os.environ.get("KUBENAS_RUN_PIDNS") or pid_namespace(),
        }
    return {"host": socket.gethostname(), "pid": os.getpid(), "pidns": pid_namespace()}


def stale(lease: dict[str, Any], now: float) -> str | None:
    """Why a lease no longer holds (expired, or its local run is dead), or None."""
    if not isinstance(lease.get("expires"), (int, float)) or lease["expires"] < now:
        return f"it expired {_at(lease.get('expires'))}"
    # the pid is checked only where it means the same process: this machine, in the same pid namespace
    if (
        lease.get("pid")
        and lease.get("host") == socket.gethostname()
        and lease.get("pidns", pid_namespace()) == pid_namespace()
    ):
        from kubenas.stack import pid_alive

        if not pid_alive(int(lease["pid"])):
            return f"its local run (pid {lease['pid']}) on this machine has ended"
    return None


def holder_text(lease: dict[str, Any]) -> str:
    """Who holds ``lease``, in words."""
    where = (
        f"`kubenas run` pid {lease['pid']} on {lease.get('host')}" if lease.get("pid") else f"host {lease.get('host')}"
    )
    return f"pipeline run {lease.get('holder')!r} ({where})"


def _at(t: Any) -> str:
    return (
        time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t)) if isinstance(t, (int, float)) else "at an unknown time"
    )


def _ago(t: Any, now: float) -> str:
    return f"{now - t:.0f} s ago" if isinstance(t, (int, float)) else "at an unknown time"
