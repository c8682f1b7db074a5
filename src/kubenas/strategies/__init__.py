"""Search strategies: one module per algorithm, one line per strategy in ``STRATEGIES``."""

from __future__ import annotations

from typing import Any

from kubenas.registry import create
from kubenas.spaces.base import SearchSpace
from kubenas.strategies.bananas import Bananas
from kubenas.strategies.base import Candidate, Result, Strategy
from kubenas.strategies.bayes_quadratic import BayesQuadratic
from kubenas.strategies.grid import GridSearch
from kubenas.strategies.hyperband import Hyperband, SuccessiveHalving
from kubenas.strategies.local_search import LocalSearch
from kubenas.strategies.network_morphism import NetworkMorphism
from kubenas.strategies.nsga2 import NSGA2
from kubenas.strategies.pareto_evolution import ParetoEvolution
from kubenas.strategies.random_search import RandomSearch
from kubenas.strategies.regularized_evolution import RegularizedEvolution
from kubenas.strategies.reinforce import Reinforce

STRATEGIES: dict[str, type[Strategy]] = {
    "random": RandomSearch,
    "regularized_evolution": RegularizedEvolution,
    "local_search": LocalSearch,
    "network_morphism": NetworkMorphism,
    "grid": GridSearch,
    "reinforce": Reinforce,
    "bananas": Bananas,
    "bayes_quadratic": BayesQuadratic,
    "nsga2": NSGA2,
    "pareto_evolution": ParetoEvolution,
    "successive_halving": SuccessiveHalving,
    "hyperband": Hyperband,
}


def make_strategy(name: str, space: SearchSpace, **options: Any) -> Strategy:
    """Build a registered strategy by name, e.g. ``make_strategy("local_search", space, seed=1)``."""
    return create(STRATEGIES, "strategy", name, space, **options)


__all__ = [
    "STRATEGIES",
    "Candidate",
    "Result",
    "Strategy",
    "make_strategy",
    "RandomSearch",
    "RegularizedEvolution",
    "LocalSearch",
    "GridSearch",
    "Reinforce",
    "Bananas",
    "BayesQuadratic",
    "NSGA2",
    "ParetoEvolution",
    "SuccessiveHalving",
    "Hyperband",
    "NetworkMorphism",
]
