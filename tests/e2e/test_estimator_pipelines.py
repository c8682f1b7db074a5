"""Estimators other than full training, through the real pipeline (kfp.local, SeaweedFS, MLflow): zero-cost
proxies, learning-curve early termination, weight inheritance, and one-shot searches with a supernet."""

from __future__ import annotations

import io
import json
import os

import pytest
import torch
import yaml
from mlflow.tracking import MlflowClient

from kubenas import history
from kubenas.cli import main
from kubenas.config import load_config
from kubenas.estimators.tabular import TabularEstimator
from kubenas.lease import Lease
from kubenas.spaces import make_space
from kubenas.spaces.morphisms import morphisms
from kubenas.store import SearchStore
from tests.e2e.reports import check_reports

TABLE = "nb201-4op-mnist1d"


def test_a_zero_cost_search_scores_candidates_and_trains_only_the_winner(stack_env, tmp_path, capsys):
    config = {
        "name": "e2e-zero-cost",
        "seed": 0,
        "dataset": {"name": "mnist1d"},
        "space": {"name": "nb201", "options": {"width": 8, "cells_per_stage": 1}},
        "strategy": {"name": "random"},
        "estimator": {"proxy": "nwot", "proxy_batch_size": 32},
        "objective": {"metric": "zc_score", "mode": "max"},
        "budget": {"rounds": 1, "candidates_per_round": 4, "parallelism": 1},
        "export": {"epochs": 1, "registered_model": "e2e-zero-cost"},
    }
    path = tmp_path / "zc.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["run", str(path), "--home", str(tmp_path / "home")]) == 0
    out = capsys.readouterr().out
    store = SearchStore.from_config(load_config(path))
    rows = history.rows(store.read_history())
    assert len(rows) == 4 and {r["status"] for r in rows} == {"ok"}
    scores = {r["id"]: r["metrics"] for r in rows}
    for m in scores.values():  # scored, not trained
        assert m["zc_proxy"] == "nwot" and "val_acc" not in m and m["params"] > 0
    export = store.get_json("export.json")
    assert export["candidate_id"] == max(scores, key=lambda k: scores[k]["zc_score"])
    assert export["retrained_metric"] == "val_acc" and 0 < export["val_acc"] <= 1  # the winner is trained
    assert "registered e2e-zero-cost version 1" in out and "winner " in out


def _run(tmp_path, config, name):
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["run", str(path), "--home", str(tmp_path / "home")]) == 0
    cfg = load_config(path)
    return cfg, SearchStore.from_config(cfg)


def test_learning_curve_early_termination_through_the_pipeline(stack_env, tmp_path):
    table = TabularEstimator(TABLE)
    config = {
        "name": "e2e-lc",
        "seed": 3,
        "dataset": {"name": "mnist1d"},
        "space": {"name": "nb201", "options": table.protocol["space_options"]},
        "strategy": {"name": "random"},
        "estimator": {"table": TABLE, "early_stop": {"k": 1, "min_epochs": 1, "threshold": 0.5, "min_calibration": 4}},
        "budget": {"rounds": 2, "candidates_per_round": 4, "parallelism": 2},
        "export": {"epochs": 1, "registered_model": "e2e-lc"},
    }
    _, store = _run(tmp_path, config, "lc")
    rows = history.rows(store.read_history())
    assert len(rows) == 8 and {r["status"] for r in rows} == {"ok"}
    first = [r["metrics"] for r in rows if r["round"] == 0]
    assert all(m["epochs_trained"] == 3 and m["lc_epochs_saved"] == 0 for m in first)  # nothing to calibrate on yet
    stopped = [(r, r["metrics"]) for r in rows if r["round"] == 1 and "lc_stopped_at" in r["metrics"]]
    assert stopped, "with a lax threshold some second-round candidates stop early"
    kth = max(m["val_acc"] for m in first)
    for r, m in stopped:
        curve = table.row(r["arch"])["val_acc_curve"]
        assert m["val_acc_curve"] == curve[: m["epochs_trained"]] and m["lc_epochs_saved"] == 3 - m["epochs_trained"]
        assert m["val_acc"] == m["lc_predicted_val_acc"] < kth and m["lc_p_beat"] < 0.5
        assert r["epochs"] == 3  # the fidelity asked for; epochs_trained is what was spent


CHAIN_SPACE = {"max_depth": 4, "ops": ["conv", "dense"], "activations": ["relu"], "batch_norm": [False]}


