"""Supernets: one network that contains every architecture of a cell space, with weights shared between them.

Every edge of the cell holds one module per candidate operation. A forward pass either follows one
architecture (``arch=``: each edge runs its chosen operation, as the stand-alone network would) or mixes
every operation of every edge with weights (``weights=``: DARTS' continuous relaxation). The macro skeleton,
the stem, the reduction blocks and the head are the space's own, so a path through the supernet computes
the same kind of network as ``space.build`` and its ranking transfers.

- ``nb201``: an edge per pair of nodes (6), each with every operation of the space.
- ``cell``: in each of the normal and reduction cells, an edge from every earlier node to every intermediate
  node; an architecture picks two of them per node. An operation module on an edge is shared by every
  architecture that uses that operation on that edge, whichever of the node's two slots it fills.

``aux_skip`` adds ``aux_skip * input`` to every stride-1 edge in the mixed forward: DARTS-'s auxiliary skip
connection (Chu et al., 2021), which takes away the advantage that drives DARTS towards parameter-free
operations.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from kubenas.arch import Arch
from kubenas.spaces import ops as O
from kubenas.spaces.base import SearchSpace
from kubenas.spaces.cell import CELLS, CellSpace
from kubenas.spaces.nb201 import EDGES, NODES, NB201Space, edge_name

# The weights of a mixed forward: per edge key, one weight per operation (in the space's op order).
Weights = dict[str, torch.Tensor]


class SuperNet(nn.Module):
    """Base class. ``edges`` maps each edge key to its operation names, in the space's op order."""

    edges: dict[str, list[str]]

    def forward(
        self, x: torch.Tensor, arch: Arch | None = None, weights: Weights | None = None, aux_skip: float = 0.0
    ) -> torch.Tensor:
        raise NotImplementedError


def check_space(space: SearchSpace) -> None:
    """Raise unless ``space`` has a supernet: only the cell spaces (``nb201`` and ``cell``) do."""
    if not isinstance(space, (NB201Space, CellSpace)):
        raise ValueError(f"one-shot search needs a cell space with a supernet (nb201 or cell), not {space.name!r}")


def supernet(space: SearchSpace, input_shape: Sequence[int], num_classes: int, width_mult: float = 1.0) -> SuperNet:
    """The supernet of ``space``."""
    check_space(space)
    cls = NB201SuperNet if isinstance(space, NB201Space) else CellSuperNet
    return cls(space, input_shape, num_classes, width_mult)


def _mixed(
    ops: nn.ModuleDict, names: list[str], x: torch.Tensor, w: torch.Tensor, aux_skip: float, stride: int
) -> torch.Tensor:
    out = sum(w[k] * ops[name](x) for k, name in enumerate(names) if name != O.NONE_OP)
    if aux_skip and stride == 1:
        out = out + aux_skip * x
    return out if isinstance(out, torch.Tensor) else x.mul(0.0)


# ---------------------------------------------------------------------------------------------------- nb201
class _NB201SuperCell(nn.Module):
    def __init__(self, dim: int, c: int, ops: list[str]):
        super().__init__()
        self.names = list(ops)
        self.edges = nn.ModuleDict(
            {edge_name(j, i): nn.ModuleDict({op: O.OPS[op](dim, c, 1) for op in ops}) for j, i in EDGES}
        )

    def forward(self, x, arch=None, weights=None, aux_skip=0.0):
        nodes: list[torch.Tensor | None] = [x] + [None] * (NODES - 1)
        for j, i in EDGES:
            key = edge_name(j, i)
            if nodes[i] is None:
                continue
            if arch is not None:
                op = arch[key]
                if op == O.NONE_OP:
                    continue
                out = self.edges[key][op](nodes[i])
            else:
                out = _mixed(self.edges[key], self.names, nodes[i], weights[key], aux_skip, 1)
            nodes[j] = out if nodes[j] is None else nodes[j] + out
        return nodes[-1] if nodes[-1] is not None else x.mul(0.0)


class NB201SuperNet(SuperNet):
    def __init__(self, space: NB201Space, input_shape: Sequence[int], num_classes: int, width_mult: float = 1.0):
        super().__init__()
        dim = O.spatial_dims(input_shape, "nb201")
        c = O.scaled(space.width, width_mult)
        self.edges = {edge_name(j, i): list(space.ops) for j, i in EDGES}
        layers: list[nn.Module] = [O.conv(dim, int(input_shape[0]), c, 3, padding=1, bias=False), O.batchnorm(dim, c)]
        for stage in range(3):
            if stage > 0:
                layers.append(O.ResBlock(dim, c, 2 * c))
                c *= 2
            layers += [_NB201SuperCell(dim, c, list(space.ops)) for _ in range(space.cells_per_stage)]
        layers += [O.batchnorm(dim, c), nn.ReLU(), O.global_pool(dim), nn.Flatten(), nn.Linear(c, num_classes)]
        self.layers = nn.ModuleList(layers)

    def forward(self, x, arch=None, weights=None, aux_skip=0.0):
        for layer in self.layers:
            x = layer(x, arch, weights, aux_skip) if isinstance(layer, _NB201SuperCell) else layer(x)
        return x


# ---------------------------------------------------------------------------------------------------- cell
def cell_edge(cell: str, j: int, i: int) -> str:
    return f"{cell}_{j}_{i}"


