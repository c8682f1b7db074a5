"""The training estimator on tiny data."""

from __future__ import annotations

import pytest
import torch

from kubenas import Fidelity, InvalidArchitecture, TrainingEstimator, evaluate, make_space
from kubenas.data import load_dataset
from tests.conftest import toy_dataset

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


def test_metrics_and_curves(toy):
    res = evaluate(CONV, chain(), toy, Fidelity(epochs=3), seed=0, candidate_id="c1")
    assert res.status == "ok" and res.candidate_id == "c1" and res.error is None
    m = res.metrics
    assert 0 <= m["val_acc"] <= 1 and m["val_acc"] == m["val_acc_curve"][-1]
    assert len(m["val_acc_curve"]) == len(m["val_loss_curve"]) == len(m["train_loss_curve"]) == 3
    assert m["params"] == sum(p.numel() for p in chain().build(CONV, toy.input_shape, 3).parameters())
    # conv: 16 out * 16 positions * 3 taps; dense: 16*16; classifier: 16*3
    assert m["macs"] == 16 * 16 * 3 + 16 * 16 + 16 * 3
    assert m["latency_ms"] > 0 and m["train_seconds"] > 0 and res.cost >= m["train_seconds"]
    assert m["epochs"] == 3 and m["device"] == TrainingEstimator().resolve_device().type


def test_deterministic_for_a_seed_on_cpu(toy):
    cpu = TrainingEstimator(device="cpu")
    a = cpu.evaluate(CONV, chain(), toy, Fidelity(epochs=2), seed=5).metrics
    b = cpu.evaluate(CONV, chain(), toy, Fidelity(epochs=2), seed=5).metrics
    c = cpu.evaluate(CONV, chain(), toy, Fidelity(epochs=2), seed=6).metrics
    for key in ("val_acc_curve", "val_loss_curve", "train_loss_curve"):
        assert a[key] == b[key]
    assert a["train_loss_curve"] != c["train_loss_curve"]


def test_lower_fidelity_knobs(toy):
    images = toy_dataset(shape=(1, 8, 8))
    space = chain()
    full = evaluate(CONV, space, images, Fidelity(epochs=1)).metrics
    narrow = evaluate(CONV, space, images, Fidelity(epochs=1, width_mult=0.5)).metrics
    low_res = evaluate(CONV, space, images, Fidelity(epochs=1, resolution=4)).metrics
    subset = evaluate(CONV, space, images, Fidelity(epochs=1, data_fraction=0.25)).metrics
    assert narrow["params"] < full["params"]
    assert low_res["macs"] < full["macs"] and low_res["params"] == full["params"]
    assert subset["train_loss_curve"] != full["train_loss_curve"]


def test_fidelity_errors_name_the_field(toy):
    with pytest.raises(ValueError, match="fidelity.epochs must be a positive integer"):
        Fidelity(epochs=0)
    with pytest.raises(ValueError, match=r"fidelity.data_fraction must be in \(0, 1\]"):
        Fidelity(data_fraction=1.5)
    with pytest.raises(ValueError, match="unknown field"):
        Fidelity.from_dict({"epoch": 3})
    vectors = toy_dataset(shape=(12,))
    with pytest.raises(ValueError, match="fidelity.resolution applies to signals and images"):
        evaluate(CONV, chain(), vectors, Fidelity(epochs=1, resolution=4))


def test_invalid_architecture_is_rejected_before_training(toy):
    with pytest.raises(InvalidArchitecture, match="decision 'op_1' has value conv9"):
        evaluate({**CONV, "op_1": "conv9"}, chain(), toy)


class _NaN(torch.nn.Module):
    def __init__(self, n):
        super().__init__()
        self.lin = torch.nn.Linear(16, n)

    def forward(self, x):
        return self.lin(x.flatten(1)) * float("nan")


class _Crash(torch.nn.Module):
    def __init__(self, n):
        super().__init__()
        self.lin = torch.nn.Linear(16, n)

    def forward(self, x):
        if self.training:
            raise RuntimeError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return self.lin(x.flatten(1))


def _builder(arch, input_shape, num_classes, width_mult=1.0):
    return {"nan": _NaN, "crash": _Crash}[arch["kind"]](num_classes)


def test_nan_loss_and_crashes_become_failed_results(toy):
    space = make_space("choice", decisions={"kind": ["nan", "crash"]}, builder=_builder)
    nan = evaluate({"kind": "nan"}, space, toy, Fidelity(epochs=2), candidate_id="n")
    assert nan.status == "failed" and nan.candidate_id == "n"
    assert nan.error.startswith("Diverged: non-finite loss") and "at epoch 1" in nan.error
    crash = evaluate({"kind": "crash"}, space, toy, Fidelity(epochs=2))
    assert crash.status == "failed" and "RuntimeError: CUDA out of memory" in crash.error


def test_the_estimator_needs_no_test_split(toy):
    res = evaluate(CONV, chain(), toy.without_test(), Fidelity(epochs=1))
    assert res.status == "ok"


def test_training_learns_mnist1d():
    data = load_dataset("mnist1d").without_test()
    arch = {
        "depth": 3,
        "op_1": "conv",
        "kernel_1": 5,
        "width_1": 32,
        "act_1": "relu",
        "bn_1": True,
        "op_2": "maxpool",
        "kernel_2": 3,
        "op_3": "conv",
        "kernel_3": 3,
        "width_3": 32,
        "act_3": "relu",
        "bn_3": True,
    }
    res = evaluate(arch, chain(), data, Fidelity(epochs=3), seed=0)
    assert res.status == "ok" and res.metrics["val_acc"] > 0.4  # chance is 0.1


def test_estimator_options_are_checked():
    with pytest.raises(ValueError, match="batch_size must be an integer >= 2"):
        TrainingEstimator({"batch_size": 1})


@pytest.mark.parametrize("input_shape", [(1, 40), (3, 16, 16)])
def test_count_macs_agrees_with_torchs_flop_counter_on_every_space(buildable_space, input_shape):
    from torch.utils.flop_counter import FlopCounterMode

    from kubenas.estimators.training import count_macs

    for seed in range(4):
        model = buildable_space.build(buildable_space.sample(seed), input_shape, 10, width_mult=0.5)
        x = torch.randn(1, *input_shape)
        with FlopCounterMode(display=False) as counter:
            model.eval()(x)
        assert count_macs(model, x) == counter.get_total_flops() // 2
