"""``kubenas run --runner container``: every task of the local pipeline runs in the component image, through
``kfp.local.DockerRunner``, under the settings the manifests give kubenas's pods.

- **Engine.** ``DOCKER_HOST`` when set; else podman, whose Docker-compatible API this run serves itself
  (``podman system service`` on a private socket in a temporary folder, stopped with the run); else Docker's socket.
- **Security** (``manifests/``): user 10001:10001, a read-only root filesystem, a ``/tmp`` tmpfs as the only
  scratch space (``HOME`` is ``/tmp/home``), every capability dropped, no privilege escalation.
- **Network and credentials.** Tasks use the host's network, so they reach the embedded stack on loopback. The
  S3 and MLflow credentials go in as environment variables; the command line holds only the task's inputs.
- **Files.** The pipeline root is mounted at its own path (kfp.local's rule; it is made writable by the task
  user), the dataset cache likewise, and a dataset's local files read-only.
- **Cleanup.** Every container carries the run's label; the run removes its containers when it ends, and its
  watchdog does if the run is killed (:func:`cleanup`, from the record :func:`record` leaves in the run's folder).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubenas.core import UserError

LABEL = "io.kubenas.run"  # value: "<host>/<pid of kubenas run>"
USER = "10001:10001"  # the image's user; the manifests' runAsUser and runAsGroup
TMP_SIZE = "2g"  # the manifests' /tmp emptyDir sizeLimit
DOCKER_SOCKET = "/var/run/docker.sock"
RECORD = "engine.record"  # JSON; not *.json, which stop_tasks reads as task records
# The variables a task may need from the run's environment; nothing else of the host's goes in.
PASSED_ENV = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_DEFAULT_REGION",
    "MLFLOW_TRACKING_URI",
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_TRACKING_TOKEN",
    "MLFLOW_TRACKING_INSECURE_TLS",
    "KUBENAS_RUN_PID",
    "KUBENAS_RUN_PIDNS",
    "KUBENAS_FAILPOINT",
    "KUBENAS_PROFILE",
    "KUBENAS_CACHE",
)


class ContainerError(UserError, RuntimeError):
    """The container runner cannot start: no engine, or no image."""


@dataclass
class Engine:
    """A Docker API endpoint, and the podman service this run started to serve it (or None)."""

    url: str
    service_pgid: int | None = None
    socket_dir: str | None = None

    def client(self, timeout: int = 60, version: str | None = None):
        import docker

        return docker.DockerClient(base_url=self.url, timeout=timeout, version=version)

    def stop(self) -> None:
        from kubenas.procs import stop_group

        if self.service_pgid is not None:
            stop_group(self.service_pgid)
            self.service_pgid = None
        if self.socket_dir is not None:
            shutil.rmtree(self.socket_dir, ignore_errors=True)
            self.socket_dir = None


def start_engine(log: Path, timeout: float = 30.0) -> Engine:
    """The Docker API this run uses: ``DOCKER_HOST``; else a podman service of its own; else Docker's socket."""
    from kubenas.procs import spawn

    if os.environ.get("DOCKER_HOST"):
        engine = Engine(os.environ["DOCKER_HOST"])
    elif shutil.which("podman"):
        folder = tempfile.mkdtemp(prefix="kubenas-podman-")  # short: a socket's path has at most 107 bytes
        url = f"unix://{folder}/podman.sock"
        pgid = spawn(["podman", "system", "service", "--time=0", url], log, dict(os.environ))
        engine = Engine(url, pgid, folder)
        deadline = time.monotonic() + timeout
        while not _answers(engine):
            if time.monotonic() > deadline:
                engine.stop()
                raise ContainerError(f"podman's API service did not answer within {timeout:.0f} s (see {log})")
            time.sleep(0.1)
        return engine
    elif Path(DOCKER_SOCKET).exists():
        engine = Engine(f"unix://{DOCKER_SOCKET}")
    else:
        raise ContainerError(
            "--runner container needs podman or docker: neither is installed (and DOCKER_HOST is "
            "not set). Install podman (`apt-get install -y podman runc`), or use the default "
            "--runner subprocess"
        )
    if not _answers(engine):
        raise ContainerError(f"no container engine answers at {engine.url}: is the docker daemon running?")
    return engine


def _answers(engine: Engine) -> bool:
    try:
        client = engine.client(timeout=5)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:  # noqa: BLE001 - not up yet, or not there
        return False


def check_image(engine: Engine, image: str) -> None:
    """Fail before any task starts when ``image`` is neither in the engine's store nor pullable."""
    import docker

    client = engine.client()
    try:
        client.images.get(image)
        return
    except docker.errors.ImageNotFound:
        pass
    finally:
        client.close()
    client = engine.client(timeout=600)
    try:
        print(f"kubenas: pulling {image}", flush=True)
        client.images.pull(image)
    except docker.errors.APIError as exc:
        raise ContainerError(
            f"image {image!r} is not in the engine's store and could not be pulled ({exc.explanation or exc}). "
            "Build it from this checkout: images/build.sh REPO --variant cpu, then pass --image REPO:"
            f"{image.rsplit(':', 1)[-1]} (images/README.md)"
        ) from None
    finally:
        client.close()


def label_value(pid: int) -> str:
    return f"{socket.gethostname()}/{pid}"


