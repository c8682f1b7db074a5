"""The container runner's settings, without an engine: they are the manifests' security settings, the task's
environment carries credentials but nothing else of the host's, mounts come parent first, and the run's record
survives the task cleanup that runs before it. (tests/container runs them in real containers.)"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
import yaml

from kubenas import containers, stack
from kubenas.cli import main
from kubenas.lease import pid_namespace
from kubenas.lease import stale as lease_stale

ROOT = Path(__file__).resolve().parents[2]


def _mlflow_pod():
    docs = yaml.safe_load_all((ROOT / "manifests" / "base" / "mlflow.yaml").read_text())
    deployment = next(d for d in docs if d and d["kind"] == "Deployment")
    return deployment["spec"]["template"]["spec"]


def test_runner_args_are_the_manifests_security_settings():
    pod = _mlflow_pod()
    container = pod["containers"][0]["securityContext"]
    args = containers.runner_args({}, 123, [], [])
    uid, gid = (int(x) for x in args["user"].split(":"))
    assert (uid, gid) == (pod["securityContext"]["runAsUser"], pod["securityContext"]["runAsGroup"]) and uid != 0
    assert args["read_only"] is container["readOnlyRootFilesystem"] is True
    assert args["cap_drop"] == container["capabilities"]["drop"] == ["ALL"]
    assert container["allowPrivilegeEscalation"] is False and "no-new-privileges" in args["security_opt"]
    # /tmp is the only scratch space, of the manifests' size
    tmp = next(v for v in pod["volumes"] if v["name"] == "tmp")
    assert args["tmpfs"] == {"/tmp": f"rw,size={tmp['emptyDir']['sizeLimit'][:-2].lower()}g,mode=1777"}
    assert args["environment"]["HOME"].startswith("/tmp/")
    assert args["network_mode"] == "host"  # the embedded stack listens on loopback


def test_the_task_environment_has_the_credentials_and_nothing_else_of_the_hosts():
    env = {
        "AWS_ACCESS_KEY_ID": "key",
        "AWS_SECRET_ACCESS_KEY": "secret",
        "AWS_ENDPOINT_URL_S3": "http://127.0.0.1:1",
        "MLFLOW_TRACKING_URI": "http://127.0.0.1:2",
        "KUBENAS_RUN_PID": "77",
        "PATH": "/host/bin",
        "SSH_AUTH_SOCK": "/run/agent",
        "DOCKER_HOST": "unix:///x",
        "MLFLOW_TRACKING_PASSWORD": "",
    }
    args = containers.runner_args(env, 77, [], [])
    assert args["environment"] == {
        "AWS_ACCESS_KEY_ID": "key",
        "AWS_SECRET_ACCESS_KEY": "secret",
        "AWS_ENDPOINT_URL_S3": "http://127.0.0.1:1",
        "MLFLOW_TRACKING_URI": "http://127.0.0.1:2",
        "KUBENAS_RUN_PID": "77",
        "HOME": "/tmp/home",
    }
    assert args["labels"] == {containers.LABEL: containers.label_value(77)}
    assert "command" not in args and "secret" not in json.dumps(
        {k: v for k, v in args.items() if k != "environment"}, default=str
    )


def test_mounts_come_parent_first_and_keep_their_mode(tmp_path):
    inner, outer, data = tmp_path / "a" / "b" / "cache", tmp_path / "a", tmp_path / "data"
    args = containers.runner_args({}, 1, [inner], [outer, data])
    got = [(m["Target"], m["Source"], m["ReadOnly"]) for m in args["mounts"]]
    assert [t for t, _, _ in got][0] in (str(outer), str(data)) and got[-1] == (str(inner), str(inner), False)
    assert {(t, ro) for t, _, ro in got} == {(str(outer), True), (str(data), True), (str(inner), False)}


def test_share_makes_only_the_mounted_folder_writable(tmp_path):
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    folder = containers.share(home / "pipeline_root")
    assert folder.stat().st_mode & 0o777 == 0o777 and home.stat().st_mode & 0o777 == 0o700


def test_the_engine_record_survives_the_task_cleanup(tmp_path):
    """stop_tasks reads every *.json of the run's folder as a task; the engine's record must not be one of them."""
    engine = containers.Engine("unix:///nonexistent/podman.sock")
    containers.record(tmp_path, engine, os.getpid())
    stack.stop_tasks(tmp_path)
    assert (tmp_path / containers.RECORD).exists()
    assert json.loads((tmp_path / containers.RECORD).read_text())["label"] == containers.label_value(os.getpid())


def test_a_lease_pid_from_another_pid_namespace_is_not_judged_here():
    """A task in a container writes the lease with the host run's pid, which it cannot see: the pid is checked only
    in the namespace the lease names."""
    import socket

    dead = 2**22 + 17  # above the default pid_max: no such process
    base = {"host": socket.gethostname(), "pid": dead, "expires": time.time() + 60}
    assert "has ended" in lease_stale({**base, "pidns": pid_namespace()}, time.time())
    assert lease_stale({**base, "pidns": "pid:[1]"}, time.time()) is None
    assert "has ended" in lease_stale(base, time.time())  # a lease written before namespaces were recorded


def test_image_needs_the_container_runner(capsys):
    assert main(["run", str(ROOT / "pipelines" / "configs" / "mnist1d-nb201.yaml"), "--image", "x:1"]) == 2
    assert "--image applies to --runner container only" in capsys.readouterr().err


def test_without_an_engine_the_error_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # no podman
    monkeypatch.setattr(containers, "DOCKER_SOCKET", str(tmp_path / "docker.sock"))
    with pytest.raises(containers.ContainerError, match="needs podman or docker"):
        containers.start_engine(tmp_path / "podman.log")
