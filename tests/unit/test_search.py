"""The in-process search loop."""

from __future__ import annotations

import pytest

from kubenas import Fidelity, TrainingEstimator, make_space, search
from tests.conftest import toy_dataset

GRID = make_space("choice", decisions={"a": [0, 1, 2, 3], "b": [0, 1, 2, 3]})


def test_budget_by_evaluations_and_rows():
    result = search(GRID, "random", objective=lambda a: a["a"] + a["b"], max_evals=5, metric="score", seed=0)
    assert len(result.history) == 5 and result.stopped == "max_evals"
    row = result.history[0]
    assert set(row) == {
        "id",
        "arch_id",
        "arch",
        "genotype",
        "parent_id",
        "round",
        "status",
        "error",
        "metrics",
        "cost",
        "fidelity",
        "epochs",
    }
    assert row["round"] is None and row["epochs"] is None  # in process: no round; a black box: no fidelity
    assert result.best["metrics"]["score"] == max(r["metrics"]["score"] for r in result.history)


def test_budget_by_seconds():
    result = search(GRID, "random", objective=lambda a: 1.0, max_seconds=1e-9, metric="score")
    assert result.stopped == "max_seconds" and result.history == []


def test_crashing_objective_fails_and_search_goes_on():
    def objective(arch):
        if arch["a"] == 0:
            raise RuntimeError("simulated out of memory")
        return {"score": float(arch["b"]), "params": 3}

    result = search(
        GRID,
        "regularized_evolution",
        objective=objective,
        max_evals=16,
        metric="score",
        seed=0,
        strategy_options={"population_size": 4, "sample_size": 2},
    )
    failed = [r for r in result.history if r["status"] == "failed"]
    assert len(failed) == 4 and all("simulated out of memory" in r["error"] for r in failed)
    assert result.best["metrics"]["score"] == 3


def test_training_search_never_shows_the_test_split_to_the_estimator():
    seen = []

    class Recording(TrainingEstimator):
        def evaluate(self, arch, space, dataset, fidelity=None, seed=0, candidate_id=""):
            seen.append(dataset.has_test)
            return super().evaluate(arch, space, dataset, fidelity, seed, candidate_id)

    data = toy_dataset(shape=(1, 8))
    result = search(
        make_space("chain", max_depth=2, widths=[4]),
        "local_search",
        dataset=data,
        fidelity={"epochs": 1},
        estimator=Recording(),
        max_evals=3,
        batch_size=2,
        strategy_options={"n_init": 2},
    )
    assert seen == [False, False, False] and data.has_test
    assert all(r["fidelity"] == Fidelity(epochs=1).to_dict() for r in result.history)
    assert all(r["status"] == "ok" for r in result.history)


def test_progress_output(capsys):
    search(GRID, "random", objective=lambda a: 0.5, max_evals=2, metric="score", progress=True)
    out = capsys.readouterr().out
    assert "score=0.5000" in out and "a=" in out


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="exactly one of dataset= .* or objective="):
        search(GRID, "random", max_evals=1)
    with pytest.raises(ValueError, match="set a budget"):
        search(GRID, "random", objective=lambda a: 1.0)
    with pytest.raises(ValueError, match="max_evals must be a positive integer"):
        search(GRID, "random", objective=lambda a: 1.0, max_evals=0)
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        search(GRID, "random", objective=lambda a: 1.0, max_evals=1, batch_size=0)
