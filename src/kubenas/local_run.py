"""``kubenas run``: the same pipeline function, run by ``kfp.local`` against the embedded stack.

If ``MLFLOW_TRACKING_URI`` and an S3 endpoint (``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL`` or the config's
``storage.endpoint_url``) are set, they are used and nothing is started. Otherwise a stack started by
``kubenas up`` is used, or one is started for this run and stopped at its end, also on failure or Ctrl-C.
"""

from __future__ import annotations

import builtins
import contextlib
import io
import logging
import os
import re
import shutil
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from kubenas import containers, history
from kubenas import stack as local_stack
from kubenas.config import SearchConfig
from kubenas.context import Context
from kubenas.data.s3 import endpoint_from_env, in_s3
from kubenas.lease import Lease, pid_namespace
from kubenas.rounds import rounds as search_rounds
from kubenas.store import SearchStore
from kubenas.tracking import Tracker

# Lines of kfp.local's output shown without --verbose: kubenas's own progress and task/pipeline outcomes.
_SHOWN = re.compile(r"\[kubenas\]|finished with status|Inner task failed|Error|error:|LeaseHeld")
_STARTED = re.compile(r"\[kubenas\] round \d+ worker \d+ candidate (\S+): training \(")  # for the live view only
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


@dataclass
class RunReport:
    summary: dict | None
    seconds: float
    stack_seconds: float
    log: Path
    evaluations: int = 0
    train_seconds: float = 0.0  # the training behind this run's rows (kubenas.rounds.Rounds.train_seconds)
    work: str = ""  # what the run did, in words (kubenas.rounds.Rounds.describe)
    stopped_stack: Path | None = None  # the home of the stack this run started and stopped at its end
    reports: dict[str, Path] = field(default_factory=dict)  # "search" (the last round's), "winner": HTML pages
    top: list[dict] = field(default_factory=list)  # the search's best rows, best first


