"""Performance estimation by training: full training, or cheaper with the survey's lower-fidelity proxies.

A :class:`Fidelity` sets the proxies: fewer epochs, a fraction of the training data, narrower networks
(a width multiplier) and lower input resolution. Data stays as tensors on the device and is batched by
index, which for small datasets is many times faster than a DataLoader.

How a candidate trains is its :class:`~kubenas.recipes.Recipe`: optimizer, schedule, batch, augmentation on the
device, label smoothing, clipping. On CUDA, training runs under bfloat16 autocast (no loss scaling needed); on CPU
in float32, deterministic for a given seed. A non-finite loss or any exception in training becomes a failed
:class:`Result` with the reason, so a search goes on past a bad candidate.
"""

from __future__ import annotations

import contextlib
import math
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from kubenas.arch import Arch
from kubenas.core import Fidelity, Result, tell_epoch
from kubenas.data.base import Dataset
from kubenas.estimators import loop
from kubenas.recipes import Recipe, resolve
from kubenas.spaces.base import SearchSpace

# Called with the validation-accuracy curve so far after each epoch; True stops training there.
OnEpoch = Callable[[list[float]], bool]
# Called with the built, untrained model and its input shape; sets its initial weights.
Init = Callable[[nn.Module, tuple], Any]


class Diverged(RuntimeError):
    """Training produced a NaN or infinite loss."""


