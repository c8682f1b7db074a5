"""Zero-cost proxies: determinism for a seed, failures recorded, the baselines, and what each proxy reacts to."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from kubenas import Result, arch_id, make_space
from kubenas.config import parse_config
from kubenas.estimators.zero_cost import PROXIES, ZeroCostEstimator, proxy_scorer
from kubenas.strategies import STRATEGIES, make_strategy
from kubenas.strategies.prefilter import prefilter
from tests.conftest import toy_dataset
from tests.unit.test_strategies import contract_options

CONV = {
    "depth": 2,
    "op_1": "conv",
    "kernel_1": 3,
    "width_1": 16,
    "act_1": "relu",
    "bn_1": True,
    "op_2": "dense",
    "width_2": 16,
    "act_2": "relu",
    "bn_2": False,
}


def chain():
    return make_space("chain", max_depth=3)


@pytest.mark.parametrize("proxy", sorted(PROXIES))
def test_each_proxy_is_deterministic_for_a_seed_and_records_its_cost(proxy):
    data, est = toy_dataset(), ZeroCostEstimator(proxy, batch_size=32)
    a = est.evaluate(CONV, chain(), data, seed=3, candidate_id="c")
    b = est.evaluate(CONV, chain(), data, seed=3, candidate_id="c")
    assert a.ok and a.metrics == b.metrics and a.cost > 0
    assert a.metrics["zc_proxy"] == proxy and np.isfinite(a.metrics["zc_score"])
    if proxy not in ("params", "macs"):  # the initialisation (and minibatch) follow the seed
        assert est.evaluate(CONV, chain(), data, seed=4).metrics["zc_score"] != a.metrics["zc_score"]


def test_the_size_baselines_are_the_networks_size():
    data = toy_dataset()
    m = ZeroCostEstimator("params").evaluate(CONV, chain(), data).metrics
    assert m["zc_score"] == m["params"] == sum(p.numel() for p in chain().build(CONV, (1, 16), 3).parameters())
    assert (
        ZeroCostEstimator("macs").evaluate(CONV, chain(), data).metrics["zc_score"]
        == m["macs"]
        == 16 * 16 * 3 + 16 * 16 + 16 * 3
    )


def test_synflow_grows_with_width():
    data = toy_dataset()
    narrow, wide = dict(CONV, width_1=16), dict(CONV, width_1=64)
    est = ZeroCostEstimator("synflow")
    assert (
        est.evaluate(wide, chain(), data).metrics["zc_score"] > est.evaluate(narrow, chain(), data).metrics["zc_score"]
    )


def test_nwot_prefers_a_network_that_tells_inputs_apart():
    data = toy_dataset()
    est = ZeroCostEstimator("nwot", batch_size=32)
    wide = est.evaluate(dict(CONV, width_1=64, width_2=64), chain(), data).metrics["zc_score"]
    narrow = est.evaluate(dict(CONV, width_1=16, width_2=16), chain(), data).metrics["zc_score"]
    assert wide > narrow


def test_an_unscorable_candidate_is_a_failed_result_and_never_raises():
    data = toy_dataset()
    nan = dataclasses.replace(data, x_train=torch.full_like(data.x_train, float("nan")))
    res = ZeroCostEstimator("grad_norm").evaluate(CONV, chain(), nan, candidate_id="bad")
    assert res.status == "failed" and "not finite" in res.error and res.candidate_id == "bad"
    # identical inputs make NASWOT's kernel singular: no score, a failed result
    same = dataclasses.replace(data, x_train=data.x_train[:1].repeat(len(data.x_train), 1, 1))
    res = ZeroCostEstimator("nwot", batch_size=16).evaluate(CONV, chain(), same)
    assert res.status == "failed"
    tanh_free = {"depth": 1, "op_1": "maxpool", "kernel_1": 3}
    res = ZeroCostEstimator("nwot").evaluate(tanh_free, chain(), data)
    assert res.status == "failed" and "activation layers" in res.error


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match="zero-cost proxy must be one of synflow, grad_norm, nwot"):
        ZeroCostEstimator("snip")
    with pytest.raises(ValueError, match="batch_size must be an integer >= 2"):
        ZeroCostEstimator("nwot", batch_size=1)


def test_a_config_selects_a_proxy_and_must_optimise_its_score():
    base = {"name": "zc", "dataset": {"name": "mnist1d"}, "space": {"name": "nb201"}, "estimator": {"proxy": "nwot"}}
    with pytest.raises(ValueError, match="set objective.metric to 'zc_score'"):
        parse_config(base)
    cfg = parse_config({**base, "objective": {"metric": "zc_score", "mode": "max"}})
    assert cfg.estimator.proxy == "nwot"
    with pytest.raises(ValueError, match="set estimator.table or estimator.proxy, not both"):
        parse_config(
            {**base, "estimator": {"proxy": "nwot", "table": "nb201-4op-mnist1d"}, "objective": {"metric": "zc_score"}}
        )
    with pytest.raises(ValueError, match="estimator.proxy"):
        parse_config({**base, "estimator": {"proxy": "snip"}})


# ---------------------------------------------------------------------- the pre-filter in front of a strategy
GRID = {"a": list(range(8)), "b": list(range(8))}


def score(arch):
    return -((arch["a"] - 6) ** 2) - (arch["b"] - 1) ** 2


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_a_prefilter_trains_the_best_scoring_of_each_pool(name):
    space = make_space("choice", decisions=GRID)
    options = contract_options(name)
    seen_pools = []

    def scorer(archs):
        seen_pools.append(archs)
        return [float(score(a)) for a in archs]

    strategy = make_strategy(name, space, seed=1, **options)
    strategy = prefilter(strategy, scorer, pool=6)
    asked = []
    for _ in range(5):
        cands = strategy.ask(2)
        asked += cands
        strategy.tell([Result(c.id, "ok", {m: float(score(c.arch)) for m in ("val_acc", "params")}) for c in cands])
    assert len({arch_id(c.arch) for c in asked}) == len(asked) == 10  # still never a repeat
    assert len(seen_pools) == 10
    for cand, pool in zip(asked, seen_pools):
        ids = [arch_id(a) for a in pool]
        assert len(set(ids)) == len(ids) and arch_id(cand.arch) in ids
        assert score(cand.arch) == max(score(a) for a in pool)  # the best of its pool
    # the same scorer after a save and load gives the same asks
    state = json.loads(json.dumps(strategy.state_dict()))
    resumed = make_strategy(name, space, seed=0, **options)
    resumed = prefilter(resumed, scorer, pool=6)
    resumed.load_state_dict(state)
    assert [c.arch for c in resumed.ask(3)] == [c.arch for c in strategy.ask(3)]


def test_the_proxy_scorer_ranks_unscorable_proposals_last_and_caches():
    data = toy_dataset()
    scorer = proxy_scorer("nwot", chain(), data, batch_size=16)
    bad = {"depth": 1, "op_1": "maxpool", "kernel_1": 3}  # no activation: nwot cannot score it
    first = scorer([CONV, bad])
    assert np.isfinite(first[0]) and first[1] == -np.inf
    assert scorer([CONV]) == first[:1]
    with pytest.raises(ValueError, match="prefilter pool must be a positive integer"):
        prefilter(make_strategy("random", chain()), scorer, pool=0)


def test_a_config_puts_a_prefilter_in_front_of_its_strategy():
    cfg = parse_config(
        {
            "name": "pf",
            "dataset": {"name": "mnist1d"},
            "space": {"name": "nb201"},
            "strategy": {"name": "regularized_evolution", "prefilter": {"proxy": "synflow", "pool": 8}},
        }
    )
    assert cfg.strategy.prefilter.pool == 8
    with pytest.raises(ValueError, match="strategy.prefilter.pool"):
        parse_config(
            {
                "name": "pf",
                "dataset": {"name": "mnist1d"},
                "space": {"name": "nb201"},
                "strategy": {"name": "random", "prefilter": {"pool": 1}},
            }
        )
