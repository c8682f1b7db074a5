"""Hill climbing with network morphisms, after NASH (Elsken, Metzen and Hutter, 2017).

After ``n_init`` random architectures, every proposal is a child of the best result so far: a random
function-preserving morphism of it (``space.morph``: a wider layer or an inserted identity layer in ``chain``)
or, with probability ``mutation_rate`` or when no morphism is left, an ordinary mutation. Children carry their
parent's id, so with weight inheritance (``estimator.inherit``) a morphed child starts computing exactly its
parent's function and only trains on from there: the climb pays a few epochs per step, not a full training.

On spaces without morphisms (all but ``chain``) every step is a mutation, and inheritance copies the weights
that match.
"""

from __future__ import annotations

from typing import Any

from kubenas.core import is_int, is_number
from kubenas.strategies.base import Strategy


class NetworkMorphism(Strategy):
    name = "network_morphism"

    def __init__(self, space, *, n_init: int = 4, mutation_rate: float = 0.2, **kwargs: Any):
        super().__init__(space, **kwargs)
        if not is_int(n_init) or n_init < 1:
            raise ValueError(f"network_morphism: n_init must be a positive integer, got {n_init!r}")
        if not is_number(mutation_rate) or not 0 <= mutation_rate <= 1:
            raise ValueError(f"network_morphism: mutation_rate must be a number in [0, 1], got {mutation_rate!r}")
        self.n_init, self.mutation_rate = n_init, float(mutation_rate)

    def _step(self, arch):
        if self.rng.random() >= self.mutation_rate:
            child = self.space.morph(arch, self.rng)
            if child is not None:
                return child
        return self.space.mutate(arch, self.rng)

    def _propose(self):
        best = self.best()
        if best is None or len(self._history) + len(self._pending) < self.n_init:
            arch = self._unique(lambda: self.space.sample(self.rng))
            return None if arch is None else (arch, "init", None)
        arch = self._unique(lambda: self._step(best["arch"]))
        return None if arch is None else (arch, "child", best["id"])

    def _extra_state(self):
        return {"n_init": self.n_init, "mutation_rate": self.mutation_rate}

    def _load_extra_state(self, state):
        self.n_init, self.mutation_rate = state["n_init"], state["mutation_rate"]
