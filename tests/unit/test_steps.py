"""The pipeline steps on the in-memory store: no server, milliseconds a step.

The steps run in one process here, each through a fresh :class:`Context` as a separate pod would get; the store's
blobs are shared as S3 is. MLflow is replaced by a recorder of kubenas's own tracking calls.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid

import pytest

from kubenas import context as contexts
from kubenas import steps
from kubenas.config import ConfigError, parse_config
from kubenas.core import Result
from kubenas.store import MemoryBlobs, SearchStore


def config(**budget) -> dict:
    """A search answered by the shipped benchmark table: real steps, no training."""
    from kubenas.estimators.tabular import TabularEstimator

    protocol = TabularEstimator("nb201-4op-mnist1d").protocol
    return {
        "name": "unit",
        "dataset": {"name": protocol["dataset"]},
        "space": {"name": protocol["space"], "options": protocol["space_options"]},
        "strategy": {"name": "regularized_evolution", "options": {"population_size": 4, "sample_size": 2}},
        "estimator": {"table": "nb201-4op-mnist1d"},
        "fidelity": {"epochs": protocol["epochs"]},
        "budget": {"rounds": 100, "candidates_per_round": 6, "parallelism": 2, **budget},
    }


class Recorder:
    """kubenas's tracking interface, in memory: what a step would send to MLflow."""

    def __init__(self):
        self.runs: dict[str, dict] = {}

    def start_candidate(self, parent_id, candidate, round_index, config, genotype, run_id=None):
        if run_id is not None:  # opened again
            self.runs[run_id]["status"] = "RUNNING"
            return run_id
        run_id = f"run-{uuid.uuid4().hex}"  # workers may run in threads
        self.runs[run_id] = {"parent": parent_id, "name": candidate["id"], "status": "RUNNING", "round": round_index}
        return run_id

    def candidate_runs(self, search, round_index, parent_id):
        return {
            r["name"]: {"run_id": run_id, "status": r["status"]}
            for run_id, r in self.runs.items()
            if r["round"] == round_index
        }

    def finish_candidate(self, run_id, row):
        self.runs[run_id]["status"] = "FINISHED" if row["status"] == "ok" else "FAILED"

    def log_round(self, parent_id, round_index, values):
        pass

    def log_epoch(self, run_id, epoch, values):
        self.runs[run_id].setdefault("epochs", []).append(epoch)

    def log_dataset(self, run_id, data, config, context):
        self.runs[run_id]["dataset"] = (data.name, data.digest(), context)

    def log_report(self, run_id, report, folder="report"):
        self.reports = [*getattr(self, "reports", []), report]


def test_the_recorder_and_the_tracker_keep_one_interface():
    import inspect

    from kubenas.tracking import RoundTracking, Tracker

    methods = [n for n, f in vars(RoundTracking).items() if inspect.isfunction(f) and not n.startswith("_")]
    assert len(methods) == 7
    for name in methods:
        signatures = [
            list(inspect.signature(getattr(cls, name)).parameters) for cls in (Recorder, Tracker, RoundTracking)
        ]
        assert signatures[0] == signatures[1] == signatures[2], name


@pytest.fixture
def search(monkeypatch):
    """Steps wired to one in-memory store and recorder: ``search(cfg)`` returns (config JSON, store, recorder)."""
    blobs, recorder = MemoryBlobs(), Recorder()

    def make(cfg: dict):
        parsed = parse_config(cfg)

        def context(config_json: str):
            ctx = steps.Context(parse_config(config_json))
            ctx.store = SearchStore.in_memory(ctx.cfg.name, blobs=blobs)
            ctx.tracker = recorder
            return ctx

        monkeypatch.setattr(contexts, "context", context)
        monkeypatch.setattr(steps, "context", context)
        return parsed.to_json(), SearchStore.in_memory(parsed.name, blobs=blobs), recorder

    return make


def run_round(cfg_json: str, k: int, start: int = 0) -> str:
    items = steps.ask_round(cfg_json, k, start, "parent")
    for item in items:
        steps.train_round(cfg_json, item)
    return steps.tell_round(cfg_json, k, start, "parent")


