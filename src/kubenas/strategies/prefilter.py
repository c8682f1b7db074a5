"""A zero-cost pre-filter in front of a strategy: each ask draws ``pool`` proposals from the strategy, scores
them with a cheap scorer (a zero-cost proxy), and keeps the best; the rest are dropped unseen.

It wraps a strategy as the multi-fidelity schedulers do, and is not a strategy of its own: everything but
``ask`` is the wrapped strategy's, its state included. A scheduler's new architectures come from its base
strategy, so :func:`prefilter` puts the filter in front of that.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kubenas.arch import Arch
from kubenas.core import Candidate, is_int
from kubenas.strategies.base import Strategy, check_ask

Scorer = Callable[[list[Arch]], list[float]]


class Prefiltered:
    """``strategy`` behind a pre-filter. ``score`` maps architectures to scores (higher is better) and must be
    deterministic: it is not part of the state, so wrap the same one after ``load_state_dict`` for the same asks."""

    def __init__(self, strategy: Strategy, score: Scorer, pool: int = 10):
        if not is_int(pool) or pool < 1:
            raise ValueError(f"prefilter pool must be a positive integer, got {pool!r}")
        self.strategy, self.score, self.pool = strategy, score, pool

    def around(self, strategy: Strategy) -> Prefiltered:
        """The same filter in front of another strategy."""
        return Prefiltered(strategy, self.score, self.pool)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.strategy, name)

    def ask(self, n: int = 1) -> list[Candidate]:
        check_ask(n)
        out = []
        for _ in range(n):
            pool = self.strategy.proposals(self.pool)
            if not pool:
                break
            scores = self.score([p[0] for p in pool]) if len(pool) > 1 else [0.0]
            out.append(self.strategy.accept(pool[max(range(len(pool)), key=lambda i: (scores[i], -i))]))
        return out


def prefilter(strategy: Strategy, score: Scorer, pool: int = 10) -> Any:
    """``strategy`` with a pre-filter in front of where its new architectures come from: the strategy itself, or
    a scheduler's base strategy (then the scheduler is returned, its base wrapped)."""
    filtered = Prefiltered(strategy, score, pool)  # checks the pool size for either case
    inner = getattr(strategy, "inner", None)
    if isinstance(inner, (Strategy, Prefiltered)):
        strategy.inner = filtered.around(inner)
        return strategy
    return filtered
