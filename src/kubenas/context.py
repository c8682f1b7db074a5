"""What every pipeline step of one process shares: the search's config, parsed once, and what is built from it
(store, tracker, space, dataset, strategy, estimator), built at most once; progress lines; and ending the process
without interpreter teardown.

Importing this module costs no torch, MLflow or boto3: each is imported by the first thing that needs it.
"""

from __future__ import annotations

import atexit
import json
import os
import sys
import time
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from kubenas.config import SearchConfig, parse_config
from kubenas.lease import Lease
from kubenas.store import SearchStore
from kubenas.tracking import Registry, Tracker


def say(message: str) -> None:
    print(f"[kubenas] {message}", flush=True)


# What this process spent, by kind, when ``KUBENAS_PROFILE`` names a file to append it to (``kubenas.bench.pipeline``
# reads it): CPU and wall seconds of start-up (imports, before the step began), of training, of S3 and MLflow.
PROFILE: dict[str, Any] = {"train_cpu": 0.0, "train_wall": 0.0, "candidates": 0}


def end_promptly(task: str = "") -> None:
    """End this process as soon as the interpreter exits, skipping the 1-2 CPU-s of module teardown that torch
    and MLflow cost. Call it first in a component: its exit hook then runs after every other one (they flush
    MLflow's and KFP's work), and an uncaught exception still exits with status 1."""
    failed = []
    hook = sys.excepthook
    PROFILE.update(
        task=task, pid=os.getpid(), started=_process_start(), step_start=time.time(), startup_cpu=time.process_time()
    )
    if os.environ.get("KUBENAS_TASK_REQUESTED"):  # the container runner asked the engine for this task's container
        PROFILE["requested"] = float(os.environ["KUBENAS_TASK_REQUESTED"])
    record_path = None
    if os.environ.get("KUBENAS_TASKS_DIR"):  # a task of `kubenas run`: its cleanup can find this process
        from kubenas.stack import register_task

        record_path = register_task()

    def record(*exc_info):
        failed.append(True)
        hook(*exc_info)

    def leave():
        sys.stdout.flush()
        sys.stderr.flush()
        _write_profile()
        if record_path is not None:
            record_path.unlink(missing_ok=True)
        os._exit(1 if failed else 0)

    sys.excepthook = record
    atexit.register(leave)


def _process_start() -> float:
    """When this process started (Linux: its start in clock ticks since boot, from /proc), else now."""
    try:
        ticks = int(open("/proc/self/stat").read().rsplit(")", 1)[1].split()[19])
        uptime = float(open("/proc/uptime").read().split()[0])  # 10 ms resolution; /proc/stat's btime has 1 s
        return time.time() - uptime + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return time.time()


def _write_profile() -> None:
    path = os.environ.get("KUBENAS_PROFILE")
    if not path or "task" not in PROFILE:
        return
    ctx = next(iter(_CONTEXTS.values()), None)
    PROFILE.update(ended=time.time(), cpu=time.process_time())
    if ctx is not None:
        PROFILE.update(s3_requests=ctx.store.requests, s3_seconds=getattr(ctx.store.blobs, "seconds", 0.0))
        tracker = ctx.__dict__.get("tracker")
        if tracker is not None:
            PROFILE.update(
                mlflow_requests=getattr(tracker, "requests", 0), mlflow_seconds=getattr(tracker, "seconds", 0.0)
            )
    with open(path, "a") as fh:
        fh.write(json.dumps(PROFILE) + "\n")


_CONTEXTS: dict[str, Context] = {}


@dataclass
class Context:
    """One search as one process sees it: the config, parsed once, and what is built from it, built once."""

    cfg: SearchConfig
    store: SearchStore = field(init=False)

    def __post_init__(self) -> None:
        self.store = SearchStore.from_config(self.cfg)

    @cached_property
    def lease(self) -> Lease:
        return Lease(self.store)

    @cached_property
    def tracker(self) -> Tracker:
        return Tracker.from_config(self.cfg)

    @cached_property
    def registry(self) -> Registry:
        return Registry(self.tracker)

    @property
    def space(self):
        return self.cfg.space.build()

    @cached_property
    def search_data(self):
        """The configured dataset without its test split: what a search may look at."""
        return self.full_data.without_test()

    @cached_property
    def full_data(self):
        from kubenas.data import load_dataset

        data = load_dataset(self.cfg.dataset.name, **self.cfg.dataset.options)
        for note in data.notes:
            say(note)
        return data

    def strategy(self, *, prefilter: bool = False):
        """The configured strategy; with ``prefilter`` (where it asks) and ``strategy.prefilter`` set, wrapped so
        that a zero-cost proxy on the training split picks the best of each pool of proposals."""
        cfg = self.cfg
        strategy = cfg.new_strategy()
        pf = cfg.strategy.prefilter
        if prefilter and pf is not None:
            from kubenas.estimators.zero_cost import proxy_scorer
            from kubenas.strategies.prefilter import prefilter

            scorer = proxy_scorer(pf.proxy, self.space, self.search_data, cfg.seed, pf.batch_size)
            strategy = prefilter(strategy, scorer, pf.pool)
        return strategy

    def estimator(self, *, train: bool = False):
        """The search's estimator, as the config's ``estimator`` section selects it from the registry
        (:data:`kubenas.estimators.ESTIMATORS`). With ``train`` (the export, which always retrains the winner):
        plain training with the export's recipe."""
        from kubenas.estimators import ESTIMATORS, make_estimator

        section = self.cfg.estimator.model_dump()
        if train:
            return ESTIMATORS["training"].load().from_config({**section, "recipe": self.cfg.export_recipe()})
        return make_estimator(section, store=self.store)

    def pin_threads(self, alone: bool = False) -> None:
        """Use this task's share of the CPU: torch would take every core it sees, and parallel training tasks on
        one machine (kfp.local) or node would then fight over them; more threads than cores slows an epoch
        many times over (measured: 4 threads on 2 cores made a DARTS epoch 17x slower). Under `kubenas run`
        the tasks share this machine: its cores over ``budget.parallelism`` (all of them for a task that runs
        ``alone``, the export). On a cluster: the pod's ``resources.cpu``, at most the cores it sees."""
        threads = thread_share(self.cfg, alone)
        if "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(threads)
        else:  # read by torch when it is imported; a task that never trains never pays for the import
            os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(threads)


def thread_share(cfg: SearchConfig, alone: bool = False) -> int:
    """The torch threads of one task of ``cfg`` (see :meth:`Context.pin_threads`). ``KUBENAS_CPUS`` caps the cores
    a `kubenas run` counts as its own, where something else runs beside it (another search, a test worker)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    cap = os.environ.get("KUBENAS_CPUS")
    if cap:
        if not cap.isdigit() or int(cap) < 1:
            raise ValueError(f"KUBENAS_CPUS must be a positive integer (the cores this run may use), got {cap!r}")
        cores = min(cores, int(cap))
    share = cores if alone else cores / cfg.budget.parallelism
    cpu = cfg.resources.cpu
    if cpu and not os.environ.get("KUBENAS_RUN_PID"):  # a pod: its request, but never more than the cores it sees
        share = min(float(cpu[:-1]) / 1000 if cpu.endswith("m") else float(cpu), cores)
    return max(1, int(share))


def context(config_json: str) -> Context:
    """The context of a config, parsed and validated once per process."""
    if config_json not in _CONTEXTS:
        _CONTEXTS[config_json] = Context(parse_config(config_json))
    return _CONTEXTS[config_json]
