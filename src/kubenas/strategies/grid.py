"""Grid search over a finite space: every architecture once, in the space's enumeration order or, with
``shuffle``, in a seeded random order; or, with ``archs``, only the architectures listed, in their order (a search
of one given architecture: ``kubenas import katib --result`` writes one). The position in the order is the whole
state."""

from __future__ import annotations

from typing import Any

import numpy as np

from kubenas.arch import arch_id
from kubenas.strategies.base import Strategy

MAX_GRID = 1_000_000


class GridSearch(Strategy):
    name = "grid"

    def __init__(self, space, *, shuffle: bool = False, archs: list[dict] | None = None, **kwargs: Any):
        super().__init__(space, **kwargs)
        self.archs = None if archs is None else _given(space, archs)
        size = space.size() if self.archs is None else len(self.archs)
        if size is None or size > MAX_GRID:
            raise ValueError(
                f"grid: the {space.name!r} space has {'unbounded' if size is None else f'{size:,}'} "
                f"architectures; grid search needs a finite space of at most {MAX_GRID:,}"
            )
        if not isinstance(shuffle, bool):
            raise ValueError(f"grid: shuffle must be true or false, got {shuffle!r}")
        self.shuffle = shuffle
        self._position = 0
        self._order: list | None = None

    def _grid(self) -> list:
        if self._order is None:
            archs = list(self.space.enumerate()) if self.archs is None else list(self.archs)
            if self.shuffle:  # its own generator: the order depends on the seed only, not on the RNG's state
                archs = [archs[i] for i in np.random.default_rng(self.seed).permutation(len(archs))]
            self._order = archs
        return self._order

    def _propose(self):
        grid = self._grid()
        while self._position < len(grid):
            arch = grid[self._position]
            self._position += 1
            if arch_id(arch) not in self._seen:
                return arch, "grid", None
        return None

    def _extra_state(self):
        return {"position": self._position, "shuffle": self.shuffle}

    def _load_extra_state(self, state):
        self._position, self.shuffle = int(state["position"]), bool(state["shuffle"])
        self._order = None


def _given(space, archs) -> list[dict]:
    """The listed architectures, each checked against the space, none twice."""
    if not isinstance(archs, list) or not archs:
        raise ValueError(f"grid: archs must list at least one architecture, got {archs!r}"[:300])
    seen: dict[str, int] = {}
    for i, arch in enumerate(archs):
        try:
            space.validate(arch)
        except ValueError as exc:
            raise ValueError(f"grid: archs[{i}] is not in the {space.name!r} space: {exc}") from None
        first = seen.setdefault(arch_id(arch), i)
        if first != i:
            raise ValueError(f"grid: archs[{i}] is archs[{first}] again")
    return [dict(a) for a in archs]
