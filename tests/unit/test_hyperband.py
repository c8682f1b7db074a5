"""Successive halving and Hyperband: rungs, promotions, brackets, state, and the base strategy's view."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from kubenas import Result, make_space, search
from kubenas.strategies import make_strategy
from kubenas.strategies.hyperband import rungs

GRID = {"a": list(range(8)), "b": list(range(8)), "c": ["x", "y", "z"]}


def space():
    return make_space("choice", decisions=GRID)


def quality(arch):
    return -((arch["a"] - 5) ** 2) - (arch["b"] - 2) ** 2 - (0 if arch["c"] == "y" else 2)


def objective(arch, fidelity):
    """Higher fidelity reads the architecture's quality more faithfully: the offset shrinks with the epochs."""
    return float(quality(arch) - 10.0 / fidelity["epochs"])


def by_id(history):
    return {r["id"]: r for r in history}


def test_rungs_are_geometric_and_end_at_the_maximum():
    assert rungs(1, 9, 3, "epochs") == [1, 3, 9]
    assert rungs(1, 3, 2, "epochs") == [1, 2, 3]
    assert rungs(1, 10, 3, "epochs") == [1, 3, 9, 10]
    assert rungs(2, 2, 3, "epochs") == [2]
    assert rungs(0.1, 1, 3, "data_fraction") == [0.1, 0.3, 0.9, 1.0]


def test_successive_halving_promotes_the_top_third_of_each_rung_to_the_next():
    result = search(
        space(),
        "successive_halving",
        objective=objective,
        max_evals=90,
        seed=0,
        batch_size=3,
        strategy_options={"min_resource": 1, "max_resource": 9, "eta": 3},
    )
    rows = by_id(result.history)
    epochs = Counter(r["fidelity"]["epochs"] for r in result.history)
    assert set(epochs) == {1, 3, 9}
    assert epochs[1] > epochs[3] > epochs[9] >= 1
    # asynchronous: a promotion is judged on the results told so far, so (unlike synchronous SH) slightly more
    # than 1/eta of a rung can end up promoted; each promotion's rank is checked below
    assert epochs[3] < epochs[1] / 2 and epochs[9] < epochs[3] / 2
    for r in result.history:
        if r["fidelity"]["epochs"] > 1:  # a promotion: the same architecture, one rung up, from a parent that ran
            parent = rows[r["parent_id"]]
            assert parent["arch"] == r["arch"] and parent["fidelity"]["epochs"] * 3 == r["fidelity"]["epochs"]
            assert parent["status"] == "ok"
            # it ranked in the top third of its rung among the results told before it was promoted
            before = [
                x["metrics"]["val_acc"]
                for x in result.history[: result.history.index(r)]
                if x["fidelity"]["epochs"] == parent["fidelity"]["epochs"] and x["status"] == "ok"
            ]
            assert sorted(before, reverse=True).index(parent["metrics"]["val_acc"]) < len(before) / 3
    # the winner is the best result at the highest rung, not a lucky low-fidelity one
    assert result.best["fidelity"]["epochs"] == 9
    top = max((r for r in result.history if r["fidelity"]["epochs"] == 9), key=lambda r: r["metrics"]["val_acc"])
    assert result.best["id"] == top["id"]


def test_hyperband_starts_new_architectures_in_every_bracket_and_compares_within_one():
    strategy = make_strategy("hyperband", space(), seed=1, min_resource=1, max_resource=9, eta=3)
    assert strategy.brackets == 3
    result = search(space(), strategy, objective=objective, max_evals=120, seed=1, batch_size=4)
    first = [
        r
        for r in result.history
        if r["parent_id"] is None or by_id(result.history)[r["parent_id"]]["arch"] != r["arch"]
    ]
    assert {r["fidelity"]["epochs"] for r in first} == {1, 3, 9}  # every bracket got new architectures
    trials = strategy.state_dict()["extra"]["trials"]
    for t in trials.values():  # an architecture's rungs start at its bracket
        assert min(int(k) for k in t["results"]) == t["bracket"] if t["results"] else True


def test_a_failed_rung_ends_that_architecture_and_the_search_goes_on():
    def flaky(arch, fidelity):
        if fidelity["epochs"] == 3 and arch["c"] == "y":
            raise RuntimeError("CUDA out of memory")
        return objective(arch, fidelity)

    result = search(
        space(),
        "successive_halving",
        objective=flaky,
        max_evals=90,
        seed=2,
        batch_size=3,
        strategy_options={"min_resource": 1, "max_resource": 9, "eta": 3},
    )
    failed = [r for r in result.history if r["status"] == "failed"]
    assert failed and all(r["fidelity"]["epochs"] == 3 for r in failed)
    failed_ids = {r["id"] for r in failed}
    assert not any(r["parent_id"] in failed_ids for r in result.history)  # never promoted past a failure
    assert result.best is not None and result.best["status"] == "ok"