@dataclass
class TrainingEstimator:
    """Trains a candidate with a :class:`~kubenas.recipes.Recipe` (default: AdamW with a cosine schedule), then
    measures it.

    Args:
        recipe: how to train (optimizer, schedule, batch, augmentation...); a preset's name or a Recipe.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``...; None picks CUDA when available.
        latency_reps: timed batch-1 forward passes for the latency metric.
    """

    recipe: Recipe | str = "default"
    device: str | None = None
    latency_reps: int = 20

    def __post_init__(self) -> None:
        self.recipe = resolve(self.recipe)

    @property
    def batch_size(self) -> int:
        return self.recipe.batch_size

    @classmethod
    def from_config(cls, section: Mapping[str, Any], inner: Any = None, store: Any = None) -> TrainingEstimator:
        return cls(recipe=resolve(section.get("recipe")))

    def resolve_device(self) -> torch.device:
        if self.device is not None:
            return torch.device(self.device)
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")

    # ----------------------------------------------------------------- public
    def evaluate(
        self,
        arch: Arch,
        space: SearchSpace,
        dataset: Dataset,
        fidelity: Fidelity | None = None,
        seed: int = 0,
        candidate_id: str = "",
        on_epoch: OnEpoch | None = None,
        init: Init | None = None,
        keep: Callable[[nn.Module], Any] | None = None,
    ) -> Result:
        """Train ``arch`` on the train split and measure it on the validation split; never raises on a bad
        candidate (it returns a failed result), only on bad input. ``on_epoch`` and ``init`` go to :meth:`fit`;
        ``keep`` gets the trained model of a successful candidate (to store its weights)."""
        space.validate(arch)
        fidelity = fidelity or Fidelity()
        if fidelity.resolution is not None and dataset.x_train.dim() < 3:
            raise ValueError(
                f"fidelity.resolution applies to signals and images; dataset {dataset.name!r} has "
                f"vector inputs of shape {dataset.input_shape}"
            )
        start = time.perf_counter()
        device = self.resolve_device()
        try:
            model, metrics = self.fit(arch, space, dataset, fidelity, seed, on_epoch=on_epoch, init=init)
            if keep is not None:
                keep(model)
            return Result(candidate_id, "ok", metrics, cost=time.perf_counter() - start)
        except Exception as exc:  # noqa: BLE001 - any crash of a candidate is a failed result, by design
            if device.type == "cuda":
                torch.cuda.empty_cache()
            reason = f"{type(exc).__name__}: {exc}"
            return Result(candidate_id, "failed", {}, cost=time.perf_counter() - start, error=reason[:2000])

    def fit(
        self,
        arch: Arch,
        space: SearchSpace,
        dataset: Dataset,
        fidelity: Fidelity,
        seed: int,
        on_epoch: OnEpoch | None = None,
        init: Init | None = None,
    ) -> tuple[nn.Module, dict[str, Any]]:
        """Build and train; return the trained model (in eval mode) and its metrics. Raises on failure.

        ``on_epoch`` gets the validation-accuracy curve after each epoch and returns True to stop training
        there (the learning-rate schedule stays that of the full ``fidelity.epochs``). ``init`` gets the built
        model and its input shape before training, to set its weights (weight inheritance)."""
        device = self.resolve_device()
        recipe = self.recipe
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        data = _Batches.of(dataset, fidelity, recipe.batch_size, device, gen, seed)
        input_shape = data.input_shape
        augment = loop.Augmenter(recipe.augment, device, seed) if recipe.augment.active else None
        if augment is not None and len(input_shape) != 3:
            raise ValueError(
                f"recipe.augment applies to images; dataset {dataset.name!r} has inputs of shape {input_shape}"
            )
        channels_last = recipe.channels_last and len(input_shape) == 3

        model = space.build(arch, input_shape, dataset.num_classes, width_mult=fidelity.width_mult)
        if init is not None:
            init(model, input_shape)
        model = model.to(device)
        params = sum(p.numel() for p in model.parameters())
        x1 = torch.zeros(1, *input_shape, device=device)
        macs = count_macs(model, x1)
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        forward = loop.compiled(model, recipe)

        steps_per_epoch = data.steps_per_epoch
        optimizer = loop.optimizer(recipe, model.parameters())
        schedule = loop.schedule(recipe, optimizer, fidelity.epochs, steps_per_epoch)
        weights = data.class_weights(dataset.num_classes) if recipe.class_weights else None
        criterion = loop.loss_fn(recipe, weights)
        autocast = self._autocast(device)

        curves: dict[str, list[float]] = {"train_loss": [], "val_loss": [], "val_acc": []}
        train_start = time.perf_counter()
        for epoch in range(fidelity.epochs):
            model.train()
            # the loss is summed on the device and looked at every check_every steps and at the epoch's end: no
            # host synchronisation per step
            total = torch.zeros((), device=device)
            seen = 0
            for step, (xb, yb) in enumerate(data.train(epoch)):
                if augment is not None:
                    xb = augment(xb)
                if channels_last:
                    xb = xb.contiguous(memory_format=torch.channels_last)
                with autocast:
                    loss = criterion(forward(xb), yb)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                loop.clip(model, recipe)
                optimizer.step()
                if step < steps_per_epoch:
                    schedule.step()
                total += loss.detach() * len(yb)
                seen += len(yb)
                if (step + 1) % recipe.check_every == 0 and not torch.isfinite(total):
                    raise Diverged(f"non-finite loss at epoch {epoch + 1}, by step {step + 1}")
            train_loss = total.item() / max(seen, 1)
            if not math.isfinite(train_loss):
                raise Diverged(f"non-finite loss ({train_loss}) at epoch {epoch + 1}")
            val_loss, val_acc = self.score(model, *data.val())
            if not math.isfinite(val_loss):
                raise Diverged(f"non-finite validation loss at epoch {epoch + 1}")
            curves["train_loss"].append(train_loss)
            curves["val_loss"].append(val_loss)
            curves["val_acc"].append(val_acc)
            tell_epoch(epoch + 1, fidelity.epochs, {k: v[-1] for k, v in curves.items()})
            if on_epoch is not None and epoch + 1 < fidelity.epochs and on_epoch(list(curves["val_acc"])):
                break
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        train_seconds = time.perf_counter() - train_start

        metrics = {
            "val_acc": curves["val_acc"][-1],
            "val_loss": curves["val_loss"][-1],
            "val_acc_curve": curves["val_acc"],
            "val_loss_curve": curves["val_loss"],
            "train_loss_curve": curves["train_loss"],
            "params": params,
            "macs": macs,
            "train_seconds": train_seconds,
            "latency_ms": self.latency_ms(model, x1),
            "epochs": len(curves["val_acc"]),
            "device": device.type,
        }
        return model, metrics

    @torch.no_grad()
    def score(self, model: nn.Module, x, y: torch.Tensor | None = None) -> tuple[float, float]:
        """Mean cross-entropy and accuracy of ``model``, in eval mode, on ``(x, y)`` tensors or on ``x``, an
        iterable of (inputs, labels) batches (a split of :func:`eval_batches`)."""
        model.eval()
        device = next(model.parameters()).device
        sums = torch.zeros(3, dtype=torch.float64, device=device)  # loss, correct, count: read once, at the end
        with self._autocast(device):
            for xb, yb in _chunks(x, y, device):
                logits = model(xb).float()
                sums[0] += F.cross_entropy(logits, yb, reduction="sum")
                sums[1] += (logits.argmax(1) == yb).sum()
                sums[2] += len(yb)
        loss_sum, correct, count = sums.tolist()
        return loss_sum / max(count, 1), correct / max(count, 1)

    @torch.no_grad()
    def confusion(self, model: nn.Module, x, y: torch.Tensor | None, num_classes: int) -> list[list[int]]:
        """The confusion matrix of ``model`` on ``(x, y)`` or on batches: row = true class, column = predicted."""
        model.eval()
        device = next(model.parameters()).device
        counts = torch.zeros(num_classes * num_classes, dtype=torch.long, device=device)
        with self._autocast(device):
            for xb, yb in _chunks(x, y, device):
                predicted = model(xb).argmax(1)
                counts += torch.bincount(yb * num_classes + predicted, minlength=num_classes * num_classes)
        return counts.view(num_classes, num_classes).tolist()

    @torch.no_grad()
    def latency_ms(self, model: nn.Module, x1: torch.Tensor, reps: int | None = None, warmup: int = 3) -> float:
        """Median wall time of a batch-1 forward pass on the model's device, in milliseconds: ``warmup`` passes
        first (kernels, caches, lazy initialisation), then the median of ``reps`` (default ``latency_reps``),
        with torch's current thread count (:func:`latency_protocol` says it in words)."""
        model.eval()
        sync = torch.cuda.synchronize if x1.device.type == "cuda" else (lambda: None)
        times = []
        with self._autocast(x1.device):
            for rep in range(warmup + (reps or self.latency_reps)):
                sync()
                t0 = time.perf_counter()
                model(x1)
                sync()
                if rep >= warmup:
                    times.append(time.perf_counter() - t0)
        return 1000.0 * statistics.median(times)

    def _autocast(self, device: torch.device):
        if device.type == "cuda" and self.recipe.amp:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()


