"""The S3 store's commit rules, and bad input failing fast against a real stack."""

from __future__ import annotations

import time

import pytest
import yaml

from kubenas import steps
from kubenas.cli import main
from kubenas.config import parse_config
from kubenas.store import SearchStore, StoreError

CONFIG = {
    "name": "rerun",
    "dataset": {"name": "digits"},
    "space": {"name": "chain", "options": {"max_depth": 2}},
    "strategy": {"name": "random"},
    "fidelity": {"epochs": 1},
    "budget": {"rounds": 3, "candidates_per_round": 2, "parallelism": 1},
}


def test_an_uncommitted_round_rerun_duplicates_nothing(stack_env):
    init = steps.init_search(parse_config(CONFIG).to_json())
    cfg_json, parent = init["config_json"], init["parent_run_id"]
    store = SearchStore.from_config(parse_config(CONFIG))

    items = steps.ask_round(cfg_json, 0, 0, parent)
    assert items == ["00000/0"]  # parallelism 1: one worker trains both candidates
    asked = [c["id"] for c in store.read_asked(0)["candidates"]]
    first = steps.train_round(cfg_json, items[0])
    # the pod dies here: the round has results but no commit; the next attempt starts the round again
    assert store.last_committed_round() == -1
    again = steps.ask_round(cfg_json, 0, 0, parent)
    assert again == items and [c["id"] for c in store.read_asked(0)["candidates"]] == asked  # deterministic ids
    assert steps.train_round(cfg_json, again[0]) == first  # the retried worker keeps what it trained
    assert steps.tell_round(cfg_json, 0, 0, parent) == "continue"
    rows = store.read_history()
    assert rows.num_rows == 2 and sorted(rows.column("id").to_pylist()) == sorted(asked)

    # a failed training task leaves no result: the round still commits, with the candidates marked failed
    items = steps.ask_round(cfg_json, 1, 0, parent)
    steps.tell_round(cfg_json, 1, 0, parent)
    rows = store.read_history().to_pylist()
    assert [r["status"] for r in rows if r["round"] == 1] == ["failed", "failed"]
    assert any(r["error"] == "no result: the training task failed" for r in rows)
    assert store.committed_rounds() == [0, 1]


def test_resuming_with_another_space_is_refused(stack_env):
    steps.init_search(parse_config({**CONFIG, "name": "identity"}).to_json())
    changed = parse_config({**CONFIG, "name": "identity", "space": {"name": "chain", "options": {"max_depth": 3}}})
    with pytest.raises(ValueError, match="already exists .* with different space"):
        steps.init_search(changed.to_json())


def test_a_search_stored_by_an_older_version_resumes(stack_env):
    cfg = parse_config({**CONFIG, "name": "older"})
    steps.init_search(cfg.to_json())
    store = SearchStore.from_config(cfg)
    old = store.read_config()
    del old["strategy"]["prefilter"], old["estimator"]["proxy"], old["export"]["pick"]  # fields added later
    store.write_config(old)
    assert steps.init_search(cfg.to_json())["start_round"] == 0  # same search, not "different strategy"
    assert store.read_config()["strategy"]["prefilter"] is None  # written back in this version's form


def _run(tmp_path, config):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    start = time.perf_counter()
    code = main(["run", str(path), "--home", str(tmp_path / "home")])
    return code, time.perf_counter() - start


def _untouched(name):
    return SearchStore.from_config(parse_config({**CONFIG, "name": name})).list("") == []


def test_unreachable_s3_fails_fast(stack_env, tmp_path, capsys):
    code, seconds = _run(tmp_path, {**CONFIG, "name": "no-s3", "storage": {"endpoint_url": "http://127.0.0.1:9"}})
    assert code == 2 and seconds < 30
    assert "cannot reach the S3 endpoint http://127.0.0.1:9" in capsys.readouterr().err


