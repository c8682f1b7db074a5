"""Estimators other than training, through the real pipeline (kfp.local, SeaweedFS, MLflow)."""

from __future__ import annotations

import json

import yaml

from kubenas.cli import main
from kubenas.config import load_config
from kubenas.store import SearchStore


def test_a_zero_cost_search_scores_candidates_and_trains_only_the_winner(stack_env, tmp_path, capsys):
    config = {
        "name": "e2e-zero-cost", "seed": 0, "dataset": {"name": "mnist1d"},
        "space": {"name": "nb201", "options": {"width": 8, "cells_per_stage": 1}},
        "strategy": {"name": "random"},
        "estimator": {"proxy": "nwot", "proxy_batch_size": 32},
        "objective": {"metric": "zc_score", "mode": "max"},
        "budget": {"rounds": 1, "candidates_per_round": 4, "parallelism": 2},
        "export": {"epochs": 1, "registered_model": "e2e-zero-cost"},
    }
    path = tmp_path / "zc.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["run", str(path), "--home", str(tmp_path / "home")]) == 0
    out = capsys.readouterr().out
    store = SearchStore.from_config(load_config(path))
    rows = store.read_history().to_pylist()
    assert len(rows) == 4 and {r["status"] for r in rows} == {"ok"}
    scores = {r["id"]: json.loads(r["metrics"]) for r in rows}
    for m in scores.values():  # scored, not trained
        assert m["zc_proxy"] == "nwot" and "val_acc" not in m and m["params"] > 0
    export = store.get_json("export.json")
    assert export["candidate_id"] == max(scores, key=lambda k: scores[k]["zc_score"])
    assert export["retrained_metric"] == "val_acc" and 0 < export["val_acc"] <= 1  # the winner is trained
    assert "registered e2e-zero-cost version 1" in out and "winner " in out
