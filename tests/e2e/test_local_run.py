"""`kubenas run` end to end: kfp.local runs the real pipeline against real SeaweedFS and MLflow."""

from __future__ import annotations

import json
import re

import mlflow
import pyarrow.dataset as pads
import torch
import yaml
from mlflow.tracking import MlflowClient

from kubenas.cli import main
from kubenas.config import load_config
from kubenas.data import load_dataset
from kubenas.data.s3 import s3_filesystem
from kubenas.pull import evaluate_onnx, load_module
from kubenas.store import SearchStore
from tests.e2e.reports import check_reports

TINY = {
    "name": "e2e-tiny",
    "seed": 0,
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
    return pads.dataset(
        f"{cfg.storage.bucket}/{store.root}/history", format="parquet", filesystem=s3_filesystem()
    ).to_table()


def test_run_resume_and_pull_the_champion(stack_env, tmp_path, capsys):
    path = write(tmp_path, TINY)
    cfg = load_config(path)
    assert main(["run", str(path), "--home", str(tmp_path / "home")]) == 0
    out = capsys.readouterr().out
    assert len(re.findall(r"\[kubenas\] round 0 worker \d candidate", out)) == 2
    assert len(re.findall(r"\[kubenas\] round 1 worker \d candidate", out)) == 2
    assert (
        "models:/e2e-model@champion" in out
        and f"MLflow UI: {stack_env.mlflow_uri}/#/experiments?workflowType=machine_learning" in out
    )
    assert "[kubenas] progress: 1 of 2 round(s) done, 2 evaluated (0 failed), best val_acc" in out
    assert re.search(r"\[kubenas\] export: seed 0 epoch 4/4: train_loss [\d.]+, val_acc [\d.]+", out)  # not silent
    home = tmp_path / "home"
    assert f"report of the winner: {home / 'reports' / 'e2e-tiny' / 'winner.html'}" in out
    assert re.search(r"top 4 by val_acc.*\n.*candidate.*\n1 ", out)  # the best candidates, best first
    assert list((home / "cache").glob("mnist1d-*.npz"))  # the generated dataset is cached under --home
    pages = check_reports(home, "e2e-tiny", tmp_path, {"progress"}, {"architecture", "confusion", "progress"})
    assert "kubenas search e2e-tiny: after round 1" in pages["search"]

    # the history in SeaweedFS reads as one 4-row dataset with pyarrow
    table = history(cfg)
    assert table.num_rows == 4 and len(set(table.column("id").to_pylist())) == 4
    assert sorted(set(table.column("round").to_pylist())) == [0, 1]
    assert set(table.column("status").to_pylist()) == {"ok"}

    # MLflow: one parent run and 4 nested candidate runs with params, per-epoch metrics and status
    client = MlflowClient()
    exp = client.get_experiment_by_name("kubenas")
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"  # the UI opens it on its runs
    runs = client.search_runs([exp.experiment_id], "tags.`kubenas.search` = 'e2e-tiny'")
    parents = [r for r in runs if r.data.tags.get("kubenas.kind") == "search"]
    assert len(parents) == 1
    children = [
        r
        for r in runs
        if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id
        and r.data.tags.get("kubenas.kind") == "candidate"
    ]
    assert len(children) == 4
    for child in children:
        assert {"arch_id", "genotype", "space", "strategy", "round", "fidelity"} <= set(child.data.params)
        assert child.data.tags["kubenas.status"] == "ok"
        assert [m.step for m in client.get_metric_history(child.info.run_id, "val_acc")] == [1]
        # the run was opened when training started (the UI shows it running), and closed after it
        assert child.info.status == "FINISHED"
        # its dataset is an input of the run (the runs table's Dataset column): name, digest, split sizes
        (used,) = child.inputs.dataset_inputs
        assert used.dataset.name == "mnist1d" and len(used.dataset.digest) == 8
        assert json.loads(used.dataset.profile)["splits"] == {"train": 3200, "val": 800}
        assert {t.key: t.value for t in used.tags}["mlflow.data.context"] == "training"
        assert (child.info.end_time - child.info.start_time) / 1000 >= child.data.metrics["train_seconds"]
    # the parent run carries the pictures, the leaderboard as a table, and a description of the search
    parent = parents[0]
    files = {f.path for f in client.list_artifacts(parent.info.run_id, "report")}
    assert {
        "report/progress.png",
        "report/architecture.png",
        "report/confusion.png",
        "report/report.html",
        "report/leaderboard.json",
    } <= files
    board = json.loads(
        open(client.download_artifacts(parent.info.run_id, "report/leaderboard.json", str(tmp_path))).read()
    )
    assert board["columns"][:2] == ["rank", "candidate"] and len(board["data"]) == 4
    assert {"path": "report/leaderboard.json", "type": "table"} in json.loads(
        parent.data.tags["mlflow.loggedArtifacts"]
    )
    assert "Best so far: val_acc" in parent.data.tags["mlflow.note.content"]
    for run in runs:  # credentials never reach params or tags
        logged = json.dumps([run.data.params, run.data.tags])
        assert stack_env.secret_key not in logged and stack_env.access_key not in logged

    # the registry: version 1 is the champion, and it reproduces the logged test accuracy
    champion = client.get_model_version_by_alias("e2e-model", "champion")
    assert champion.version == "1"
    logged = client.get_run(champion.run_id).data.metrics["test_acc"]
    model = mlflow.pyfunc.load_model("models:/e2e-model@champion")  # built from code: nothing unpickled
    data = load_dataset("mnist1d")
    predicted = model.predict(data.x_test.numpy())
    test_acc = sum(p == str(y) for p, y in zip(predicted, data.y_test.tolist())) / len(predicted)
    assert abs(test_acc - logged) < 1e-6
    info = mlflow.models.get_model_info("models:/e2e-model@champion")
    assert info.signature is not None and info.saved_input_example_info is not None
    # the version says what it is: a description and tags, with a link to its architecture diagram
    assert champion.description.startswith("Architecture `|") and "search `e2e-tiny`" in champion.description
    assert champion.tags["kubenas.architecture"] == f"runs:/{champion.run_id}/architecture.png"
    assert champion.tags["kubenas.test_acc"] == f"{logged:.4f}" and champion.tags["kubenas.genotype"].startswith("|")
    assert "architecture.png" in {f.path for f in client.list_artifacts(champion.run_id)}
    for log in (tmp_path / "home" / "logs").glob("run-*.log"):  # nor do they reach the run's log
        assert stack_env.secret_key not in log.read_text()

    # a second run, of one round (`--rounds`), resumes the search: a new round, no duplicated rows; its export
    # (1 epoch instead of 4) is worse, so the champion stays and the new version becomes the challenger
    worse = write(tmp_path, {**TINY, "export": {**TINY["export"], "epochs": 1}}, "again.yaml")
    assert main(["run", str(worse), "--home", str(tmp_path / "home"), "--rounds", "1"]) == 0
    assert "resuming after round 1" in capsys.readouterr().out
    table = history(cfg)
    assert table.num_rows == 6 and len(set(table.column("id").to_pylist())) == 6
    assert sorted(set(table.column("round").to_pylist())) == [0, 1, 2]
    assert client.get_model_version_by_alias("e2e-model", "champion").version == "1"
    assert client.get_model_version_by_alias("e2e-model", "challenger").version == "2"

    # `kubenas pull` writes weights, architecture, ONNX and a model card; the ONNX file reproduces the logged
    # test accuracy on the test split, and the rebuilt module computes what MLflow's pt2 program computes
    out_dir = tmp_path / "pulled"
    capsys.readouterr()
    assert main(["pull", "e2e-model", "-o", str(out_dir), "--evaluate"]) == 0
    out = capsys.readouterr().out
    assert "pulled e2e-model v1 (@champion)" in out and "(matches the logged value)" in out
    assert sorted(p.name for p in out_dir.iterdir()) == [
        "MODEL_CARD.md",
        "arch.json",
        "model.json",
        "model.onnx",
        "state_dict.pt",
    ]
    onnx_acc = evaluate_onnx(out_dir / "model.onnx", cfg.model_dump())
    assert onnx_acc == logged
    rebuilt = load_module(out_dir)
    with torch.no_grad():
        assert [str(i) for i in rebuilt(data.x_test[:64]).argmax(1).tolist()] == predicted[:64]
    logged_arch = client.download_artifacts(champion.run_id, "arch.json", str(tmp_path))
    assert json.loads((out_dir / "arch.json").read_text()) == json.loads(open(logged_arch).read())
    card = (out_dir / "MODEL_CARD.md").read_text()
    genotype = client.get_run(champion.run_id).data.params["genotype"]
    for text in (
        "# e2e-model v1 (`@champion`)",
        "search `e2e-tiny`",
        genotype,
        "Dataset `mnist1d`",
        f"test {len(data.y_test):,}",
        f"| test_acc | {logged:.4f} |",
    ):
        assert text in card, text
    assert stack_env.secret_key not in card
    assert re.search(
        r"`latency_ms`: median of 100 batch-1 forward passes after 20 warm-up passes, \d+ CPU thread", card
    )

    # another alias, and a clear error for a missing one
    assert main(["pull", "e2e-model@challenger", "-o", str(tmp_path / "challenger")]) == 0
    assert "v2 (@challenger)" in capsys.readouterr().out
    assert main(["pull", "e2e-model@nightly", "-o", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert "no model version e2e-model@nightly" in err and "e2e-model" in err
    assert not (tmp_path / "nope").exists()