def runner_args(env: dict[str, str], pid: int, writable: list[Path], readable: list[Path]) -> dict[str, Any]:
    """``kfp.local.DockerRunner``'s arguments: the manifests' security settings, the host network, the task's
    environment, and the mounts (each at its own path)."""
    from docker.types import Mount

    environment = {k: v for k, v in env.items() if k in PASSED_ENV and v}
    environment["HOME"] = "/tmp/home"
    # a folder before the folders inside it: a later mount would hide an earlier one below it
    paths = sorted(
        {**{p: True for p in readable}, **{p: False for p in writable}}.items(), key=lambda i: len(i[0].parts)
    )
    mounts = [Mount(str(p), str(p), type="bind", read_only=ro) for p, ro in paths]
    return {
        "network_mode": "host",
        "user": USER,
        "read_only": True,
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
        "tmpfs": {"/tmp": f"rw,size={TMP_SIZE},mode=1777"},
        "environment": environment,
        "labels": {LABEL: label_value(pid)},
        "mounts": mounts,
    }


def share(path: Path) -> Path:
    """Make a folder the task user (uid 10001) can write: it is mounted alone, at its own path, so the host's
    folders above it (a private ``~/.kubenas``) stay as they are."""
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o777)
    return path


def run_container(client, image: str, command: list[str], volumes: dict[str, Any], **args: Any) -> int:
    """Run one task's container and return its exit status. kfp.local's own version starts it with
    ``auto_remove``; podman then removes an exited container before its status is read, and kfp.local takes the
    missing container for a success (measured: ``exit 3`` came back as 0). Here the container is removed only
    after its status is read. ``KUBENAS_TASK_REQUESTED`` lets the task's profile time its cold start."""
    import docker

    args["environment"] = {**args.get("environment", {}), "KUBENAS_TASK_REQUESTED": repr(time.time())}
    try:
        container = client.containers.run(image=image, command=command, detach=True, volumes=volumes, **args)
    except docker.errors.APIError as exc:  # the task failed to start: a failed task, as `docker run` says (125)
        print(f"error: the container engine could not start the task in {image}: {exc.explanation or exc}", flush=True)
        return 125
    try:
        for line in container.logs(stream=True, follow=True):
            print(line.decode(errors="replace"), end="")
        return int(container.wait()["StatusCode"])
    finally:
        with contextlib.suppress(Exception):
            container.remove(force=True)


@contextlib.contextmanager
def kfp_runs_containers(engine: Engine) -> Iterator[None]:
    """While open, kfp.local's DockerRunner runs each task on ``engine`` with :func:`run_container`.

    kfp.local's own handler asks the engine for its API version and its host information before every task:
    podman answers each in 0.2-0.3 s (measured: 0.33 s and 0.22 s), some 10 s of an 85 s example search. Both are
    asked once here. The volumes are kfp.local's own (the pipeline root, and its workspace if any)."""
    from kfp.local import docker_task_handler, status

    client = engine.client()
    try:
        version = client.version()["ApiVersion"]
        selinux = "name=selinux" in client.info().get("SecurityOptions", [])
    finally:
        client.close()

    def run(handler) -> status.Status:
        volumes = handler.get_volumes_to_mount()  # without a client: no per-task SELinux question
        if selinux:
            for volume in volumes.values():
                volume["mode"] += ",z"
        args = dict(handler.runner.container_run_args)
        if handler.env_vars:  # the task's variables, with the runner's merged in (kfp.local's task dispatcher)
            args["environment"] = handler.env_vars
        task_client = engine.client(version=version)
        try:
            code = run_container(task_client, handler.image, handler.full_command, volumes, **args)
        finally:
            task_client.close()
        return status.Status.SUCCESS if code == 0 else status.Status.FAILURE

    original = docker_task_handler.DockerTaskHandler.run
    docker_task_handler.DockerTaskHandler.run = run
    try:
        yield
    finally:
        docker_task_handler.DockerTaskHandler.run = original


def record(run_dir: Path, engine: Engine, pid: int) -> None:
    """Leave what the run's watchdog needs to remove the run's containers and stop its podman service."""
    (run_dir / RECORD).write_text(
        json.dumps(
            {
                "url": engine.url,
                "service_pgid": engine.service_pgid,
                "socket_dir": engine.socket_dir,
                "label": label_value(pid),
            }
        )
    )


def remove_containers(engine: Engine, pid: int | None = None, label: str | None = None) -> int:
    """Force-remove the containers of the run ``pid`` (by their label); returns how many."""
    client = engine.client(timeout=30)
    try:
        found = client.containers.list(all=True, filters={"label": f"{LABEL}={label or label_value(pid)}"})
        for container in found:
            with contextlib.suppress(Exception):
                container.remove(force=True)
        return len(found)
    finally:
        client.close()


def cleanup(run_dir: Path) -> int:
    """The watchdog's part: remove the containers of a run that ended without doing so, then stop its podman
    service. Returns how many containers were removed."""
    path = Path(run_dir) / RECORD
    if not path.exists():
        return 0
    data = json.loads(path.read_text())
    engine = Engine(data["url"], data.get("service_pgid"), data.get("socket_dir"))
    removed = 0
    try:
        removed = remove_containers(engine, label=data["label"])
    except Exception as exc:  # noqa: BLE001 - the engine may be gone; still stop the service
        print(f"could not remove the run's containers at {engine.url}: {exc}", file=sys.stderr, flush=True)
    engine.stop()
    path.unlink(missing_ok=True)
    return removed
