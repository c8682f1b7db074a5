"""Search spaces. One module per space, one line per space in ``SPACES``."""

from __future__ import annotations

from typing import Any

from kubenas.registry import create
from kubenas.spaces.base import Decision, InvalidArchitecture, SearchSpace
from kubenas.spaces.cell import CellSpace
from kubenas.spaces.chain import ChainSpace
from kubenas.spaces.choice import ChoiceSpace
from kubenas.spaces.katib_enas import KatibEnasSpace
from kubenas.spaces.multibranch import MultiBranchSpace
from kubenas.spaces.nb201 import NB201Space

SPACES: dict[str, type[SearchSpace]] = {
    "choice": ChoiceSpace,
    "chain": ChainSpace,
    "multibranch": MultiBranchSpace,
    "cell": CellSpace,
    "nb201": NB201Space,
    "katib_enas": KatibEnasSpace,
}


def make_space(name: str, **options: Any) -> SearchSpace:
    """Build a registered space by name, e.g. ``make_space("nb201", width=8)``."""
    return create(SPACES, "search space", name, **options)


def space_from_spec(spec: dict[str, Any]) -> SearchSpace:
    """Inverse of ``SearchSpace.spec()``."""
    return make_space(spec["name"], **spec.get("options", {}))


__all__ = [
    "SPACES",
    "Decision",
    "InvalidArchitecture",
    "SearchSpace",
    "make_space",
    "space_from_spec",
    "ChoiceSpace",
    "ChainSpace",
    "MultiBranchSpace",
    "CellSpace",
    "NB201Space",
    "KatibEnasSpace",
]
