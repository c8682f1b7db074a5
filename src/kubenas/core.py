"""The types every layer shares: a candidate to evaluate, its result, the fidelity it is evaluated at, and the
checks of plain values that configs and results need (:mod:`kubenas.history` records the three as a row). They
depend on nothing but the standard library, so spaces, strategies, estimators, the store and the pipeline steps
can all use them without importing one another.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from kubenas.arch import Arch


class UserError(Exception):
    """An expected stop: bad input, or a service or file that cannot be used. Its message says what to check; the
    command line prints it on one line, without a traceback."""


@dataclass(frozen=True)
class Fidelity:
    """How much to spend on one evaluation.

    Attributes:
        epochs: passes over the (possibly reduced) training split.
        data_fraction: fraction of the training split used, drawn with the evaluation's seed.
        width_mult: multiplies every layer width of the built network.
        resolution: resizes inputs to this length (1-D) or this height and width (2-D); None keeps them.
    """

    epochs: int = 10
    data_fraction: float = 1.0
    width_mult: float = 1.0
    resolution: int | None = None

    def __post_init__(self) -> None:
        if not is_int(self.epochs) or self.epochs < 1:
            raise ValueError(f"fidelity.epochs must be a positive integer, got {self.epochs!r}")
        if not isinstance(self.data_fraction, (int, float)) or not 0 < self.data_fraction <= 1:
            raise ValueError(f"fidelity.data_fraction must be in (0, 1], got {self.data_fraction!r}")
        if not isinstance(self.width_mult, (int, float)) or not 0 < self.width_mult <= 16:
            raise ValueError(f"fidelity.width_mult must be in (0, 16], got {self.width_mult!r}")
        if self.resolution is not None and (not isinstance(self.resolution, int) or self.resolution < 1):
            raise ValueError(f"fidelity.resolution must be a positive integer or None, got {self.resolution!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def override(self, changes: Mapping[str, Any] | None) -> Fidelity:
        """This fidelity with some fields replaced (a scheduler's rung, e.g. ``{"epochs": 3}``)."""
        return self.from_dict({**self.to_dict(), **dict(changes or {})})

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Fidelity:
        data = dict(data or {})
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(
                f"fidelity: unknown field(s) {sorted(unknown)}; known: {', '.join(cls.__dataclass_fields__)}"
            )
        return cls(**data)


@dataclass
class Candidate:
    """An architecture to evaluate. ``id`` is unique within a search and deterministic for a seed."""

    id: str
    arch: Arch
    parent_id: str | None = None
    fidelity: dict[str, Any] | None = None  # overrides of the search's fidelity (a scheduler's rung), or None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Candidate:
        fidelity = data.get("fidelity")
        return cls(
            id=data["id"],
            arch=dict(data["arch"]),
            parent_id=data.get("parent_id"),
            fidelity=dict(fidelity) if fidelity else None,
        )


@dataclass
class Result:
    """The outcome of evaluating one candidate.

    ``status`` is ``"ok"`` or ``"failed"``; ``error`` says why a failure happened; ``cost`` is in seconds.
    """

    candidate_id: str
    status: str
    metrics: dict[str, Any] = field(default_factory=dict)
    cost: float = 0.0
    error: str | None = None

    def __post_init__(self) -> None:
        if self.status not in ("ok", "failed"):
            raise ValueError(f"Result.status must be 'ok' or 'failed', got {self.status!r}")

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Result:
        return cls(
            candidate_id=data["candidate_id"],
            status=data["status"],
            metrics=dict(data.get("metrics") or {}),
            cost=float(data.get("cost") or 0.0),
            error=data.get("error"),
        )


def top(best: dict[str, Any] | list[dict[str, Any]] | None) -> dict[str, Any] | None:
    """The single best of ``Strategy.best()``: multi-objective strategies return their Pareto front, best first
    on the first objective."""
    return (best[0] if best else None) if isinstance(best, list) else best


def is_int(value: Any) -> bool:
    """An integer, and not a bool (``True`` is an ``int`` to Python, never to a config)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """An int or a float, and not a bool."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_finite(value: Any) -> bool:
    """A number that is neither NaN nor infinite."""
    return is_number(value) and math.isfinite(value)


# Told after every epoch of any training in the current context: (epoch, epochs planned, {train_loss, val_loss,
# val_acc}). The pipeline streams a candidate's curves to MLflow with it, and the export shows its progress.
EpochHook = Callable[[int, int, dict[str, float]], None]
_EPOCH_HOOK: contextvars.ContextVar[EpochHook | None] = contextvars.ContextVar("kubenas_epoch_hook", default=None)


@contextlib.contextmanager
def epoch_hook(hook: EpochHook | None) -> Iterator[None]:
    """Give ``hook`` every epoch of the training that runs inside, whichever estimator wraps it (learning-curve
    termination, weight inheritance)."""
    token = _EPOCH_HOOK.set(hook)
    try:
        yield
    finally:
        _EPOCH_HOOK.reset(token)


def tell_epoch(epoch: int, epochs: int, values: dict[str, float]) -> None:
    """What a training loop calls after each epoch."""
    hook = _EPOCH_HOOK.get()
    if hook is not None:
        hook(epoch, epochs, values)
