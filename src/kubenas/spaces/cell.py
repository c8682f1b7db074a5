"""``cell``: NASNet/DARTS-style normal and reduction cells stacked into a network.

Each cell has two input nodes (0: the output of the cell before the previous one, 1: the previous cell's) and
``blocks`` intermediate nodes 2..blocks+1. Node j picks two distinct earlier nodes ``{cell}_{j}_inputs = [a, b]``
(a < b, so a block has one spelling) and an operation for each, ``{cell}_{j}_op0`` on a and ``{cell}_{j}_op1`` on
b, and sums them. The cell outputs the concatenation of its intermediate nodes. In the reduction cell the ops
reading nodes 0 and 1 have stride 2.

The network is a 3x3 stem (``stem_multiplier`` x ``width`` channels), then three stages of ``cells_per_stage``
normal cells with a reduction cell between stages (width doubles there), then global pooling and a linear
classifier. Genotype: NAS-Bench-201's notation per cell, ``normal=|op~a|op~b|+|...| reduce=|...|``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from kubenas.arch import Arch
from kubenas.core import is_int
from kubenas.spaces import vocabulary as V
from kubenas.spaces.base import Decision, Panel, SearchSpace

DARTS_OPS = (
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
    "none",
)
CELLS = ("normal", "reduce")

Gene = tuple[int, str, int, str]  # (input a, op on a, input b, op on b)


class CellSpace(SearchSpace):
    name = "cell"

    def __init__(
        self,
        ops: Sequence[str] = DARTS_OPS,
        blocks: int = 4,
        width: int = 16,
        cells_per_stage: int = 1,
        stem_multiplier: int = 3,
    ):
        self.ops = V.check_ops("cell", ops)
        for field, value in (
            ("blocks", blocks),
            ("width", width),
            ("cells_per_stage", cells_per_stage),
            ("stem_multiplier", stem_multiplier),
        ):
            if not is_int(value) or value < 1:
                raise ValueError(f"cell: {field} must be a positive integer, got {value!r}")
        self.blocks, self.width, self.cells_per_stage = blocks, width, cells_per_stage
        self.stem_multiplier = stem_multiplier
        decisions = []
        for cell in CELLS:
            for j in self._nodes():
                pairs = tuple([a, b] for b in range(j) for a in range(b))
                decisions += [
                    Decision(f"{cell}_{j}_inputs", pairs),
                    Decision(f"{cell}_{j}_op0", tuple(self.ops)),
                    Decision(f"{cell}_{j}_op1", tuple(self.ops)),
                ]
        self._init_decisions(decisions)
        self._path_ops = [o for o in self.ops if o != V.NONE_OP]

    def options(self) -> dict[str, Any]:
        return {
            "ops": list(self.ops),
            "blocks": self.blocks,
            "width": self.width,
            "cells_per_stage": self.cells_per_stage,
            "stem_multiplier": self.stem_multiplier,
        }

    def _nodes(self) -> range:
        return range(2, self.blocks + 2)

    def genes(self, arch: Arch, cell: str) -> list[Gene]:
        out = []
        for j in self._nodes():
            a, b = arch[f"{cell}_{j}_inputs"]
            out.append((a, arch[f"{cell}_{j}_op0"], b, arch[f"{cell}_{j}_op1"]))
        return out

    def _check(self, arch: Arch) -> str | None:
        for cell in CELLS:
            connected = {0, 1}
            for j, (a, op_a, b, op_b) in zip(self._nodes(), self.genes(arch, cell)):
                if (a in connected and op_a != V.NONE_OP) or (b in connected and op_b != V.NONE_OP):
                    connected.add(j)
            if len(connected) == 2:
                return f"the {cell} cell's output is disconnected from its inputs: no node has a non-'none' path"
        return None

    def size(self) -> int:
        k = len(self.ops)
        per_cell = 1
        cut_off = 1 if V.NONE_OP in self.ops else 0
        for j in self._nodes():
            per_cell *= math.comb(j, 2) * k * k
            # A disconnected cell: every op that reads node 0 or 1 is 'none'; ops reading other nodes are free.
            cut_off *= sum((1 if a < 2 else k) * (1 if b < 2 else k) for b in range(j) for a in range(b))
        return (per_cell - cut_off) ** 2

    def genotype(self, arch: Arch) -> str:
        self.validate(arch)
        return " ".join(
            f"{cell}=" + "+".join(f"|{op_a}~{a}|{op_b}~{b}|" for a, op_a, b, op_b in self.genes(arch, cell))
            for cell in CELLS
        )

    def _path_encoding_size(self) -> int:
        k = len(self._path_ops)
        return len(CELLS) * 2 * sum(k**length for length in range(1, self.blocks + 1))

    def _path_encode(self, arch: Arch) -> np.ndarray:
        # One bit per (cell, source input, sequence of ops) over every path from an input node to an
        # intermediate node; every intermediate node feeds the cell's output.
        k = len(self._path_ops)
        index = {op: n for n, op in enumerate(self._path_ops)}
        per_source = sum(k**length for length in range(1, self.blocks + 1))
        offsets = {length: sum(k**m for m in range(1, length)) for length in range(1, self.blocks + 1)}
        vec = np.zeros(self._path_encoding_size(), dtype=np.float32)
        for c, cell in enumerate(CELLS):
            paths: dict[int, list[tuple[int, list[int]]]] = {0: [(0, [])], 1: [(1, [])]}
            for j, (a, op_a, b, op_b) in zip(self._nodes(), self.genes(arch, cell)):
                paths[j] = [
                    (src, seq + [index[op]])
                    for node, op in ((a, op_a), (b, op_b))
                    if op != V.NONE_OP
                    for src, seq in paths[node]
                ]
                for src, seq in paths[j]:
                    code = 0
                    for n in seq:
                        code = code * k + n
                    vec[(c * 2 + src) * per_source + offsets[len(seq)] + code] = 1.0
        return vec

    def diagram(self, arch: Arch) -> list[Panel]:
        """The normal and the reduction cell: two inputs, the blocks (each sums two operations on earlier nodes) and
        the output that concatenates them."""
        return [self._cell_panel(arch, kind) for kind in ("normal", "reduce")]

    @staticmethod
    def _cell_panel(arch: Arch, kind: str) -> Panel:
        blocks = sorted(int(m.group(1)) for k in arch if (m := re.fullmatch(rf"{kind}_(\d+)_inputs", k)))
        labels = ["c(k-2)", "c(k-1)"] + [f"block {j}" for j in blocks] + ["concat"]
        out = len(labels) - 1
        edges = []
        for j in blocks:
            for slot, source in enumerate(arch[f"{kind}_{j}_inputs"]):
                op = arch[f"{kind}_{j}_op{slot}"]
                if op != "none":
                    edges.append((int(source), j, op, "dashed" if op == "skip_connect" else "solid"))
            edges.append((j, out, "", "dotted"))
        title = "normal cell" if kind == "normal" else "reduction cell (stride 2 on c(k-2), c(k-1))"
        return Panel(title, labels, edges)

    def build(self, arch: Arch, input_shape: Sequence[int], num_classes: int, *, width_mult: float = 1.0):
        from kubenas.spaces.networks import CellNet

        self.validate(arch)
        dim = V.spatial_dims(input_shape, "cell")
        return CellNet(
            dim,
            int(input_shape[0]),
            V.scaled(self.width, width_mult),
            self.cells_per_stage,
            self.genes(arch, "normal"),
            self.genes(arch, "reduce"),
            num_classes,
            self.stem_multiplier,
        )
