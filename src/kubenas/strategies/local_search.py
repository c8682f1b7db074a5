"""Local search (hill climbing), as studied by White et al. 2020.

Start from the best of ``n_init`` random samples, then evaluate the neighbours of the current architecture in
random order, moving to the first one that improves on it. When every neighbour has been evaluated and none
improves, the current architecture is a local optimum: record it and restart from new random samples.

Batch asks hand out several neighbours at once. When the neighbourhood is handed out but not yet told, extra
slots are filled with random samples, which become the starting pool of the next restart.
"""

from __future__ import annotations

from typing import Any

from kubenas.arch import arch_id
from kubenas.strategies.base import Strategy


class LocalSearch(Strategy):
    name = "local_search"

    def __init__(self, space, *, n_init: int = 10, **kwargs: Any):
        super().__init__(space, **kwargs)
        if not isinstance(n_init, int) or n_init < 1:
            raise ValueError(f"local_search: n_init must be a positive integer, got {n_init!r}")
        self.n_init = n_init
        self._current: dict[str, Any] | None = None
        self._queue: list[dict] = []  # neighbours of the current architecture not yet asked
        self._pool: list[dict[str, Any]] = []  # random samples told since the last climb began
        self._optima: list[dict[str, Any]] = []

    def _propose(self):
        self._advance()
        while self._current is not None and self._queue:
            arch = self._queue.pop()
            if arch_id(arch) not in self._seen:
                return arch, "neighbor", self._current["id"]
        arch = self._unique(lambda: self.space.sample(self.rng))
        return None if arch is None else (arch, "init", None)

    def _observe(self, record, tag):
        if tag == "init":
            self._pool.append(record)
        elif (
            record["value"] is not None
            and self._current is not None
            and self.utility(record["value"]) > self.utility(self._current["value"])
        ):
            self._climb_to(record)
        self._advance()

    def _climb_to(self, record: dict[str, Any]) -> None:
        self._current = {"id": record["id"], "arch": record["arch"], "value": record["value"]}
        neighbors = [a for a in self.space.neighbors(record["arch"]) if arch_id(a) not in self._seen]
        order = self.rng.permutation(len(neighbors))
        self._queue = [neighbors[int(i)] for i in order]

    def _advance(self) -> None:
        """Move between phases: start a climb from a full pool; restart at a local optimum."""
        if self._current is not None and not self._queue and "neighbor" not in self._pending_tags():
            self._optima.append(self._current)
            self._current = None
        if self._current is None and len(self._pool) >= self.n_init:
            ok = [r for r in self._pool if r["value"] is not None]
            if ok:
                self._pool = []
                self._climb_to(max(ok, key=lambda r: self.utility(r["value"])))

    @property
    def local_optima(self) -> list[dict[str, Any]]:
        return list(self._optima)

    def _extra_state(self):
        return {
            "n_init": self.n_init,
            "current": self._current,
            "queue": self._queue,
            "pool": self._pool,
            "optima": self._optima,
        }

    def _load_extra_state(self, state):
        self.n_init = state["n_init"]
        self._current = state["current"]
        self._queue = [dict(a) for a in state["queue"]]
        self._pool = [dict(r) for r in state["pool"]]
        self._optima = [dict(r) for r in state["optima"]]
