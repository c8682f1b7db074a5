"""The torch networks behind the ``nb201``, ``cell``, ``multibranch`` and ``katib_enas`` spaces (``chain`` is an
``nn.Sequential``).

The space classes describe, sample and validate architectures without torch; their ``build`` imports this
module, so only a process that builds networks pays for torch.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from kubenas.arch import Arch
from kubenas.spaces import ops as O
from kubenas.spaces.vocabulary import NB201_EDGES as EDGES
from kubenas.spaces.vocabulary import NB201_NODES as NODES
from kubenas.spaces.vocabulary import nb201_edge_name as edge_name


def nb201_network(
    arch: Arch, input_shape: Sequence[int], num_classes: int, width: int, cells_per_stage: int, width_mult: float = 1.0
) -> nn.Module:
    """NAS-Bench-201's skeleton: a stem, three stages of cells joined by residual reduction blocks, a classifier."""
    dim = O.spatial_dims(input_shape, "nb201")
    c = O.scaled(width, width_mult)
    layers: list[nn.Module] = [O.conv(dim, int(input_shape[0]), c, 3, padding=1, bias=False), O.batchnorm(dim, c)]
    for stage in range(3):
        if stage > 0:
            layers.append(O.ResBlock(dim, c, 2 * c))
            c *= 2
        layers += [NB201Cell(dim, c, arch) for _ in range(cells_per_stage)]
    layers += [O.batchnorm(dim, c), nn.ReLU(), O.global_pool(dim), nn.Flatten(), nn.Linear(c, num_classes)]
    return nn.Sequential(*layers)


class NB201Cell(nn.Module):
    """One NAS-Bench-201 cell: a DAG of four nodes, an operation on every edge."""

    def __init__(self, dim: int, c: int, arch: Arch):
        super().__init__()
        # Edges labelled 'none' contribute zeros; leaving them out computes the same sums with less work.
        self.edges = [(j, i) for j, i in EDGES if arch[edge_name(j, i)] != O.NONE_OP]
        self.ops = nn.ModuleDict({edge_name(j, i): O.OPS[arch[edge_name(j, i)]](dim, c, 1) for j, i in self.edges})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes: list[torch.Tensor | None] = [x] + [None] * (NODES - 1)
        for j, i in self.edges:
            if nodes[i] is None:  # a node with no live input is all zeros; its out-edges carry no signal
                continue
            out = self.ops[edge_name(j, i)](nodes[i])
            nodes[j] = out if nodes[j] is None else nodes[j] + out
        return nodes[-1]


class DartsCell(nn.Module):
    """A DARTS normal or reduction cell: each node sums two operations on two earlier nodes."""

    def __init__(
        self,
        dim: int,
        genes: list[tuple[int, str, int, str]],
        c_pp: int,
        c_p: int,
        c: int,
        reduction: bool,
        reduction_prev: bool,
    ):
        super().__init__()
        self.pre0 = O.FactorizedReduce(dim, c_pp, c) if reduction_prev else O.ReLUConvBN(dim, c_pp, c, 1)
        self.pre1 = O.ReLUConvBN(dim, c_p, c, 1)
        self.inputs = [(a, b) for a, _, b, _ in genes]
        self.ops = nn.ModuleList()
        for a, op_a, b, op_b in genes:
            for node, op in ((a, op_a), (b, op_b)):
                self.ops.append(O.OPS[op](dim, c, 2 if reduction and node < 2 else 1))

    def forward(self, s0: torch.Tensor, s1: torch.Tensor) -> torch.Tensor:
        states = [self.pre0(s0), self.pre1(s1)]
        for n, (a, b) in enumerate(self.inputs):
            states.append(self.ops[2 * n](states[a]) + self.ops[2 * n + 1](states[b]))
        return torch.cat(states[2:], dim=1)


