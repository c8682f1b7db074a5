"""Weight inheritance and Net2Net network morphisms: children compute their parent's function, inherit across
processes through a weight store, and train for fewer epochs."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from kubenas import Fidelity, TrainingEstimator, make_space, search
from kubenas.config import parse_config
from kubenas.estimators.inheritance import InheritingEstimator, MemoryWeights
from kubenas.spaces.morphisms import _relation, morphisms
from kubenas.strategies import make_strategy
from tests.conftest import toy_dataset


@pytest.mark.parametrize("shape", [(1, 40), (12,), (2, 8, 8)])
def test_every_morphism_computes_exactly_the_parents_function(shape):
    space, rng = make_space("chain"), np.random.default_rng(0)
    kinds = {"widen": 0, "deepen": 0}
    for t in range(40):
        parent = space.sample(rng)
        for child in morphisms(space, parent)[:4]:
            kinds[_relation(parent, child)[0]] += 1
            torch.manual_seed(t)
            pm = space.build(parent, shape, 5).train()
            with torch.no_grad():  # non-trivial batch-norm statistics
                pm(torch.randn(32, *shape))
            cm = space.build(child, shape, 5)
            share = space.inherit(cm, child, parent, pm.state_dict(), shape, 5, rng=t)
            assert 0 < share <= 1
            x = torch.randn(16, *shape)
            with torch.no_grad():
                assert torch.allclose(pm.eval()(x), cm.eval()(x), atol=1e-5), (
                    space.genotype(parent),
                    space.genotype(child),
                )
    assert kinds["widen"] > 10 and kinds["deepen"] > 10


def test_morphisms_widen_or_insert_an_identity_layer():
    space = make_space("chain", max_depth=3, widths=[16, 32], activations=["relu", "tanh"])
    arch = {
        "depth": 2,
        "op_1": "conv",
        "kernel_1": 3,
        "width_1": 16,
        "act_1": "relu",
        "bn_1": True,
        "op_2": "dense",
        "width_2": 32,
        "act_2": "tanh",
        "bn_2": False,
    }
    children = morphisms(space, arch)
    assert {**arch, "width_1": 32} in children  # width_2 is already the widest
    inserted = [c for c in children if c["depth"] == 3]
    # only after the ReLU layer (its output is non-negative), never after the tanh one
    assert len(inserted) == 1 and inserted[0]["op_2"] == "conv" and inserted[0]["act_2"] == "relu"
    assert inserted[0]["width_2"] == 16 and inserted[0]["op_3"] == "dense" and inserted[0]["act_3"] == "tanh"
    assert (
        make_space("chain", activations=["tanh"]).morph(
            {"depth": 1, "op_1": "conv", "kernel_1": 3, "width_1": 64, "act_1": "tanh", "bn_1": False}, 0
        )
        is None
    )
    assert make_space("nb201").morph(make_space("nb201").sample(0), 0) is None  # no morphisms outside chain


def test_cell_children_inherit_every_unchanged_edge():
    space = make_space("nb201", width=4)
    parent = space.sample(np.random.default_rng(1))
    child = space.mutate(parent, np.random.default_rng(2))
    pm, cm = space.build(parent, (1, 16), 3), space.build(child, (1, 16), 3)
    share = space.inherit(cm, child, parent, pm.state_dict(), (1, 16), 3)
    assert 0.5 < share <= 1
    changed = [k for k in parent if parent[k] != child[k]]
    for key, value in cm.state_dict().items():
        if not any(edge in key for edge in changed) and key in pm.state_dict():
            assert torch.equal(value, pm.state_dict()[key]), key


def test_children_train_for_fewer_epochs_from_their_parents_weights():
    data, space = (
        toy_dataset(n=64),
        make_space("chain", activations=["relu"], widths=[8, 16, 32, 64]),
    )  # morphisms abound
    weights = MemoryWeights()
    est = InheritingEstimator(TrainingEstimator(device="cpu"), weights, epochs=1)
    res = search(
        space,
        "network_morphism",
        dataset=data,
        fidelity=Fidelity(epochs=3),
        estimator=est,
        max_evals=6,
        seed=0,
        strategy_options={"n_init": 2, "mutation_rate": 0.0},
    )
    roots, children = res.history[:2], res.history[2:]
    assert all(r["parent_id"] is None and r["metrics"]["epochs_trained"] == 3 for r in roots)
    assert all("inherited_from" not in r["metrics"] for r in roots)
    for r in children:
        m = r["metrics"]
        assert m["inherited_from"] == r["parent_id"] and m["epochs_trained"] == 1 and 0 < m["inherited_share"] <= 1
        parent = next(h for h in res.history if h["id"] == r["parent_id"])
        assert _relation(parent["arch"], r["arch"])[0] in ("widen", "deepen")  # mutation_rate 0: morphisms only
    assert set(weights.weights) == {r["id"] for r in res.history}
    # deterministic for a seed
    again = search(
        space,
        "network_morphism",
        dataset=data,
        fidelity=Fidelity(epochs=3),
        estimator=InheritingEstimator(TrainingEstimator(device="cpu"), epochs=1),
        max_evals=6,
        seed=0,
        strategy_options={"n_init": 2, "mutation_rate": 0.0},
    )
    assert [h["metrics"]["val_acc_curve"] for h in again.history] == [
        h["metrics"]["val_acc_curve"] for h in res.history
    ]


def test_a_missing_parent_means_training_from_scratch_and_failures_are_recorded():
    data, space = toy_dataset(n=32), make_space("nb201", width=4)
    est = InheritingEstimator(TrainingEstimator(device="cpu"), epochs=1)
    arch = space.sample(0)
    res = est.evaluate(arch, space, data, Fidelity(epochs=2), candidate_id="c", parent_id="gone")
    assert res.ok and res.metrics["epochs_trained"] == 2 and "inherited_from" not in res.metrics
    nan = dataclasses.replace(data, x_train=torch.full_like(data.x_train, float("nan")))
    bad = est.evaluate(space.mutate(arch, 1), space, nan, Fidelity(epochs=2), candidate_id="d", parent_id="c")
    assert bad.status == "failed" and "non-finite" in bad.error and est.weights.load_weights("d") is None


def test_network_morphism_falls_back_to_mutation_and_checks_its_options():
    space = make_space("nb201")
    strategy = make_strategy("network_morphism", space, seed=0, n_init=1)
    first = strategy.ask(1)[0]
    from kubenas import Result

    strategy.tell([Result(first.id, "ok", {"val_acc": 0.5})])
    child = strategy.ask(1)[0]
    assert child.parent_id == first.id and sum(child.arch[k] != first.arch[k] for k in child.arch) == 1
    with pytest.raises(ValueError, match="mutation_rate must be a number in"):
        make_strategy("network_morphism", space, mutation_rate=2)


def test_config_checks_inheritance_up_front():
    base = {"name": "inh", "dataset": {"name": "mnist1d"}, "space": {"name": "chain"}, "fidelity": {"epochs": 3}}
    assert parse_config({**base, "estimator": {"inherit": {"epochs": 1}}}).estimator.inherit.epochs == 1
    with pytest.raises(ValueError, match=r"inherit.epochs \(3\) must be below fidelity.epochs \(3\)"):
        parse_config({**base, "estimator": {"inherit": {"epochs": 3}}})
    with pytest.raises(ValueError, match="a table has no weights to inherit"):
        parse_config({**base, "space": {"name": "nb201"}, "estimator": {"inherit": {}, "table": "nb201-4op-mnist1d"}})
    with pytest.raises(ValueError, match="set estimator.early_stop or estimator.inherit, not both"):
        parse_config({**base, "estimator": {"inherit": {}, "early_stop": {}}})
