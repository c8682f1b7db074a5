"""Faults injected into real runs (kubenas run, kfp.local, SeaweedFS, MLflow): a SIGKILLed run, a half-dead
stack, a stack whose owner died, and what an outsider on the machine can reach. After each: no process left,
no MLflow run RUNNING, no row lost or duplicated."""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

import yaml

from kubenas import stack
from kubenas.config import parse_config
from kubenas.store import SearchStore
from kubenas.tracking import Tracker
from tests.e2e.test_lifecycle import ENV, kubenas, processes_under

# Real training, small: 3 candidates a round, one worker, so a kill lands between candidates of a round.
TRAINING = {
    "name": "killed",
    "seed": 3,
    "dataset": {"name": "digits"},
    "space": {"name": "chain", "options": {"max_depth": 2}},
    "strategy": {"name": "random"},
    "fidelity": {"epochs": 4},
    "budget": {"rounds": 2, "candidates_per_round": 3, "parallelism": 1},
    "export": {"epochs": 1},
}
TABLE = {
    "name": "tabular",
    "dataset": {"name": "mnist1d"},
    "space": {"name": "nb201", "options": {"width": 8}},
    "estimator": {"table": "nb201-4op-mnist1d"},
    "fidelity": {"epochs": 4},
    "budget": {"rounds": 1, "candidates_per_round": 2, "parallelism": 1},
    "export": {"epochs": 1},
}


def _write(tmp_path: Path, config: dict) -> Path:
    from kubenas.estimators.tabular import TabularEstimator

    if "table" in config.get("estimator", {}):
        config["space"]["options"] = TabularEstimator(config["estimator"]["table"]).protocol["space_options"]
    path = tmp_path / f"{config['name']}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _gone(home: Path, timeout: float = 20.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while processes_under(home) and time.monotonic() < deadline:
        time.sleep(0.5)
    return processes_under(home)


def _weed_ports(s: stack.Stack) -> dict[str, int]:
    cmd = Path(f"/proc/{s.pgids['seaweedfs']}/cmdline").read_text().split("\0")
    return {m.group(1): int(m.group(2)) for a in cmd if (m := re.match(r"-(master|volume|filer)\.port=(\d+)", a))}


def _http(method: str, url: str, data: bytes | None = None) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data, method=method), timeout=5) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_only_the_s3_gateway_with_the_keys_reaches_the_data(local_stack):
    import boto3

    s3 = boto3.client(
        "s3",
        endpoint_url=local_stack.s3_endpoint,
        aws_access_key_id=local_stack.access_key,
        aws_secret_access_key=local_stack.secret_key,
        region_name="us-east-1",
    )
    s3.put_object(Bucket="kubenas", Key="searches/locked/history/h.parquet", Body=b"rows")
    assert s3.get_object(Bucket="kubenas", Key="searches/locked/history/h.parquet")["Body"].read() == b"rows"
    anonymous = boto3.client(
        "s3",
        endpoint_url=local_stack.s3_endpoint,
        region_name="us-east-1",
        config=__import__("botocore.config").config.Config(signature_version=__import__("botocore").UNSIGNED),
    )
    try:
        anonymous.get_object(Bucket="kubenas", Key="searches/locked/history/h.parquet")
        raise AssertionError("an unsigned S3 request read the data")
    except anonymous.exceptions.ClientError as exc:
        assert exc.response["ResponseMetadata"]["HTTPStatusCode"] in (401, 403)

    ports = _weed_ports(local_stack)
    filer = f"http://127.0.0.1:{ports['filer']}/buckets/kubenas/searches/locked"
    assert _http("GET", f"{filer}/history/") == 401  # listing
    assert _http("GET", f"{filer}/history/h.parquet") == 401  # reading
    assert _http("PUT", f"{filer}/history/evil.parquet", b"x") == 401  # writing
    assert _http("DELETE", f"{filer}/history/h.parquet") == 401
    assign = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{ports['master']}/dir/assign", timeout=5).read())
    assert _http("PUT", f"http://{assign['url']}/{assign['fid']}", b"x") == 401  # a volume write without a JWT
    assert s3.get_object(Bucket="kubenas", Key="searches/locked/history/h.parquet")["Body"].read() == b"rows"

    home = local_stack.home
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    private = [
        home / "credentials.json",
        home / "mlflow" / "mlflow.db",
        *home.glob("seaweedfs/*.dat"),
        *home.glob("seaweedfs/*.idx"),
    ]
    assert len(private) > 3 and all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in private)


