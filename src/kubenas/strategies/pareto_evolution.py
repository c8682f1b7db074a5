"""Pareto-aware regularized evolution: Real et al.'s aging evolution with a multi-objective tournament.

The population is the ``population_size`` most recent successful results (oldest out). A tournament draws
``sample_size`` members, keeps those on the sample's first constrained non-dominated front (feasible before
infeasible, as in NSGA-II), and mutates one of them chosen at random, so that every trade-off on the front gets
children rather than only the most accurate network.
"""

from __future__ import annotations

from typing import Any

from kubenas.core import is_int
from kubenas.strategies.base import Strategy
from kubenas.strategies.pareto import MultiObjective, fronts


class ParetoEvolution(MultiObjective, Strategy):
    name = "pareto_evolution"

    def __init__(
        self,
        space,
        *,
        objectives=None,
        constraints=None,
        population_size: int = 20,
        sample_size: int = 5,
        **kwargs: Any,
    ):
        super().__init__(space, **kwargs)
        self._init_objectives(objectives, constraints)
        if not is_int(population_size) or population_size < 2:
            raise ValueError(f"pareto_evolution: population_size must be an integer >= 2, got {population_size!r}")
        if not is_int(sample_size) or not 2 <= sample_size <= population_size:
            raise ValueError(
                f"pareto_evolution: sample_size must be an integer in 2..population_size "
                f"({population_size}), got {sample_size!r}"
            )
        self.population_size, self.sample_size = population_size, sample_size
        self._population: list[dict[str, Any]] = []  # oldest first

    def _propose(self):
        filling = len(self._population) + self._pending_tags().count("init") < self.population_size
        if filling or len(self._population) < 2:
            arch = self._unique(lambda: self.space.sample(self.rng))
            return None if arch is None else (arch, "init", None)
        size = min(self.sample_size, len(self._population))
        sample = [self._population[int(i)] for i in self.rng.choice(len(self._population), size=size, replace=False)]
        front = fronts(sample)[0]
        parent = sample[front[int(self.rng.integers(len(front)))]]
        arch = self._unique(lambda: self.space.mutate(parent["arch"], self.rng))
        return None if arch is None else (arch, "child", parent["id"])

    def _observe(self, record, tag):
        if record.get("objectives") is None:
            return
        self._population.append({k: record[k] for k in ("id", "arch", "value", "objectives", "violation")})
        if len(self._population) > self.population_size:
            self._population.pop(0)

    def _extra_state(self):
        return {
            **self._objective_state(),
            "population_size": self.population_size,
            "sample_size": self.sample_size,
            "population": self._population,
        }

    def _load_extra_state(self, state):
        self._load_objective_state(state)
        self.population_size, self.sample_size = state["population_size"], state["sample_size"]
        self._population = [dict(m) for m in state["population"]]