@torch.no_grad()
def count_macs(model: nn.Module, x1: torch.Tensor) -> int:
    """Multiply-accumulates of one forward pass on a single sample: those of every convolution and linear layer,
    bias excluded, as torch's FLOP counter counts them (2 FLOPs a MAC; a test checks that the two agree on every
    space). Forward hooks, because the FLOP counter's first use imports some 800 modules (1 CPU-s per process)."""
    total = 0

    def conv(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        nonlocal total
        per_output = (module.in_channels // module.groups) * math.prod(module.kernel_size)
        total += output.numel() * per_output

    def linear(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        nonlocal total
        total += output.numel() * module.in_features

    hooks = [
        m.register_forward_hook(conv if isinstance(m, nn.modules.conv._ConvNd) else linear)
        for m in model.modules()
        if isinstance(m, (nn.modules.conv._ConvNd, nn.Linear))
    ]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(x1)
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    return int(total)


def estimated_cost(arch: Arch, space: SearchSpace, dataset: Dataset, fidelity: Fidelity) -> float:
    """A candidate's training cost, estimated without training, to order a round's candidates by: the
    multiply-accumulates of a forward pass at its width and resolution, times its epochs and data fraction. It
    ranks NB-201 cells on MNIST-1D by measured training time with a Spearman correlation of about 0.6 (the
    parameter-free operations cost time too). An architecture that does not build costs 0: it fails fast."""
    try:
        x1 = _resize(torch.zeros(1, *dataset.input_shape), fidelity.resolution)
        model = space.build(arch, tuple(x1.shape[1:]), dataset.num_classes, width_mult=fidelity.width_mult)
        return float(count_macs(model, x1)) * fidelity.epochs * fidelity.data_fraction
    except Exception:  # noqa: BLE001 - training reports the failure, with its reason
        return 0.0


def _chunks(x, y, device: torch.device, size: int = 1024):
    """(inputs, labels) batches on ``device``: of ``x`` and ``y`` tensors in chunks, or of an iterable of batches."""
    if y is not None:
        for start in range(0, len(x), size):
            yield x[start : start + size].to(device), y[start : start + size].to(device)
        return
    for xb, yb in x:
        yield xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)


def eval_batches(dataset, split: str, resolution: int | None = None, batch_size: int = 1024):
    """A split of a resident or streamed dataset as (inputs, labels) batches, for :meth:`TrainingEstimator.score`
    and :meth:`TrainingEstimator.confusion`."""
    if getattr(dataset, "streamed", False):
        return _Streamed.resized(dataset.loader(split, batch_size, shuffle=False), resolution)
    x, y = getattr(dataset, f"x_{split}"), getattr(dataset, f"y_{split}")
    x = _resize(x, resolution)
    return ((x[s : s + batch_size], y[s : s + batch_size]) for s in range(0, len(x), batch_size))


class _Batches:
    """Where an epoch's training batches and the validation batches come from."""

    input_shape: tuple[int, ...]
    steps_per_epoch: int  # the schedule's steps an epoch (streamed: estimated; past it the rate stays at its end)

    @staticmethod
    def of(dataset, fidelity: Fidelity, batch_size: int, device, gen, seed: int) -> _Batches:
        if getattr(dataset, "streamed", False):
            return _Streamed(dataset, fidelity, batch_size, device, seed)
        return _Resident(dataset, fidelity, batch_size, device, gen)


class _Resident(_Batches):
    """The data on the training device, batched by index: no copies, no workers."""

    def __init__(self, dataset: Dataset, fidelity: Fidelity, batch_size: int, device, gen) -> None:
        x, y = _subset(dataset.x_train, dataset.y_train, fidelity.data_fraction, gen)
        self.x, self.y = _resize(x, fidelity.resolution).to(device), y.to(device)
        self.x_val = _resize(dataset.x_val, fidelity.resolution).to(device)
        self.y_val = dataset.y_val.to(device)
        self.input_shape = tuple(self.x.shape[1:])
        self.batch_size, self.gen, self.device = batch_size, gen, device
        self.steps_per_epoch = max(1, math.ceil(len(self.x) / batch_size))

    def train(self, epoch: int):
        order = torch.randperm(len(self.x), generator=self.gen).to(self.device)
        for step in range(self.steps_per_epoch):
            idx = order[step * self.batch_size : (step + 1) * self.batch_size]
            if len(idx) >= 2:  # batch norm cannot train on a single sample
                yield self.x[idx], self.y[idx]

    def val(self):
        return (self.x_val, self.y_val)

    def class_weights(self, num_classes: int) -> torch.Tensor:
        return loop.class_weights(self.y, num_classes).to(self.device)


class _Streamed(_Batches):
    """Batches read by the dataset's DataLoader workers and moved to the training device."""

    def __init__(self, dataset, fidelity: Fidelity, batch_size: int, device, seed: int) -> None:
        if fidelity.data_fraction < 1:
            raise ValueError("fidelity.data_fraction needs the resident path (dataset option data_path: resident)")
        self.dataset, self.resolution, self.batch_size, self.seed, self.device = (
            dataset,
            fidelity.resolution,
            batch_size,
            seed,
            device,
        )
        shape = dataset.input_shape
        self.input_shape = (shape[0], fidelity.resolution, fidelity.resolution) if fidelity.resolution else shape
        self.steps_per_epoch = max(1, math.ceil(dataset.count("train") / dataset.world_size / batch_size))

    @staticmethod
    def resized(batches, resolution: int | None):
        for xb, yb in batches:
            yield _resize(xb, resolution), yb

    def train(self, epoch: int):
        for xb, yb in self.dataset.loader("train", self.batch_size, seed=self.seed, epoch=epoch):
            if len(yb) >= 2:
                xb = xb.to(self.device, non_blocking=True)
                yield _resize(xb, self.resolution), yb.to(self.device, non_blocking=True)

    def val(self):
        return (self.resized(self.dataset.loader("val", 1024, shuffle=False), self.resolution), None)

    def class_weights(self, num_classes: int) -> torch.Tensor:
        raise ValueError("recipe.class_weights needs the resident path (dataset option data_path: resident)")


def _subset(x: torch.Tensor, y: torch.Tensor, fraction: float, gen: torch.Generator):
    if fraction >= 1:
        return x, y
    n = max(2, int(round(fraction * len(x))))
    idx = torch.randperm(len(x), generator=gen)[:n].sort().values
    return x[idx], y[idx]


def _resize(x: torch.Tensor, resolution: int | None) -> torch.Tensor:
    if resolution is None or tuple(x.shape[2:]) == (resolution,) * (x.dim() - 2):
        return x
    if x.dim() < 3:
        raise ValueError("fidelity.resolution applies to signals and images, not to vector inputs")
    mode = "linear" if x.dim() == 3 else "bilinear"
    return F.interpolate(x, size=(resolution,) * (x.dim() - 2), mode=mode, align_corners=False)


_DEFAULT = TrainingEstimator()


def evaluate(
    arch: Arch,
    space: SearchSpace,
    dataset: Dataset,
    fidelity: Fidelity | None = None,
    seed: int = 0,
    candidate_id: str = "",
) -> Result:
    """Train and measure one architecture with the default :class:`TrainingEstimator`."""
    return _DEFAULT.evaluate(arch, space, dataset, fidelity, seed, candidate_id)


def latency_protocol(reps: int, warmup: int, device: str = "cpu") -> str:
    """How a latency was measured, for the model card."""
    where = f"{torch.get_num_threads()} CPU thread(s)" if device == "cpu" else device
    return f"median of {reps} batch-1 forward passes after {warmup} warm-up passes, {where}"
