"""NSGA-II (Deb et al., 2002) as a steady-state ask/tell strategy, for accuracy against size or latency.

The population is the best ``population_size`` results by constrained non-dominated rank, then crowding
distance (Deb's constrained domination: a feasible result beats an infeasible one, and a smaller violation
beats a larger one). A proposal picks two parents by binary tournaments on (rank, crowding), crosses them over
uniformly (decision by decision; kept only if the space accepts the child) with probability ``crossover`` and
mutates the result. Until the population is full, proposals are random.
"""

from __future__ import annotations

from typing import Any

from kubenas.core import is_int, is_number
from kubenas.strategies.base import Strategy
from kubenas.strategies.pareto import MultiObjective, rank_and_crowding


class NSGA2(MultiObjective, Strategy):
    name = "nsga2"

    def __init__(
        self,
        space,
        *,
        objectives=None,
        constraints=None,
        population_size: int = 20,
        crossover: float = 0.5,
        **kwargs: Any,
    ):
        super().__init__(space, **kwargs)
        self._init_objectives(objectives, constraints)
        if not is_int(population_size) or population_size < 4:
            raise ValueError(f"nsga2: population_size must be an integer >= 4, got {population_size!r}")
        if not is_number(crossover) or not 0 <= crossover <= 1:
            raise ValueError(f"nsga2: crossover must be a probability in [0, 1], got {crossover!r}")
        self.population_size, self.crossover = population_size, float(crossover)
        self._population: list[str] = []  # ids of the surviving history records

    def _members(self) -> list[dict[str, Any]]:
        by_id = {h["id"]: h for h in self._history}
        return [by_id[i] for i in self._population]

    def _tournament(self, members, rank, crowd) -> dict[str, Any]:
        a, b = (int(i) for i in self.rng.choice(len(members), size=2, replace=len(members) < 2))
        better = a if (rank[a], -crowd[a]) < (rank[b], -crowd[b]) else b
        return members[better]

    def _child(self, members, rank, crowd) -> tuple[dict, str]:
        first = self._tournament(members, rank, crowd)
        arch = dict(first["arch"])
        if self.rng.random() < self.crossover:
            second = self._tournament(members, rank, crowd)
            mixed = {k: (second["arch"].get(k, v) if self.rng.random() < 0.5 else v) for k, v in arch.items()}
            mixed = self.space.complete(mixed, self.rng)
            if self.space.violation(mixed) is None:
                arch = mixed
        return self.space.mutate(arch, self.rng), first["id"]

    def _propose(self):
        members = self._members()
        if len(members) + self._pending_tags().count("init") < self.population_size or len(members) < 2:
            arch = self._unique(lambda: self.space.sample(self.rng))
            return None if arch is None else (arch, "init", None)
        rank, crowd = rank_and_crowding(members)
        parent: list[str] = []

        def propose():
            arch, pid = self._child(members, rank, crowd)
            parent[:] = [pid]
            return arch

        arch = self._unique(propose)
        return None if arch is None else (arch, "child", parent[0] if parent else None)

    def _observe(self, record, tag):
        if record.get("objectives") is None:
            return
        pool = self._members() + [record]
        rank, crowd = rank_and_crowding(pool)
        order = sorted(range(len(pool)), key=lambda i: (rank[i], -crowd[i], i))
        self._population = [pool[i]["id"] for i in sorted(order[: self.population_size])]

    def _extra_state(self):
        return {
            **self._objective_state(),
            "population_size": self.population_size,
            "crossover": self.crossover,
            "population": self._population,
        }

    def _load_extra_state(self, state):
        self._load_objective_state(state)
        self.population_size, self.crossover = state["population_size"], state["crossover"]
        self._population = list(state["population"])
