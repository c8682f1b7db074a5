"""Training recipes: the presets are the published protocols field by field, a config changes them by name, and the
trainer follows them: augmentation on the device, and no host synchronisation in the inner loop."""

from __future__ import annotations

import math
import os
import sys

import pytest
import torch

from kubenas.core import Fidelity
from kubenas.data.base import Dataset
from kubenas.estimators import loop
from kubenas.estimators.training import TrainingEstimator
from kubenas.recipes import PRESETS, Augment, Recipe, resolve
from kubenas.spaces import make_space


def test_the_nb201_preset_is_nas_bench_201s_protocol():
    r = PRESETS["nb201"]
    assert (r.optimizer, r.lr, r.momentum, r.nesterov) == ("sgd", 0.1, 0.9, True)
    assert (r.schedule, r.lr_min, r.weight_decay, r.batch_size) == ("cosine", 0.0, 5e-4, 256)
    assert r.augment == Augment(crop_padding=4, flip=True, cutout=0)
    assert (r.grad_clip, r.label_smoothing, r.warmup_epochs) == (None, 0.0, 0.0)


def test_the_darts_preset_is_dartss_search_settings():
    r = PRESETS["darts"]
    assert (r.optimizer, r.lr, r.lr_min, r.schedule, r.momentum, r.nesterov) == (
        "sgd",
        0.025,
        0.001,
        "cosine",
        0.9,
        False,
    )
    assert (r.weight_decay, r.batch_size, r.grad_clip) == (3e-4, 64, 5.0)
    assert (r.arch_lr, r.arch_betas, r.arch_weight_decay) == (3e-4, (0.5, 0.999), 1e-3)
    assert r.augment == Augment(crop_padding=4, flip=True)


def test_the_default_preset_is_kubenass_earlier_recipe():
    r = PRESETS["default"]
    assert (r.optimizer, r.lr, r.weight_decay, r.batch_size, r.schedule, r.lr_min) == (
        "adamw",
        3e-3,
        1e-4,
        128,
        "cosine",
        0.0,
    )
    assert not r.augment.active and r.amp and not r.compile


def test_a_config_changes_a_preset_by_field_and_the_export_builds_on_the_search():
    r = resolve({"preset": "nb201", "lr": 0.05, "augment": {"cutout": 16}})
    assert r.lr == 0.05 and r.augment == Augment(4, True, 16) and r.batch_size == 256
    export = resolve({"augment": {"cutout": 8}}, base=r)
    assert export.preset == "nb201" and export.augment.cutout == 8 and export.lr == 0.05
    assert resolve("darts", base=r) == PRESETS["darts"]
    assert resolve(None, base=r) == r
    assert resolve({"augment": False}, base=r).augment == Augment()


@pytest.mark.parametrize(
    "spec,words",
    [
        ({"optimizer": "adam"}, "optimizer must be sgd or adamw, got 'adam'"),
        ({"lr": 0}, "lr must be a number > 0, got 0"),
        ({"lr": 0.1, "lr_min": 0.2}, "lr_min must be in 0..lr, got 0.2"),
        ({"schedule": "linear"}, "schedule must be cosine, onecycle, step, constant"),
        ({"augment": {"crop_padding": -1}}, "augment.crop_padding must be in 0..64, got -1"),
        ({"momentum": 0, "nesterov": True, "optimizer": "sgd"}, "nesterov must be off without momentum"),
        ({"grad_clip": float("nan")}, "grad_clip must be > 0 or null, got nan"),
        ({"batchsize": 3}, "unknown field(s) ['batchsize']"),
        ({"preset": "resnet"}, "unknown preset 'resnet'; presets: default, nb201, darts"),
        ({"compile": "tensorrt"}, "compile must be true, false or a torch.compile backend (inductor, aot_eager"),
        ({"compile": 1}, "compile must be true, false or a torch.compile backend"),
    ],
)
def test_a_bad_recipe_names_the_field(spec, words):
    with pytest.raises(ValueError) as err:
        resolve(spec)
    assert words in str(err.value)


