"""The one-shot interface: train a supernet once, then judge many architectures with its shared weights.

A method (one file each: ``random_sampling``, ``enas``, ``darts``) decides how the supernet is trained, one
minibatch at a time (``_train_batch``), what else happens at the end of an epoch (``_end_epoch``: ENAS trains
its controller), and which architectures to rank afterwards (``propose``). This base class owns the supernet,
its optimiser and cosine schedule over the whole search, the epoch loop and the state:

- ``state_dict()``: plain JSON (options, epochs done, RNG, a method's controller or statistics);
- ``tensor_state()``: the supernet's and optimisers' tensors and torch's RNG, for ``torch.save`` and a load with
  ``weights_only=True``. Both together resume a search exactly, mid-round included.

:func:`rank` then scores architectures with the shared weights: for each, the batch-norm statistics are
re-estimated on a few training batches (every path sees different activations), then the validation
accuracy is measured.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from kubenas.arch import Arch, arch_id
from kubenas.core import is_int, is_number
from kubenas.data.base import Dataset, require_resident
from kubenas.estimators import loop
from kubenas.oneshot.supernet import SuperNet, check_space, supernet
from kubenas.recipes import Recipe
from kubenas.spaces.base import SearchSpace
from kubenas.strategies.base import rng_from_state, rng_state

STATE_VERSION = 1


class OneShot:
    """Base of the one-shot methods.

    Args:
        space: a cell space (``nb201`` or ``cell``).
        seed: seeds the method's RNG and torch's.
        lr: peak learning rate of the supernet's weights (AdamW, cosine over ``total_epochs``).
        weight_decay: AdamW weight decay of the supernet's weights.
        batch_size: minibatch size.
        device: ``"cpu"``, ``"cuda"``, ...; None picks CUDA when available.
        amp: bfloat16 autocast on CUDA (ignored on CPU, where training is float32 and deterministic).
    """

    name: ClassVar[str] = "base"

    def __init__(
        self,
        space: SearchSpace,
        *,
        seed: int = 0,
        lr: float = 0.01,
        weight_decay: float = 1e-4,
        batch_size: int = 128,
        device: str | None = None,
        amp: bool = True,
        recipe: Recipe | None = None,
    ):
        if recipe is not None:  # the config's training recipe: the supernet's optimiser, batch, clipping, augmentation
            lr, weight_decay, batch_size, amp = recipe.lr, recipe.weight_decay, recipe.batch_size, recipe.amp
        if not is_int(seed):
            raise ValueError(f"{self.name}: seed must be an integer, got {seed!r}")
        for label, value in (("lr", lr), ("weight_decay", weight_decay)):
            if not is_number(value) or value < 0 or (label == "lr" and value == 0):
                raise ValueError(
                    f"{self.name}: {label} must be a number {'> 0' if label == 'lr' else '>= 0'}, got {value!r}"
                )
        if not is_int(batch_size) or batch_size < 2:
            raise ValueError(f"{self.name}: batch_size must be an integer >= 2, got {batch_size!r}")
        check_space(space)  # fails early, naming the space, when it has no supernet
        self.space, self.seed = space, seed
        self.device = torch.device(device) if device else torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.amp = bool(amp)
        self.lr, self.weight_decay, self.batch_size = float(lr), float(weight_decay), batch_size
        self.recipe = recipe
        self.lr_min = recipe.lr_min if recipe is not None else 0.0
        self.rng = np.random.default_rng(seed)
        self.epochs_done = 0
        self.total_epochs: int | None = None
        self.stats: list[dict[str, Any]] = []  # one entry per epoch
        self.net: SuperNet | None = None

    # ----------------------------------------------------------------- for subclasses
    def _build_extra(self) -> None:
        """Create what the method trains besides the supernet's weights (DARTS' architecture weights)."""

    def _train_batch(
        self, x: torch.Tensor, y: torch.Tensor, val: tuple[torch.Tensor, torch.Tensor], progress: float
    ) -> float:
        """One step on the training minibatch ``(x, y)``; ``val`` is a validation minibatch (for bilevel
        methods), ``progress`` the share of the whole search done. Returns the training loss."""
        raise NotImplementedError

    def _end_epoch(self, data: Dataset) -> dict[str, Any]:
        """Work after each epoch; returns statistics for the epoch's record."""
        return {}

    def propose(self, n: int) -> list[Arch]:
        """Up to ``n`` distinct architectures to rank with the shared weights."""
        raise NotImplementedError

    score_kind: ClassVar[str] = "path"  # what :meth:`score` measures

    def score(self, archs: Sequence[Arch], data: Dataset, recalibration_batches: int = 4) -> list[float]:
        """Each architecture's validation accuracy with the shared weights (its path, batch norm re-estimated)."""
        return rank(self.net, archs, data, recalibration_batches, self.batch_size, self.seed)

    def _extra_state(self) -> dict[str, Any]:
        return {}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        pass

    def _extra_tensors(self) -> dict[str, Any]:
        return {}

    def _load_extra_tensors(self, tensors: dict[str, Any]) -> None:
        pass

    # ----------------------------------------------------------------- helpers
    def _step(self, loss: torch.Tensor) -> float:
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"{self.name}: non-finite supernet loss ({loss.item()}) at epoch {self.epochs_done + 1}"
            )
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.recipe is not None:
            loop.clip(self.net, self.recipe)
        self.optimizer.step()
        return float(loss.item())

    def _unique(self, archs, n: int) -> list[Arch]:
        out: dict[str, Arch] = {}
        for arch in archs:
            out.setdefault(arch_id(arch), arch)
            if len(out) == n:
                break
        return list(out.values())

    # ----------------------------------------------------------------- the interface
    def setup(self, input_shape: Sequence[int], num_classes: int, total_epochs: int, width_mult: float = 1.0) -> None:
        """Build the supernet (seeded) and its optimiser, for a search of ``total_epochs`` supernet epochs."""
        if not is_int(total_epochs) or total_epochs < 1:
            raise ValueError(f"{self.name}: total_epochs must be a positive integer, got {total_epochs!r}")
        torch.manual_seed(self.seed)
        self.net = supernet(self.space, input_shape, num_classes, width_mult).to(self.device)
        self.total_epochs = total_epochs
        if self.recipe is not None:
            self.optimizer = loop.optimizer(self.recipe, self.net.parameters())
        else:
            self.optimizer = torch.optim.AdamW(self.net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        self._build_extra()
        self._torch_rng = torch.Generator().manual_seed(self.seed)
        augment = self.recipe.augment if self.recipe is not None else None
        self.augment = loop.Augmenter(augment, self.device, self.seed) if augment and augment.active else None

    def autocast(self):
        if self.device.type == "cuda" and self.amp:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _lr_at(self, progress: float) -> float:
        return self.lr_min + 0.5 * (self.lr - self.lr_min) * (1 + math.cos(math.pi * min(1.0, progress)))

    def train_epoch(self, data: Dataset) -> dict[str, Any]:
        """Train the supernet for one epoch on the training split (the validation split serves bilevel methods
        and controllers). Returns the epoch's statistics."""
        if self.net is None:
            raise RuntimeError(f"{self.name}: call setup() before train_epoch()")
        start = time.perf_counter()
        self.net.train()
        data = _on(data, self.device)
        n = len(data.x_train)
        steps = max(1, math.ceil(n / self.batch_size))
        order = torch.randperm(n, generator=self._torch_rng)
        val_order = torch.randint(0, len(data.x_val), (steps, self.batch_size), generator=self._torch_rng)
        losses = []
        for step in range(steps):
            idx = order[step * self.batch_size : (step + 1) * self.batch_size]
            if len(idx) < 2:
                continue
            progress = (self.epochs_done + step / steps) / self.total_epochs
            for group in self.optimizer.param_groups:
                group["lr"] = self._lr_at(progress)
            val = (data.x_val[val_order[step]], data.y_val[val_order[step]])
            x = data.x_train[idx] if self.augment is None else self.augment(data.x_train[idx])
            with self.autocast():
                losses.append(self._train_batch(x, data.y_train[idx], val, progress))
        self.epochs_done += 1
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        record = {
            "epoch": self.epochs_done,
            "train_loss": float(np.mean(losses)),
            "seconds": time.perf_counter() - start,
        }
        record.update(self._end_epoch(data))
        self.stats.append(record)
        return record

    def state_dict(self) -> dict[str, Any]:
        return {
            "method": self.name,
            "version": STATE_VERSION,
            "space": self.space.spec(),
            "seed": self.seed,
            "lr": self.lr,
            "weight_decay": self.weight_decay,
            "batch_size": self.batch_size,
            "rng": rng_state(self.rng),
            "epochs_done": self.epochs_done,
            "total_epochs": self.total_epochs,
            "stats": self.stats,
            "extra": self._extra_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("method") != self.name:
            raise ValueError(f"state belongs to one-shot method {state.get('method')!r}, not {self.name!r}")
        if state.get("version") != STATE_VERSION:
            raise ValueError(
                f"one-shot state version {state.get('version')!r} is not supported (expected {STATE_VERSION})"
            )
        self.seed, self.lr, self.weight_decay = state["seed"], state["lr"], state["weight_decay"]
        self.batch_size, self.rng = state["batch_size"], rng_from_state(state["rng"])
        self.epochs_done, self.total_epochs = state["epochs_done"], state["total_epochs"]
        self.stats = [dict(s) for s in state["stats"]]
        self._load_extra_state(dict(state.get("extra") or {}))

    def tensor_state(self) -> dict[str, Any]:
        """Tensors for ``torch.save``: the supernet, the optimisers and torch's RNG (no Python objects)."""
        return {
            "net": self.net.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "torch_rng": self._torch_rng.get_state(),
            **self._extra_tensors(),
        }

    def load_tensor_state(self, tensors: dict[str, Any]) -> None:
        """Restore :meth:`tensor_state` (loaded with ``weights_only=True``, on any device) after :meth:`setup`."""
        self.net.load_state_dict(tensors["net"])
        self.optimizer.load_state_dict(tensors["optimizer"])
        self._torch_rng.set_state(tensors["torch_rng"])
        self._load_extra_tensors(tensors)


@torch.no_grad()
def rank(
    net: SuperNet,
    archs: Sequence[Arch],
    data: Dataset,
    recalibration_batches: int = 4,
    batch_size: int = 128,
    seed: int = 0,
) -> list[float]:
    """The validation accuracy of each architecture with the supernet's shared weights, after re-estimating the
    batch-norm statistics of its path on ``recalibration_batches`` training minibatches (the same ones for
    every architecture)."""
    gen = torch.Generator().manual_seed(seed)
    batches = [torch.randint(0, len(data.x_train), (batch_size,), generator=gen) for _ in range(recalibration_batches)]
    data = _on(data, next(net.parameters()).device)
    norms = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [(m.momentum, m.running_mean.clone(), m.running_var.clone(), m.num_batches_tracked.clone()) for m in norms]
    out = []
    try:
        for arch in archs:
            for m in norms:
                m.reset_running_stats()
                m.momentum = None  # a cumulative average over the recalibration batches
            net.train()
            for idx in batches:
                net(data.x_train[idx], arch=arch)
            net.eval()
            correct = 0
            for start in range(0, len(data.x_val), 1024):
                logits = net(data.x_val[start : start + 1024], arch=arch)
                correct += int((logits.argmax(1) == data.y_val[start : start + 1024]).sum())
            out.append(correct / len(data.x_val))
    finally:
        for m, (momentum, mean, var, count) in zip(norms, saved):
            m.momentum = momentum
            m.running_mean.copy_(mean)
            m.running_var.copy_(var)
            m.num_batches_tracked.copy_(count)
        net.train()
    return out


def cross_entropy(net: SuperNet, x, y, **forward) -> torch.Tensor:
    return F.cross_entropy(net(x, **forward).float(), y)


def _on(data: Dataset, device: torch.device) -> Dataset:
    """The train and validation splits on ``device`` (the test split is not needed here)."""
    require_resident(data, "a one-shot supernet")
    if data.x_train.device == device:
        return data
    return dataclasses.replace(
        data.without_test(),
        x_train=data.x_train.to(device),
        y_train=data.y_train.to(device),
        x_val=data.x_val.to(device),
        y_val=data.y_val.to(device),
    )
