"""Contract tests run over every registered strategy, then strategy-specific checks."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from kubenas import Result, arch_id, make_space, search
from kubenas.strategies import STRATEGIES, make_strategy

# A synthetic, separable objective over a small choice space: its optimum is a=3, b=4, c="z".
GRID = {"a": [0, 1, 2, 3, 4, 5], "b": [0, 1, 2, 3, 4, 5], "c": ["x", "y", "z"]}


def objective(arch):
    return -((arch["a"] - 3) ** 2) - (arch["b"] - 4) ** 2 - (0 if arch["c"] == "z" else 1)


def grid_space():
    return make_space("choice", decisions=GRID)


def fake_result(cand, fail_every=0, index=0):
    """Deterministic results: the objective, with every `fail_every`-th one failing in a different way."""
    if fail_every and index % fail_every == fail_every - 1:
        kind = index // fail_every % 3
        if kind == 0:
            return Result(cand.id, "failed", error="CUDA out of memory")
        if kind == 1:
            return Result(cand.id, "ok", {"val_acc": math.nan})
        return Result(cand.id, "ok", {})  # the metric is missing
    return Result(cand.id, "ok", {"val_acc": float(objective(cand.arch))})


def drive(strategy, rounds, n=3, fail_every=0, start=0):
    asked = []
    for r in range(rounds):
        cands = strategy.ask(n)
        asked.append([(c.id, c.arch) for c in cands])
        strategy.tell([fake_result(c, fail_every, start + r * n + i) for i, c in enumerate(cands)])
    return asked


@pytest.fixture(params=sorted(STRATEGIES))
def name(request):
    return request.param


MULTI_OBJECTIVE = {"nsga2", "pareto_evolution"}
SCHEDULERS = {"successive_halving", "hyperband"}


def contract_options(name, metric="val_acc", mode="max"):
    """Multi-objective strategies need every objective in each result; the contract's results carry one
    metric, so they optimise it twice (a degenerate front: the set of optima). Schedulers re-ask an
    architecture at a higher fidelity, which the contract forbids, so here they run one rung around regularized
    evolution (the wrapping, state and failures); tests/unit/test_hyperband.py covers promotions."""
    if name in MULTI_OBJECTIVE:
        return {"objectives": [{"metric": metric, "mode": mode}] * 2}
    if name in SCHEDULERS:
        return {"base": "regularized_evolution", "min_resource": 3, "max_resource": 3}
    return {}


def make(name, space, **kwargs):
    return make_strategy(name, space, **{**contract_options(name), **kwargs})


def top(best):
    """best() of a multi-objective strategy is its Pareto front, best first on the first objective."""
    return (best[0] if best else None) if isinstance(best, list) else best


def test_ask_returns_valid_unique_candidates(name, space):
    if name == "grid" and (space.size() or 0) > 1_000_000:  # grid refuses spaces it cannot enumerate
        with pytest.raises(ValueError, match="grid search needs a finite space"):
            make(name, space, seed=0)
        return
    strategy = make(name, space, seed=0)
    seen = set()
    for _ in range(4):
        cands = strategy.ask(3)
        assert len(cands) == 3
        for c in cands:
            space.validate(c.arch)
            assert c.id not in seen and c.id.endswith(arch_id(c.arch)[:8])
            seen.add(c.id)
        strategy.tell([Result(c.id, "ok", {"val_acc": float(len(c.arch))}) for c in cands])
    assert not strategy.pending
    assert len({arch_id(h["arch"]) for h in strategy.history}) == 12  # no architecture asked twice


def test_same_seed_and_results_give_same_asks(name):
    runs = [drive(make(name, grid_space(), seed=7), rounds=8, fail_every=4) for _ in range(2)]
    assert runs[0] == runs[1]
    other = drive(make(name, grid_space(), seed=8), rounds=8, fail_every=4)
    if name == "grid":  # the grid's order is the space's, whatever the seed; shuffle=True makes it seeded
        assert other == runs[0]
        shuffled = [drive(make(name, grid_space(), seed=s, shuffle=True), rounds=8) for s in (7, 8)]
        assert shuffled[0] != shuffled[1]
        return
    assert other != runs[0]


@pytest.mark.parametrize("stop_after_ask", [False, True])
def test_state_round_trip_mid_search_gives_identical_later_asks(name, stop_after_ask):
    options = {"regularized_evolution": {"population_size": 6, "sample_size": 3}, "local_search": {"n_init": 4}}
    reference = make(name, grid_space(), seed=3, **options.get(name, {}))
    drive(reference, rounds=5, fail_every=5)
    pending = reference.ask(2) if stop_after_ask else []
    state = json.loads(json.dumps(reference.state_dict()))  # must be plain JSON

    resumed = make(name, grid_space(), seed=999)  # the seed and options come back from the state
    resumed.load_state_dict(state)
    results = [fake_result(c) for c in pending]
    reference.tell(results)
    resumed.tell(results)
    assert drive(resumed, rounds=6, fail_every=5, start=100) == drive(reference, rounds=6, fail_every=5, start=100)
    assert resumed.best() == reference.best()


def test_a_state_without_its_history_resumes_from_the_result_rows(name):
    # The pipeline keeps told results in its Parquet history, and the strategy state only what the algorithm needs.
    reference = make(name, grid_space(), seed=5)
    rows = []
    for r in range(6):
        cands = reference.ask(3)
        results = [fake_result(c, 4, r * 3 + i) for i, c in enumerate(cands)]
        reference.tell(results)
        rows += [
            {
                "id": c.id,
                "arch": c.arch,
                "parent_id": c.parent_id,
                "status": res.status,
                "metrics": res.metrics,
                "cost": res.cost,
                "error": res.error,
                "fidelity": c.fidelity,
            }
            for c, res in zip(cands, results)
        ]
    full, lean = reference.state_dict(), json.loads(json.dumps(reference.state_dict(history=False)))
    assert "history" not in lean and len(json.dumps(lean)) < len(json.dumps(full))
    resumed = make(name, grid_space(), seed=999)
    with pytest.raises(ValueError, match="without its history"):
        resumed.load_state_dict(lean)
    resumed.load_state_dict(lean, history=rows)
    assert resumed.history == reference.history and resumed.best() == reference.best()
    assert drive(resumed, rounds=4, start=50) == drive(reference, rounds=4, start=50)


def test_state_round_trip_through_a_new_process(name, tmp_path):
    strategy = make(name, grid_space(), seed=11)
    drive(strategy, rounds=4, fail_every=3)
    state_file = tmp_path / "state.json"
    state_file.write_text(json.dumps(strategy.state_dict()))
    code = f"""