class CellNet(nn.Module):
    """The ``cell`` space's network: a stem, cells in three stages (a reduction cell opens stages 2 and 3), a
    classifier."""

    def __init__(self, dim, c_in, c, cells_per_stage, normal, reduce, num_classes, stem_multiplier=3):
        super().__init__()
        blocks = len(normal)
        stem_c = stem_multiplier * c
        self.stem = nn.Sequential(O.conv(dim, c_in, stem_c, 3, padding=1, bias=False), O.batchnorm(dim, stem_c))
        c_pp, c_p, reduction_prev = stem_c, stem_c, False
        self.cells = nn.ModuleList()
        for stage in range(3):
            kinds = ([True] if stage > 0 else []) + [False] * cells_per_stage
            for reduction in kinds:
                if reduction:
                    c *= 2
                self.cells.append(
                    DartsCell(dim, reduce if reduction else normal, c_pp, c_p, c, reduction, reduction_prev)
                )
                c_pp, c_p, reduction_prev = c_p, blocks * c, reduction
        self.head = nn.Sequential(O.global_pool(dim), nn.Flatten(), nn.Linear(c_p, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1)
        return self.head(s1)


class MultiBranchNet(nn.Module):
    """The ``multibranch`` space's network: a chain of operations, each with skip inputs from earlier layers."""

    def __init__(self, dim, c_in, width, ops, inputs, reduce_after, concat, num_classes):
        super().__init__()
        self.dim, self.inputs, self.reduce_after, self.concat = dim, inputs, set(reduce_after), concat
        self.stem = nn.Sequential(O.conv(dim, c_in, width, 3, padding=1, bias=False), O.batchnorm(dim, width))
        self.ops = nn.ModuleList(O.OPS[op](dim, width, 1) for op in ops)
        self.mix = nn.ModuleList(
            O.conv(dim, width * (1 + len(srcs)), width, 1, bias=False) if concat and srcs else nn.Identity()
            for srcs in inputs
        )
        self.reduce = O.avgpool(dim, 3, 2)
        self.head = nn.Sequential(nn.ReLU(), O.global_pool(dim), nn.Flatten(), nn.Linear(width, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [self.stem(x)]
        for i, (op, mix, srcs) in enumerate(zip(self.ops, self.mix, self.inputs), start=1):
            h = op(outs[-1])
            skips = [resize(outs[j], h.shape[2:]) for j in srcs]
            if skips:
                h = mix(torch.cat([h, *skips], dim=1)) if self.concat else h + sum(skips)
            if i in self.reduce_after:
                h = self.reduce(h)
            outs.append(h)
        return self.head(outs[-1])


def resize(x: torch.Tensor, size: torch.Size) -> torch.Tensor:
    if x.shape[2:] == size:
        return x
    pool = F.adaptive_avg_pool1d if x.dim() == 3 else F.adaptive_avg_pool2d
    return pool(x, tuple(size))


class KatibEnasNet(nn.Module):
    """The ``katib_enas`` space's network (:mod:`kubenas.spaces.katib_enas` describes it). Channel counts and
    spatial sizes are worked out from ``shape`` (channels first, without the batch) when it is built."""

    def __init__(self, shape, dim, ops, inputs, num_classes):
        super().__init__()
        self.inputs = inputs
        shapes = [tuple(shape)]  # (channels, *spatial) of the input and of each layer's output
        self.ops = nn.ModuleList()
        self.pad_to = []
        for op, srcs in zip(ops, inputs):
            feeds = [shapes[-1]] + [shapes[j] for j in srcs]
            size = tuple(max(s[k] for s in feeds) for k in range(1, dim + 1))
            c_in = sum(s[0] for s in feeds)
            module, out = _katib_op(dim, op, c_in, size)
            self.ops.append(module)
            self.pad_to.append(size)
            shapes.append(out)
        self.head = nn.Sequential(
            O.global_pool(dim), nn.Flatten(), nn.Dropout(0.4), nn.Linear(shapes[-1][0], num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [x]
        for op, srcs, size in zip(self.ops, self.inputs, self.pad_to):
            feeds = [_pad_to(h, size) for h in [outs[-1], *(outs[j] for j in srcs)]]
            outs.append(op(feeds[0] if len(feeds) == 1 else torch.cat(feeds, dim=1)))
        return self.head(outs[-1])


def _pad_to(x: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    """Zero-pad the spatial dims to ``size``, half on each side (the odd one after)."""
    if tuple(x.shape[2:]) == size:
        return x
    pad: list[int] = []
    for have, want in reversed(list(zip(x.shape[2:], size))):  # F.pad starts at the last dim
        pad += [(want - have) // 2, want - have - (want - have) // 2]
    return F.pad(x, pad)


def _katib_op(dim: int, op: dict, c_in: int, size: tuple[int, ...]) -> tuple[nn.Module, tuple[int, ...]]:
    """One expanded operation of the ``katib_enas`` space on ``c_in`` channels of spatial ``size``: the module and
    its output's (channels, *spatial)."""
    kind = op["type"]
    if kind == "reduction":
        pool, stride = op["pool_size"], op["stride"] or op["pool_size"]
        if min(size) < pool:  # too small to pool: passes through
            return nn.Identity(), (c_in, *size)
        cls = {1: {"max": nn.MaxPool1d, "avg": nn.AvgPool1d}, 2: {"max": nn.MaxPool2d, "avg": nn.AvgPool2d}}[dim]
        module = cls[op["reduction_type"].split("_")[0]](pool, stride=stride)
        return module, (c_in, *((s - pool) // stride + 1 for s in size))
    k, stride = op["filter_size"], op["stride"]
    out_size = tuple(-(-s // stride) for s in size)  # same padding: ceil(s / stride)
    if kind == "convolution":
        layers = [O.conv(dim, c_in, op["num_filter"], k, stride=stride, padding=k // 2, bias=False)]
        c_out = op["num_filter"]
    else:
        c_mid = c_in * op["depth_multiplier"]
        layers = [O.conv(dim, c_in, c_mid, k, stride=stride, padding=k // 2, groups=c_in, bias=False)]
        c_out = c_mid
        if kind == "separable_convolution":
            layers.append(O.conv(dim, c_mid, op["num_filter"], 1, bias=False))
            c_out = op["num_filter"]
    return nn.Sequential(nn.ReLU(), *layers, O.batchnorm(dim, c_out)), (c_out, *out_size)