def test_schedules_reach_their_ends():
    def lrs(recipe: Recipe, epochs=4, steps=10):
        model = torch.nn.Linear(2, 2)
        opt = loop.optimizer(recipe, model.parameters())
        sched = loop.schedule(recipe, opt, epochs, steps)
        out = []
        for _ in range(epochs * steps):
            out.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
        return out

    cos = lrs(resolve({"preset": "darts"}))
    assert cos[0] == pytest.approx(0.025) and cos[-1] == pytest.approx(0.001, abs=2e-4)
    warm = lrs(resolve({"lr": 0.1, "warmup_epochs": 1}))
    assert warm[0] == pytest.approx(0.01) and warm[9] == pytest.approx(0.1) and warm[-1] < 0.002
    step = lrs(resolve({"lr": 0.1, "schedule": "step", "step_epochs": 2, "step_gamma": 0.5}))
    assert step[0] == step[19] == pytest.approx(0.1) and step[20] == pytest.approx(0.05)
    one = lrs(resolve({"lr": 0.1, "schedule": "onecycle"}))
    assert max(one) == pytest.approx(0.1, rel=1e-3) and one[0] < 0.01 and one[-1] < 1e-3


def test_augmentation_crops_flips_and_cuts_out_on_whole_batches():
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).view(2, 3, 8, 8) + 1
    crop = loop.Augmenter(Augment(crop_padding=2), torch.device("cpu"), seed=0)(x.repeat(50, 1, 1, 1))
    padded = torch.nn.functional.pad(x.repeat(50, 1, 1, 1), (2, 2, 2, 2))
    for i in range(len(crop)):  # each image is an 8x8 window of its padded original
        windows = [padded[i, :, dy : dy + 8, dx : dx + 8] for dy in range(5) for dx in range(5)]
        assert any(torch.equal(crop[i], w) for w in windows)
    assert len({tuple(c.flatten()[:20].tolist()) for c in crop}) > 5  # and the windows vary
    flip = loop.Augmenter(Augment(flip=True), torch.device("cpu"), seed=0)(x.repeat(50, 1, 1, 1))
    flipped = [torch.equal(f, x[i % 2].flip(2)) for i, f in enumerate(flip)]
    kept = [torch.equal(f, x[i % 2]) for i, f in enumerate(flip)]
    assert all(a or b for a, b in zip(flipped, kept)) and 20 < sum(flipped) < 80  # of 100
    cut = loop.Augmenter(Augment(cutout=4), torch.device("cpu"), seed=0)(x.repeat(50, 1, 1, 1))
    holes = (cut == 0).all(1).sum((1, 2))
    assert holes.max() == 16 and holes.min() >= 4  # a 4x4 square, clipped at the edges
    again = loop.Augmenter(Augment(4, True, 4), torch.device("cpu"), seed=3)
    other = loop.Augmenter(Augment(4, True, 4), torch.device("cpu"), seed=3)
    assert torch.equal(again(x), other(x))  # seeded


