"""One-shot search: the supernets contain every architecture, and every method is deterministic on CPU for a
seed, resumes exactly from its saved state, records failures and is selectable from a config."""

from __future__ import annotations

import dataclasses
import io
import json
import re

import numpy as np
import pytest
import torch

from kubenas import make_space
from kubenas.config import parse_config
from kubenas.oneshot import ONESHOT, derive, make_oneshot, oneshot_search, rank, supernet
from tests.conftest import toy_dataset

OPTIONS = {"random_sampling": {}, "enas": {"controller_steps": 3}, "darts": {}}
SPACES = {"nb201": {"width": 4}, "cell": {"width": 4, "blocks": 2}}


def test_every_registered_method_has_a_test_config():
    assert set(OPTIONS) == set(ONESHOT)


def _standalone_state(space, arch, net):
    """The supernet's weights of ``arch``'s path, under the names of ``space.build``'s network."""
    out = {}
    for key, value in net.state_dict().items():
        if space.name == "nb201":
            m = re.fullmatch(r"layers\.(\d+)\.edges\.(edge_\d_\d)\.(\w+)\.(.+)", key)
            if m:
                if arch[m[2]] == m[3]:
                    out[f"{m[1]}.ops.{m[2]}.{m[4]}"] = value
            else:
                out[key.removeprefix("layers.")] = value
        else:
            m = re.fullmatch(r"cells\.(\d+)\.edges\.(\d)_(\d)\.(\w+)\.(.+)", key)
            if not m:
                out[key] = value
                continue
            cell, j, i, op, rest = m[1], int(m[2]), int(m[3]), m[4], m[5]
            kind = net.cells[int(cell)].kind
            a, b = arch[f"{kind}_{j}_inputs"]
            for slot, node in ((0, a), (1, b)):
                if node == i and arch[f"{kind}_{j}_op{slot}"] == op:
                    out[f"cells.{cell}.ops.{2 * (j - 2) + slot}.{rest}"] = value
    return out


@pytest.mark.parametrize("name", sorted(SPACES))
def test_a_supernet_path_is_the_architecture_with_shared_weights(name):
    space = make_space(name, **SPACES[name])
    net = supernet(space, (1, 16), 3)
    with torch.no_grad():  # non-trivial batch-norm statistics everywhere
        for s in range(3):
            net.train()(torch.randn(8, 1, 16), arch=space.sample(s))
    for seed in range(3):
        arch = space.sample(np.random.default_rng(seed))
        model = space.build(arch, (1, 16), 3)
        model.load_state_dict(_standalone_state(space, arch, net))
        x = torch.randn(5, 1, 16)
        with torch.no_grad():
            assert torch.allclose(net.eval()(x, arch=arch), model.eval()(x), atol=1e-5)


def test_derive_takes_the_strongest_operations():
    nb = make_space("nb201")
    weights = {k: [0.1, 0.2, 0.3, 0.4, 0.0] for k in nb._names()}  # nor_conv_3x3 everywhere
    assert set(derive(nb, weights).values()) == {"nor_conv_3x3"}
    cut = {k: [0.9, 0.1, 0.0, 0.0, 0.0] for k in nb._names()}  # 'none' everywhere would cut the cell off
    arch = derive(nb, cut)
    assert nb._check(arch) is None and "skip_connect" in arch.values()
    cell = make_space("cell", blocks=2)
    w = {k: [0.0] * 8 for kind in ("normal", "reduce") for j in (2, 3) for k in (f"{kind}_{j}_{i}" for i in range(j))}
    w["normal_3_2"][0] = 0.9  # sep_conv_3x3 from node 2
    w["normal_3_0"][6] = 0.8  # skip from node 0
    w["normal_3_1"][7] = 0.99  # 'none' from node 1 never counts
    arch = derive(cell, w)
    assert arch["normal_3_inputs"] == [0, 2] and arch["normal_3_op0"] == "skip_connect"
    assert arch["normal_3_op1"] == "sep_conv_3x3"