def test_state_round_trip_with_promotions_pending_gives_identical_later_asks():
    def drive(strategy, rounds, start=0):
        asked = []
        for i in range(rounds):
            cands = strategy.ask(3)
            asked.append([(c.id, c.arch, c.fidelity, c.parent_id) for c in cands])
            strategy.tell(
                [Result(c.id, "ok", {"val_acc": objective(c.arch, c.fidelity) + 0.01 * (start + i)}) for c in cands]
            )
        return asked

    options = {
        "base": "regularized_evolution",
        "base_options": {"population_size": 6, "sample_size": 2},
        "min_resource": 1,
        "max_resource": 9,
        "eta": 3,
    }
    reference = make_strategy("hyperband", space(), seed=4, **options)
    drive(reference, 8)
    pending = reference.ask(3)
    assert any(c.fidelity["epochs"] > 1 for c in reference.pending) or any(h["rung"] > 0 for h in reference.history)
    state = json.loads(json.dumps(reference.state_dict()))
    resumed = make_strategy("hyperband", space(), seed=0)
    resumed.load_state_dict(state)
    assert [c.to_dict() for c in resumed.pending] == [c.to_dict() for c in pending]
    results = [Result(c.id, "ok", {"val_acc": objective(c.arch, c.fidelity)}) for c in pending]
    reference.tell(results)
    resumed.tell(results)
    assert drive(resumed, 6, start=50) == drive(reference, 6, start=50)
    assert resumed.best() == reference.best()


def test_the_base_strategy_learns_from_each_architectures_first_rung_only():
    strategy = make_strategy(
        "successive_halving",
        space(),
        seed=3,
        base="bananas",
        base_options={"n_init": 5, "epochs": 20},
        min_resource=1,
        max_resource=9,
    )
    search(space(), strategy, objective=objective, max_evals=60, seed=3)
    new = [h for h in strategy.history if h["rung"] == 0]
    assert len(strategy.inner.history) == len(new) and not strategy.inner.pending
    assert [h["value"] for h in strategy.inner.history] == [h["value"] for h in new]
    assert any(h["rung"] > 0 for h in strategy.history)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"eta": 1}, "eta must be a number > 1"),
        ({"min_resource": 5, "max_resource": 3}, r"min_resource \(5\) must not exceed max_resource \(3\)"),
        ({"resource": "lr"}, "resource must be one of epochs, data_fraction"),
        ({"min_resource": 1.5}, "min_resource must be a whole number of epochs"),
        ({"resource": "data_fraction", "min_resource": 0.1, "max_resource": 2}, "at most 1"),
        ({"brackets": 4}, r"brackets must be an integer in 1..3 \(the number of rungs \[1, 3, 9\]\)"),
        ({"base": "hyperband"}, "base must be a search strategy, not another scheduler"),
        ({"base": "nsga2"}, "base 'nsga2' is multi-objective"),
        ({"base": "bayes"}, "hyperband: base: unknown strategy 'bayes'"),
        (
            {"base_options": {"populaton_size": 3}, "base": "regularized_evolution"},
            r"unknown option\(s\) \['populaton_size'\]",
        ),
        ({"base_options": {"seed": 3}}, r"set \['seed'\] on the scheduler"),
    ],
)
def test_bad_options_are_named(options, message):
    with pytest.raises(ValueError, match=message):
        make_strategy("hyperband", space(), **options)


def test_successive_halving_has_one_bracket():
    with pytest.raises(ValueError, match="successive halving has one bracket"):
        make_strategy("successive_halving", space(), brackets=2)


def test_the_base_strategys_state_holds_no_results_and_resumes_from_the_schedulers_history():
    options = {"base": "bananas", "base_options": {"n_init": 4}, "min_resource": 1, "max_resource": 9, "eta": 3}
    sched = make_strategy("hyperband", space(), seed=2, **options)
    for _ in range(8):
        cands = sched.ask(3)
        sched.tell([Result(c.id, "ok", {"val_acc": quality(c.arch) * c.fidelity["epochs"] / 9}) for c in cands])
    state = json.loads(json.dumps(sched.state_dict()))
    assert "history" not in state["extra"]["inner"]  # the base's results are the trials' first evaluations
    resumed = make_strategy("hyperband", space(), seed=0, **options)
    resumed.load_state_dict(state)
    assert resumed.inner.history == sched.inner.history
    assert [c.arch for c in resumed.ask(4)] == [c.arch for c in sched.ask(4)]
