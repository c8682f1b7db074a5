"""Training recipes: how a candidate, a supernet or the exported winner is trained. A recipe is a named preset plus
the fields a config changes, e.g. ``estimator.recipe: nb201`` or ``{preset: nb201, lr: 0.05}``.

Presets:

- ``default``: AdamW, lr 3e-3, weight decay 1e-4, cosine to 0, batch 128, no augmentation (kubenas's recipe for
  small tensors such as MNIST-1D).
- ``nb201``: NAS-Bench-201's protocol: SGD with Nesterov momentum 0.9, lr 0.1, cosine to 0, weight decay 5e-4,
  batch 256, random 32x32 crop with 4-pixel padding and horizontal flip (NB-201 trains 200 epochs, or 12 for its
  cheap fidelity; epochs are the fidelity's).
- ``darts``: DARTS's search settings: weights by SGD, lr 0.025 with cosine to 0.001, momentum 0.9, weight decay
  3e-4, batch 64, gradient clipping at 5, crop and flip; the architecture by Adam, lr 3e-4, betas (0.5, 0.999),
  weight decay 1e-3 (the ``arch_*`` fields, which a DARTS supernet reads).

This module imports no torch: a config check reads it. :mod:`kubenas.estimators.loop` builds the optimizer, the
schedule and the augmentation from a recipe.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from kubenas.core import is_finite, is_int

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("cosine", "onecycle", "step", "constant")


@dataclass(frozen=True)
class Augment:
    """Batched augmentation of training images on the training device: a random crop of the image's size from the
    image padded by ``crop_padding`` pixels on each side (0: off), a horizontal flip with probability 0.5, and a
    ``cutout`` square of that side set to the mean (0: off)."""

    crop_padding: int = 0
    flip: bool = False
    cutout: int = 0

    @property
    def active(self) -> bool:
        return bool(self.crop_padding or self.flip or self.cutout)


@dataclass(frozen=True)
class Recipe:
    """One way to train. ``lr`` is the peak learning rate, reached after ``warmup_epochs`` of linear warm-up, then
    annealed to ``lr_min`` by ``schedule`` (``step`` multiplies by ``step_gamma`` every ``step_epochs``;
    ``onecycle`` warms up over its first ``onecycle_pct`` of the steps). ``label_smoothing``, ``grad_clip`` (a
    global norm), ``class_weights`` (inverse class frequency in the loss, for imbalanced data), ``channels_last``,
    ``amp`` (bfloat16 autocast on CUDA), ``compile`` (``torch.compile``: true for its default backend, or a backend's
    name such as ``aot_eager``) and ``check_every`` (the steps between
    checks of the loss for NaN: the one host synchronisation of the inner loop)."""

    preset: str = "default"
    optimizer: str = "adamw"
    lr: float = 3e-3
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 1e-4
    batch_size: int = 128
    schedule: str = "cosine"
    lr_min: float = 0.0
    warmup_epochs: float = 0.0
    onecycle_pct: float = 0.3
    step_epochs: int = 30
    step_gamma: float = 0.1
    label_smoothing: float = 0.0
    grad_clip: float | None = None
    augment: Augment = field(default_factory=Augment)
    class_weights: bool = False
    channels_last: bool = False
    amp: bool = True
    compile: bool | str = False
    check_every: int = 50
    arch_lr: float = 3e-4
    arch_betas: tuple[float, float] = (0.5, 0.999)
    arch_weight_decay: float = 1e-3

    def __post_init__(self) -> None:
        problems = _problems(self)
        if problems:
            raise ValueError("recipe: " + "; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def params(self) -> dict[str, Any]:
        """The recipe as flat MLflow params (``recipe.lr``, ``recipe.augment.flip``...)."""
        flat: dict[str, Any] = {}
        for key, value in self.to_dict().items():
            if isinstance(value, dict):
                flat.update({f"recipe.{key}.{k}": v for k, v in value.items()})
            else:
                flat[f"recipe.{key}"] = list(value) if isinstance(value, tuple) else value
        return flat

    def describe(self) -> str:
        aug = self.augment
        augment = (
            ", ".join(
                part
                for part, on in (
                    (f"crop pad {aug.crop_padding}", aug.crop_padding),
                    ("flip", aug.flip),
                    (f"cutout {aug.cutout}", aug.cutout),
                )
                if on
            )
            or "no augmentation"
        )
        opt = (
            f"SGD{' Nesterov' if self.nesterov else ''} momentum {self.momentum}"
            if self.optimizer == "sgd"
            else "AdamW"
        )
        return (
            f"{self.preset}: {opt}, lr {self.lr:g} {self.schedule} to {self.lr_min:g}, weight decay "
            f"{self.weight_decay:g}, batch {self.batch_size}, {augment}"
        )


def _problems(r: Recipe) -> list[str]:
    out = []

    def need(ok: bool, name: str, what: str, value: Any) -> None:
        if not ok:
            out.append(f"{name} must be {what}, got {value!r}")

    need(r.optimizer in OPTIMIZERS, "optimizer", " or ".join(OPTIMIZERS), r.optimizer)
    need(r.schedule in SCHEDULES, "schedule", ", ".join(SCHEDULES), r.schedule)
    need(is_finite(r.lr) and r.lr > 0, "lr", "a number > 0", r.lr)
    need(is_finite(r.lr_min) and 0 <= r.lr_min <= (r.lr if is_finite(r.lr) else 0), "lr_min", "in 0..lr", r.lr_min)
    need(is_finite(r.momentum) and 0 <= r.momentum < 1, "momentum", "in [0, 1)", r.momentum)
    need(isinstance(r.nesterov, bool), "nesterov", "true or false", r.nesterov)
    need(not (r.nesterov and r.optimizer == "sgd" and r.momentum == 0), "nesterov", "off without momentum", True)
    need(is_finite(r.weight_decay) and r.weight_decay >= 0, "weight_decay", "a number >= 0", r.weight_decay)
    need(is_int(r.batch_size) and r.batch_size >= 2, "batch_size", "an integer >= 2", r.batch_size)
    need(is_finite(r.warmup_epochs) and r.warmup_epochs >= 0, "warmup_epochs", "a number >= 0", r.warmup_epochs)
    need(is_finite(r.onecycle_pct) and 0 < r.onecycle_pct < 1, "onecycle_pct", "in (0, 1)", r.onecycle_pct)
    need(is_int(r.step_epochs) and r.step_epochs >= 1, "step_epochs", "an integer >= 1", r.step_epochs)
    need(is_finite(r.step_gamma) and 0 < r.step_gamma <= 1, "step_gamma", "in (0, 1]", r.step_gamma)
    need(is_finite(r.label_smoothing) and 0 <= r.label_smoothing < 1, "label_smoothing", "in [0, 1)", r.label_smoothing)
    need(r.grad_clip is None or (is_finite(r.grad_clip) and r.grad_clip > 0), "grad_clip", "> 0 or null", r.grad_clip)
    for name in ("class_weights", "channels_last", "amp"):
        need(isinstance(getattr(r, name), bool), name, "true or false", getattr(r, name))
    need(isinstance(r.compile, bool) or r.compile in COMPILE_BACKENDS, "compile", _COMPILE_EXPECTED, r.compile)
    need(is_int(r.check_every) and r.check_every >= 1, "check_every", "an integer >= 1", r.check_every)
    need(is_finite(r.arch_lr) and r.arch_lr > 0, "arch_lr", "a number > 0", r.arch_lr)
    betas = r.arch_betas
    need(
        isinstance(betas, tuple) and len(betas) == 2 and all(is_finite(b) and 0 <= b < 1 for b in betas),
        "arch_betas",
        "two numbers in [0, 1)",
        betas,
    )
    need(
        is_finite(r.arch_weight_decay) and r.arch_weight_decay >= 0,
        "arch_weight_decay",
        "a number >= 0",
        r.arch_weight_decay,
    )
    a = r.augment
    need(isinstance(a, Augment), "augment", "a mapping", a)
    if isinstance(a, Augment):
        need(is_int(a.crop_padding) and 0 <= a.crop_padding <= 64, "augment.crop_padding", "in 0..64", a.crop_padding)
        need(isinstance(a.flip, bool), "augment.flip", "true or false", a.flip)
        need(is_int(a.cutout) and 0 <= a.cutout <= 1024, "augment.cutout", "in 0..1024", a.cutout)
    return out


# torch.compile's backends that need nothing beyond torch (``inductor`` is its default: ``compile: true``)
COMPILE_BACKENDS = ("inductor", "aot_eager", "eager", "cudagraphs")
_COMPILE_EXPECTED = "true, false or a torch.compile backend (" + ", ".join(COMPILE_BACKENDS) + ")"


PRESETS: dict[str, Recipe] = {
    "default": Recipe(),
    "nb201": Recipe(
        preset="nb201",
        optimizer="sgd",
        lr=0.1,
        momentum=0.9,
        nesterov=True,
        weight_decay=5e-4,
        batch_size=256,
        schedule="cosine",
        lr_min=0.0,
        augment=Augment(crop_padding=4, flip=True),
    ),
    "darts": Recipe(
        preset="darts",
        optimizer="sgd",
        lr=0.025,
        momentum=0.9,
        nesterov=False,
        weight_decay=3e-4,
        batch_size=64,
        schedule="cosine",
        lr_min=0.001,
        grad_clip=5.0,
        augment=Augment(crop_padding=4, flip=True),
        arch_lr=3e-4,
        arch_betas=(0.5, 0.999),
        arch_weight_decay=1e-3,
    ),
}


def resolve(spec: str | Mapping[str, Any] | Recipe | None, base: Recipe | None = None) -> Recipe:
    """The recipe a config names: a preset's name, or ``{preset: NAME, FIELD: VALUE...}`` (``preset`` defaults to
    ``base``'s, else ``default``); raises ValueError naming the field."""
    if isinstance(spec, Recipe):
        return spec
    if spec is None:
        return base or PRESETS["default"]
    if isinstance(spec, str):
        spec = {"preset": spec}
    if not isinstance(spec, Mapping):
        raise ValueError(f"recipe must be a preset's name ({', '.join(PRESETS)}) or a mapping, got {spec!r}")
    changes = dict(spec)
    name = changes.pop("preset", None)
    if name is None:
        start = base or PRESETS["default"]
    elif name not in PRESETS:
        raise ValueError(f"recipe.preset: unknown preset {name!r}; presets: {', '.join(PRESETS)}")
    else:
        start = PRESETS[name]
    known = {f.name for f in fields(Recipe)} - {"preset"}
    unknown = sorted(set(changes) - known)
    if unknown:
        raise ValueError(f"recipe: unknown field(s) {unknown}; known: {', '.join(sorted(known))}")
    if "augment" in changes:
        aug = changes["augment"]
        if isinstance(aug, Augment):
            pass
        elif isinstance(aug, Mapping):
            aug_known = {f.name for f in fields(Augment)}
            bad = sorted(set(aug) - aug_known)
            if bad:
                raise ValueError(f"recipe.augment: unknown field(s) {bad}; known: {', '.join(sorted(aug_known))}")
            changes["augment"] = replace(start.augment, **aug)
        elif aug is False or aug is None:
            changes["augment"] = Augment()
        else:
            raise ValueError(f"recipe.augment must be a mapping such as {{crop_padding: 4, flip: true}}, got {aug!r}")
    if "arch_betas" in changes and isinstance(changes["arch_betas"], list):
        changes["arch_betas"] = tuple(changes["arch_betas"])
    return replace(start, **changes)