def test_wrong_s3_credentials_fail_fast(stack_env, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    code, seconds = _run(tmp_path, {**CONFIG, "name": "bad-creds"})
    err = capsys.readouterr().err
    assert code == 2 and seconds < 30
    assert "rejected the credentials" in err and "not-the-secret" not in err
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", stack_env.secret_key)
    assert _untouched("bad-creds")


def test_unreachable_mlflow_fails_fast(stack_env, tmp_path, capsys):
    code, seconds = _run(tmp_path, {**CONFIG, "name": "no-mlflow", "tracking": {"uri": "http://127.0.0.1:9"}})
    assert code == 2 and seconds < 30
    assert "cannot reach the MLflow server at http://127.0.0.1:9" in capsys.readouterr().err
    assert _untouched("no-mlflow")


def test_invalid_config_fails_before_any_service(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    code, seconds = _run(tmp_path, {**CONFIG, "budget": {"rounds": 0}, "fidelity": {"epochs": -1}})
    err = capsys.readouterr().err
    assert code == 2 and seconds < 5
    assert "budget.rounds: Input should be greater than or equal to 1" in err and "fidelity.epochs" in err


def test_store_check_names_a_missing_bucket(stack_env):
    with pytest.raises(StoreError, match="bucket 'no-such-bucket' does not exist"):
        SearchStore("no-such-bucket", "p", "s").check(create_bucket=False)


def test_parquet_datasets_load_from_s3(stack_env):
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from kubenas.data import load_dataset
    from kubenas.data.s3 import s3_filesystem

    rng = np.random.default_rng(0)
    x = rng.normal(size=(12, 1, 4, 4)).astype(np.float32)
    table = pa.table(
        {
            "x": pa.FixedShapeTensorArray.from_numpy_ndarray(x),
            "label": rng.integers(0, 3, 12),
            "split": ["train"] * 6 + ["val"] * 3 + ["test"] * 3,
        }
    )
    pq.write_table(table, "kubenas/datasets/tiny/part-0.parquet", filesystem=s3_filesystem())
    data = load_dataset("parquet", path="s3://kubenas/datasets/tiny/")
    assert data.input_shape == (1, 4, 4) and len(data.x_train) == 6 and data.has_test
    assert np.allclose(data.x_train.numpy(), x[:6])


def test_a_bad_value_in_the_run_form_fails_the_init_task_in_seconds_naming_the_field(stack_env, tmp_path, capfd):
    import kfp.local

    from kubenas.pipelines import build_pipeline

    cfg = parse_config({**CONFIG, "name": "form"})
    kfp.local.init(runner=kfp.local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"))
    started = time.monotonic()
    with pytest.raises(RuntimeError, match="init-search"):
        build_pipeline(cfg, retries=0)(epochs=0)  # as a user would type it in the run form
    assert time.monotonic() - started < 30
    logged = capfd.readouterr()
    assert "fidelity.epochs: Input should be greater than or equal to 1 (got 0)" in logged.out + logged.err
    assert "sample-architectures" not in logged.out + logged.err  # nothing ran after it
    assert SearchStore.from_config(cfg).read_config() is None  # and nothing was written


def test_workers_logging_a_new_dataset_at_once_all_succeed(stack_env):
    """Two workers of a round open their first candidates at the same moment: both log the dataset as an input,
    which the MLflow server inserts twice (one insert fails on its unique key). Every run still gets its input."""
    import threading
    from types import SimpleNamespace

    from kubenas.tracking import Tracker

    tracker = Tracker()
    experiment = tracker.experiment_id()
    for attempt in range(3):  # a new dataset each time: a digest the experiment does not hold yet
        data = SimpleNamespace(
            digest=lambda a=attempt: f"race{a:04d}",
            splits=lambda: {"train": 1},
            input_shape=(4,),
            num_classes=2,
            class_counts=lambda: {"train": {"0": 1}},
        )
        config = SimpleNamespace(dataset=SimpleNamespace(name=f"raced-{time.time_ns()}", options={}))
        runs = [tracker.create_run(experiment, f"race-{i}", {}) for i in range(6)]
        start, errors = threading.Barrier(len(runs)), []

        def log(run_id, start=start, data=data, config=config, errors=errors):
            start.wait()
            try:
                tracker.log_dataset(run_id, data, config, "training")
            except Exception as exc:  # noqa: BLE001 - collected for the assertion
                errors.append(exc)

        threads = [threading.Thread(target=log, args=(r,)) for r in runs]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        for run_id in runs:
            assert [d.dataset.name for d in tracker.client.get_run(run_id).inputs.dataset_inputs] == [
                config.dataset.name
            ]
            tracker.finish(run_id)
