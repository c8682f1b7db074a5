"""``nb201``: the NAS-Bench-201 cell, a 4-node DAG with an operation on each of its 6 edges.

Node j sums ``op(edge_j_i)(node_i)`` over i < j; node 0 is the input and node 3 the output. The genotype is
NAS-Bench-201's notation ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``. The macro skeleton is fixed: a 3x3 stem, then
three stages of ``cells_per_stage`` cells at width C, 2C, 4C with a residual reduction block between stages,
then global pooling and a linear classifier.

Cells whose output is cut off from their input by ``none`` edges are not in the space: their network outputs
a constant. With the default five operations that leaves 15,284 of the 5^6 = 15,625 raw edge labellings;
``size()`` counts only the connected ones.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from kubenas.arch import Arch
from kubenas.spaces import vocabulary as V
from kubenas.spaces.base import Decision, Panel, SearchSpace

NB201_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
NODES, EDGES, edge_name = V.NB201_NODES, V.NB201_EDGES, V.nb201_edge_name
# Every input-to-output path, as a list of edges; used by the path encoding.
PATHS = [[(1, 0), (2, 1), (3, 2)], [(1, 0), (3, 1)], [(2, 0), (3, 2)], [(3, 0)]]


class NB201Space(SearchSpace):
    name = "nb201"

    def __init__(self, ops: Sequence[str] = NB201_OPS, width: int = 16, cells_per_stage: int = 1):
        self.ops = V.check_ops("nb201", ops)
        if not isinstance(width, int) or width < 1:
            raise ValueError(f"nb201: width must be a positive integer, got {width!r}")
        if not isinstance(cells_per_stage, int) or cells_per_stage < 1:
            raise ValueError(f"nb201: cells_per_stage must be a positive integer, got {cells_per_stage!r}")
        self.width, self.cells_per_stage = width, cells_per_stage
        self._init_decisions([Decision(edge_name(j, i), tuple(self.ops)) for j, i in EDGES])
        self._path_ops = [o for o in self.ops if o != V.NONE_OP]
        self._size: int | None = None

    def options(self) -> dict[str, Any]:
        return {"ops": list(self.ops), "width": self.width, "cells_per_stage": self.cells_per_stage}

    def _check(self, arch: Arch) -> str | None:
        reached = {0}
        for j, i in EDGES:  # EDGES is in topological order
            if i in reached and arch[edge_name(j, i)] != V.NONE_OP:
                reached.add(j)
        if NODES - 1 not in reached:
            return "the cell's output (node 3) is disconnected from its input (node 0): every path has a 'none' edge"
        return None

    def size(self) -> int:
        if self._size is None:
            raw = itertools.product(self.ops, repeat=len(EDGES))
            self._size = sum(1 for labels in raw if self._check(dict(zip(self._names(), labels))) is None)
        return self._size

    def _names(self) -> list[str]:
        return [edge_name(j, i) for j, i in EDGES]

    def genotype(self, arch: Arch) -> str:
        self.validate(arch)
        nodes = ["|" + "|".join(f"{arch[edge_name(j, i)]}~{i}" for i in range(j)) + "|" for j in range(1, NODES)]
        return "+".join(nodes)

    @classmethod
    def from_genotype(cls, genotype: str) -> Arch:
        """Parse ``|op~0|+|op~0|op~1|+|...|`` back into an architecture dict."""
        arch = {}
        for j, node in enumerate(genotype.split("+"), start=1):
            for item in filter(None, node.strip().strip("|").split("|")):
                op, _, frm = item.rpartition("~")
                arch[edge_name(j, int(frm))] = op
        return arch

    def _path_encoding_size(self) -> int:
        k = len(self._path_ops)
        return sum(k**length for length in (1, 2, 3))

    def _path_encode(self, arch: Arch) -> np.ndarray:
        # One bit per possible sequence of operations along an input-to-output path (BANANAS).
        k = len(self._path_ops)
        index = {op: n for n, op in enumerate(self._path_ops)}
        offsets = {1: 0, 2: k, 3: k + k**2}
        vec = np.zeros(self._path_encoding_size(), dtype=np.float32)
        for path in PATHS:
            labels = [arch[edge_name(j, i)] for j, i in path]
            if V.NONE_OP in labels:
                continue
            code = 0
            for op in labels:
                code = code * k + index[op]
            vec[offsets[len(path)] + code] = 1.0
        return vec

    def diagram(self, arch: Arch) -> list[Panel]:
        """The cell's nodes, an edge per operation (``none`` edges carry nothing and are left out)."""
        edges = []
        for key, op in arch.items():
            m = re.fullmatch(r"edge_(\d+)_(\d+)", key)
            if m and op != "none":
                edges.append((int(m.group(2)), int(m.group(1)), op, "dashed" if op == "skip_connect" else "solid"))
        nodes = 1 + max((int(m.group(1)) for k in arch if (m := re.fullmatch(r"edge_(\d+)_\d+", k))), default=0)
        labels = ["input"] + [f"node {i}" for i in range(1, nodes - 1)] + ["output"]
        return [Panel("cell (repeated in every stage)", labels, sorted(edges))]

    def build(self, arch: Arch, input_shape: Sequence[int], num_classes: int, *, width_mult: float = 1.0):
        from kubenas.spaces.networks import nb201_network

        self.validate(arch)
        return nb201_network(arch, input_shape, num_classes, self.width, self.cells_per_stage, width_mult)
