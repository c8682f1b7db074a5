"""The pipeline in the built component image (``kubenas run --runner container``), under the manifests' security
settings: the README's example search and its champion pulled and evaluated, a one-shot search, a multi-objective
search, a task's container as the manifests set it, a failing task, and a run killed mid-round."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from kubenas import containers
from kubenas.cli import main
from kubenas.config import load_config
from kubenas.store import SearchStore
from tests.container.conftest import IMAGE
from tests.e2e.test_lifecycle import ENV, processes_under

pytestmark = pytest.mark.container
ROOT = Path(__file__).resolve().parents[2]
README_CONFIG = ROOT / "pipelines" / "configs" / "mnist1d-nb201.yaml"


def _ours(engine, label: str) -> list:
    client = engine.client()
    try:
        return client.containers.list(all=True, filters={"label": f"{containers.LABEL}={label}"})
    finally:
        client.close()


def _run_engine(out: str) -> str:
    """The podman socket a run served itself, from its first line."""
    return re.search(r"tasks run in containers of \S+ \((unix://\S+)\)", out).group(1)


def _service_alive(url: str) -> bool:
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if url in (proc / "cmdline").read_bytes().decode(errors="replace"):
                return True
        except OSError:
            pass
    return False


def test_a_task_container_runs_as_the_manifests_set_it(engine, capsys):
    """Non-root, a read-only root filesystem, no capabilities, no privilege escalation, /tmp writable; the
    credentials are in the environment; and a failing command's status comes back (kfp.local's own runner
    reports a removed container as a success)."""
    args = containers.runner_args({"AWS_SECRET_ACCESS_KEY": "s3cr3t", "PATH": "/host"}, os.getpid(), [], [])
    script = (
        "id -u; id -g; grep -E '^(CapEff|NoNewPrivs)' /proc/self/status; touch /root-write 2>/dev/null "
        "|| echo root-read-only; touch /tmp/x && echo tmp-writable; echo key=$AWS_SECRET_ACCESS_KEY; "
        "echo home=$HOME; python -c 'import kubenas.steps, torch; print(\"imports-ok\")'; exit 3"
    )
    client = engine.client()
    try:
        status = containers.run_container(client, IMAGE, ["sh", "-c", script], {}, **args)
    finally:
        client.close()
    out = capsys.readouterr().out.split()
    assert status == 3
    assert out[:2] == ["10001", "10001"]
    assert "CapEff:" in out and out[out.index("CapEff:") + 1] == "0000000000000000"
    assert out[out.index("NoNewPrivs:") + 1] == "1"
    assert {"root-read-only", "tmp-writable", "key=s3cr3t", "home=/tmp/home", "imports-ok"} <= set(out)
    assert _ours(engine, containers.label_value(os.getpid())) == []  # removed after its status was read


def test_the_readme_search_runs_in_containers_and_its_champion_is_pulled_and_evaluated(engine, tmp_path, capsys):
    """The README's example, every task in the image, on a podman service the run starts and stops itself."""
    home = tmp_path / "home"
    assert main(["run", str(README_CONFIG), "--runner", "container", "--image", IMAGE, "--home", str(home)]) == 0
    out = capsys.readouterr().out
    assert "registered mnist1d-nb201 version 1 as champion" in out
    url = _run_engine(out)
    assert not _service_alive(url) and not Path(url[len("unix://") :]).parent.exists()
    runs = list((home / "pipeline_root").iterdir())
    assert runs and all(r.stat().st_uid == 10001 for r in runs)  # written by the image's user, not root
    for key in [k for k in os.environ if k.startswith(("AWS_", "MLFLOW_"))]:  # the stopped stack's addresses
        del os.environ[key]
    assert main(["up", "--home", str(home)]) == 0  # as the README says: pull from the stack of `kubenas up`
    try:
        assert main(["pull", "mnist1d-nb201", "-o", str(tmp_path / "model"), "--home", str(home), "--evaluate"]) == 0
    finally:
        assert main(["down", "--home", str(home)]) == 0
    pulled = capsys.readouterr().out
    assert "pulled mnist1d-nb201 v1 (@champion)" in pulled and "(matches the logged value)" in pulled, pulled
    assert processes_under(home) == []


def _config(tmp_path, config) -> Path:
    path = tmp_path / f"{config['name']}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _run_on(engine, monkeypatch, path: Path, home: Path) -> None:
    """Run on the session's stack (stack_env) and engine: the run starts neither of its own."""
    monkeypatch.setenv("DOCKER_HOST", engine.url)
    assert main(["run", str(path), "--runner", "container", "--image", IMAGE, "--home", str(home)]) == 0