def _method(name, space_name="nb201", seed=0):
    space = make_space(space_name, **SPACES[space_name])
    return make_oneshot(name, space, seed=seed, batch_size=16, device="cpu", **OPTIONS[name])


@pytest.mark.parametrize("name", sorted(ONESHOT))
def test_each_method_is_deterministic_for_a_seed_on_cpu(name):
    data = toy_dataset(n=48)
    runs = []
    for seed in (0, 0, 1):
        m = _method(name, seed=seed)
        m.setup(data.input_shape, data.num_classes, 2)
        stats = [m.train_epoch(data) for _ in range(2)]
        archs = m.propose(4)
        runs.append(([{k: v for k, v in s.items() if k != "seconds"} for s in stats], archs, m.score(archs, data)))
    assert runs[0] == runs[1]
    assert runs[0][0] != runs[2][0]


@pytest.mark.parametrize("name", sorted(ONESHOT))
def test_a_saved_and_loaded_search_continues_exactly(name):
    data = toy_dataset(n=48)
    reference = _method(name)
    reference.setup(data.input_shape, data.num_classes, 3)
    for _ in range(2):
        reference.train_epoch(data)
    state = json.loads(json.dumps(reference.state_dict()))  # plain JSON
    buf = io.BytesIO()
    torch.save(reference.tensor_state(), buf)

    resumed = _method(name, seed=123)  # the seed comes back from the state
    resumed.setup(data.input_shape, data.num_classes, 3)
    resumed.load_state_dict(state)
    resumed.load_tensor_state(torch.load(io.BytesIO(buf.getvalue()), weights_only=True))
    a, b = reference.train_epoch(data), resumed.train_epoch(data)
    assert {k: v for k, v in a.items() if k != "seconds"} == {k: v for k, v in b.items() if k != "seconds"}
    assert reference.propose(3) == resumed.propose(3)
    for x, y in zip(reference.net.state_dict().values(), resumed.net.state_dict().values()):
        assert torch.equal(x, y)


@pytest.mark.parametrize("name", sorted(ONESHOT))
def test_a_diverging_supernet_fails_with_a_clear_error(name):
    data = toy_dataset(n=32)
    nan = dataclasses.replace(data, x_train=torch.full_like(data.x_train, float("nan")))
    m = _method(name)
    m.setup(data.input_shape, data.num_classes, 1)
    with pytest.raises(FloatingPointError, match=f"{name}: non-finite supernet loss"):
        m.train_epoch(nan)


def test_the_cell_space_searches_too():
    data = toy_dataset(n=32)
    for name in sorted(ONESHOT):
        res = oneshot_search(
            make_space("cell", **SPACES["cell"]),
            name,
            data,
            epochs=1,
            candidates=3,
            seed=0,
            options={**OPTIONS[name], "batch_size": 16, "device": "cpu"},
        )
        assert res.ranked and all(0 <= v <= 1 for _, v in res.ranked)
        for arch, _ in res.ranked:
            make_space("cell", **SPACES["cell"]).validate(arch)


def test_random_sampling_ranks_distinct_architectures_and_fair_sampling_trains_every_op():
    data = toy_dataset(n=48)
    # without 'none' every path reaches every edge (with it, a path that cuts the cell off is left out)
    space = make_space("nb201", width=4, ops=["skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"])
    m = make_oneshot("random_sampling", space, seed=0, batch_size=48, device="cpu", fair=True)
    m.setup(data.input_shape, data.num_classes, 1)
    before = {k: v.clone() for k, v in m.net.state_dict().items() if k.endswith("weight") and ".edges." in k}
    m.train_epoch(data)  # one step: each edge runs each of its operations once
    after = m.net.state_dict()
    assert all(not torch.equal(v, after[k]) for k, v in before.items())
    archs = m.propose(20)
    assert len({json.dumps(a, sort_keys=True) for a in archs}) == 20
    scores = rank(m.net, archs, data, recalibration_batches=2, batch_size=16)
    assert len(scores) == 20 and len(set(scores)) > 1
    with pytest.raises(ValueError, match="fair sampling needs every edge on every path"):
        make_oneshot("random_sampling", make_space("cell"), fair=True)


