"""A multi-objective search answered from the committed benchmark table, through the real pipeline
(kfp.local, SeaweedFS, MLflow): NSGA-II over accuracy and parameters with a hard size constraint."""

from __future__ import annotations

import json

import yaml

from kubenas.cli import main
from kubenas.config import load_config
from kubenas.estimators.tabular import TabularEstimator
from kubenas.spaces import make_space
from kubenas.store import SearchStore
from kubenas.strategies import make_strategy

TABLE = "nb201-4op-mnist1d"


def test_nsga2_on_the_table_through_the_pipeline(stack_env, tmp_path, capsys):
    table = TabularEstimator(TABLE)
    limit = sorted(r["params"] for r in table.rows.values())[len(table.rows) // 2]  # the median size
    config = {
        "name": "e2e-mo-tabular", "seed": 1, "dataset": {"name": "mnist1d"},
        "space": {"name": "nb201", "options": table.protocol["space_options"]},
        "strategy": {"name": "nsga2", "options": {
            "population_size": 4, "objectives": [{"metric": "val_acc", "mode": "max"}, {"metric": "params", "mode": "min"}],
            "constraints": {"params": {"max": limit}}}},
        "estimator": {"table": TABLE},
        "budget": {"rounds": 2, "candidates_per_round": 4, "parallelism": 2},
        "export": {"epochs": 1, "registered_model": "e2e-mo"},
    }
    path = tmp_path / "mo.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["run", str(path), "--home", str(tmp_path / "home")]) == 0
    cfg = load_config(path)
    store = SearchStore.from_config(cfg)
    rows = store.read_history().to_pylist()
    assert len(rows) == 8 and {r["status"] for r in rows} == {"ok"}
    for r in rows:  # every answer is the table's
        metrics, arch = json.loads(r["metrics"]), json.loads(r["arch"])
        row = table.row(arch)
        assert metrics["val_acc"] == row["val_acc"] and metrics["params"] == row["params"]
        assert "test_acc" not in metrics
    # the strategy state in S3 resumes into a front that respects the constraint
    strategy = make_strategy("nsga2", make_space("nb201", **table.protocol["space_options"]), **config["strategy"]["options"])
    strategy.load_state_dict(store.read_state(1))
    front = strategy.best()
    assert all(m["objectives"]["params"] <= limit for m in front)
    assert "registered e2e-mo version 1" in capsys.readouterr().out
