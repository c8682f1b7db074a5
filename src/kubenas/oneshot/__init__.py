"""One-shot architecture search with weight sharing: one supernet trained once judges every architecture.

One module per method, one line per method in ``ONESHOT``. :func:`oneshot_search` runs a whole search in
this process; the pipeline runs the same steps as its four stages (``kubenas.steps``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kubenas.arch import Arch
from kubenas.data.base import Dataset
from kubenas.oneshot.base import OneShot, rank
from kubenas.oneshot.darts import DARTS
from kubenas.oneshot.enas import ENAS
from kubenas.oneshot.random_sampling import RandomSampling
from kubenas.oneshot.supernet import SuperNet, derive, supernet
from kubenas.registry import create
from kubenas.spaces.base import SearchSpace

ONESHOT: dict[str, type[OneShot]] = {
    "random_sampling": RandomSampling,
    "enas": ENAS,
    "darts": DARTS,
}


def make_oneshot(name: str, space: SearchSpace, **options: Any) -> OneShot:
    """Build a registered one-shot method by name, e.g. ``make_oneshot("darts", space, remedy="none")``."""
    return create(ONESHOT, "one-shot method", name, space, **options)


@dataclass
class OneShotResult:
    """``ranked``: (architecture, validation accuracy with shared weights), best first; ``stats``: one record
    per supernet epoch; seconds spent training the supernet and ranking."""

    ranked: list[tuple[Arch, float]]
    stats: list[dict[str, Any]] = field(default_factory=list)
    train_seconds: float = 0.0
    rank_seconds: float = 0.0
    method: OneShot | None = None


def oneshot_search(
    space: SearchSpace,
    method: str,
    dataset: Dataset,
    *,
    epochs: int,
    candidates: int = 100,
    seed: int = 0,
    options: Mapping[str, Any] | None = None,
    recalibration_batches: int = 4,
    progress: bool = False,
) -> OneShotResult:
    """Train ``method``'s supernet for ``epochs`` on ``dataset`` (its test split is never used), then rank
    ``candidates`` architectures it proposes with the shared weights."""
    data = dataset.without_test()
    m = make_oneshot(method, space, seed=seed, **dict(options or {}))
    m.setup(data.input_shape, data.num_classes, epochs)
    start = time.perf_counter()
    for _ in range(epochs):
        record = m.train_epoch(data)
        if progress:
            print(
                f"[kubenas] {method} epoch {record['epoch']}/{epochs}: loss {record['train_loss']:.3f} "
                f"({record['seconds']:.1f} s)",
                flush=True,
            )
    trained = time.perf_counter() - start
    archs = m.propose(candidates)
    scores = rank(m.net, archs, data, recalibration_batches, m.batch_size, seed)
    ranked = sorted(zip(archs, scores), key=lambda t: -t[1])
    return OneShotResult(ranked, m.stats, trained, time.perf_counter() - start - trained, m)


__all__ = [
    "ONESHOT",
    "OneShot",
    "OneShotResult",
    "SuperNet",
    "derive",
    "make_oneshot",
    "oneshot_search",
    "rank",
    "supernet",
    "DARTS",
    "ENAS",
    "RandomSampling",
]
