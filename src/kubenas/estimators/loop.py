"""What a :class:`~kubenas.recipes.Recipe` builds in torch: the optimizer, the learning-rate schedule, the loss and
the batched augmentation, all on the training device.

The augmentation is plain tensor indexing on the whole batch at once (one gather for the crops, one ``where`` for
the flips, one mask for cutout), with a generator on the training device, so no per-image Python and no
host-device traffic (``benchmarks/augment.py`` measures it against kornia's).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from kubenas.recipes import Augment, Recipe


def optimizer(recipe: Recipe, params) -> torch.optim.Optimizer:
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=recipe.lr, momentum=recipe.momentum, nesterov=recipe.nesterov, weight_decay=recipe.weight_decay
        )
    return torch.optim.AdamW(params, lr=recipe.lr, weight_decay=recipe.weight_decay)


def schedule(recipe: Recipe, opt: torch.optim.Optimizer, epochs: int, steps_per_epoch: int):
    """A per-step schedule over ``epochs`` epochs of ``steps_per_epoch`` steps."""
    total = max(1, epochs * steps_per_epoch)
    if recipe.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(
            opt,
            max_lr=recipe.lr,
            total_steps=total,
            pct_start=recipe.onecycle_pct,
            final_div_factor=(recipe.lr / 25) / recipe.lr_min if recipe.lr_min > 0 else 1e4,
        )
    warmup = min(total - 1, round(recipe.warmup_epochs * steps_per_epoch))
    if recipe.schedule == "cosine" and warmup == 0:
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total, eta_min=recipe.lr_min)
    floor = recipe.lr_min / recipe.lr

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if recipe.schedule == "cosine":
            t = (step - warmup) / max(1, total - warmup)
            return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t))
        if recipe.schedule == "step":
            return max(floor, recipe.step_gamma ** (step // (recipe.step_epochs * steps_per_epoch)))
        return 1.0

    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


def class_weights(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Inverse class frequency, scaled so that a balanced split weighs every class 1 (absent classes: 0)."""
    counts = torch.bincount(labels.cpu(), minlength=num_classes).double()
    weights = torch.where(counts > 0, counts.sum() / (num_classes * counts.clamp(min=1)), torch.zeros_like(counts))
    return weights.float()


def loss_fn(recipe: Recipe, weights: torch.Tensor | None):
    def loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits.float(), target, weight=weights, label_smoothing=recipe.label_smoothing)

    return loss


def clip(model: nn.Module, recipe: Recipe) -> None:
    if recipe.grad_clip is not None:
        torch.nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip, foreach=True)


class Augmenter:
    """Random crop with padding, horizontal flip and cutout on a (B, C, H, W) batch, on the batch's device."""

    def __init__(self, augment: Augment, device: torch.device, seed: int) -> None:
        self.augment = augment
        self.gen = torch.Generator(device=device).manual_seed(seed)
        self.device = device

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        a = self.augment
        if x.dim() != 4:
            raise ValueError(f"augmentation applies to image batches (B, C, H, W), got shape {tuple(x.shape)}")
        b, _, h, w = x.shape
        if a.crop_padding:
            p = a.crop_padding
            padded = F.pad(x, (p, p, p, p))
            dy = torch.randint(0, 2 * p + 1, (b, 1), device=self.device, generator=self.gen)
            dx = torch.randint(0, 2 * p + 1, (b, 1), device=self.device, generator=self.gen)
            rows = (dy + torch.arange(h, device=self.device)).view(b, 1, h, 1)
            cols = (dx + torch.arange(w, device=self.device)).view(b, 1, 1, w)
            batch = torch.arange(b, device=self.device).view(b, 1, 1, 1)
            chans = torch.arange(x.shape[1], device=self.device).view(1, -1, 1, 1)
            x = padded[batch, chans, rows, cols]
        if a.flip:
            flip = torch.rand(b, device=self.device, generator=self.gen) < 0.5
            x = torch.where(flip.view(b, 1, 1, 1), x.flip(3), x)
        if a.cutout:
            s = a.cutout  # a square of side s centred anywhere in the image, clipped at its edges
            top = torch.randint(0, h, (b, 1, 1), device=self.device, generator=self.gen) - s // 2
            left = torch.randint(0, w, (b, 1, 1), device=self.device, generator=self.gen) - s // 2
            ys = torch.arange(h, device=self.device).view(1, h, 1)
            xs = torch.arange(w, device=self.device).view(1, 1, w)
            hole = (ys >= top) & (ys < top + s) & (xs >= left) & (xs < left + s)
            x = x.masked_fill(hole.unsqueeze(1), 0.0)
        return x


def compiled(model: nn.Module, recipe: Recipe) -> nn.Module:
    """The model's forward under ``torch.compile`` when the recipe asks for it (its parameters stay the model's)."""
    if recipe.compile is False:
        return model
    return torch.compile(model) if recipe.compile is True else torch.compile(model, backend=recipe.compile)
