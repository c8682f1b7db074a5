"""The tracking adapter without a server: a tracking URI that is a local database goes through MLflow's client,
with the same calls the REST path makes against a server (the e2e tests cover that one)."""

from __future__ import annotations

from kubenas.config import parse_config
from kubenas.tracking import Tracker


def test_runs_on_a_local_tracking_store(tmp_path):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cfg = parse_config({"name": "local-store", "dataset": {"name": "mnist1d"}, "space": {"name": "nb201"}})
    tracker = Tracker(uri, "unit")
    tracker.check()  # nothing to reach
    parent = tracker.start_parent(cfg)
    run = tracker.start_candidate(parent, {"id": "00000-abc", "fidelity": {"epochs": 2}}, 0, cfg, "|g|")
    client = MlflowClient(uri)
    assert client.get_run(run).info.status == "RUNNING"
    row = {
        "id": "00000-abc",
        "arch_id": "abc",
        "status": "ok",
        "cost": 1.5,
        "error": None,
        "metrics": {"val_acc": 0.9, "val_acc_curve": [0.5, 0.9], "params": 1000},
    }
    tracker.finish_candidate(run, row)
    tracker.log_round(parent, 0, {"best_val_acc": 0.9})
    tracker.finish(parent)
    child = client.get_run(run)
    assert child.info.status == "FINISHED" and child.data.tags["mlflow.parentRunId"] == parent
    assert child.data.params["genotype"] == "|g|" and child.data.metrics["params"] == 1000
    assert [m.value for m in client.get_metric_history(run, "val_acc")] == [0.5, 0.9]
    assert client.get_run(parent).info.status == "FINISHED"
    assert client.get_run(parent).data.metrics["best_val_acc"] == 0.9
