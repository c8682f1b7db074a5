"""Random search: uniform samples from the space, never repeating an architecture.

In small spaces it is often hard to beat, which is why every benchmark reports it.
"""

from __future__ import annotations

from kubenas.strategies.base import Strategy


class RandomSearch(Strategy):
    name = "random"

    def _propose(self):
        arch = self._unique(lambda: self.space.sample(self.rng))
        return None if arch is None else (arch, "random", None)
