"""Multi-objective pieces: domination, fronts, crowding, hypervolume, and the strategies' constraints."""

import math

import pytest

from kubenas import Result, make_space
from kubenas.strategies import make_strategy
from kubenas.strategies.pareto import crowding, dominates, fronts, hypervolume_2d, pareto_front, violation

SPACE = {"depth": [1, 2, 3, 4, 5, 6], "width": [8, 16, 32, 64, 128]}


def rec(acc, neg_params, viol=0.0, rid="x"):
    return {"id": rid, "objectives": [acc, neg_params], "violation": viol}


def test_constrained_domination_and_fronts():
    a, b, c, d = rec(0.9, -100), rec(0.8, -50), rec(0.7, -200), rec(0.99, -10, viol=0.5)
    assert dominates(a, c) and not dominates(a, b) and not dominates(b, a)
    assert dominates(c, d)  # any feasible result beats an infeasible one
    assert fronts([a, b, c, d]) == [[0, 1], [2], [3]]
    dist = crowding([a, b, c], [0, 1])
    assert dist[0] == dist[1] == math.inf


def test_violation_is_relative_and_zero_when_feasible():
    assert violation({"params": 90}, {"params": {"max": 100}}) == 0
    assert violation({"params": 150}, {"params": {"max": 100}}) == pytest.approx(0.5)
    assert violation({}, {"params": {"max": 100}}) == math.inf


def test_hypervolume_2d():
    assert hypervolume_2d([(1, 1)], (0, 0)) == 1
    assert hypervolume_2d([(2, 1), (1, 2)], (0, 0)) == 3  # two rectangles overlapping in a unit square
    assert hypervolume_2d([(2, 1), (1, 2), (1, 1)], (0, 0)) == 3  # a dominated point adds nothing


def evaluate(arch):
    """Accuracy grows with depth and width; params grow with both: a real trade-off."""
    params = arch["depth"] * arch["width"] ** 2
    acc = 1 - 1 / (1 + 0.3 * arch["depth"] + math.log2(arch["width"]))
    return {"val_acc": acc, "params": params}


@pytest.mark.parametrize("name", ["nsga2", "pareto_evolution"])
def test_constraint_never_wins_and_front_is_non_dominated(name):
    space = make_space("choice", decisions=SPACE)
    strategy = make_strategy(name, space, seed=0, population_size=6, constraints={"params": {"max": 20_000}})
    for _ in range(8):
        cands = strategy.ask(3)
        strategy.tell([Result(c.id, "ok", evaluate(c.arch)) for c in cands])
    front = strategy.best()
    assert front and all(m["objectives"]["params"] <= 20_000 for m in front)
    # the most accurate architecture overall violates the constraint; it is never the winner
    overall = max(strategy.history, key=lambda h: h["value"])
    assert evaluate(overall["arch"])["params"] > 20_000 and front[0]["id"] != overall["id"]
    # nothing evaluated and feasible dominates a member of the front
    feasible = [h for h in strategy.history if h["violation"] == 0]
    for m in front:
        acc, params = m["objectives"]["val_acc"], m["objectives"]["params"]
        assert not any(
            h["objectives"][0] >= acc
            and -h["objectives"][1] <= params
            and (h["objectives"][0] > acc or -h["objectives"][1] < params)
            for h in feasible
        )
    assert front == sorted(front, key=lambda m: -m["objectives"]["val_acc"])


def test_a_missing_objective_is_a_failure():
    strategy = make_strategy("nsga2", make_space("choice", decisions=SPACE), seed=0)
    cand = strategy.ask(1)[0]
    strategy.tell([Result(cand.id, "ok", {"val_acc": 0.9})])  # no params
    assert strategy.history[0]["status"] == "failed" and strategy.best() == []


def test_bad_objectives_and_constraints_are_named():
    space = make_space("choice", decisions=SPACE)
    with pytest.raises(ValueError, match="at least two"):
        make_strategy("nsga2", space, objectives=[{"metric": "val_acc"}])
    with pytest.raises(ValueError, match=r"objectives\[1\].mode"):
        make_strategy("nsga2", space, objectives=[{"metric": "val_acc"}, {"metric": "params", "mode": "down"}])
    with pytest.raises(ValueError, match="constraints.params"):
        make_strategy("pareto_evolution", space, constraints={"params": 100})


def test_pareto_front_prefers_feasible():
    records = [rec(0.9, -10, viol=1.0, rid="bad"), rec(0.5, -10, rid="ok")]
    assert [r["id"] for r in pareto_front(records)] == ["ok"]
