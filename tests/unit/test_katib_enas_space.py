"""The ``katib_enas`` space: Katib's ENAS operations expand to the same numbered grid as Katib's, its sizes are
the literal numbers of Katib's examples, and an architecture in Katib's notation builds exactly its operations and
skip connections."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from kubenas.spaces import InvalidArchitecture, make_space
from kubenas.spaces.katib_enas import KATIB_EXAMPLE_OPERATIONS, expand, label


def test_katibs_example_operations_expand_to_106_in_katibs_order():
    ops = expand(KATIB_EXAMPLE_OPERATIONS)
    kinds = [op["type"] for op in ops]
    assert len(ops) == 106
    assert [kinds.count(k) for k in ("convolution", "separable_convolution", "depthwise_convolution", "reduction")] == [
        30,
        60,
        12,
        4,
    ]
    # the grid's last parameter varies fastest, the types in the order listed
    assert [label(op) for op in ops[:3]] == ["conv_3x3_32_s1", "conv_3x3_32_s2", "conv_3x3_48_s1"]
    assert label(ops[30]) == "sep_conv_3x3_32_s1_m1" and label(ops[31]) == "sep_conv_3x3_32_s1_m2"
    assert label(ops[90]) == "dw_conv_3x3_s1_m1"
    assert [label(op) for op in ops[102:]] == ["max_pool_2", "max_pool_3", "avg_pool_2", "avg_pool_3"]


@pytest.mark.parametrize("layers", [1, 2, 3, 4, 8])
def test_sizes_are_106_to_the_layers_times_two_to_the_skip_bits(layers):
    assert make_space("katib_enas", layers=layers).size() == 106**layers * 2 ** (layers * (layers - 1) // 2)


def test_the_literal_sizes():
    assert make_space("katib_enas", layers=1).size() == 106
    assert make_space("katib_enas", layers=3).size() == 9_528_128
    assert make_space("katib_enas", layers=8).size() == 4_278_453_346_814_084_509_597_696  # 106^8 x 2^28


def _modules(net):
    """Each layer's weighted modules and pools, by kind, in order."""
    out = []
    for op in net.ops:
        out.append([m for m in op.modules() if isinstance(m, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d, nn.Identity))])
    return out


def test_an_architecture_in_katibs_notation_builds_those_operations_and_skips():
    space = make_space("katib_enas", layers=3, input_sizes=[32, 32, 3], output_sizes=[10])
    arch = space.from_katib([[27], [43, 0], [94, 1, 1]])
    assert space.to_katib(arch) == [[27], [43, 0], [94, 1, 1]]
    assert space.genotype(arch) == "1:conv_7x7_96_s2 2:sep_conv_3x3_96_s1_m2 3:dw_conv_5x5_s1_m1+0+1"
    net = space.build(arch, (3, 32, 32), 10)
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    (conv,), (depthwise, pointwise), (dw,) = _modules(net)
    assert (conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride) == (3, 96, (7, 7), (2, 2))
    dw_shape = (depthwise.in_channels, depthwise.out_channels, depthwise.groups, depthwise.kernel_size)
    assert dw_shape == (96, 192, 96, (3, 3))
    assert (pointwise.in_channels, pointwise.out_channels, pointwise.kernel_size) == (192, 96, (1, 1))
    # layer 3 reads layer 2 (96 channels, 16x16), the image (3, 32x32) and layer 1 (96, 16x16), padded to 32x32
    assert (dw.in_channels, dw.out_channels, dw.groups, dw.kernel_size, dw.stride) == (195, 195, 195, (5, 5), (1, 1))
    assert net.pad_to == [(32, 32), (16, 16), (32, 32)]


def test_a_reduction_pools_without_padding_and_passes_through_an_input_smaller_than_its_pool():
    space = make_space(
        "katib_enas",
        layers=3,
        operations=[{"type": "reduction", "reduction_type": ["avg_pooling"], "pool_size": [3], "stride": [2]}],
    )
    arch = space.from_katib([[0], [0, 0], [0, 0, 0]])
    net = space.build(arch, (4, 7, 7), 2)
    (pool1,), (pool2,), (identity,) = _modules(net)
    assert isinstance(pool1, nn.AvgPool2d) and (pool1.kernel_size, pool1.stride, pool1.padding) == (3, 2, 0)
    assert isinstance(identity, nn.Identity)  # 7 -> 3 -> 1, and a 1x1 input is not pooled
    assert net(torch.randn(2, 4, 7, 7)).shape == (2, 2)


def test_the_experiments_sizes_are_checked_against_the_data():
    space = make_space("katib_enas", layers=1, input_sizes=[32, 32, 3], output_sizes=[10])
    space.check_data((3, 32, 32), 10)
    with pytest.raises(ValueError, match=r"input_sizes \[32, 32, 3\] \(height, width, channels\) do not match"):
        space.check_data((1, 28, 28), 10)
    with pytest.raises(ValueError, match="output_sizes \\[10\\] end in 10 classes; the dataset has 100"):
        space.check_data((3, 32, 32), 100)
    space.check_data(None, None)  # nothing known yet: nothing to check


@pytest.mark.parametrize(
    "result,words",
    [
        ([[27], [29, 0]], "expected one list per layer (3)"),
        ([[27], [29], [22, 1, 0]], "layer 2 must be [operation id] plus 1 skip bit(s)"),
        ([[27], [106, 0], [22, 1, 0]], "layer 2's operation id 106 is not one of the space's 0..105"),
        ([[27], [29, 2], [22, 1, 0]], "layer 2's skip bits must be 0 or 1, got [2]"),
        ("[[27]]", "expected one list per layer"),
    ],
)
def test_a_result_that_does_not_fit_is_named(result, words):
    with pytest.raises(InvalidArchitecture) as err:
        make_space("katib_enas", layers=3).from_katib(result)
    assert words in str(err.value)


@pytest.mark.parametrize(
    "operations,words",
    [
        ([], "must list at least one operation type"),
        ([{"type": "dilated_conv", "filter_size": [3]}], "operations[0].type: unknown operation type 'dilated_conv'"),
        ([{"type": "convolution", "kernel": [3]}], "operations[0]: unknown parameter(s) ['kernel'] of convolution"),
        ([{"type": "convolution", "filter_size": []}], "operations[0].filter_size must list at least one value"),
        ([{"type": "convolution", "filter_size": [4]}], "filter sizes must be odd"),
        ([{"type": "reduction", "reduction_type": ["min_pooling"]}], "'min_pooling' is not a reduction type"),
        ([{"type": "convolution", "num_filter": [0]}], "operations[0].num_filter: expected integers >= 1, got 0"),
    ],
)
def test_bad_operations_are_named(operations, words):
    with pytest.raises(ValueError) as err:
        make_space("katib_enas", operations=operations)
    assert words in str(err.value)


def test_a_config_checks_the_experiments_sizes_against_its_dataset_before_any_work():
    from kubenas.config import ConfigError, parse_config

    config = {
        "name": "sizes",
        "dataset": {"name": "shapes", "options": {"train": 200, "test": 20}},
        "space": {"name": "katib_enas", "options": {"layers": 2, "input_sizes": [32, 32, 3], "output_sizes": [10]}},
        "strategy": {"name": "reinforce"},
    }
    parse_config(config)
    config["dataset"]["options"]["resize"] = 16
    with pytest.raises(ConfigError, match=r"space.options: katib_enas: input_sizes \[32, 32, 3\]"):
        parse_config(config)
