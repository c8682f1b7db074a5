"""The contract every estimator keeps, run over all of them: deterministic on CPU for a seed, a failing candidate
is a failed result (never an exception), and whatever state it carries between evaluations (completed curves,
stored weights) round-trips, so a fresh estimator in another process decides the same."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from kubenas import Fidelity, TrainingEstimator, make_space
from kubenas.config import EstimatorConfig
from kubenas.core import is_finite
from kubenas.estimators import ESTIMATORS, make_estimator, selected
from kubenas.estimators.inheritance import InheritingEstimator, MemoryWeights
from kubenas.estimators.learning_curve import EarlyTermination, EarlyTerminationEstimator
from kubenas.estimators.tabular import TabularEstimator
from tests.conftest import toy_dataset

SPACE = make_space("nb201", width=4)
FIDELITY = Fidelity(epochs=3)
TABLE = "nb201-4op-mnist1d"

# A test configuration (the config's estimator section) per registered estimator; a new estimator joins the contract
# tests by adding its line here (test_every_registered_estimator_has_a_test_config fails until it does).
SECTIONS = {
    "training": {},
    "table": {"table": TABLE},
    "zero_cost": {"proxy": "grad_norm", "proxy_batch_size": 16},
    "inherit": {"inherit": {"epochs": 1}},
    "early_stop": {"early_stop": {"k": 1, "min_epochs": 1, "min_calibration": 2, "threshold": 0.9}},
}


def _make(name, store=None):
    section = {**EstimatorConfig().model_dump(), **SECTIONS[name]}
    assert selected(section)[-1] == name
    return make_estimator(section, store=store if store is not None else MemoryWeights())


def _space(name):
    return TabularEstimator(TABLE).space if name == "table" else SPACE


def _training():
    return TrainingEstimator(device="cpu")


def _early_stop(history=()):
    est = EarlyTerminationEstimator(_training(), EarlyTermination(k=1, min_epochs=1, min_calibration=2, threshold=0.9))
    est.add_history(history)
    return est


def _inherit(weights=None):
    return InheritingEstimator(_training(), weights if weights is not None else MemoryWeights(), epochs=1)


def _context(name):
    return {"parent_id": "p"} if name == "inherit" else {}


def _prime(name, est, data):
    """Give a stateful estimator some state: completed results, a parent's weights."""
    space = _space(name)
    for i in range(2):
        est.evaluate(space.sample(i), space, data, FIDELITY, seed=0, candidate_id="p" if i == 0 else f"q{i}")


def test_every_registered_estimator_has_a_test_config():
    assert set(SECTIONS) == set(ESTIMATORS)


@pytest.mark.parametrize("name", sorted(SECTIONS))
def test_an_estimator_is_deterministic_for_a_seed(name):
    space = _space(name)
    data, arch = toy_dataset(n=48), space.mutate(space.sample(0), 5)
    runs = []
    for seed in (1, 1, 2):
        est = _make(name)
        _prime(name, est, data)
        res = est.evaluate(arch, space, data, FIDELITY, seed=seed, candidate_id="c", **_context(name))
        assert res.ok, res.error
        runs.append({k: v for k, v in res.metrics.items() if k not in ("train_seconds", "latency_ms")})
    assert runs[0] == runs[1]
    if name == "table":
        assert runs[1] == runs[2]  # a lookup: what training with the table's own seed gave
    else:
        assert runs[0] != runs[2]


@pytest.mark.parametrize("name", sorted(SECTIONS))
def test_a_failing_candidate_is_a_failed_result(name):
    data = toy_dataset(n=48)
    est = _make(name)
    _prime(name, est, data)
    if name == "table":  # an architecture the table does not hold: its operations lack 'none'
        arch, space = {**_space(name).sample(0), "edge_1_0": "none"}, None
    else:
        arch, space = SPACE.mutate(SPACE.sample(0), 5), SPACE
        data = dataclasses.replace(data, x_train=torch.full_like(data.x_train, float("nan")))
    res = est.evaluate(arch, space, data, FIDELITY, seed=0, candidate_id="bad", **_context(name))
    assert res.status == "failed" and res.candidate_id == "bad" and res.error


def test_stateful_estimators_round_trip_their_state():
    data, arch = toy_dataset(n=48), SPACE.mutate(SPACE.sample(0), 5)
    # early termination: the state is the completed curves, which the pipeline reads back from the history
    first = _early_stop()
    completed = [
        first.evaluate(SPACE.sample(i), SPACE, data, FIDELITY, candidate_id=str(i)).metrics["val_acc_curve"]
        for i in range(3)
    ]
    a = first.evaluate(arch, SPACE, data, FIDELITY, candidate_id="c")
    b = _early_stop(completed).evaluate(arch, SPACE, data, FIDELITY, candidate_id="c")
    assert a.metrics == {
        **b.metrics,
        "train_seconds": a.metrics["train_seconds"],
        "latency_ms": a.metrics["latency_ms"],
    }
    # inheritance: the state is the stored weights (here a store copied to a fresh estimator, as S3 is shared)
    one = _inherit()
    one.evaluate(SPACE.sample(0), SPACE, data, FIDELITY, candidate_id="p")
    copy = MemoryWeights({k: v for k, v in one.weights.weights.items()})
    x = one.evaluate(arch, SPACE, data, FIDELITY, candidate_id="c", parent_id="p")
    y = _inherit(copy).evaluate(arch, SPACE, data, FIDELITY, candidate_id="c", parent_id="p")
    assert x.metrics["val_acc_curve"] == y.metrics["val_acc_curve"] and x.metrics["inherited_from"] == "p"


@pytest.mark.parametrize("name", sorted(SECTIONS))
def test_an_estimator_reports_the_metrics_it_declares(name):
    """An objective or a constraint may name any metric the registry declares: every successful result has it,
    as a finite number."""
    from kubenas.estimators import reported_metrics

    section = {**EstimatorConfig().model_dump(), **SECTIONS[name]}
    space, est = _space(name), _make(name)
    _prime(name, est, toy_dataset(n=48))
    result = est.evaluate(
        space.sample(3), space, toy_dataset(n=48), FIDELITY, seed=0, candidate_id="c", **_context(name)
    )
    assert result.ok, result.error
    declared = reported_metrics(section)
    assert declared and all(is_finite(result.metrics.get(m)) for m in declared), {
        m: result.metrics.get(m) for m in declared
    }


def test_an_estimator_that_declares_it_reads_no_data_answers_without_it():
    """A base registered with ``reads_data=False`` is given ``dataset=None`` by the train step (its task then loads
    no data and imports no torch for it): it must answer as it does when it is given the data."""
    blind = [name for name, entry in ESTIMATORS.items() if not entry.reads_data]
    assert "table" in blind
    for name in blind:
        space, arch = _space(name), _space(name).sample(4)
        given = _make(name).evaluate(arch, space, toy_dataset(n=48), FIDELITY, seed=0, candidate_id="c")
        without = _make(name).evaluate(arch, space, None, FIDELITY, seed=0, candidate_id="c")
        assert without.ok and without.metrics == given.metrics