def test_network_morphisms_inherit_weights_through_the_pipeline(stack_env, tmp_path):
    # NASH-style hill climbing on chain: round 1's children are Net2Net morphisms of round 0's best, and start
    # from its weights, read back from S3 in another process
    config = {
        "name": "e2e-inherit",
        "seed": 0,
        "dataset": {"name": "mnist1d"},
        "space": {"name": "chain", "options": CHAIN_SPACE},  # ReLU, no batch norm: a layer can always be inserted
        "strategy": {"name": "network_morphism", "options": {"n_init": 2, "mutation_rate": 0.0}},
        "estimator": {"inherit": {"epochs": 1}},
        "fidelity": {"epochs": 2, "data_fraction": 0.25},
        # one worker: its round-1 task is still another process than round 0's, which wrote the weights
        "budget": {"rounds": 2, "candidates_per_round": 2, "parallelism": 1},
        "export": {"epochs": 1, "registered_model": "e2e-inherit"},
    }
    _, store = _run(tmp_path, config, "inherit")
    space = make_space("chain", **CHAIN_SPACE)
    rows = {r["id"]: r for r in history.rows(store.read_history())}
    assert len(rows) == 4 and {r["status"] for r in rows.values()} == {"ok"}
    best = max((r for r in rows.values() if r["round"] == 0), key=lambda r: r["metrics"]["val_acc"])
    for r in rows.values():
        m = r["metrics"]
        weights = store.load_weights(r["id"])  # every trained candidate's weights are in S3, for its children
        assert weights is not None and weights[1] == r["arch"]
        if r["round"] == 0:
            assert r["parent_id"] is None and m["epochs_trained"] == 2
        else:
            assert r["parent_id"] == best["id"]
            assert r["arch"] in morphisms(space, best["arch"])  # wider or deeper
            assert m["inherited_from"] == r["parent_id"] and m["epochs_trained"] == 1 and m["inherited_share"] == 1.0


def _oneshot_config(name, method, options, epochs=1, rounds=1):
    return {
        "name": name,
        "seed": 0,
        "dataset": {"name": "mnist1d"},
        "space": {
            "name": "nb201",
            "options": {"width": 4, "ops": ["skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"]},
        },
        "oneshot": {
            "method": method,
            "options": options,
            "epochs": epochs,
            "candidates": 4,
            "recalibration_batches": 1,
        },
        "budget": {"rounds": rounds},
        "export": {"epochs": 1, "registered_model": name},
    }


# ENAS runs through the pipeline in the resume test below
@pytest.mark.parametrize("method,options", [("random_sampling", {}), ("darts", {"remedy": "auxiliary_skip"})])
def test_a_oneshot_search_runs_as_the_four_stages(stack_env, tmp_path, capsys, method, options):
    cfg, store = _run(tmp_path, _oneshot_config(f"e2e-os-{method.replace('_', '-')}", method, options), method)
    out = capsys.readouterr().out
    rows = history.rows(store.read_history())
    assert len(rows) == (1 if method == "darts" else 4) and {r["status"] for r in rows} == {"ok"}
    for r in rows:
        assert r["fidelity"] == {"oneshot": method, "supernet_epochs": 1}
        assert 0 <= r["metrics"]["val_acc"] <= 1 and r["metrics"]["params"] > 0
    state = store.read_committed().state
    assert state["method"] == method and state["epochs_done"] == 1
    blob = torch.load(io.BytesIO(store.get_bytes("oneshot/latest.pt")), weights_only=True)
    assert json.loads(blob["state_json"])["epochs_done"] == 1 and "net" in blob
    export = store.get_json("export.json")
    assert (
        export["candidate_id"] == max(rows, key=lambda r: r["metrics"]["val_acc"])["id"]
    )  # the best ranked, retrained
    assert 0 < export["val_acc"] <= 1 and export["retrained_metric"] == "val_acc"
    assert f"ranked with a {method} supernet trained for" in out and "supernet epoch 1/1" in out
    client = MlflowClient(stack_env.mlflow_uri)
    parent = client.get_run(export["parent_run_id"])
    assert "supernet_train_loss" in parent.data.metrics and parent.data.tags["kubenas.strategy"] == f"oneshot/{method}"
    check_reports(tmp_path / "home", cfg.name, tmp_path, {"supernet"}, {"architecture", "supernet", "confusion"})


def test_a_failed_oneshot_round_resumes_from_its_supernet_checkpoint(stack_env, tmp_path, capsys):
    from kubenas import steps

    config = _oneshot_config("e2e-os-resume", "enas", {"controller_steps": 5}, epochs=2)
    path = tmp_path / "resume.yaml"
    path.write_text(yaml.safe_dump(config))
    cfg = load_config(path)
    # round 0 as a pipeline would run it, up to a crash of its update task: the supernet is trained and saved
    init = steps.init_search(cfg.to_json())
    [item] = steps.ask_round(init["config_json"], 0, 0, init["parent_run_id"])
    [trained] = steps.train_round(init["config_json"], item)
    assert trained["status"] == "ok" and trained["metrics"]["epochs_trained"] == 2
    store = SearchStore.from_config(cfg)
    checkpoint = store.get_bytes("oneshot/latest.pt")
    assert store.last_committed_round() == -1
    Lease(store).release(pid=os.getpid())  # as `kubenas run` does when a task of it fails
    capsys.readouterr()
    # the search is run again: round 0 re-runs, its supernet is already at epoch 2, so nothing is retrained
    assert main(["run", str(path), "--home", str(tmp_path / "home")]) == 0
    out = capsys.readouterr().out
    assert "supernet epoch" not in out
    assert store.read_results(0, 0)[0]["metrics"]["epochs_trained"] == 0
    assert store.get_bytes("oneshot/latest.pt") == checkpoint
    state = store.read_committed().state
    assert state["method"] == "enas" and state["epochs_done"] == 2 and len(store.read_history()) == 4
    # the controller learned during training: its policy is no longer uniform
    logits = state["extra"]["policy"]["logits"]
    assert any(len(set(v)) > 1 for v in logits.values())
    assert store.get_json("export.json")["candidate_id"] in {r["id"] for r in history.rows(store.read_history())}
