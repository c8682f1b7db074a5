"""The lease (kubenas.lease) on the in-memory store: one run writes a search at a time; a lease ends by expiring, by
its local run dying, or by its release; a run whose lease was taken over stops without writing."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest

from kubenas import lease
from kubenas.lease import Lease, LeaseHeld
from kubenas.store import SearchStore


@pytest.fixture
def store():
    return SearchStore.in_memory("leased")


def test_one_run_at_a_time_and_the_same_run_again(store):
    assert Lease(store).acquire("run-a", lease.info()) is None
    assert Lease(store).acquire("run-a", lease.info()) is None  # a retried init of the same run
    with pytest.raises(LeaseHeld, match=r"being run by pipeline run 'run-a'.*another name"):
        Lease(store).acquire("run-b", lease.info())
    with pytest.raises(LeaseHeld):
        Lease(store).check()


def test_an_expired_lease_is_taken_over_and_its_run_stops_without_writing(store):
    Lease(store).acquire("run-a", lease.info(), ttl=60)
    Lease(store).bind("run-a", "parent-a")
    store.put_json(lease.KEY, {**Lease(store).read(), "expires": time.time() - 1})
    note = Lease(store).acquire("run-b", {"host": "elsewhere"})
    assert note is not None and "took over the lease of pipeline run 'run-a'" in note and "expired" in note
    Lease(store).bind("run-b", "parent-b")
    with pytest.raises(LeaseHeld, match="was taken over, so this run stops without writing"):
        Lease(store).renew("parent-a")
    Lease(store).renew("parent-b")  # the new holder goes on


def test_a_dead_local_run_frees_its_lease(store):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a pid that no longer runs
    Lease(store).acquire("run-a", {"host": socket.gethostname(), "pid": dead.pid, "pidns": lease.pid_namespace()})
    assert "has ended" in lease.stale(Lease(store).read(), time.time())
    Lease(store).check()  # no live lease: nothing raised
    assert "has ended" in Lease(store).acquire("run-b", lease.info())


def test_release_by_run_or_by_local_pid_only_for_its_holder(store):
    Lease(store).acquire("run-a", lease.info())
    Lease(store).bind("run-a", "parent-a")
    assert not Lease(store).release("parent-other") and not Lease(store).release(pid=os.getpid() + 1)
    assert Lease(store).release(pid=os.getpid()) and Lease(store).read() is None
    assert not Lease(store).release("parent-a")  # nothing left to release


def test_renewal_writes_at_most_every_ten_minutes(store):
    Lease(store).acquire("run-a", lease.info())
    Lease(store).bind("run-a", "parent-a")
    before = store.requests
    Lease(store).renew("parent-a")
    assert store.requests - before == 1  # a read, no write: renewed less than ttl/36 ago
    store.put_json(lease.KEY, {**Lease(store).read(), "renewed": time.time() - 3600})
    before = store.requests
    Lease(store).renew("parent-a")
    assert store.requests - before == 2 and Lease(store).read()["renewed"] > time.time() - 5
