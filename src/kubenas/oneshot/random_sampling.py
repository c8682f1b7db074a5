"""Random-sampling one-shot: weight-sharing random search (Li and Talwalkar, 2019) and single-path one-shot
training (Guo et al., 2020).

Each training step samples one architecture uniformly from the space and trains its path through the
supernet, so every path gets trained about equally often and no path is favoured. With ``fair: true`` a step
instead trains as many paths as there are operations, chosen so that every edge runs every operation exactly
once, and updates the weights on their summed gradients (FairNAS' strict fairness, Chu et al., 2021): no
operation falls behind by chance, at that many times the cost per step.

After training, ``propose`` draws architectures uniformly (distinct ones; all of a finite space when ``n``
covers it) and :func:`rank` orders them by their validation accuracy with the shared weights.
"""

from __future__ import annotations

from typing import Any

from kubenas.oneshot.base import OneShot, cross_entropy
from kubenas.spaces.nb201 import NB201Space


class RandomSampling(OneShot):
    name = "random_sampling"

    def __init__(self, space, *, fair: bool = False, **kwargs: Any):
        super().__init__(space, **kwargs)
        if not isinstance(fair, bool):
            raise ValueError(f"random_sampling: fair must be true or false, got {fair!r}")
        if fair and not isinstance(space, NB201Space):
            raise ValueError(
                "random_sampling: fair sampling needs every edge on every path, as in nb201; a "
                f"{space.name!r} architecture uses two inputs per node: set fair to false"
            )
        self.fair = fair

    def _fair_paths(self) -> list[dict[str, Any]]:
        """One architecture per operation: each edge takes every operation once, in a random order."""
        edges = self.net.edges
        orders = {key: self.rng.permutation(len(ops)) for key, ops in edges.items()}
        k = max(len(ops) for ops in edges.values())
        paths = []
        for n in range(k):
            paths.append({key: edges[key][int(orders[key][n % len(orders[key])])] for key in edges})
        return paths

    def _train_batch(self, x, y, val, progress):
        if not self.fair:
            return self._step(cross_entropy(self.net, x, y, arch=self.space.sample(self.rng)))
        paths = [a for a in self._fair_paths() if self.space.violation(a) is None]
        loss = sum(cross_entropy(self.net, x, y, arch=a) for a in paths)  # summed gradients, as in FairNAS
        return self._step(loss) / len(paths)

    def propose(self, n):
        size = self.space.size()
        if size is not None and n >= size:
            return list(self.space.enumerate())
        return self._unique((self.space.sample(self.rng) for _ in range(50 * n)), n)

    def _extra_state(self):
        return {"fair": self.fair}

    def _load_extra_state(self, state):
        self.fair = state["fair"]
