"""Regularized (aging) evolution, Real et al. 2019.

A population of the ``population_size`` most recent successful results. Each proposal runs a tournament over
``sample_size`` members drawn at random and mutates the winner; each result joins the population and pushes
out the oldest member, so that a lucky early architecture cannot dominate forever. Until the population is
full, proposals are random samples. In a batch ask each slot runs its own tournament.
"""

from __future__ import annotations

from typing import Any

from kubenas.strategies.base import Strategy


class RegularizedEvolution(Strategy):
    name = "regularized_evolution"

    def __init__(self, space, *, population_size: int = 20, sample_size: int = 5, **kwargs: Any):
        super().__init__(space, **kwargs)
        if not isinstance(population_size, int) or population_size < 2:
            raise ValueError(f"regularized_evolution: population_size must be an integer >= 2, got {population_size!r}")
        if not isinstance(sample_size, int) or not 1 <= sample_size <= population_size:
            raise ValueError(
                f"regularized_evolution: sample_size must be an integer in 1..population_size ({population_size}), "
                f"got {sample_size!r}"
            )
        self.population_size, self.sample_size = population_size, sample_size
        self._population: list[dict[str, Any]] = []  # oldest first

    def _propose(self):
        filling = len(self._population) + self._pending_tags().count("init") < self.population_size
        if filling or not self._population:
            arch = self._unique(lambda: self.space.sample(self.rng))
            return None if arch is None else (arch, "init", None)
        size = min(self.sample_size, len(self._population))
        picks = self.rng.choice(len(self._population), size=size, replace=False)
        parent = max((self._population[int(i)] for i in picks), key=lambda m: self.utility(m["value"]))
        arch = self._unique(lambda: self.space.mutate(parent["arch"], self.rng))
        return None if arch is None else (arch, "child", parent["id"])

    def _observe(self, record, tag):
        if record["value"] is None:
            return
        self._population.append({"id": record["id"], "arch": record["arch"], "value": record["value"]})
        if len(self._population) > self.population_size:
            self._population.pop(0)

    def _extra_state(self):
        return {
            "population_size": self.population_size,
            "sample_size": self.sample_size,
            "population": self._population,
        }

    def _load_extra_state(self, state):
        self.population_size, self.sample_size = state["population_size"], state["sample_size"]
        self._population = [dict(m) for m in state["population"]]
