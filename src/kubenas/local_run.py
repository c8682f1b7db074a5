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
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from kubenas import stack as local_stack
from kubenas.config import ConfigError, SearchConfig
from kubenas.data import check_source
from kubenas.data.parquet import endpoint_from_env
from kubenas.store import SearchStore
from kubenas.tracking import Tracker

# Lines of kfp.local's output shown without --verbose: kubenas's own progress and task/pipeline outcomes.
_SHOWN = re.compile(r"\[kubenas\]|finished with status|Inner task failed|Error|error:")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


@dataclass
class RunReport:
    summary: dict | None
    seconds: float
    stack_seconds: float
    log: Path
    evaluations: int = 0
    train_seconds: float = 0.0  # candidate training summed over tasks (they run `parallelism` at a time), or the
    # supernet's training in a one-shot search


class _Filter(io.TextIOBase):
    """A stdout that copies everything to a log file and shows only the lines that matter."""

    def __init__(self, out: TextIO, log: TextIO, verbose: bool):
        self.out, self.log, self.verbose, self._buf = out, log, verbose, ""

    def write(self, text: str) -> int:
        self.log.write(text)
        self._buf += text
        *lines, self._buf = self._buf.split("\n")
        for line in lines:
            if self.verbose:
                self.out.write(line + "\n")
            elif _SHOWN.search(line):
                self.out.write(_ANSI.sub("", line.strip()) + "\n")
        self.out.flush()
        return len(text)

    def flush(self) -> None:
        self.log.flush()
        self.out.flush()


def _in_s3(path) -> bool:
    paths = path.values() if isinstance(path, dict) else [path]
    return any(isinstance(p, str) and p.startswith("s3://") for p in paths)


def _check_source(config: SearchConfig) -> None:
    try:
        check_source(config.dataset.name, **config.dataset.options)
    except ValueError as exc:
        raise ConfigError(f"dataset.options.path: {exc}") from None


def has_gpu() -> bool:
    """Whether this machine has an NVIDIA GPU, from its device files (without importing torch)."""
    return Path("/dev/nvidiactl").exists() or any(Path("/dev").glob("nvidia[0-9]*"))


def external_services(config: SearchConfig) -> bool:
    """True when the environment or the config already names an S3 endpoint and an MLflow server."""
    s3 = config.storage.endpoint_url or endpoint_from_env()
    mlflow = config.tracking.uri or os.environ.get("MLFLOW_TRACKING_URI")
    return bool(s3 and mlflow)


def run(config: SearchConfig, home: Path | None = None, verbose: bool = False, rounds: int | None = None) -> RunReport:
    """Run the search's pipeline locally; returns the export summary and timings."""
    import kfp.local

    from kubenas.pipelines import build_pipeline

    home = Path(home or local_stack.DEFAULT_HOME).expanduser()
    if config.resources.gpus and not has_gpu():
        print(f"kubenas: warning: resources.gpus is {config.resources.gpus}, but this machine has no NVIDIA GPU: "
              "kfp.local trains on the CPU (the request applies on a cluster)", file=sys.stderr, flush=True)
    external = external_services(config)
    # the dataset's files are checked before any stack starts, unless they are in the stack's own S3
    early = external or not _in_s3(config.dataset.options.get("path"))
    if early:
        _check_source(config)
    (home / "logs").mkdir(parents=True, exist_ok=True)
    # kfp.local sets the root logger to INFO; boto's INFO chatter ("Found credentials...") is not progress.
    for name in ("botocore", "boto3", "urllib3"):
        logging.getLogger(name).setLevel(logging.WARNING)
    started = time.perf_counter()
    own_stack = None
    if not external:
        running = local_stack.load(home)
        if running is not None and running.alive():
            print(f"using the local stack started by `kubenas up` (MLflow {running.mlflow_uri})", flush=True)
            os.environ.update(running.env())
        else:
            own_stack = local_stack.start(home)
            os.environ.update(own_stack.env())
    stack_seconds = time.perf_counter() - started
    log_path = home / "logs" / f"run-{config.name}-{time.strftime('%Y%m%d-%H%M%S')}.log"
    try:
        # Fail fast, before any task starts: the same checks init runs, here with clear messages.
        store = SearchStore.from_config(config)
        store.check()
        Tracker.from_config(config).check()
        if not early:
            _check_source(config)
        before = store.last_committed_round()
        kfp.local.init(runner=kfp.local.SubprocessRunner(use_venv=False), pipeline_root=str(home / "pipeline_root"))
        pipeline = build_pipeline(config)
        original_print = builtins.print  # kfp.local swaps print per task; parallel tasks can leave it swapped
        with open(log_path, "w") as log, contextlib.redirect_stdout(_Filter(sys.stdout, log, verbose)), \
                warnings.catch_warnings():
            if not verbose:  # kfp.local warns, per task, that pod settings and the image do not apply locally
                warnings.filterwarnings("ignore", module=r"kfp\.")
            try:
                pipeline(config_json=config.to_json(), rounds=rounds or config.budget.rounds,
                         candidates_per_round=config.budget.candidates_per_round)
            finally:
                builtins.print = original_print
        summary = store.get_json("export.json")
        rows = [r for r in store.read_history().to_pylist() if r["round"] > before]
        supernet = sum(row["cost"] for r in sorted({r["round"] for r in rows}) for row in store.read_results(r, 0)
                       ) if config.oneshot is not None else None
    finally:
        if own_stack is not None:
            own_stack.stop()
    return RunReport(summary, time.perf_counter() - started, stack_seconds, log_path, evaluations=len(rows),
                     train_seconds=supernet if supernet is not None else sum(r["train_seconds"] or 0.0 for r in rows))
