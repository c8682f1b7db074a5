"""Extending kubenas: a space, a dataset and an estimator are each one module (``tests/toys``) plus one registry
line, and the contract tests of their kind pick them up. The registrations here are temporary (monkeypatch)."""

from __future__ import annotations

import inspect

import pytest

from kubenas import search
from kubenas.config import parse_config
from kubenas.data import DATASETS, Loader, load_dataset
from kubenas.estimators import ESTIMATORS, Entry, make_estimator
from kubenas.spaces import SPACES, make_space
from tests.toys.dataset import load_toy_blobs, toy_blobs_info
from tests.toys.estimator import SizeEstimator
from tests.toys.space import ToySpace
from tests.unit import test_estimator_contract as estimator_contract
from tests.unit import test_spaces as space_contract
from tests.unit.test_dataset_contract import check_dataset


@pytest.fixture
def registered(monkeypatch):
    monkeypatch.setitem(SPACES, "toy", ToySpace)
    monkeypatch.setitem(DATASETS, "toy", Loader(load_toy_blobs, toy_blobs_info))
    monkeypatch.setitem(
        ESTIMATORS, "size", Entry("tests.toys.estimator:SizeEstimator", "size", metrics=("val_acc", "params"))
    )


def test_a_new_space_keeps_the_space_contract(registered):
    space = make_space("toy")
    contract = [
        f
        for name, f in vars(space_contract).items()
        if name.startswith("test_") and list(inspect.signature(f).parameters) in (["space"], ["buildable_space"])
    ]
    assert len(contract) >= 10
    for test in contract:
        test(space)
    assert space.diagram(space.sample(0))  # and it draws (its decisions, as it brings no diagram of its own)


def test_a_new_dataset_keeps_the_dataset_contract(registered):
    check_dataset("toy", {"classes": 4})


def test_a_new_estimator_keeps_the_estimator_contract(registered, monkeypatch):
    monkeypatch.setitem(estimator_contract.SECTIONS, "size", {"size": {"scale": 1e-4}})
    estimator_contract.test_every_registered_estimator_has_a_test_config()
    estimator_contract.test_an_estimator_is_deterministic_for_a_seed("size")
    estimator_contract.test_a_failing_candidate_is_a_failed_result("size")
    estimator_contract.test_an_estimator_reports_the_metrics_it_declares("size")


def test_the_three_search_together_from_a_config(registered):
    cfg = parse_config(
        {
            "name": "toys",
            "dataset": {"name": "toy", "options": {"classes": 3}},
            "space": {"name": "toy", "options": {"max_layers": 2}},
            "strategy": {"name": "random"},
            "estimator": {"size": {"scale": 1e-3}},
            "fidelity": {"epochs": 1},
        }
    )
    estimator = make_estimator(cfg.estimator.model_dump())
    assert isinstance(estimator, SizeEstimator) and estimator.scale == 1e-3
    result = search(
        cfg.space.build(), "random", dataset=load_dataset("toy", classes=3), estimator=estimator, max_evals=5, seed=0
    )
    assert len(result.history) == 5 and result.best["metrics"]["params"] == max(
        r["metrics"]["params"] for r in result.history
    )


def test_an_unregistered_estimator_field_is_named():
    with pytest.raises(Exception, match=r"estimator: unknown field\(s\) \['size'\]"):
        parse_config(
            {"name": "x", "dataset": {"name": "mnist1d"}, "space": {"name": "nb201"}, "estimator": {"size": {}}}
        )