class Progress:
    """Where a local run stands, read from its steps' lines: rounds done of this run's total, the open round's
    candidates, failures, the best so far and the time left (the mean round so far times the rounds left).

    On a terminal it is a status bar (rich) under the lines as they stream; elsewhere (a pipe, a log, CI) a
    ``progress:`` line after every committed round."""

    _OPEN = re.compile(r"\[kubenas\] round (\d+) \(#(\d+) of this run\): (\d+) candidate")
    _SUPERNET = re.compile(r"\[kubenas\] round (\d+): train the \w+ supernet")
    _DONE = re.compile(r"\[kubenas\] round \d+ worker \d+ candidate (\S+): (?:(FAILED)|\w+=(-?[\d.]+(?:e-?\d+)?))")
    _COMMITTED = re.compile(r"\[kubenas\] round (\d+) committed: .*best \S+ (-?[\d.]+|none yet)")
    _EXPORT = re.compile(r"\[kubenas\] export: (retraining|seed \S+ epoch (\d+)/(\d+))")

    def __init__(self, rounds: int, metric: str, clock=time.monotonic):
        self.rounds, self.metric, self.clock = rounds, metric, clock
        self.started = clock()
        self.done_rounds, self.open_round, self.trained, self.failed = 0, None, 0, 0
        self.round_size, self.best, self.phase = 0, None, "starting"
        self.candidates: dict[str, str] = {}  # the open round's: id -> "training", its value, or "FAILED"

    def see(self, line: str) -> str | None:
        """Take one line of output; returns a progress line to print when a round is committed."""
        if m := self._OPEN.search(line):
            self.open_round, self.round_size, self.phase = int(m.group(1)), int(m.group(3)), "round"
            self.candidates = {}
        elif m := self._SUPERNET.search(line):
            self.open_round, self.round_size, self.phase = int(m.group(1)), 0, "supernet"
            self.candidates = {}
        elif m := _STARTED.search(line):
            self.candidates[m.group(1)] = "training"
        elif m := self._DONE.search(line):
            self.trained += 1
            self.failed += bool(m.group(2))
            self.candidates[m.group(1)] = "FAILED" if m.group(2) else f"{self.metric} {float(m.group(3)):.4f}"
        elif m := self._COMMITTED.search(line):
            self.done_rounds += 1
            if m.group(2) != "none yet":
                self.best = float(m.group(2))
            return "[kubenas] progress: " + self.text()
        elif m := self._EXPORT.search(line):
            self.phase = "export" if m.group(2) is None else f"export epoch {m.group(2)}/{m.group(3)}"
        return None

    def view(self, rows: int = 12):
        """The live view: the status line, and the open round's candidates (training first, then the latest)."""
        from rich.console import Group
        from rich.spinner import Spinner
        from rich.table import Table

        table = Table(box=None, show_header=False, pad_edge=False)
        order = sorted(self.candidates.items(), key=lambda kv: kv[1] != "training")
        for cid, state in order[:rows]:
            style = "yellow" if state == "training" else ("red" if state == "FAILED" else "green")
            table.add_row(f"  {cid}", f"[{style}]{state}[/{style}]")
        return Group(Spinner("dots", text=self.text()), table) if self.candidates else Spinner("dots", text=self.text())

    def left(self) -> float | None:
        """Seconds left for this run's rounds, from the mean round so far (None before the first round ends)."""
        if not self.done_rounds:
            return None
        return (self.clock() - self.started) / self.done_rounds * max(0, self.rounds - self.done_rounds)

    def text(self) -> str:
        parts = [f"{self.done_rounds} of {self.rounds} round(s) done"]
        done = sum(state != "training" for state in self.candidates.values())  # of the open round
        if self.phase == "round" and self.open_round is not None and done < self.round_size:
            parts.append(f"round {self.open_round}: {done}/{self.round_size} candidate(s) trained")
        elif self.phase.startswith("export") or self.phase == "supernet":
            parts.append(self.phase if self.phase != "supernet" else f"round {self.open_round}: training the supernet")
        parts.append(f"{self.trained} evaluated ({self.failed} failed)")
        parts.append(f"best {self.metric} {self.best:.4f}" if self.best is not None else "no best yet")
        parts.append(f"{self.clock() - self.started:.0f} s elapsed")
        left = self.left()
        if left is not None and self.done_rounds < self.rounds:
            parts.append(f"about {left:.0f} s left before the export")
        return ", ".join(parts)