def test_a_round_splits_its_candidates_over_the_workers(search):
    cfg_json, store, recorder = search(config(candidates_per_round=5, parallelism=2))
    items = steps.ask_round(cfg_json, 0, 0, "parent")
    assert items == ["00000/0", "00000/1"]
    asked = [c["id"] for c in store.read_asked(0)["candidates"]]
    # one worker after the other: the first takes the whole queue (a table answers at once: in asked order)
    rows = [steps.train_round(cfg_json, item) for item in items]
    assert [r["id"] for r in rows[0]] == asked and rows[1] == []
    assert steps.tell_round(cfg_json, 0, 0, "parent") == "continue"
    assert store.read_history().column("id").to_pylist() == asked  # committed in asked order
    # every candidate got its own MLflow run, opened before training and closed after it
    assert sorted(r["name"] for r in recorder.runs.values()) == sorted(asked)
    assert {r["status"] for r in recorder.runs.values()} == {"FINISHED"}


def test_workers_at_the_same_time_share_the_round_and_train_each_candidate_once(search, monkeypatch):
    import threading
    import time

    cfg_json, store, recorder = search(config(candidates_per_round=8, parallelism=2))
    items = steps.ask_round(cfg_json, 0, 0, "parent")
    estimator_type = type(steps.context(cfg_json).estimator())
    original, slow = estimator_type.evaluate, {c["id"] for c in store.read_asked(0)["candidates"][:2]}
    by_worker: dict[str, list[str]] = {}

    def evaluate(self, arch, *args, **kwargs):  # the first two candidates are slow to train
        by_worker.setdefault(threading.current_thread().name, []).append(kwargs["candidate_id"])
        time.sleep(0.3 if kwargs["candidate_id"] in slow else 0.02)
        return original(self, arch, *args, **kwargs)

    monkeypatch.setattr(estimator_type, "evaluate", evaluate)
    out = {}
    threads = [
        threading.Thread(target=lambda item=item: out.setdefault(item, steps.train_round(cfg_json, item)), name=item)
        for item in items
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    trained = [r["id"] for rows in out.values() for r in rows]
    assert sorted(trained) == sorted(c["id"] for c in store.read_asked(0)["candidates"])  # each exactly once
    assert {item: [r["id"] for r in rows] for item, rows in out.items()} == by_worker  # rows are the worker's own
    # each worker took one slow candidate first; the other six went to whichever was free
    assert all(len(set(ids) & slow) == 1 for ids in by_worker.values())
    assert len(recorder.runs) == 8


def test_training_workers_take_the_costliest_candidates_first(search, monkeypatch):
    from kubenas.estimators.training import TrainingEstimator, estimated_cost

    cfg = config(candidates_per_round=5, parallelism=1)
    cfg["estimator"] = {"recipe": {"batch_size": 32}}
    cfg["dataset"] = {"name": "mnist1d"}
    cfg_json, store, recorder = search(cfg)
    [item] = steps.ask_round(cfg_json, 0, 0, "parent")
    order = []
    monkeypatch.setattr(
        TrainingEstimator,
        "evaluate",
        lambda self, arch, space, data, fidelity, **kw: (
            order.append(kw["candidate_id"]) or Result(kw["candidate_id"], "ok", {"val_acc": 0.5}, cost=0.0)
        ),
    )
    steps.train_round(cfg_json, item)
    ctx = steps.context(cfg_json)
    fidelity = ctx.cfg.fidelity.to_fidelity()
    cost = {
        c["id"]: estimated_cost(c["arch"], ctx.space, ctx.search_data, fidelity)
        for c in store.read_asked(0)["candidates"]
    }
    assert sorted(order) == sorted(cost) and len(set(cost.values())) > 1
    assert [cost[i] for i in order] == sorted(cost.values(), reverse=True)


def test_estimated_cost_grows_with_the_operations_epochs_and_data():
    from kubenas.core import Fidelity
    from kubenas.data import load_dataset
    from kubenas.estimators.training import estimated_cost
    from kubenas.spaces import make_space

    space = make_space("nb201", width=8, cells_per_stage=1)
    data = load_dataset("mnist1d")
    edges = space.sample(0)
    convs = {k: "nor_conv_3x3" for k in edges} if isinstance(edges, dict) else None
    light = {k: "skip_connect" for k in edges} if isinstance(edges, dict) else None
    assert convs is not None, "the NB-201 architecture is a dict of edges"
    heavy = estimated_cost(convs, space, data, Fidelity(epochs=1))
    assert heavy > estimated_cost(light, space, data, Fidelity(epochs=1)) > 0
    assert estimated_cost(convs, space, data, Fidelity(epochs=4)) == 4 * heavy
    assert estimated_cost(convs, space, data, Fidelity(epochs=1, data_fraction=0.5)) == heavy / 2
    assert estimated_cost({"bad": "arch"}, space, data, Fidelity(epochs=1)) == 0.0


def test_a_retried_worker_trains_only_what_it_had_not(search, monkeypatch):
    cfg_json, store, recorder = search(config(candidates_per_round=4, parallelism=1))
    [item] = steps.ask_round(cfg_json, 0, 0, "parent")
    ctx = steps.context(cfg_json)
    estimator_type = type(ctx.estimator())
    calls = []
    original = estimator_type.evaluate

    def crash_on_third(self, arch, *args, **kwargs):
        calls.append(kwargs["candidate_id"])
        if len(calls) == 3:
            raise MemoryError("the pod is killed")
        return original(self, arch, *args, **kwargs)

    monkeypatch.setattr(estimator_type, "evaluate", crash_on_third)
    with pytest.raises(MemoryError):
        steps.train_round(cfg_json, item)
    assert len(store.read_results(0, 0)) == 2  # what it trained before the crash is kept
    rows = steps.train_round(cfg_json, item)  # the retried pod
    assert len(rows) == 4 and len(calls) == 5  # 2 before, the one in progress again, then the last one
    # the candidate in progress at the crash is logged again in the run its first attempt opened
    assert sorted(r["name"] for r in recorder.runs.values()) == sorted(r["id"] for r in rows)
    assert {r["status"] for r in recorder.runs.values()} == {"FINISHED"}
    assert [r["id"] for r in rows] == [c["id"] for c in store.read_asked(0)["candidates"]]


def test_requests_and_state_do_not_grow_with_the_rounds(search, monkeypatch):
    monkeypatch.setattr(steps.rounds, "report_round", lambda *args: None)  # pictures make no S3 request; 68 cost 18 s
    cfg_json, store, _ = search(config())
    requests, state_bytes = {}, {}
    for k in range(68):
        before = store.requests
        steps.ask_round(cfg_json, k, 0, "parent")
        sample = store.requests - before
        for item in [f"{k:05d}/0", f"{k:05d}/1"]:
            steps.train_round(cfg_json, item)
        before = store.requests
        assert steps.tell_round(cfg_json, k, 0, "parent") == "continue"
        requests[k] = (sample, store.requests - before)
        state_bytes[k] = len(json.dumps(store.read_committed().state))
    # sample: read the lease, list and read the history, write the round; update: the same three reads, the round, a
    # listing of the workers' results and each file (one here: the workers ran one after the other, so the first
    # took the whole round; two workers at once make it 9), then the new history file and the deletion of the old one
    assert requests[1] == requests[67] == (4, 8), requests
    assert state_bytes[67] < 1.5 * state_bytes[10], state_bytes  # the state holds no copy of the 400 results
    assert list(store.blobs.objects).count(store.key("history/rounds-00000-00067.parquet")) == 1
    assert [k for k in store.list("history/")] == ["history/rounds-00000-00067.parquet"]
    assert store.read_history().num_rows == 68 * 6


def test_patience_stops_after_rounds_without_improvement(search):
    cfg_json, store, _ = search(config(patience=2, candidates_per_round=2))
    decisions = []
    while "stop" not in decisions:
        decisions.append(run_round(cfg_json, len(decisions)))
    rows = store.read_history().to_pylist()
    best = [max(r["val_acc"] for r in rows if r["round"] == k and r["status"] == "ok") for k in range(len(decisions))]
    incumbent = [max(best[: i + 1]) for i in range(len(best))]
    # it stops at the first round that is the second in a row without a better best value
    expected = next(r for r in range(2, len(incumbent)) if incumbent[r] == incumbent[r - 2])
    assert len(decisions) - 1 == expected and len(decisions) < 100


def test_max_evals_asks_no_more_than_the_budget(search):
    cfg_json, store, _ = search(config(max_evals=8, candidates_per_round=5))
    assert run_round(cfg_json, 0) == "continue"
    assert run_round(cfg_json, 1) == "stop"
    assert store.read_history().num_rows == 8


def test_a_history_that_stored_each_metric_twice_resumes(search):
    # before kubenas.history, a row kept its metrics both in their columns and in the metrics JSON
    import io
    import json

    import pyarrow as pa
    import pyarrow.compute  # noqa: F401 - pa.compute
    import pyarrow.parquet as pq

    cfg_json, store, _ = search(config())
    run_round(cfg_json, 0)
    committed = store.read_committed()
    table = committed.table
    assert all("val_acc" not in json.loads(m) for m in table.column("metrics").to_pylist())  # stored once
    doubled = table.set_column(
        table.schema.get_field_index("metrics"),
        "metrics",
        pa.array([json.dumps(r["metrics"], sort_keys=True) for r in committed.rows]),
    )
    buf = io.BytesIO()
    pq.write_table(doubled.replace_schema_metadata({b"kubenas.state": json.dumps(committed.state).encode()}), buf)
    store.put_bytes(committed.files[0][1], buf.getvalue())
    again = store.read_committed()
    assert again.rows == committed.rows  # the same rows, read from either layout
    assert run_round(cfg_json, 1) == "continue"
    assert store.list("history/") == ["history/rounds-00000-00001.parquet"]
    rewritten = store.read_history()
    assert rewritten.column("round").to_pylist() == [0] * 6 + [1] * 6
    stored = rewritten.filter(pa.compute.equal(rewritten.column("round"), 1)).column("metrics").to_pylist()
    assert all("val_acc" not in json.loads(m) for m in stored)  # new rows store each metric once
    assert [r for r in store.read_committed().rows if r["round"] == 0] == committed.rows  # old rows read the same


SUBPROCESS = """
import json, sys
from kubenas import steps
from kubenas.config import ConfigError, parse_config
from kubenas.store import MemoryBlobs, SearchStore

class Silent:
    def candidate_runs(self, *args):  # no run opened before
        return {}

    def __getattr__(self, name):  # every other tracking call answers, and sends nothing
        return lambda *args, **kwargs: "run"

blobs = MemoryBlobs()
def context(config_json):
    ctx = steps.Context(parse_config(config_json))
    ctx.store, ctx.tracker = SearchStore.in_memory(ctx.cfg.name, blobs=blobs), Silent()
    return ctx
steps.context = context
import kubenas.context
kubenas.context.context = context
cfg_json = parse_config(json.loads(sys.argv[1])).to_json()
items = steps.ask_round(cfg_json, 0, 0, "parent")
assert len(items) == 2
rows = [row for item in items for row in steps.train_round(cfg_json, item)]  # the table answers
assert len(rows) == 6 and {row["status"] for row in rows} == {"ok"}
assert steps.tell_round(cfg_json, 0, 0, "parent") == "continue"
print(json.dumps(sorted(m for m in ("torch", "mlflow", "scipy") if m in sys.modules)))
"""


def test_sample_train_on_a_table_and_update_import_neither_torch_nor_mlflow():
    # a fresh process, as a pipeline task is: a real sample, both workers answered by the table, and the update;
    # then a look at what they imported (a table needs no dataset, so no torch)
    out = subprocess.run(
        [sys.executable, "-c", SUBPROCESS, json.dumps(config())], check=True, capture_output=True, text=True
    ).stdout
    assert json.loads(out.splitlines()[-1]) == []


def test_a_process_builds_the_space_and_strategy_once(search, monkeypatch):
    import kubenas.config as config_module
    import kubenas.spaces as spaces_module

    built = {"space": 0, "strategy": 0}
    make_space, make_strategy = config_module.make_space, config_module.make_strategy

    def count(kind, fn):
        def wrapped(*args, **kwargs):
            built[kind] += 1
            return fn(*args, **kwargs)

        return wrapped

    monkeypatch.setattr(config_module, "make_space", count("space", make_space))
    monkeypatch.setattr(config_module, "make_strategy", count("strategy", make_strategy))
    assert spaces_module.make_space is not config_module.make_space
    cfg_json, _, _ = search(config())
    built.update(space=0, strategy=0)
    steps.ask_round(cfg_json, 0, 0, "parent")  # parse, validate and ask, as a sample task does
    assert built == {"space": 1, "strategy": 1}


def test_a_round_sampled_again_with_fewer_workers_trains_what_is_left_once(search, monkeypatch):
    cfg_json, store, _ = search(config(candidates_per_round=6, parallelism=3))
    assert len(steps.ask_round(cfg_json, 0, 0, "parent")) == 3
    first = steps.train_round(cfg_json, "00000/2")  # one worker of three ran, then the run died
    assert len(first) == 6  # alone, it took every candidate
    # the round is sampled again by a run with parallelism 1; the trained candidates are not trained again
    blobs = store.blobs
    cfg_json, store, _ = search(config(candidates_per_round=6, parallelism=1))
    store.blobs = blobs
    assert steps.ask_round(cfg_json, 0, 0, "parent") == ["00000/0"]
    assert steps.train_round(cfg_json, "00000/0") == []
    assert steps.tell_round(cfg_json, 0, 0, "parent") == "continue"
    assert sorted(store.read_history().column("id").to_pylist()) == sorted(r["id"] for r in first)


def test_a_process_builds_its_estimator_once(search):
    from kubenas.estimators.tabular import TabularEstimator

    cfg_json, _, _ = search(config())
    ctx = steps.context(cfg_json)  # the config's checks built the table's estimator
    assert ctx.estimator() is TabularEstimator.load("nb201-4op-mnist1d")


def test_the_leaderboard_of_a_oneshot_ranking_shows_no_epochs():
    cfg = parse_config({**config(), "name": "board"})
    row = {"id": "00000-a", "round": 0, "epochs": None, "metrics": {"val_acc": 0.5}, "cost": 1.0, "genotype": "|a|b|"}
    summary = {
        "candidate_id": "00000-a",
        "retrained_metric": "val_acc",
        "val_acc": 0.5,
        "test_acc": 0.4,
        "model_name": "m",
        "version": "1",
        "alias": "champion",
    }
    board = steps.leaderboard(cfg, [row], summary)
    assert "| 1 | `00000-a` | 0 | - | 0.5000 |" in board and "None" not in board
    assert "`\\|a\\|b\\|`" in board  # the genotype's pipes do not split the table


def test_every_update_draws_the_search_so_far_and_a_retried_one_draws_it_again(search, tmp_path):
    cfg_json, store, recorder = search(config())
    for k in range(2):
        for item in steps.ask_round(cfg_json, k, 0, "parent"):
            steps.train_round(cfg_json, item)
        page = tmp_path / f"round-{k}.html"
        assert steps.tell_round(cfg_json, k, 0, "parent", str(page)) == "continue"
        assert page.read_text().count('data-figure="progress"') == 1
    first, second = recorder.reports
    assert first.title.endswith("after round 0") and second.title.endswith("after round 1")
    assert "12 evaluation(s) (0 failed)" in second.summary and "Best so far: val_acc **" in second.summary
    assert len(first.table["data"]) == 6 and len(second.table["data"]) == 10
    best = max(store.read_history().column("val_acc").to_pylist())
    assert second.table["data"][0][6] == best  # the leaderboard's first row is the best committed one
    # KFP retries the update after it committed: nothing is committed again, and the page is drawn again
    again = tmp_path / "again.html"
    assert steps.tell_round(cfg_json, 1, 0, "parent", str(again)) == "continue"
    assert recorder.reports[-1].table == second.table and again.read_text().count("data-figure") == 1
    assert store.committed_rounds() == [0, 1]


def test_a_candidate_streams_each_epoch_to_its_run_while_it_trains(search):
    cfg_json, _, recorder = search(
        {
            "name": "stream",
            "dataset": {"name": "digits"},
            "space": {"name": "chain", "options": {"max_depth": 2}},
            "strategy": {"name": "random"},
            "fidelity": {"epochs": 3},
            "budget": {"rounds": 1, "candidates_per_round": 2, "parallelism": 1},
        }
    )
    seen = []
    recorder.log_epoch = lambda run_id, epoch, values: seen.append(
        (recorder.runs[run_id]["status"], epoch, sorted(values))
    )
    [item] = steps.ask_round(cfg_json, 0, 0, "parent")
    rows = steps.train_round(cfg_json, item)
    assert [r["status"] for r in rows] == ["ok", "ok"]
    assert seen == [("RUNNING", e, ["train_loss", "val_acc", "val_loss"]) for _ in rows for e in (1, 2, 3)]
    assert [r["streamed_epochs"] for r in rows] == [3, 3]  # so that the run's end does not log them twice
    assert all(run["status"] == "FINISHED" for run in recorder.runs.values())
    assert {run["dataset"][0::2] for run in recorder.runs.values()} == {("digits", "training")}


def test_the_run_forms_typed_fields_take_precedence_and_a_bad_one_names_its_field():
    base = parse_config(
        {**config(), "strategy": {"name": "regularized_evolution", "options": {"population_size": 4, "sample_size": 2}}}
    ).to_json()
    cfg = steps.with_overrides(base, 3, 2, name="renamed", seed=7, strategy="random", epochs=4, data_fraction=0.5)
    assert (cfg.name, cfg.seed, cfg.strategy.name, cfg.strategy.options) == ("renamed", 7, "random", {})
    assert (cfg.fidelity.epochs, cfg.fidelity.data_fraction, cfg.budget.rounds, cfg.budget.candidates_per_round) == (
        4,
        0.5,
        3,
        2,
    )
    same = steps.with_overrides(base, strategy="regularized_evolution", name="")  # unchanged: options kept
    assert same.strategy.options == {"population_size": 4, "sample_size": 2} and same.name == "unit"
    summary = steps.form_summary(cfg, base)
    assert "`name`: 'unit' → 'renamed'" in summary and "`epochs`: 3 → 4" in summary and "`seed`: 0 → 7" in summary
    for field, value, named in (
        ("epochs", 0, "fidelity.epochs"),
        ("data_fraction", 1.5, "fidelity.data_fraction"),
        ("strategy", "simulated_annealing", "strategy"),
        ("name", "Bad Name!", "name"),
    ):
        with pytest.raises(ConfigError, match=rf"(?s)run form.s values.*{re.escape(named)}"):
            steps.with_overrides(base, **{field: value})


def test_a_goal_stops_the_search_at_the_first_round_that_reaches_it(search):
    from kubenas.estimators.tabular import TabularEstimator

    rows = TabularEstimator("nb201-4op-mnist1d").rows.values()
    goal = sorted(r["val_acc"] for r in rows)[-40]  # reached within a few rounds, not at once
    cfg_json, store, _ = search(config(goal=goal, candidates_per_round=2))
    decisions = []
    while "stop" not in decisions:
        decisions.append(run_round(cfg_json, len(decisions)))
    history = store.read_history().to_pylist()
    best = [max(r["val_acc"] for r in history if r["round"] <= k) for k in range(len(decisions))]
    assert best[-1] >= goal and all(b < goal for b in best[:-1]) and len(decisions) < 100


def test_max_failed_stops_the_search_once_that_many_candidates_failed():
    from kubenas.config import parse_config
    from kubenas.steps.rounds import stop_reason

    cfg = parse_config(config(max_failed=3))
    ok = {"round": 0, "status": "ok", "metrics": {"val_acc": 0.5}}
    failed = {"round": 0, "status": "failed", "metrics": {}}
    assert stop_reason(cfg, [ok, failed, failed], [ok], 0, 0) is None
    assert stop_reason(cfg, [ok, failed, failed, failed], [ok], 0, 0) == (
        "3 candidate(s) failed: max_failed (3) reached"
    )
    minimise = parse_config({**config(goal=0.2), "objective": {"metric": "val_acc", "mode": "min"}})
    assert stop_reason(minimise, [ok], [ok], 0, 0) is None
    assert stop_reason(minimise, [ok, {**ok, "metrics": {"val_acc": 0.2}}], [ok], 0, 0) == (
        "the goal is reached: val_acc 0.2 (<= 0.2)"
    )


def test_a_task_never_runs_more_torch_threads_than_its_share_of_the_cores(monkeypatch):
    import os

    from kubenas.config import parse_config
    from kubenas.context import thread_share

    cores = len(os.sched_getaffinity(0))
    monkeypatch.delenv("KUBENAS_CPUS", raising=False)  # as the suite's workers set it
    local = parse_config({**config(parallelism=2), "resources": {"cpu": "64"}})
    monkeypatch.setenv("KUBENAS_RUN_PID", "1")  # under `kubenas run`: the tasks share this machine
    assert thread_share(local) == max(1, cores // 2) and thread_share(local, alone=True) == cores
    monkeypatch.delenv("KUBENAS_RUN_PID")  # a pod: its request, at most the cores it sees
    assert thread_share(local) == cores
    assert thread_share(parse_config({**config(), "resources": {"cpu": "500m"}})) == 1
    assert thread_share(parse_config({**config(parallelism=1), "resources": {"cpu": "1"}})) == 1
    monkeypatch.setenv("KUBENAS_CPUS", "1")  # another process shares the machine
    assert thread_share(local, alone=True) == 1
    monkeypatch.setenv("KUBENAS_CPUS", "two")
    with pytest.raises(ValueError, match="KUBENAS_CPUS must be a positive integer"):
        thread_share(local)