def test_enas_trains_its_controller_and_darts_its_architecture_weights():
    data = toy_dataset(n=48)
    enas = _method("enas")
    enas.setup(data.input_shape, data.num_classes, 2)
    entropy0 = enas.policy.entropy()
    record = enas.train_epoch(data)
    assert 0 <= record["controller_reward"] <= 1 and record["policy_entropy"] < entropy0
    darts = _method("darts")
    darts.setup(data.input_shape, data.num_classes, 2)
    alpha0 = {k: a.detach().clone() for k, a in darts.alpha.items()}
    record = darts.train_epoch(data)
    assert any(not torch.equal(alpha0[k], a) for k, a in darts.alpha.items())
    assert 0 <= record["skip_share"] <= 1 and record["derived"] == darts.space.genotype(darts.propose(5)[0])
    assert len(darts.propose(5)) == 1  # DARTS derives one architecture


def test_darts_remedies():
    space = make_space("nb201", **SPACES["nb201"])
    aux = make_oneshot("darts", space, remedy="auxiliary_skip")
    assert aux._beta(0.0) == 1.0 and aux._beta(0.5) == 0.5 and aux._beta(1.0) == 0.0
    assert make_oneshot("darts", space, remedy="none")._beta(0.0) == 0.0
    # early stop: once the derived cell is mostly parameter-free, alpha freezes and the earlier architecture stays
    data = toy_dataset(n=32)
    m = make_oneshot("darts", space, remedy="early_stop", max_param_free_share=0.5, batch_size=16, device="cpu")
    m.setup(data.input_shape, data.num_classes, 3)
    m.train_epoch(data)
    kept = m.propose(1)[0]
    with torch.no_grad():
        for key, a in m.alpha.items():
            a.copy_(torch.tensor([5.0 if op == "skip_connect" else 0.0 for op in m.net.edges[key]]))
    record = m.train_epoch(data)
    assert record["skip_share"] == record["param_free_share"] == 1.0 and record["alpha_frozen"] and m.stopped_at == 2
    frozen = {k: a.detach().clone() for k, a in m.alpha.items()}
    m.train_epoch(data)
    assert all(torch.equal(frozen[k], a) for k, a in m.alpha.items())
    assert m.propose(1) == [kept]
    with pytest.raises(ValueError, match="remedy must be one of none, auxiliary_skip, early_stop"):
        make_oneshot("darts", space, remedy="dartsminus")


def test_config_selects_a_oneshot_search_and_names_bad_fields():
    base = {"name": "os", "dataset": {"name": "mnist1d"}, "space": {"name": "nb201"}}
    cfg = parse_config({**base, "oneshot": {"method": "darts", "options": {"remedy": "none"}, "epochs": 5}})
    assert cfg.search_method == "oneshot/darts" and cfg.oneshot.candidates == 100
    assert parse_config(json.loads(cfg.to_json())) == cfg  # a dumped config (with its default strategy) round-trips
    with pytest.raises(ValueError, match="unknown one-shot method 'spos'; registered: random_sampling, enas, darts"):
        parse_config({**base, "oneshot": {"method": "spos"}})
    with pytest.raises(ValueError, match="one-shot search needs a cell space with a supernet"):
        parse_config({**base, "space": {"name": "chain"}, "oneshot": {"method": "enas"}})
    with pytest.raises(ValueError, match="remove the strategy section"):
        parse_config({**base, "strategy": {"name": "random"}, "oneshot": {"method": "enas"}})
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['temperature'\]"):
        parse_config({**base, "oneshot": {"method": "darts", "options": {"temperature": 1}}})
