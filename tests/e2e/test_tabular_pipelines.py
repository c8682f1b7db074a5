"""Searches answered from the committed benchmark table, through the real pipeline (kfp.local, SeaweedFS,
MLflow): NSGA-II over accuracy and parameters with a hard size constraint, exporting the front's knee; and
successive halving around BANANAS (BOHB-like) behind a synflow pre-filter, promoting candidates to more epochs
in later rounds."""

from __future__ import annotations

import re

import numpy as np
import yaml

from kubenas import history
from kubenas.cli import main
from kubenas.config import load_config
from kubenas.data import load_dataset
from kubenas.estimators.tabular import TabularEstimator
from kubenas.estimators.zero_cost import proxy_scorer
from kubenas.history import ranked
from kubenas.history import rows as history_rows
from kubenas.spaces import make_space
from kubenas.store import SearchStore
from kubenas.strategies import make_strategy
from tests.e2e.reports import check_reports

TABLE = "nb201-4op-mnist1d"


def test_nsga2_on_the_table_through_the_pipeline(stack_env, tmp_path, capsys):
    table = TabularEstimator(TABLE)
    limit = sorted(r["params"] for r in table.rows.values())[len(table.rows) // 2]  # the median size
    config = {
        "name": "e2e-mo-tabular",
        "seed": 1,
        "dataset": {"name": "mnist1d"},
        "space": {"name": "nb201", "options": table.protocol["space_options"]},
        "strategy": {
            "name": "nsga2",
            "options": {
                "population_size": 4,
                "objectives": [{"metric": "val_acc", "mode": "max"}, {"metric": "params", "mode": "min"}],
                "constraints": {"params": {"max": limit}},
            },
        },
        "estimator": {"table": TABLE},
        "budget": {"rounds": 2, "candidates_per_round": 4, "parallelism": 2},
        "export": {"epochs": 1, "registered_model": "e2e-mo", "pick": "knee"},
    }
    path = tmp_path / "mo.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["run", str(path), "--home", str(tmp_path / "home")]) == 0
    cfg = load_config(path)
    store = SearchStore.from_config(cfg)
    rows = history.rows(store.read_history())
    assert len(rows) == 8 and {r["status"] for r in rows} == {"ok"}
    for r in rows:  # every answer is the table's
        metrics, arch = r["metrics"], r["arch"]
        row = table.row(arch)
        assert metrics["val_acc"] == row["val_acc"] and metrics["params"] == row["params"]
        assert "test_acc" not in metrics
    # the strategy state in S3, with the committed rows, resumes into a front that respects the constraint
    strategy = make_strategy(
        "nsga2", make_space("nb201", **table.protocol["space_options"]), **config["strategy"]["options"]
    )
    committed = store.read_committed()
    assert committed.last == 1 and "history" not in committed.state  # the rows live in the Parquet history only
    strategy.load_state_dict(committed.state, history=committed.rows)
    front = strategy.best()
    assert front and all(m["objectives"]["params"] <= limit for m in front)
    assert "registered e2e-mo version 1" in capsys.readouterr().out
    # the export took the knee of that front, and the leaderboard shows the whole front
    export = store.get_json("export.json")
    assert export["candidate_id"] == strategy.pick("knee")["id"]
    assert [m["candidate_id"] for m in export["front"]] == [m["id"] for m in front]
    assert "Pareto front: " in export["leaderboard"] and "**(exported)**" in export["leaderboard"]
    assert export["leaderboard"].count("| `") >= len(front)
    pages = check_reports(
        tmp_path / "home", "e2e-mo-tabular", tmp_path, {"progress", "pareto"}, {"architecture", "pareto", "confusion"}
    )
    assert (
        '<tr class="exported"><td>' in pages["winner"] and f"exported {export['candidate_id']}" not in pages["search"]
    )


def test_successive_halving_promotes_across_rounds_through_the_pipeline(stack_env, tmp_path, capsys):
    table = TabularEstimator(TABLE)
    config = {
        "name": "e2e-mf-tabular",
        "seed": 2,
        "dataset": {"name": "mnist1d"},
        "space": {"name": "nb201", "options": table.protocol["space_options"]},
        "strategy": {
            "name": "successive_halving",
            "options": {
                "base": "bananas",
                "base_options": {"n_init": 4},
                "min_resource": 1,
                "max_resource": 3,
                "eta": 2,
            },
            "prefilter": {"proxy": "synflow", "pool": 4},
        },  # new cells: the best synflow score of 4 proposals
        "estimator": {"table": TABLE},
        "budget": {"rounds": 4, "candidates_per_round": 4, "parallelism": 2},
        "export": {"epochs": 1, "registered_model": "e2e-mf"},
    }
    path = tmp_path / "mf.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["run", str(path), "--home", str(tmp_path / "home")]) == 0
    store = SearchStore.from_config(load_config(path))
    rows = {r["id"]: r for r in history.rows(store.read_history())}
    assert len(rows) == 16
    epochs = [r["epochs"] for r in rows.values()]
    assert set(epochs) == {1, 2, 3} and epochs.count(1) > epochs.count(2) > epochs.count(3)
    for r in rows.values():
        metrics, arch = r["metrics"], r["arch"]
        assert r["fidelity"]["epochs"] == r["epochs"] == metrics["epochs"]
        assert metrics["val_acc"] == table.row(arch)["val_acc_curve"][r["epochs"] - 1]  # the table at that epoch
        if r["epochs"] > 1:  # a promotion: same architecture, from a lower rung of an earlier round
            parent = rows[r["parent_id"]]
            assert parent["arch"] == r["arch"] and parent["epochs"] < r["epochs"] and parent["round"] < r["round"]
    # the pre-filter ran in the sample step: each new cell is the best-scoring of a pool of 4, so the new cells
    # score above the median of random cells
    scorer = proxy_scorer("synflow", table.space, load_dataset("mnist1d").without_test(), seed=2)
    new = [r["arch"] for r in rows.values() if r["epochs"] == 1]
    rng = np.random.default_rng(7)
    random_cells = [table.space.sample(rng) for _ in range(40)]
    assert np.median(scorer(new)) > np.median(scorer(random_cells))
    export = store.get_json("export.json")
    winner = rows[export["candidate_id"]]
    assert winner["epochs"] == 3
    assert winner["metrics"]["val_acc"] == max(r["metrics"]["val_acc"] for r in rows.values() if r["epochs"] == 3)
    assert "| epochs |" in export["leaderboard"]
    pages = check_reports(
        tmp_path / "home", "e2e-mf-tabular", tmp_path, {"progress", "rungs"}, {"architecture", "rungs"}
    )
    # the last round's report ranks every committed row, that round's included, as the export does
    shown = re.findall(r'<td class="text id">([\w-]+)</td>', pages["search"])
    assert shown == [r["id"] for r in ranked(history_rows(store.read_history()), "val_acc", "max")[:10]]