def test_a_oneshot_search_runs_in_containers(engine, stack_env, tmp_path, monkeypatch, capsys):
    path = _config(
        tmp_path,
        {
            "name": "ctr-oneshot",
            "seed": 0,
            "dataset": {"name": "mnist1d"},
            "space": {
                "name": "nb201",
                "options": {"width": 4, "ops": ["skip_connect", "nor_conv_1x1", "avg_pool_3x3"]},
            },
            "oneshot": {"method": "random_sampling", "epochs": 1, "candidates": 4, "recalibration_batches": 1},
            "budget": {"rounds": 1},
            "export": {"epochs": 1, "registered_model": "ctr-oneshot"},
        },
    )
    _run_on(engine, monkeypatch, path, tmp_path / "home")
    out = capsys.readouterr().out
    store = SearchStore.from_config(load_config(path))
    rows = store.read_history().to_pylist()
    assert len(rows) == 4 and {r["status"] for r in rows} == {"ok"}
    assert store.get_json("export.json")["candidate_id"] == max(rows, key=lambda r: r["val_acc"])["id"]
    assert "ranked with a random_sampling supernet" in out and "registered ctr-oneshot version 1" in out


def test_a_multi_objective_search_runs_in_containers(engine, stack_env, tmp_path, monkeypatch, capsys):
    path = _config(
        tmp_path,
        {
            "name": "ctr-pareto",
            "seed": 1,
            "dataset": {"name": "mnist1d"},
            "space": {"name": "nb201", "options": {"width": 4}},
            "strategy": {
                "name": "nsga2",
                "options": {
                    "population_size": 4,
                    "objectives": [{"metric": "val_acc", "mode": "max"}, {"metric": "params", "mode": "min"}],
                },
            },
            "fidelity": {"epochs": 1},
            "budget": {"rounds": 2, "candidates_per_round": 4, "parallelism": 2},
            "export": {"epochs": 1, "pick": "knee", "registered_model": "ctr-pareto"},
        },
    )
    _run_on(engine, monkeypatch, path, tmp_path / "home")
    out = capsys.readouterr().out
    store = SearchStore.from_config(load_config(path))
    rows = store.read_history().to_pylist()
    assert len(rows) == 8 and {r["status"] for r in rows} == {"ok"}
    export = store.get_json("export.json")
    assert export["front"] and "Pareto front: " in export["leaderboard"]
    assert "registered ctr-pareto version 1" in out


def test_a_killed_run_leaves_no_container_and_no_podman_service(engine, tmp_path):
    """`kubenas run --runner container` SIGKILLed while a round trains: its watchdog removes the task containers,
    stops the podman service the run started, and the stack."""
    home = tmp_path / "home"
    path = _config(
        tmp_path,
        {
            "name": "ctr-killed",
            "seed": 3,
            "dataset": {"name": "mnist1d"},
            "space": {"name": "nb201", "options": {"width": 8}},
            "strategy": {"name": "random"},
            "fidelity": {"epochs": 30},
            "export": {"epochs": 1},
            "budget": {"rounds": 1, "candidates_per_round": 2, "parallelism": 1},
        },
    )
    env = {k: v for k, v in ENV.items() if k != "DOCKER_HOST"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kubenas.cli",
            "run",
            str(path),
            "--home",
            str(home),
            "--runner",
            "container",
            "--image",
            IMAGE,
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    url, running = None, []
    try:
        for line in proc.stdout:
            if "tasks run in containers of" in line:
                url = _run_engine(line)
            if "[kubenas] round 0 (#1 of this run)" in line:
                break
        deadline = time.monotonic() + 60
        while not running and time.monotonic() < deadline:  # until the round's training task runs
            running = [
                c
                for c in _ours(engine, containers.label_value(proc.pid))
                if "train_candidates" in " ".join(c.attrs["Config"]["Cmd"]) and c.status == "running"
            ]
            time.sleep(0.2)
        os.kill(proc.pid, signal.SIGKILL)  # the run only: its containers and services are left to the watchdog
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert url is not None and len(running) == 1  # the training task's container was running
    deadline = time.monotonic() + 30
    while (_ours(engine, containers.label_value(proc.pid)) or _service_alive(url)) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _ours(engine, containers.label_value(proc.pid)) == [] and not _service_alive(url)
    deadline = time.monotonic() + 20
    while processes_under(home) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert processes_under(home) == []  # the stack, the watchdog, and every task process in a container