import json
from kubenas import make_space, make_strategy
strategy = make_strategy({name!r}, make_space("choice", decisions={GRID!r}))
strategy.load_state_dict(json.load(open({str(state_file)!r})))
print(json.dumps([[c.id, c.arch] for c in strategy.ask(5)]))
"""
    out = subprocess.check_output([sys.executable, "-c", code], text=True)
    assert json.loads(out) == [[c.id, c.arch] for c in strategy.ask(5)]


def test_failures_never_crash_and_never_win(name):
    strategy = make(name, grid_space(), seed=0)
    drive(strategy, rounds=10, n=2, fail_every=2)
    statuses = [h["status"] for h in strategy.history]
    assert statuses.count("failed") == 10 and statuses.count("ok") == 10
    best = top(strategy.best())
    assert best is not None and best["value"] == max(h["value"] for h in strategy.history if h["value"] is not None)

    all_failed = make(name, grid_space(), seed=0)
    for _ in range(5):
        all_failed.tell([Result(c.id, "failed", error="boom") for c in all_failed.ask(2)])
    assert top(all_failed.best()) is None
    assert len(all_failed.ask(2)) == 2  # and it goes on asking


def test_tell_rejects_unknown_and_repeated_ids(name):
    strategy = make(name, grid_space(), seed=0)
    cand = strategy.ask(1)[0]
    with pytest.raises(ValueError, match="was never asked"):
        strategy.tell([Result("00099-deadbeef", "ok", {"val_acc": 1.0})])
    strategy.tell([Result(cand.id, "ok", {"val_acc": 1.0})])
    with pytest.raises(ValueError, match="was already told"):
        strategy.tell([{"candidate_id": cand.id, "status": "ok", "metrics": {"val_acc": 1.0}}])


def test_finds_the_optimum_of_a_small_space(name):
    space = grid_space()
    result = search(
        space,
        name,
        objective=objective,
        max_evals=space.size(),
        seed=0,
        batch_size=4,
        strategy_options=contract_options(name),
    )
    assert result.best["arch"] == {"a": 3, "b": 4, "c": "z"}
    # searching the whole space never repeats an architecture, and then the strategy says it is exhausted
    assert len({r["arch_id"] for r in result.history}) == space.size()
    strategy = make(name, space, seed=0)
    strategy.load_state_dict(result.state)
    assert strategy.ask(3) == []


def test_minimisation(name):
    result = search(
        grid_space(),
        name,
        objective=lambda a: -objective(a),
        metric="loss",
        mode="min",
        strategy_options=contract_options(name, "loss", "min"),
        max_evals=grid_space().size(),
        seed=1,
    )
    assert result.best["metrics"]["loss"] == 0


def test_state_rejects_another_strategy_or_space(name):
    state = make(name, grid_space(), seed=0).state_dict()
    other = next(n for n in STRATEGIES if n != name)
    with pytest.raises(ValueError, match=f"belongs to strategy '{name}'"):
        make_strategy(other, grid_space()).load_state_dict(state)
    with pytest.raises(ValueError, match="saved for space"):
        make(name, make_space("choice", decisions={"a": [1, 2]})).load_state_dict(state)


def test_unknown_strategy_option_is_named():
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['populaton_size'\]; accepted: .*population_size"):
        make_strategy("regularized_evolution", grid_space(), populaton_size=10)
    with pytest.raises(ValueError, match="sample_size must be an integer in 1..population_size"):
        make_strategy("regularized_evolution", grid_space(), population_size=4, sample_size=9)
    with pytest.raises(ValueError, match="unknown strategy 'bayes'; registered"):
        make_strategy("bayes", grid_space())


# ---------------------------------------------------------------------- strategy-specific behaviour
def test_regularized_evolution_ages_its_population_and_mutates_members():
    strategy = make_strategy("regularized_evolution", grid_space(), seed=0, population_size=5, sample_size=2)
    drive(strategy, rounds=10, n=2)
    state = strategy.state_dict()["extra"]
    assert len(state["population"]) == 5
    told = [h["id"] for h in strategy.history]
    assert [m["id"] for m in state["population"]] == told[-5:]  # the five most recent, oldest first
    children = strategy.ask(4)
    assert all(c.parent_id in told for c in children)
    for c in children:
        parent = next(h["arch"] for h in strategy.history if h["id"] == c.parent_id)
        assert sum(parent[k] != c.arch[k] for k in GRID) == 1


def test_local_search_climbs_then_restarts():
    space = grid_space()
    strategy = make_strategy("local_search", space, seed=0, n_init=3)
    drive(strategy, rounds=40, n=1)
    optima = strategy.local_optima
    # the objective is separable, so the first climb ends at the global optimum and a restart follows
    assert optima and optima[0]["arch"] == {"a": 3, "b": 4, "c": "z"}
    assert len(strategy.history) < space.size()


def queries_to_optimum(strategy, objective, optimum, budget):
    """How many one-at-a-time queries ``strategy`` needs before it asks ``optimum`` (budget + 1 if it never does)."""
    for q in range(1, budget + 1):
        (cand,) = strategy.ask(1)
        if cand.arch == optimum:
            return q
        strategy.tell([Result(cand.id, "ok", {"val_acc": objective(cand.arch)})])
    return budget + 1


def test_bayes_quadratic_learns_an_interaction_that_random_search_cannot_see():
    # 5^4 = 625 architectures; the optimum needs a and b to agree, which no single decision reveals
    space = make_space("choice", decisions={k: [0, 1, 2, 3, 4] for k in "abcd"})
    rng = __import__("numpy").random.default_rng(0)
    noise = {arch_id(a): float(rng.normal(0, 0.3)) for a in space.enumerate()}

    def objective(arch):
        return 2.0 * (arch["a"] == arch["b"]) + arch["c"] * 0.5 - abs(arch["d"] - 2) + noise[arch_id(arch)]

    optimum = max(space.enumerate(), key=objective)
    found = {
        name: sorted(queries_to_optimum(make_strategy(name, space, seed=s), objective, optimum, 200) for s in range(5))
        for name in ("bayes_quadratic", "random")
    }
    assert found["bayes_quadratic"][2] <= 80  # the median of 5 seeds
    assert found["bayes_quadratic"][2] * 2 < found["random"][2]


def test_bayes_quadratic_fits_the_noise_level_by_evidence():
    from kubenas.strategies.bayes_quadratic import _fit

    np = __import__("numpy")
    rng = np.random.default_rng(1)
    phi = rng.integers(0, 2, size=(300, 20)).astype(float)
    weights = rng.normal(0, 1, 20)
    y = phi @ weights + rng.normal(0, 0.5, 300)
    mean, vecs, scale, prior = _fit(phi, y)
    assert np.abs(mean - weights).max() < 0.25
    residual = y - phi @ mean
    assert 0.4 < residual.std() < 0.6  # the fit neither interpolates the noise nor ignores the signal

    # the posterior narrows with data: predictions at new points are surer after 300 results than after 15,
    # where the fit works on the 15 x 15 side and the directions no result informs keep the prior's spread
    def predictive_sd(fit, x):
        _, vecs, scale, prior = fit
        along = x @ vecs
        rest = np.sum(x**2, 1) - np.sum(along**2, 1)
        return np.sqrt(np.sum((along * scale) ** 2, 1) + prior**2 * np.maximum(rest, 0))

    new = rng.integers(0, 2, size=(50, 20)).astype(float)
    few = _fit(phi[:15], y[:15])
    assert few[1].shape == (20, 15) and few[3] > 0
    assert np.median(predictive_sd(few, new)) > 3 * np.median(predictive_sd((mean, vecs, scale, prior), new))


def test_bayes_quadratic_searches_a_pool_when_the_space_is_too_big_to_enumerate():
    space = make_space("choice", decisions={k: list(range(6)) for k in "abcdefgh"})  # 1.7 million
    strategy = make_strategy("bayes_quadratic", space, seed=0, n_init=8)
    target = {k: 5 for k in "abcdefgh"}
    scores = []
    for _ in range(60):
        (cand,) = strategy.ask(1)
        value = float(sum(cand.arch[k] == 5 for k in target))
        scores.append(value)
        strategy.tell([Result(cand.id, "ok", {"val_acc": value})])
    assert strategy._all() is None  # over enumerate_limit: candidates come from mutations and samples
    assert max(scores[:8]) <= 4 and max(scores[-10:]) >= 7  # random starts rarely match 5 of 8; the model does


def test_grid_over_given_architectures_asks_exactly_those_in_order_then_stops():
    space = make_space("katib_enas", layers=3)  # far too large to enumerate
    archs = [space.from_katib([[27], [43, 0], [94, 1, 1]]), space.from_katib([[1], [2, 1], [3, 0, 1]])]
    strategy = make_strategy("grid", space, archs=archs)
    asked = strategy.ask(5)
    assert [c.arch for c in asked] == archs
    strategy.tell([Result(c.id, "ok", {"val_acc": 0.5}) for c in asked])
    assert strategy.ask(1) == []
    with pytest.raises(ValueError, match=r"grid: archs\[1\] is not in the 'katib_enas' space: .*op_1"):
        make_strategy("grid", space, archs=[archs[0], {**archs[1], "op_1": 200}])
    with pytest.raises(ValueError, match=r"grid: archs\[1\] is archs\[0\] again"):
        make_strategy("grid", space, archs=[archs[0], archs[0]])
    with pytest.raises(ValueError, match="grid: archs must list at least one architecture"):
        make_strategy("grid", space, archs=[])