def test_a_sigkilled_run_leaves_nothing_running(tmp_path):
    """`kubenas run` SIGKILLed while a round trains (the run only, as `kill -9 PID` does): its watchdog stops the
    training task and the stack the run started. What a re-run finds is checked at every stage below."""
    home, path = tmp_path / "home", _write(tmp_path, dict(TRAINING))
    proc = subprocess.Popen(
        [sys.executable, "-m", "kubenas.cli", "run", str(path), "--home", str(home)],
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        for line in proc.stdout:  # kill after the first candidate of round 0: its second is training
            if re.search(r"\[kubenas\] round 0 worker 0 candidate", line):
                break
        tasks = list(stack.run_dir(home, proc.pid).glob("*.json"))
        own = stack.load(home)
        os.kill(proc.pid, signal.SIGKILL)  # the run only: its task and servers are left to the watchdog
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert tasks and own is not None and own.owner[0] == proc.pid  # a training task ran, on the run's own stack
    assert _gone(home) == []  # servers, the training task and the watchdog
    assert not (home / "stack.json").exists()


def test_up_down_and_a_half_dead_stack_is_reported_and_never_doubled(tmp_path):
    home, path = tmp_path / "home", _write(tmp_path, dict(TABLE))
    try:
        up = kubenas("up", "--home", str(home))
        assert up.returncode == 0, up.stderr
        assert "MLflow UI: http://127.0.0.1:" in up.stdout and "secret" not in up.stdout.lower()
        assert len(processes_under(home)) >= 2
        twice = kubenas("up", "--home", str(home))
        assert twice.returncode == 2 and "is still running (seaweedfs, mlflow)" in twice.stderr, twice.stderr
        up = stack.load(home)
        os.killpg(up.pgids["seaweedfs"], signal.SIGKILL)
        deadline = time.monotonic() + 10
        while "seaweedfs" in up.running() and time.monotonic() < deadline:
            time.sleep(0.2)
        run = kubenas("run", str(path), "--home", str(home))
        assert run.returncode == 2 and "is half down: seaweedfs exited, mlflow still runs" in run.stderr, run.stderr
        again = kubenas("up", "--home", str(home))
        assert again.returncode == 2 and "still running (mlflow)" in again.stderr
        assert [p for p in processes_under(home) if "weed" in p] == []  # no second SeaweedFS on the same data
    finally:
        down = kubenas("down", "--home", str(home))
    assert down.returncode == 0 and "stopped" in down.stdout
    assert _gone(home) == []


def test_a_stack_left_by_a_run_that_died_is_stopped_and_replaced(tmp_path, capsys, monkeypatch):
    from kubenas import local_run

    home = tmp_path / "home"
    ghost = subprocess.Popen(["true"])
    ghost.wait()  # a run that is gone (its pid is free)
    left = stack.start(home, quiet=True, owner=ghost.pid)
    old_groups = dict(left.pgids)
    for key in left.env():
        monkeypatch.delenv(key, raising=False)
    mine = local_run._stack_for_run(home, os.getpid())  # what `kubenas run` does first
    try:
        err = capsys.readouterr().err
        assert f"stopping the stack started by `kubenas run` (pid {ghost.pid})" in err
        assert "that run ended without stopping it" in err
        assert not any(stack.pid_alive(g) for g in old_groups.values())  # the old servers are gone
        assert mine.owner[0] == os.getpid() and mine.alive() and stack.load(home).owner == mine.owner
    finally:
        mine.stop()
        left.stop()
    assert _gone(home) == []


def test_two_runs_of_one_search_cannot_both_write(stack_env, capsys):
    """The search's lease, on the real store: a second pipeline run of a search is refused while the first holds
    it; a retried init of the first goes on; another search in the same bucket is not affected; an expired lease is
    taken over, and the run that lost it can no longer commit."""
    import pytest

    from kubenas import steps
    from kubenas.estimators.tabular import TabularEstimator
    from kubenas.lease import KEY as LEASE
    from kubenas.lease import LeaseHeld

    options = TabularEstimator(TABLE["estimator"]["table"]).protocol["space_options"]
    cfg = parse_config({**TABLE, "name": "leased", "space": {"name": "nb201", "options": options}})
    store = SearchStore.from_config(cfg)
    first = steps.init_search(cfg.to_json(), job="run-a")
    assert store.get_json(LEASE)["parent_run_id"] == first["parent_run_id"]
    with pytest.raises(LeaseHeld, match=r"being run by pipeline run 'run-a'.*expires .* UTC.*another name"):
        steps.init_search(cfg.to_json(), job="run-b")
    assert steps.init_search(cfg.to_json(), job="run-a")["start_round"] == 0  # KFP retrying the same run's init
    other = parse_config({**cfg.model_dump(), "name": "leased-other"})
    steps.init_search(other.to_json(), job="run-b")  # one bucket, another search: isolated

    second = steps.init_search(cfg.to_json(), job="run-a")  # the parent run of the latest attempt holds it
    items = steps.ask_round(second["config_json"], 0, 0, second["parent_run_id"])
    lease = store.get_json(LEASE)
    store.put_json(LEASE, {**lease, "expires": time.time() - 1})  # run-a stalls past its lease
    taken = steps.init_search(cfg.to_json(), job="run-b")
    assert "took over the lease of pipeline run 'run-a'" in capsys.readouterr().out
    for item in items:
        steps.train_round(second["config_json"], item)
    with pytest.raises(LeaseHeld, match="lease expired and was taken over"):
        steps.tell_round(second["config_json"], 0, 0, second["parent_run_id"])
    assert store.last_committed_round() == -1  # the stale run committed nothing
    steps.ask_round(taken["config_json"], 0, 0, taken["parent_run_id"])
    assert steps.tell_round(taken["config_json"], 0, 0, taken["parent_run_id"]) in ("continue", "stop")
    assert store.last_committed_round() == 0


def _fresh_contexts():
    from kubenas import context

    context._CONTEXTS.clear()  # a new pod: the step reads its environment afresh


def _dead_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again: nothing listens there


def test_s3_or_mlflow_down_mid_round_fails_clearly_and_the_next_run_resumes(stack_env, monkeypatch):
    import pytest

    from kubenas import steps
    from kubenas.store import StoreError
    from kubenas.tracking import TrackingError

    cfg = parse_config(
        {
            **TRAINING,
            "name": "outage",
            "fidelity": {"epochs": 1},
            "budget": {"rounds": 3, "candidates_per_round": 2, "parallelism": 1},
        }
    )
    init = steps.init_search(cfg.to_json(), job="outage-1")
    cfg_json, parent = init["config_json"], init["parent_run_id"]
    for k in range(2):
        items = steps.ask_round(cfg_json, k, 0, parent)
        if k == 1:
            down = f"http://127.0.0.1:{_dead_port()}"
            for variable, up, error, message in (
                # S3 goes down during round 1: the training step fails after bounded retries, naming S3
                (
                    "AWS_ENDPOINT_URL_S3",
                    stack_env.s3_endpoint,
                    StoreError,
                    r"S3 at http://127.0.0.1:\d+ did not answer .*after 3 attempts.*resume",
                ),
                # MLflow goes down: the step fails fast (4 attempts in about 4 s), naming the server
                (
                    "MLFLOW_TRACKING_URI",
                    stack_env.mlflow_uri,
                    TrackingError,
                    r"cannot reach the MLflow server at http://127.0.0.1:\d+",
                ),
            ):
                _fresh_contexts()
                monkeypatch.setenv(variable, down)
                started = time.monotonic()
                with pytest.raises(error, match=message):
                    steps.train_round(cfg_json, items[0])
                assert time.monotonic() - started < 30
                monkeypatch.setenv(variable, up)
                assert SearchStore.from_config(cfg).committed_rounds() == [0]  # intact
            _fresh_contexts()
        for item in items:
            steps.train_round(cfg_json, item)
        assert steps.tell_round(cfg_json, k, 0, parent) == "continue"
    store = SearchStore.from_config(cfg)
    assert store.committed_rounds() == [0, 1] and store.read_history().num_rows == 4
    assert sorted(set(store.read_history().column("id").to_pylist())) == sorted(
        store.read_history().column("id").to_pylist()
    )


def test_a_dataset_in_a_missing_bucket_or_key_is_named_before_any_task(stack_env):
    import pytest

    from kubenas.data import check_source

    with pytest.raises(ValueError, match=r"'s3://no-such-bucket-kubenas/x.parquet' does not exist"):
        check_source("parquet", path="s3://no-such-bucket-kubenas/x.parquet")
    with pytest.raises(ValueError, match=r"'s3://kubenas/no/such/data.parquet' does not exist"):
        check_source("parquet", path={"train": "s3://kubenas/no/such/data.parquet", "val": "s3://kubenas/x"})


def test_a_second_local_run_of_a_search_is_refused_while_the_first_runs(stack_env, tmp_path):
    """Two `kubenas run` processes on one store: the second stops before it starts anything, naming the first."""
    env = {**ENV, **stack_env.env()}  # both use the session's stack as services of their own
    # one round: the first run still holds the search through its training, update and export (over 10 s) when
    # the second, started once the round is asked, looks
    path = _write(tmp_path, {**TRAINING, "name": "twice", "budget": {**TRAINING["budget"], "rounds": 1}})
    first = subprocess.Popen(
        [sys.executable, "-m", "kubenas.cli", "run", str(path), "--home", str(tmp_path / "a")],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        for line in first.stdout:
            if "[kubenas] round 0 (#1 of this run)" in line:
                break
        second = subprocess.run(
            [sys.executable, "-m", "kubenas.cli", "run", str(path), "--home", str(tmp_path / "b")],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert second.returncode == 2, second.stdout + second.stderr
        assert re.search(
            r"search 'twice' is being run by pipeline run '.+' \(`kubenas run` pid "
            rf"{first.pid} on .+\).*expires .* UTC",
            second.stderr,
        ), second.stderr
        assert "as KILLED" not in second.stderr  # the refused run leaves the first run's MLflow runs RUNNING
        other = subprocess.run(
            [
                sys.executable,
                "-m",
                "kubenas.cli",
                "run",
                str(_write(tmp_path, dict(TABLE))),
                "--home",
                str(tmp_path / "c"),
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert other.returncode == 0, other.stderr  # another search in the same bucket runs meanwhile
        rest = first.communicate(timeout=300)[0]
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 0, rest
    assert SearchStore.from_config(parse_config({**TRAINING, "name": "twice"})).get_json("lease.json") is None


def test_a_sigkill_of_the_whole_run_at_every_stage_then_a_run_that_completes(stack_env, tmp_path):
    """`kubenas run` SIGKILLed (run and task at once: a machine losing power) at each stage in turn, each time in a
    new run of the same search; then a run that completes. Nothing is left running, no row is lost or written
    twice, the candidates are those of a search never killed, and the registry holds one version per export that
    moved the alias, the champion the best of them. The export is killed after its registration and after its
    alias; a crash before its registration is tests/e2e/test_retries.py's (the same process state as the next
    point, one run fewer here)."""
    from kubenas import steps
    from kubenas.failpoints import POINTS
    from kubenas.tracking import COMPLETE_TAG

    config = {**TABLE, "name": "power-cut", "budget": {"rounds": 1, "candidates_per_round": 2, "parallelism": 1}}
    path = _write(tmp_path, config)
    env = {**ENV, **stack_env.env()}  # the session's stack, as services of its own: each run starts none
    for point in (*(p for p in POINTS if p != "export-before-registration"), None):
        home = tmp_path / (point or "last")
        run = subprocess.run(
            [sys.executable, "-m", "kubenas.cli", "run", str(path), "--home", str(home)],
            env={**env, "KUBENAS_FAILPOINT": point or ""},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert run.returncode == (-signal.SIGKILL if point else 0), (point, run.stdout[-2000:], run.stderr[-2000:])
        assert _gone(home) == [], point  # the watchdog stopped the task the kill left
    cfg = parse_config(config)
    ids = SearchStore.from_config(cfg).read_history().column("id").to_pylist()

    # the same search, never killed, for as many rounds (rounds only: the exports do not choose candidates)
    reference = parse_config({**config, "name": "power-cut-reference"})
    init = steps.init_search(reference.to_json(), rounds=len(ids) // 2)
    for k in range(len(ids) // 2):
        for item in steps.ask_round(init["config_json"], k, 0, init["parent_run_id"]):
            steps.train_round(init["config_json"], item)
        steps.tell_round(init["config_json"], k, 0, init["parent_run_id"])
    expected = SearchStore.from_config(reference).read_history().column("id").to_pylist()
    # rounds committed: by the runs killed at "commit" (the new history file was written) and later, and the last
    assert len(ids) == 2 * 4 and ids == expected  # 0 lost, 0 duplicated, the same candidates

    tracker = Tracker.from_config(cfg)
    runs = tracker.search_runs(f"tags.\"kubenas.search\" = '{cfg.name}'")
    assert runs and all(r["info"]["status"] != "RUNNING" for r in runs)
    tags = [{t["key"]: t["value"] for t in r["data"]["tags"]} for r in runs]
    per_candidate = Counter(t["kubenas.candidate"] for t in tags if t.get("kubenas.kind") == "candidate")
    assert sorted(per_candidate) == sorted(ids) and set(per_candidate.values()) == {1}  # one run per candidate
    versions = tracker.client.search_model_versions(f"name='{cfg.model_name}'")
    aliases = tracker.client.get_registered_model(cfg.model_name).aliases
    complete = [v for v in versions if v.tags.get(COMPLETE_TAG) == "true"]
    # the exports that moved the alias: the one killed right after it, and the last; the one killed before the
    # alias registered a version that the next export deleted
    assert len(versions) == len(complete) == 2
    accuracy = {str(v.version): tracker.client.get_run(v.run_id).data.metrics["val_acc"] for v in complete}
    assert accuracy[str(aliases["champion"])] == max(accuracy.values())
