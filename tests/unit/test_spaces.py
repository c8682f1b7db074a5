"""Contract tests run over every registered space, then space-specific checks."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from kubenas import arch_id, canonical_json
from kubenas.spaces import InvalidArchitecture, make_space, space_from_spec
from kubenas.spaces.nb201 import NB201Space

N = 40


def _samples(space, n=N, seed=0):
    rng = np.random.default_rng(seed)
    return [space.sample(rng) for _ in range(n)]


# ---------------------------------------------------------------------- contract: every space
def test_samples_are_valid_and_varied(space):
    archs = _samples(space)
    for a in archs:
        assert space.validate(a) is a
        json.loads(canonical_json(a))  # plain JSON
    assert len({arch_id(a) for a in archs}) > 1


def test_sample_is_reproducible_from_a_seed(space):
    assert _samples(space, 5, seed=3) == _samples(space, 5, seed=3)
    assert _samples(space, 5, seed=3) != _samples(space, 5, seed=4)


def test_mutations_are_valid_single_changes(space):
    rng = np.random.default_rng(1)
    for parent in _samples(space, 20):
        child = space.mutate(parent, rng)
        space.validate(child)
        assert child != parent


def test_neighbors_are_valid_distinct_and_one_change_away(space):
    for a in _samples(space, 5):
        nbrs = space.neighbors(a)
        assert nbrs, "every sampled architecture here has neighbours"
        ids = [arch_id(n) for n in nbrs]
        assert len(set(ids)) == len(ids) and arch_id(a) not in ids
        for n in nbrs:
            space.validate(n)
            changed = [k for k in a if k in n and a[k] != n[k]]
            # one decision changed (plus decisions it switched on or off)
            assert len(changed) <= 1
        assert space.neighbors(a) == nbrs  # deterministic


def test_genotype_is_one_line_and_tells_archs_apart(space):
    archs = _samples(space)
    genotypes = {}
    for a in archs:
        g = space.genotype(a)
        assert isinstance(g, str) and g and "\n" not in g
        genotypes.setdefault(g, set()).add(arch_id(a))
    assert all(len(ids) == 1 for ids in genotypes.values())


def test_onehot_encoding(space):
    a, b = _samples(space, 2, seed=5)
    va, vb = space.encode(a), space.encode(b)
    assert va.shape == (space.encoding_size(),) and va.dtype == np.float32
    assert set(np.unique(va)) <= {0.0, 1.0}
    assert va.sum() == len(a)  # one bit per active decision
    assert np.array_equal(va, space.encode(dict(reversed(list(a.items())))))
    assert (a == b) == np.array_equal(va, vb)


def test_bulk_encoding_matches_one_by_one(space):
    archs = _samples(space, 6, seed=7)
    bulk = space.encode_many(archs)
    assert bulk.shape == (6, space.encoding_size()) and bulk.dtype == np.float32
    assert all(np.array_equal(row, space.encode(a)) for row, a in zip(bulk, archs))
    assert np.array_equal(space.encode_many(archs, validate=False), bulk)
    assert [space.index(d.name, archs[0][d.name]) for d in space.active(archs[0])] == [
        d.choices.index(archs[0][d.name]) for d in space.active(archs[0])
    ]
    assert all(space.is_valid(a) for a in archs) and not space.is_valid({**archs[0], "not_a_decision": 1})


def test_the_diagram_is_a_well_formed_graph(space):
    for a in _samples(space, 3, seed=8):
        panels = space.diagram(a)
        assert panels, "every space draws its winner"
        for p in panels:
            assert p.title and len(p.nodes) >= 2
            assert all(
                0 <= i < len(p.nodes) and 0 <= j < len(p.nodes) and style in ("solid", "dashed", "dotted")
                for i, j, _, style in p.edges
            )


def test_validate_rejects_bad_values_and_keys(space):
    a = space.sample(0)
    key = next(iter(a))
    with pytest.raises(InvalidArchitecture, match=f"decision '{key}' has value bogus_op; allowed:"):
        space.validate({**a, key: "bogus_op"})
    with pytest.raises(InvalidArchitecture, match=f"missing decision '{key}'"):
        space.validate({k: v for k, v in a.items() if k != key})
    with pytest.raises(InvalidArchitecture, match="unknown decision 'not_a_decision'"):
        space.validate({**a, "not_a_decision": 1})
    with pytest.raises(InvalidArchitecture):
        space.validate([a])


def test_size_and_spec_round_trip(space):
    assert space.size() is None or space.size() > 1
    again = space_from_spec(json.loads(json.dumps(space.spec())))
    assert again.spec() == space.spec() and again.size() == space.size()


def test_build_and_forward_on_1d_and_2d(buildable_space):
    a = buildable_space.sample(2)
    for shape in [(1, 40), (3, 12, 12)]:
        model = buildable_space.build(a, shape, 7)
        x = torch.randn(4, *shape)
        y = model(x)
        assert y.shape == (4, 7) and torch.isfinite(y).all()
        y.sum().backward()
        assert any(p.grad is not None for p in model.parameters())


def test_width_multiplier_shrinks_the_network(buildable_space):
    a = buildable_space.sample(4)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(buildable_space.build(a, (1, 40), 10, width_mult=0.5)) < count(buildable_space.build(a, (1, 40), 10))


def test_build_rejects_unsupported_input_shapes(buildable_space):
    a = buildable_space.sample(0)
    with pytest.raises(ValueError, match="input_shape must be"):
        buildable_space.build(a, (1, 2, 3, 4), 10)


# ---------------------------------------------------------------------- ids
def test_arch_id_ignores_key_order_and_is_stable_across_processes_and_versions():
    arch = {"op_1": "conv", "depth": 2, "inputs": [0, 1], "bn": True}
    assert arch_id(arch) == arch_id(dict(reversed(list(arch.items()))))
    # The definition: sha256 of sorted, compact JSON. Pinning it keeps ids valid across kubenas versions.
    expected = hashlib.sha256(b'{"bn":true,"depth":2,"inputs":[0,1],"op_1":"conv"}').hexdigest()[:16]
    assert arch_id(arch) == expected
    code = f"from kubenas import arch_id; print(arch_id({arch!r}))"
    assert subprocess.check_output([sys.executable, "-c", code], text=True).strip() == expected
    assert arch_id({**arch, "bn": 1}) != arch_id(arch)  # True and 1 are different decisions


def test_arch_id_rejects_non_json():
    with pytest.raises(TypeError, match="not plain JSON"):
        arch_id({"x": float("nan")})


# ---------------------------------------------------------------------- choice
def test_choice_space_conditions_and_size():
    space = make_space(
        "choice",
        decisions={"depth": [1, 2], "op_2": ["a", "b", "c"]},
        conditions={"op_2": {"parent": "depth", "values": [2]}},
    )
    assert space.size() == 1 + 3
    assert sorted(map(canonical_json, space.enumerate())) == sorted(
        map(
            canonical_json,
            [{"depth": 1}, {"depth": 2, "op_2": "a"}, {"depth": 2, "op_2": "b"}, {"depth": 2, "op_2": "c"}],
        )
    )
    with pytest.raises(InvalidArchitecture, match="extra decision 'op_2': inactive unless 'depth' is one of"):
        space.validate({"depth": 1, "op_2": "a"})
    # mutating depth 1 -> 2 fills in the newly active op_2
    assert "op_2" in space.mutate({"depth": 1}, 0)


def test_choice_space_type_strict_values():
    space = make_space("choice", decisions={"flag": [False, True]})
    with pytest.raises(InvalidArchitecture, match="has value 1"):
        space.validate({"flag": 1})


def test_choice_space_bad_options_are_named():
    with pytest.raises(ValueError, match="decision 'x' needs a non-empty list"):
        make_space("choice", decisions={"x": []})
    with pytest.raises(ValueError, match="conditions name unknown decision"):
        make_space("choice", decisions={"x": [1]}, conditions={"y": {"parent": "x", "values": [1]}})
    with pytest.raises(
        ValueError,
        match=r"search space 'choice': unknown option\(s\) \['colour'\]; accepted: decisions, conditions, builder",
    ):
        make_space("choice", decisions={"x": [1, 2]}, colour="red")
    with pytest.raises(ValueError, match="unknown search space 'nope'"):
        make_space("nope")


def test_choice_space_builder_by_callable_and_by_path():
    space = make_space("choice", decisions={"width": [4, 8]})
    with pytest.raises(NotImplementedError, match="no network of its own"):
        space.build({"width": 4}, (1, 40), 10)

    def builder(arch, input_shape, num_classes, width_mult=1.0):
        return torch.nn.Sequential(
            torch.nn.Flatten(), torch.nn.Linear(40, arch["width"]), torch.nn.Linear(arch["width"], num_classes)
        )

    spaced = make_space("choice", decisions={"width": [4, 8]}, builder=builder)
    assert spaced.build({"width": 8}, (1, 40), 10)(torch.zeros(2, 1, 40)).shape == (2, 10)
    by_path = make_space("choice", decisions={"n": [3]}, builder="torch.nn:Identity")
    assert by_path.spec()["options"]["builder"] == "torch.nn:Identity"


# ---------------------------------------------------------------------- chain
def test_chain_is_conditional_on_depth_and_op():
    space = make_space("chain", min_depth=1, max_depth=3)
    for a in _samples(space, 30):
        depth = a["depth"]
        assert all(f"op_{i}" in a for i in range(1, depth + 1))
        assert not any(f"op_{i}" in a for i in range(depth + 1, 4))
        for i in range(1, depth + 1):
            assert ("width_" + str(i) in a) == (a[f"op_{i}"] in ("conv", "sepconv", "dense"))
    with pytest.raises(InvalidArchitecture, match="decision 'depth' has value 9; allowed: 1, 2, 3"):
        space.validate({"depth": 9})


def test_chain_builds_an_mlp_for_vectors():
    space = make_space("chain")
    arch = {
        "depth": 2,
        "op_1": "conv",
        "kernel_1": 5,
        "width_1": 16,
        "act_1": "relu",
        "bn_1": True,
        "op_2": "maxpool",
        "kernel_2": 3,
    }
    model = space.build(arch, (12,), 4)
    assert model(torch.randn(5, 12)).shape == (5, 4)
    # on a vector a conv is a dense layer: 12*16 weights + 16 biases, BN 32, classifier 16*4+4
    assert sum(p.numel() for p in model.parameters()) == 12 * 16 + 16 + 32 + 16 * 4 + 4
    assert space.genotype(arch) == "conv5-16-relu-bn > maxpool3"


def test_chain_enumerate_matches_size():
    space = make_space(
        "chain",
        min_depth=1,
        max_depth=2,
        ops=["conv", "maxpool"],
        kernels=[3],
        widths=[8, 16],
        activations=["relu"],
        batch_norm=[False],
    )
    archs = list(space.enumerate())
    assert len(archs) == space.size() == 3 + 3 * 3
    for a in archs:
        space.validate(a)


def test_chain_option_errors_name_the_field():
    with pytest.raises(ValueError, match="kernels must be distinct odd positive integers"):
        make_space("chain", kernels=[2, 3])
    with pytest.raises(ValueError, match="unknown operation"):
        make_space("chain", ops=["conv", "transformer"])


# ---------------------------------------------------------------------- multibranch
def test_multibranch_skips_sum_and_concat():
    for merge in ("sum", "concat"):
        space = make_space("multibranch", layers=4, width=8, merge=merge)
        arch = space.sample(0)
        arch.update({k: True for k in arch if k.startswith("skip_")})
        assert space.genotype(arch).endswith("+0+1+2")
        assert space.build(arch, (1, 40), 10)(torch.randn(2, 1, 40)).shape == (2, 10)


# ---------------------------------------------------------------------- nb201
def test_nb201_size_genotype_and_disconnection():
    space = NB201Space()
    assert space.size() == 15625 - 341  # 341 raw labellings cut the output off from the input
    assert sum(1 for _ in space.enumerate()) == space.size()
    arch = NB201Space.from_genotype("|nor_conv_3x3~0|+|none~0|skip_connect~1|+|avg_pool_3x3~0|none~1|nor_conv_1x1~2|")
    assert space.genotype(arch) == "|nor_conv_3x3~0|+|none~0|skip_connect~1|+|avg_pool_3x3~0|none~1|nor_conv_1x1~2|"
    cut = {k: "none" for k in arch}
    cut["edge_1_0"] = "nor_conv_3x3"
    with pytest.raises(InvalidArchitecture, match="disconnected"):
        space.validate(cut)


def test_nb201_sampling_never_returns_a_disconnected_cell():
    space = make_space("nb201", ops=["none", "skip_connect"])  # 2^6 labellings, many cut off
    assert space.size() == sum(1 for _ in space.enumerate())
    for a in _samples(space, 50):
        space.validate(a)
        for n in space.neighbors(a):
            space.validate(n)


def test_nb201_path_encoding():
    space = NB201Space()
    only_direct = {k: "none" for k in space.sample(0)}
    only_direct["edge_3_0"] = "nor_conv_3x3"
    assert space.encode(only_direct, "path").sum() == 1
    all_skip = {k: "skip_connect" for k in only_direct}
    # four input-to-output paths, but the two of length 2 carry the same op sequence: a set of 3 sequences
    assert space.encode(all_skip, "path").sum() == 3
    assert space.encode({**all_skip, "edge_3_1": "nor_conv_1x1"}, "path").sum() == 4
    assert space.encoding_size("path") == 4 + 16 + 64
    with pytest.raises(ValueError, match="no path encoding"):
        make_space("chain").encode(make_space("chain").sample(0), "path")


# ---------------------------------------------------------------------- cell
def test_cell_size_matches_enumeration_on_a_small_space():
    space = make_space("cell", ops=["skip_connect", "none"], blocks=2)
    assert sum(1 for _ in space.enumerate()) == space.size()


def test_cell_inputs_and_disconnection():
    space = make_space("cell")
    a = space.sample(0)
    with pytest.raises(InvalidArchitecture, match="normal_3_inputs"):
        space.validate({**a, "normal_3_inputs": [2, 1]})  # inputs are an ordered pair of distinct nodes
    cut = dict(a)
    for k in cut:
        if k.startswith("reduce_") and "_op" in k:
            cut[k] = "none"
    with pytest.raises(InvalidArchitecture, match="reduce cell's output is disconnected"):
        space.validate(cut)
    assert space.genotype(a).startswith("normal=|") and " reduce=|" in space.genotype(a)
    assert space.encode(a, "path").sum() > 0


def test_the_cell_spaces_stem_has_stem_multiplier_times_width_channels_in_the_network_and_the_supernet():
    from kubenas.oneshot.supernet import CellSuperNet

    space = make_space("cell", width=4, stem_multiplier=1)
    net = space.build(space.sample(0), (3, 8, 8), 10)
    supernet = CellSuperNet(space, (3, 8, 8), 10)
    assert net.stem[0].out_channels == supernet.stem[0].out_channels == 4
    assert make_space("cell", width=4).build(space.sample(0), (3, 8, 8), 10).stem[0].out_channels == 12
    assert net(torch.randn(2, 3, 8, 8)).shape == (2, 10)
    with pytest.raises(ValueError, match="cell: stem_multiplier must be a positive integer, got 0"):
        make_space("cell", stem_multiplier=0)
