"""Zero-cost proxies: determinism for a seed, failures recorded, the baselines, and what each proxy reacts to."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from kubenas import make_space
from kubenas.config import parse_config
from kubenas.estimators.zero_cost import PROXIES, ZeroCostEstimator
from tests.conftest import toy_dataset

CONV = {"depth": 2, "op_1": "conv", "kernel_1": 3, "width_1": 16, "act_1": "relu", "bn_1": True,
        "op_2": "dense", "width_2": 16, "act_2": "relu", "bn_2": False}


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
    assert ZeroCostEstimator("macs").evaluate(CONV, chain(), data).metrics["zc_score"] == m["macs"] == 16 * 16 * 3 + 16 * 16 + 16 * 3


def test_synflow_grows_with_width():
    data = toy_dataset()
    narrow, wide = dict(CONV, width_1=16), dict(CONV, width_1=64)
    est = ZeroCostEstimator("synflow")
    assert est.evaluate(wide, chain(), data).metrics["zc_score"] > est.evaluate(narrow, chain(), data).metrics["zc_score"]


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
    base = {"name": "zc", "dataset": {"name": "mnist1d"}, "space": {"name": "nb201"},
            "estimator": {"proxy": "nwot"}}
    with pytest.raises(ValueError, match="set objective.metric to 'zc_score'"):
        parse_config(base)
    cfg = parse_config({**base, "objective": {"metric": "zc_score", "mode": "max"}})
    assert cfg.estimator.proxy == "nwot"
    with pytest.raises(ValueError, match="set estimator.table or estimator.proxy, not both"):
        parse_config({**base, "estimator": {"proxy": "nwot", "table": "nb201-4op-mnist1d"},
                      "objective": {"metric": "zc_score"}})
    with pytest.raises(ValueError, match="estimator.proxy"):
        parse_config({**base, "estimator": {"proxy": "snip"}})