class _SuperCell(nn.Module):
    def __init__(self, dim, kind, ops, blocks, c_pp, c_p, c, reduction, reduction_prev):
        super().__init__()
        self.kind, self.names, self.blocks, self.reduction = kind, list(ops), blocks, reduction
        self.pre0 = O.FactorizedReduce(dim, c_pp, c) if reduction_prev else O.ReLUConvBN(dim, c_pp, c, 1)
        self.pre1 = O.ReLUConvBN(dim, c_p, c, 1)
        self.edges = nn.ModuleDict()
        for j in range(2, blocks + 2):
            for i in range(j):
                stride = 2 if reduction and i < 2 else 1
                self.edges[f"{j}_{i}"] = nn.ModuleDict({op: O.OPS[op](dim, c, stride) for op in ops})

    def forward(self, s0, s1, arch=None, weights=None, aux_skip=0.0):
        states = [self.pre0(s0), self.pre1(s1)]
        for j in range(2, self.blocks + 2):
            if arch is not None:
                a, b = arch[f"{self.kind}_{j}_inputs"]
                op_a, op_b = arch[f"{self.kind}_{j}_op0"], arch[f"{self.kind}_{j}_op1"]
                states.append(self.edges[f"{j}_{a}"][op_a](states[a]) + self.edges[f"{j}_{b}"][op_b](states[b]))
            else:
                states.append(
                    sum(
                        _mixed(
                            self.edges[f"{j}_{i}"],
                            self.names,
                            states[i],
                            weights[cell_edge(self.kind, j, i)],
                            aux_skip,
                            2 if self.reduction and i < 2 else 1,
                        )
                        for i in range(j)
                    )
                )
        return torch.cat(states[2:], dim=1)


class CellSuperNet(SuperNet):
    def __init__(self, space: CellSpace, input_shape: Sequence[int], num_classes: int, width_mult: float = 1.0):
        super().__init__()
        dim = O.spatial_dims(input_shape, "cell")
        c = O.scaled(space.width, width_mult)
        blocks = space.blocks
        self.edges = {
            cell_edge(kind, j, i): list(space.ops) for kind in CELLS for j in range(2, blocks + 2) for i in range(j)
        }
        stem_c = space.stem_multiplier * c
        self.stem = nn.Sequential(
            O.conv(dim, int(input_shape[0]), stem_c, 3, padding=1, bias=False), O.batchnorm(dim, stem_c)
        )
        c_pp, c_p, reduction_prev = stem_c, stem_c, False
        self.cells = nn.ModuleList()
        for stage in range(3):
            for reduction in ([True] if stage > 0 else []) + [False] * space.cells_per_stage:
                if reduction:
                    c *= 2
                self.cells.append(
                    _SuperCell(
                        dim,
                        "reduce" if reduction else "normal",
                        space.ops,
                        blocks,
                        c_pp,
                        c_p,
                        c,
                        reduction,
                        reduction_prev,
                    )
                )
                c_pp, c_p, reduction_prev = c_p, blocks * c, reduction
        self.head = nn.Sequential(O.global_pool(dim), nn.Flatten(), nn.Linear(c_p, num_classes))

    def forward(self, x, arch=None, weights=None, aux_skip=0.0):
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1, arch, weights, aux_skip)
        return self.head(s1)


# ---------------------------------------------------------------------------------------------------- discretisation
def derive(space: SearchSpace, weights: dict[str, Sequence[float]]) -> Arch:
    """The discrete architecture of mixing weights (DARTS' discretisation): in ``nb201`` the strongest operation
    per edge; in ``cell``, per node, the two inputs whose strongest non-'none' operation is strongest, each with
    that operation. A ``nb201`` cell cut off by 'none' edges gets, on its weakest cut, its strongest other op."""
    if isinstance(space, NB201Space):
        arch = {key: space.ops[int(torch.as_tensor(w).argmax())] for key, w in weights.items()}
        if space.violation(arch) is not None:
            ranked = sorted(weights, key=lambda k: -float(torch.as_tensor(weights[k]).max()))
            for key in reversed(ranked):  # reconnect through the edge whose non-'none' op is strongest
                w = torch.as_tensor(weights[key]).clone()
                w[space.ops.index(O.NONE_OP)] = -float("inf")
                arch[key] = space.ops[int(w.argmax())]
                if space.violation(arch) is None:
                    break
        return space.validate(arch)
    if isinstance(space, CellSpace):
        arch = {}
        allowed = [k for k, op in enumerate(space.ops) if op != O.NONE_OP]
        for kind in CELLS:
            for j in range(2, space.blocks + 2):
                best = []
                for i in range(j):
                    w = torch.as_tensor(weights[cell_edge(kind, j, i)])
                    k = max(allowed, key=lambda n: float(w[n]))
                    best.append((float(w[k]), i, space.ops[k]))
                (_, a, op_a), (_, b, op_b) = sorted(sorted(best, reverse=True)[:2], key=lambda t: t[1])
                arch.update({f"{kind}_{j}_inputs": [a, b], f"{kind}_{j}_op0": op_a, f"{kind}_{j}_op1": op_b})
        return space.validate(space.complete(arch))
    raise ValueError(f"no discretisation for the {space.name!r} space")