def _images(n=256, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 4
    x = torch.randn(n, 3, 8, 8, generator=g) * 0.3
    for k in range(4):
        x[y == k, k % 3, (k // 2) * 4 : (k // 2) * 4 + 4] += 2
    return x, y


def test_the_inner_loop_synchronises_with_the_host_once_every_check_every_steps(monkeypatch):
    x, y = _images(512)
    data = Dataset("syncs", x[:384], y[:384], x[384:], y[384:], num_classes=4)
    # a read of a tensor's value by kubenas's own code is a host synchronisation on a GPU (torch's optimizers read
    # their step counters, which they keep on the CPU: not counted)
    reads = []
    for name in ("item", "tolist", "__bool__", "__float__", "__int__", "numpy", "cpu"):
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _original=original, _name=name, **kwargs):
            caller = sys._getframe(1).f_code.co_filename
            if f"{os.sep}kubenas{os.sep}" in caller and f"{os.sep}tests{os.sep}" not in caller:
                reads.append(f"{_name} {os.path.basename(caller)}:{sys._getframe(1).f_lineno}")
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    space = make_space("chain")
    arch = space.sample(0)
    epochs, batch, every = 2, 8, 12  # 48 steps an epoch
    est = TrainingEstimator({"batch_size": batch, "check_every": every}, device="cpu", latency_reps=1)
    fit_reads = []

    def epoch_reads(curve):
        fit_reads.append(len(reads))
        return False

    est.fit(arch, space, data, Fidelity(epochs=epochs), seed=0, on_epoch=epoch_reads)
    steps = math.ceil(384 / batch)
    first_epoch = fit_reads[0]
    assert first_epoch <= steps // every + 2, reads[:first_epoch]
    # the trainer before this change read the loss twice a step: the check would have failed
    assert steps * 2 > steps // every + 2


def test_a_nan_is_caught_within_check_every_steps():
    x, y = _images(256)
    x[5] = float("nan")
    data = Dataset("nan", x[:192], y[:192], x[192:], y[192:], num_classes=4)
    space = make_space("chain")
    res = TrainingEstimator({"batch_size": 8, "check_every": 4}, device="cpu").evaluate(
        space.sample(0), space, data, Fidelity(epochs=1)
    )
    assert res.status == "failed" and "non-finite loss at epoch 1" in res.error


def test_a_recipe_with_augmentation_trains_images_and_refuses_vectors():
    x, y = _images(256)
    data = Dataset("img", x[:192], y[:192], x[192:], y[192:], num_classes=4)
    space = make_space("chain")
    arch = space.sample(1)
    est = TrainingEstimator({"preset": "nb201", "batch_size": 32, "augment": {"cutout": 2}, "label_smoothing": 0.1})
    res = est.evaluate(arch, space, data, Fidelity(epochs=2))
    assert res.status == "ok" and 0 <= res.metrics["val_acc"] <= 1
    flat = Dataset("vec", x[:192].flatten(1), y[:192], x[192:].flatten(1), y[192:], num_classes=4)
    with pytest.raises(ValueError, match="recipe.augment applies to images"):
        est.fit(arch, space, flat, Fidelity(epochs=1), seed=0)


def test_a_compiled_model_trains_like_the_model_and_saves_the_models_weights():
    """``compile`` runs the forward through torch.compile (here its ``aot_eager`` backend: the default, inductor,
    compiles C++ for a minute on a CPU), to the same losses; the weights kept are the model's, not a wrapper's."""
    from torch._dynamo.utils import counters

    x, y = _images(128)
    data = Dataset("img", x[:96], y[:96], x[96:], y[96:], num_classes=4)
    space = make_space("nb201", width=4, ops=["skip_connect", "nor_conv_3x3"])
    arch = space.sample(0)
    plain, _ = TrainingEstimator({"batch_size": 32}).fit(arch, space, data, Fidelity(epochs=2), seed=0)
    counters.clear()
    model, metrics = TrainingEstimator({"batch_size": 32, "compile": "aot_eager"}).fit(
        arch, space, data, Fidelity(epochs=2), seed=0
    )
    assert counters["stats"]["unique_graphs"] >= 1  # dynamo traced the forward
    assert not any(k.startswith("_orig_mod") for k in model.state_dict())
    for key, value in plain.state_dict().items():
        assert torch.allclose(model.state_dict()[key].float(), value.float(), atol=1e-4), key


def test_class_weights_weigh_a_rare_class_up():
    w = loop.class_weights(torch.tensor([0] * 90 + [1] * 10), 3)
    assert w[1] / w[0] == pytest.approx(9) and w[2] == 0
