"""`kubenas run` end to end: kfp.local runs the real pipeline against real SeaweedFS and MLflow."""

from __future__ import annotations

import json

import mlflow
import pyarrow.dataset as pads
import torch
import yaml
from mlflow.tracking import MlflowClient

from kubenas.cli import main
from kubenas.config import load_config
from kubenas.data import load_dataset
from kubenas.data.parquet import s3_filesystem
from kubenas.store import SearchStore

TINY = {
    "name": "e2e-tiny", "seed": 0,
    "dataset": {"name": "mnist1d"},
    "space": {"name": "nb201", "options": {"width": 8}},
    "strategy": {"name": "regularized_evolution", "options": {"population_size": 2, "sample_size": 2}},
    "fidelity": {"epochs": 1},
    "budget": {"rounds": 2, "candidates_per_round": 2, "parallelism": 2},
    "export": {"epochs": 4, "registered_model": "e2e-model"},
}


def write(tmp_path, config, name="search.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(config))
    return path


def history(cfg):
    store = SearchStore.from_config(cfg)
    return pads.dataset(f"{cfg.storage.bucket}/{store.root}/history", format="parquet",
                        filesystem=s3_filesystem()).to_table()


def test_run_then_resume_keeps_history_and_champion(stack_env, tmp_path, capsys):
    path = write(tmp_path, TINY)
    cfg = load_config(path)
    assert main(["run", str(path), "--home", str(tmp_path / "home")]) == 0
    out = capsys.readouterr().out
    assert out.count("[kubenas] round 0 candidate") == 2 and out.count("[kubenas] round 1 candidate") == 2
    assert "models:/e2e-model@champion" in out and f"MLflow UI: {stack_env.mlflow_uri}" in out

    # the history in SeaweedFS reads as one 4-row dataset with pyarrow
    table = history(cfg)
    assert table.num_rows == 4 and len(set(table.column("id").to_pylist())) == 4
    assert sorted(set(table.column("round").to_pylist())) == [0, 1]
    assert set(table.column("status").to_pylist()) == {"ok"}

    # MLflow: one parent run and 4 nested candidate runs with params, per-epoch metrics and status
    client = MlflowClient()
    exp = client.get_experiment_by_name("kubenas")
    runs = client.search_runs([exp.experiment_id], "tags.`kubenas.search` = 'e2e-tiny'")
    parents = [r for r in runs if r.data.tags.get("kubenas.kind") == "search"]
    assert len(parents) == 1
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id
                and r.data.tags.get("kubenas.kind") == "candidate"]
    assert len(children) == 4
    for child in children:
        assert {"arch_id", "genotype", "space", "strategy", "round", "fidelity"} <= set(child.data.params)
        assert child.data.tags["kubenas.status"] == "ok"
        assert [m.step for m in client.get_metric_history(child.info.run_id, "val_acc")] == [1]
    for run in runs:  # credentials never reach params or tags
        logged = json.dumps([run.data.params, run.data.tags])
        assert stack_env.secret_key not in logged and stack_env.access_key not in logged

    # the registry: version 1 is the champion, and it reproduces the logged test accuracy
    champion = client.get_model_version_by_alias("e2e-model", "champion")
    assert champion.version == "1"
    logged = client.get_run(champion.run_id).data.metrics["test_acc"]
    model = mlflow.pytorch.load_model("models:/e2e-model@champion")
    data = load_dataset("mnist1d")
    with torch.no_grad():
        test_acc = (model(data.x_test).argmax(1) == data.y_test).float().mean().item()
    assert abs(test_acc - logged) < 1e-6
    info = mlflow.models.get_model_info("models:/e2e-model@champion")
    assert info.signature is not None and info.saved_input_example_info is not None
    for log in (tmp_path / "home" / "logs").glob("run-*.log"):  # nor do they reach the run's log
        assert stack_env.secret_key not in log.read_text()

    # a second run resumes the search: new rounds, no duplicated rows; its export (1 epoch instead of 4)
    # is worse, so the champion stays and the new version becomes the challenger
    worse = write(tmp_path, {**TINY, "export": {**TINY["export"], "epochs": 1}}, "again.yaml")
    assert main(["run", str(worse), "--home", str(tmp_path / "home")]) == 0
    assert "resuming after round 1" in capsys.readouterr().out
    table = history(cfg)
    assert table.num_rows == 8 and len(set(table.column("id").to_pylist())) == 8
    assert sorted(set(table.column("round").to_pylist())) == [0, 1, 2, 3]
    assert client.get_model_version_by_alias("e2e-model", "champion").version == "1"
    assert client.get_model_version_by_alias("e2e-model", "challenger").version == "2"