class _Filter(io.TextIOBase):
    """A stdout that copies everything to a log file and shows only the lines that matter, with the run's
    :class:`Progress`: a live status bar on a terminal, a line per round elsewhere."""

    def __init__(self, out: TextIO, log: TextIO, verbose: bool, progress: Progress | None = None):
        self.out, self.log, self.verbose, self._buf, self.progress = out, log, verbose, "", progress
        self.live = None
        if progress is not None and out.isatty():
            from rich.console import Console
            from rich.live import Live

            self.live = Live(progress.view(), console=Console(file=out), refresh_per_second=4, transient=True)
            self.live.start()

    def write(self, text: str) -> int:
        self.log.write(text)
        self._buf += text
        *lines, self._buf = self._buf.split("\n")
        for line in lines:
            quiet = not self.verbose and (_STARTED.search(line) or not _SHOWN.search(line))
            shown = None if quiet else (line if self.verbose else _ANSI.sub("", line.strip()))
            extra = self.progress.see(line) if self.progress is not None else None
            if self.live is not None:
                if shown is not None:
                    self.live.console.print(shown, markup=False, highlight=False, soft_wrap=True)
                self.live.update(self.progress.view())
                continue
            if shown is not None:
                self.out.write(shown + "\n")
            if extra is not None:
                self.out.write(extra + "\n")
        self.out.flush()
        return len(text)

    def close(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None

    def flush(self) -> None:
        self.log.flush()
        self.out.flush()


def _stack_for_run(home: Path, me: int):
    """The stack this run uses: a running one of ``kubenas up`` (returns None: not this run's to stop), else a new
    one it owns. A stack left by a run that died is stopped first; one in use by a live run, or half down, is
    refused, never started a second time over the same data."""
    running = local_stack.load(home)
    if running is not None:
        alive = running.running()
        if running.owner is None and running.alive():
            print(f"using the local stack started by `kubenas up` (MLflow {running.mlflow_uri})", flush=True)
            os.environ.update(running.env())
            return None
        if running.owner is not None and running.owner_alive():
            raise local_stack.StackError(
                f"{running.describe()} is in use by that run; wait for it to end, or give this run another --home"
            )
        if running.owner is None and alive:
            dead = [n for n in local_stack.SERVERS if n not in alive]
            raise local_stack.StackError(
                f"{running.describe()} is half down: {', '.join(dead)} exited, "
                f"{', '.join(alive)} still runs. Stop it with `kubenas down --home {home}` "
                "(then `kubenas up` again, or let `kubenas run` start one)"
            )
        if alive:
            print(
                f"kubenas: stopping {running.describe()}: that run ended without stopping it",
                file=sys.stderr,
                flush=True,
            )
        running.stop(grace=2.0)
    stack = local_stack.start(home, owner=me)
    os.environ.update(stack.env())
    return stack


def _close_runs(config: SearchConfig) -> None:
    """After a failure or Ctrl-C: end the search's MLflow runs still RUNNING as KILLED (best effort: the next run
    of the search closes whatever is left)."""
    try:
        closed = Tracker.from_config(config).close_running(config.name)
    except Exception as exc:  # noqa: BLE001 - the run already failed; say why this did not help, and go on
        print(
            f"kubenas: could not end the search's MLflow runs ({exc}); the next run of {config.name!r} will",
            file=sys.stderr,
            flush=True,
        )
        return
    if closed:
        print(
            f"kubenas: ended {closed} MLflow run(s) of {config.name!r} left RUNNING, as KILLED",
            file=sys.stderr,
            flush=True,
        )


def _release_lease(config: SearchConfig, me: int) -> None:
    """After a failure or Ctrl-C: give up the search's lease if this run holds it (best effort: a lease whose
    local run has ended is taken over by the next run anyway)."""
    try:
        Lease(SearchStore.from_config(config)).release(pid=me)
    except Exception:  # noqa: BLE001 - S3 may be what failed
        pass


def has_gpu() -> bool:
    """Whether this machine has an NVIDIA GPU, from its device files (without importing torch)."""
    return Path("/dev/nvidiactl").exists() or any(Path("/dev").glob("nvidia[0-9]*"))


def external_services(config: SearchConfig) -> bool:
    """True when the environment or the config already names an S3 endpoint and an MLflow server."""
    s3 = config.storage.endpoint_url or endpoint_from_env()
    mlflow = config.tracking.uri or os.environ.get("MLFLOW_TRACKING_URI")
    return bool(s3 and mlflow)


RUNNERS = ("subprocess", "container")


def run(
    config: SearchConfig,
    home: Path | None = None,
    verbose: bool = False,
    rounds: int | None = None,
    runner: str = "subprocess",
    image: str | None = None,
) -> RunReport:
    """Run the search's pipeline locally; returns the export summary and timings. ``runner``: "subprocess" runs
    every task as a process of this Python; "container" runs it in the component image ``image`` (default: the
    config's, else kubenas's for this version) under the manifests' security settings (:mod:`kubenas.containers`)."""
    import kfp.local

    from kubenas.components.image import image_for
    from kubenas.pipelines import build_pipeline

    home = Path(home or local_stack.DEFAULT_HOME).expanduser()
    if runner not in RUNNERS:
        raise ValueError(f"runner must be one of {', '.join(RUNNERS)}, got {runner!r}")
    if config.resources.gpus and runner == "container":
        print(
            f"kubenas: warning: resources.gpus is {config.resources.gpus}, but the container runner gives tasks no "
            "GPU: they train on the CPU (the request applies on a cluster)",
            file=sys.stderr,
            flush=True,
        )
    elif config.resources.gpus and not has_gpu():
        print(
            f"kubenas: warning: resources.gpus is {config.resources.gpus}, but this machine has no NVIDIA GPU: "
            "kfp.local trains on the CPU (the request applies on a cluster)",
            file=sys.stderr,
            flush=True,
        )
    external = external_services(config)
    # the dataset's files are checked before any stack starts, unless they are in the stack's own S3
    early = external or not any(in_s3(s) for s in config.dataset.info.sources)
    if early:
        config.check_data_source()
    (home / "logs").mkdir(parents=True, exist_ok=True)
    # kfp.local sets the root logger to INFO; boto's INFO chatter ("Found credentials...") is not progress.
    for name in ("botocore", "boto3", "urllib3"):
        logging.getLogger(name).setLevel(logging.WARNING)
    started, since = time.perf_counter(), time.time()
    me = os.getpid()
    watchdog = local_stack.watch_run(home, me)  # stops what this run started if it dies, even by SIGKILL
    tasks = local_stack.run_dir(home, me)
    own_stack, ok, cache_set, engine, launched = None, False, False, None, False
    try:
        if runner == "container":  # the engine and the image are checked before the stack starts
            engine, image = _container_engine(home, tasks, me, image or image_for(0, config.resources.image))
        if not external:
            own_stack = _stack_for_run(home, me)
        stack_seconds = time.perf_counter() - started
        log_path = home / "logs" / f"run-{config.name}-{time.strftime('%Y%m%d-%H%M%S')}.log"
        # Fail fast, before any task starts: the same checks init runs, here with clear messages.
        store = SearchStore.from_config(config)
        store.check()
        Lease(store).check()  # another run of this search is going on: refuse before starting anything
        tracker = Tracker.from_config(config)
        tracker.check()
        if not early:
            config.check_data_source()
        before = store.last_committed_round()
        original_print = builtins.print  # kfp.local swaps print per task; parallel tasks can leave it swapped
        os.environ[local_stack.TASKS_ENV] = str(tasks)
        cache_set = "KUBENAS_CACHE" not in os.environ  # generated datasets live with the run's other data
        if cache_set:
            os.environ["KUBENAS_CACHE"] = str(home / "cache")
        os.environ["KUBENAS_RUN_PID"] = str(me)  # the search's lease names this run
        os.environ["KUBENAS_RUN_PIDNS"] = pid_namespace() or ""  # where that pid means this run
        pipeline_root = home / "pipeline_root"
        if engine is None:
            task_runner = kfp.local.SubprocessRunner(use_venv=False)
        else:
            task_runner = kfp.local.DockerRunner(**_container_args(config, home, pipeline_root, cache_set, me))
        kfp.local.init(runner=task_runner, pipeline_root=str(pipeline_root))
        # a local failure is rarely transient: fail at once
        pipeline = build_pipeline(config, retries=0, image=image if engine is not None else None)
        progress = Progress(rounds or config.budget.rounds, config.objective.metric)
        shown = _Filter(sys.stdout, open(log_path, "w"), verbose, progress)
        with (
            contextlib.closing(shown),
            contextlib.closing(shown.log),
            contextlib.redirect_stdout(shown),
            warnings.catch_warnings(),
        ):
            if not verbose:  # kfp.local warns, per task, that pod settings and the image do not apply locally
                warnings.filterwarnings("ignore", module=r"kfp\.")
            try:
                launched = True  # from here on, MLflow runs and the lease may be this run's
                with containers.kfp_runs_containers(engine) if engine is not None else contextlib.nullcontext():
                    pipeline(
                        config_json=config.to_json(),
                        rounds=rounds or config.budget.rounds,
                        candidates_per_round=config.budget.candidates_per_round,
                    )
            finally:
                builtins.print = original_print
        summary = store.get_json("export.json")
        reports = collect_reports(home, config.name, since)
        every = history.rows(store.read_history())
        top = history.ranked(every, config.objective.metric, config.objective.mode)[:5]
        rows = [r for r in every if r["round"] > before]
        method = search_rounds(Context(config))
        seconds = method.train_seconds(rows)
        work = method.describe(rows, seconds)
        ok = True
    finally:
        os.environ.pop(local_stack.TASKS_ENV, None)
        if cache_set:
            os.environ.pop("KUBENAS_CACHE", None)
        os.environ.pop("KUBENAS_RUN_PID", None)
        os.environ.pop("KUBENAS_RUN_PIDNS", None)
        local_stack.stop_tasks(tasks)  # a task still running after Ctrl-C or a failure
        if engine is not None:  # and its containers, then the podman service this run started
            containers.cleanup(tasks)
        if not ok and launched:  # a run refused before its tasks (another run's lease) touches no one's runs
            _close_runs(config)
            _release_lease(config, me)
        if own_stack is not None:
            own_stack.stop()
        local_stack.stop_group(watchdog)
        shutil.rmtree(tasks, ignore_errors=True)
    return RunReport(
        summary,
        time.perf_counter() - started,
        stack_seconds,
        log_path,
        evaluations=len(rows),
        train_seconds=seconds,
        work=work,
        stopped_stack=home if own_stack is not None else None,
        reports=reports,
        top=top,
    )


def _container_engine(home: Path, tasks: Path, me: int, image: str):
    """Start (or find) the container engine, leave the watchdog its record, and check the image is there."""
    engine = containers.start_engine(home / "logs" / "podman.log")
    containers.record(tasks, engine, me)
    try:
        containers.check_image(engine, image)
    except BaseException:
        containers.cleanup(tasks)
        raise
    print(f"kubenas: tasks run in containers of {image} ({engine.url})", flush=True)
    return engine, image


def _container_args(config: SearchConfig, home: Path, pipeline_root: Path, own_cache: bool, me: int) -> dict:
    """DockerRunner's arguments for this run: the pipeline root and the cache (if the run's own) made writable by
    the task user; a dataset's local files mounted read-only, with the working directory for relative paths."""
    containers.share(pipeline_root)  # kfp.local mounts it itself
    writable = []
    cache = Path(os.environ["KUBENAS_CACHE"])
    if own_cache:
        containers.share(cache)
    if cache.is_dir():
        writable.append(cache)
    if os.environ.get("KUBENAS_PROFILE"):
        writable.append(Path(os.environ["KUBENAS_PROFILE"]).parent)
    readable, relative = [], False
    for p in config.dataset.info.sources:
        if not in_s3(p):
            relative |= not Path(p).is_absolute()
            readable.append(Path(p).resolve().parent)
    if relative:
        readable.append(Path.cwd())
    args = containers.runner_args(dict(os.environ), me, writable, sorted(set(readable)))
    if relative:
        args["working_dir"] = str(Path.cwd())
    return args


def collect_reports(home: Path, name: str, since: float) -> dict[str, Path]:
    """The HTML reports this run's tasks wrote (kfp.local keeps each output in a file named after it, without an
    extension), copied to ``HOME/reports/NAME/``: ``search.html`` (the last round's) and ``winner.html``."""
    from kubenas.components import STAGES

    kinds = {stage.task: stage.report for stage in STAGES.values() if stage.report}
    written = [p for p in (home / "pipeline_root").glob("*/*/report") if p.stat().st_mtime >= since - 1]
    newest = {}
    for path in sorted(written, key=lambda p: p.stat().st_mtime):
        kind = kinds.get(re.sub(r"-\d+$", "", path.parent.name))  # kfp.local numbers a task's later copies
        if kind is not None:
            newest[kind] = path
    out = {}
    folder = home / "reports" / name
    for kind, path in newest.items():
        if path.stat().st_size:
            folder.mkdir(parents=True, exist_ok=True)
            out[kind] = folder / f"{kind}.html"
            shutil.copyfile(path, out[kind])
    return out
