"""Learning-curve extrapolation and early termination: the fits, the stopping rule, and both estimators it wraps."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from kubenas import Fidelity, TrainingEstimator, make_space, search
from kubenas.config import parse_config
from kubenas.estimators.learning_curve import EarlyTermination, EarlyTerminationEstimator, extrapolate
from kubenas.estimators.tabular import TabularEstimator
from tests.conftest import toy_dataset

TABLE = "nb201-4op-mnist1d"


def power_law(final, t, total=10):
    return final - 0.4 * (np.arange(1, t + 1) ** -0.8 - total**-0.8)


def test_extrapolation_recovers_a_saturating_curve():
    for final in (0.7, 0.85, 0.95):
        curve = power_law(final, 5)
        assert abs(extrapolate(curve, 10, ["pow3"])["mean"] - final) < 0.005  # its own family: exact
        pred = extrapolate(curve, 10)  # the ensemble: close, and calibration takes out the rest
        assert abs(pred["mean"] - final) < 0.03, (final, pred)
        assert pred["mean"] > curve[-1]  # it looks ahead, not at the last value
    assert extrapolate([0.5], 10)["mean"] == 0.5  # one point: nothing to fit, the last value


def completed(rule, n, total=10, seed=0):
    rng = np.random.default_rng(seed)
    for final in rng.uniform(0.6, 0.95, size=n):
        rule.add(power_law(final, total, total))


def test_the_rule_waits_for_k_results_and_for_calibration():
    rule = EarlyTermination(k=3, min_calibration=6, min_epochs=2)
    bad = power_law(0.3, 3)
    completed(rule, 5)  # enough for the 3rd best, not for calibration
    assert rule.check(bad, 10) is None
    completed(rule, 1, seed=1)
    info = rule.check(bad, 10)
    assert info["stop"] and info["p_beat"] < 0.05 and abs(info["predicted"] - 0.3) < 0.05
    assert rule.check(bad[:1], 10) is None  # before min_epochs
    good = power_law(0.99, 3)
    assert not rule.check(good, 10)["stop"]


def test_calibration_corrects_a_biased_prediction():
    """Curves that keep rising late are under-predicted by the fits; the errors on completed curves shift the
    prediction back up, so a late bloomer like them is not stopped."""
    rule = EarlyTermination(k=3, min_calibration=5, min_epochs=3)
    late = lambda final: np.concatenate([np.full(3, 0.4), np.linspace(0.5, final, 7)])  # noqa: E731
    for final in (0.80, 0.82, 0.84, 0.86, 0.88, 0.90):
        rule.add(late(final))
    info = rule.check(late(0.87)[:3], 10)
    assert info["predicted"] > 0.8 and not info["stop"]


def test_bad_rule_settings_are_named():
    with pytest.raises(ValueError, match="threshold must be in"):
        EarlyTermination(threshold=1.5)
    with pytest.raises(ValueError, match="k must be an integer >= 1"):
        EarlyTermination(k=0)


def test_early_termination_on_a_table_saves_epochs_and_records_the_prediction():
    table = TabularEstimator(TABLE)
    est = EarlyTerminationEstimator(table, EarlyTermination(k=5, min_epochs=1, min_calibration=10))
    rows = sorted(table.rows.values(), key=lambda r: r["arch_id"])
    results = [
        est.evaluate(json.loads(r["arch"]), None, None, Fidelity(epochs=3), candidate_id=r["arch_id"])
        for r in rows[:150]
    ]
    stopped = [r for r in results if "lc_stopped_at" in r.metrics]
    assert stopped and len(stopped) < len(results)
    for r in stopped:
        m = r.metrics
        row = table.rows[r.candidate_id]
        assert m["epochs_trained"] == m["lc_stopped_at"] < 3 and m["lc_epochs_saved"] == 3 - m["epochs_trained"]
        assert (
            m["val_acc"] == m["lc_predicted_val_acc"]
            and m["val_acc_observed"] == row["val_acc_curve"][m["epochs_trained"] - 1]
        )
        assert r.cost == pytest.approx(row["train_seconds"] * m["epochs_trained"] / 3)
    for r in results:
        if "lc_stopped_at" not in r.metrics:
            assert r.metrics["val_acc"] == table.rows[r.candidate_id]["val_acc"] and r.metrics["lc_epochs_saved"] == 0
    # the same results in the same order give the same decisions: the rule's state is the completed curves
    again = EarlyTerminationEstimator(table, EarlyTermination(k=5, min_epochs=1, min_calibration=10))
    assert [
        again.evaluate(json.loads(r["arch"]), None, None, Fidelity(epochs=3), candidate_id=r["arch_id"]).metrics
        for r in rows[:150]
    ] == [r.metrics for r in results]


def test_early_termination_stops_real_training():
    data, space = toy_dataset(n=64), make_space("nb201", width=4)
    rule = EarlyTermination(k=1, min_epochs=1, min_calibration=2, threshold=0.999)  # stops anything not sure to win
    est = EarlyTerminationEstimator(TrainingEstimator(device="cpu"), rule)
    res = search(space, "random", dataset=data, fidelity=Fidelity(epochs=4), estimator=est, max_evals=6, seed=0)
    trained = [r["metrics"]["epochs_trained"] for r in res.history]
    assert trained[:2] == [4, 4]  # nothing is stopped before two completed curves calibrate the rule
    stopped = [r for r in res.history if "lc_stopped_at" in r["metrics"]]
    assert len(stopped) >= 2
    for r in stopped:
        assert len(r["metrics"]["val_acc_curve"]) == r["metrics"]["epochs_trained"] == r["metrics"]["lc_stopped_at"] < 4
        assert len(r["metrics"]["train_loss_curve"]) == r["metrics"]["epochs_trained"]  # training really stopped


def test_a_failing_candidate_stays_failed():
    data = toy_dataset(n=32)
    nan = dataclasses.replace(data, x_train=torch.full_like(data.x_train, float("nan")))
    est = EarlyTerminationEstimator(TrainingEstimator(device="cpu"))
    res = est.evaluate(
        make_space("nb201", width=4).sample(0), make_space("nb201", width=4), nan, Fidelity(epochs=2), candidate_id="c"
    )
    assert res.status == "failed" and "non-finite" in res.error


def test_config_checks_early_stop_up_front():
    base = {"name": "lc", "dataset": {"name": "mnist1d"}, "space": {"name": "nb201"}, "fidelity": {"epochs": 3}}
    cfg = parse_config({**base, "estimator": {"early_stop": {"k": 3}}})
    assert cfg.estimator.early_stop.k == 3 and cfg.estimator.early_stop.threshold == 0.05
    with pytest.raises(ValueError, match=r"early_stop.min_epochs \(3\) must be below fidelity.epochs \(3\)"):
        parse_config({**base, "estimator": {"early_stop": {"min_epochs": 3}}})
    with pytest.raises(ValueError, match="set objective.metric to 'val_acc'"):
        parse_config({**base, "estimator": {"early_stop": {}}, "objective": {"metric": "val_loss", "mode": "min"}})
    with pytest.raises(ValueError, match="early_stop and inherit apply to training"):
        parse_config({**base, "estimator": {"early_stop": {}, "proxy": "nwot"}, "objective": {"metric": "zc_score"}})
