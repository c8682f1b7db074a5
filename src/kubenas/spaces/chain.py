"""``chain``: chain-structured networks, one layer after another.

Decisions: ``depth``, then per layer i (1-based) ``op_i``, and, where the op uses them, ``kernel_i``,
``width_i``, ``act_i`` and ``bn_i``. Layers beyond the depth have no decisions at all, and a pooling layer has
no width, so equal networks have one architecture dict.

Operations: ``conv`` (same padding), ``sepconv`` (depthwise + pointwise), ``maxpool`` / ``avgpool`` (stride 2),
and ``dense`` (global average pooling, then a fully connected layer). After a dense layer, or on vector input,
the tensor has spatial size 1; convolutions there are exactly dense layers and pooling is the identity, so a
vector input builds an MLP and parameter counts stay honest.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kubenas.arch import Arch
from kubenas.core import is_int
from kubenas.spaces import vocabulary as V
from kubenas.spaces.base import Decision, Panel, SearchSpace

CHAIN_OPS = ("conv", "sepconv", "maxpool", "avgpool", "dense")
_WITH_KERNEL = ("conv", "sepconv", "maxpool", "avgpool")
_WITH_WIDTH = ("conv", "sepconv", "dense")
ACTIVATIONS = {"relu": "ReLU", "gelu": "GELU", "silu": "SiLU", "tanh": "Tanh", "elu": "ELU"}  # torch.nn class names


class ChainSpace(SearchSpace):
    """Chain-structured networks of ``min_depth`` to ``max_depth`` layers."""

    name = "chain"

    def __init__(
        self,
        min_depth: int = 1,
        max_depth: int = 5,
        ops: Sequence[str] = CHAIN_OPS,
        kernels: Sequence[int] = (3, 5, 7),
        widths: Sequence[int] = (16, 32, 64),
        activations: Sequence[str] = ("relu", "gelu", "tanh"),
        batch_norm: Sequence[bool] = (False, True),
    ):
        if not (isinstance(min_depth, int) and isinstance(max_depth, int) and 1 <= min_depth <= max_depth):
            raise ValueError(
                f"chain: need integers 1 <= min_depth <= max_depth, got min_depth={min_depth}, max_depth={max_depth}"
            )
        self.min_depth, self.max_depth = min_depth, max_depth
        self.ops = V.check_ops("chain", ops, CHAIN_OPS)
        self.kernels = _positive_ints("kernels", kernels, odd=True)
        self.widths = _positive_ints("widths", widths)
        self.activations = V.check_ops("chain activations", activations, list(ACTIVATIONS))
        self.batch_norm = [bool(b) for b in batch_norm]
        if not self.batch_norm or len(set(self.batch_norm)) != len(self.batch_norm):
            raise ValueError(f"chain: batch_norm must list False and/or True once each, got {list(batch_norm)}")

        depths = tuple(range(min_depth, max_depth + 1))
        kernel_ops = tuple(o for o in self.ops if o in _WITH_KERNEL)
        width_ops = tuple(o for o in self.ops if o in _WITH_WIDTH)
        decisions = [Decision("depth", depths)]
        for i in range(1, max_depth + 1):
            decisions.append(Decision(f"op_{i}", tuple(self.ops), "depth", tuple(d for d in depths if d >= i)))
            if kernel_ops:
                decisions.append(Decision(f"kernel_{i}", tuple(self.kernels), f"op_{i}", kernel_ops))
            if width_ops:
                decisions.append(Decision(f"width_{i}", tuple(self.widths), f"op_{i}", width_ops))
                decisions.append(Decision(f"act_{i}", tuple(self.activations), f"op_{i}", width_ops))
                decisions.append(Decision(f"bn_{i}", tuple(self.batch_norm), f"op_{i}", width_ops))
        self._init_decisions(decisions)

    def options(self) -> dict[str, Any]:
        return {
            "min_depth": self.min_depth,
            "max_depth": self.max_depth,
            "ops": list(self.ops),
            "kernels": list(self.kernels),
            "widths": list(self.widths),
            "activations": list(self.activations),
            "batch_norm": list(self.batch_norm),
        }

    def genotype(self, arch: Arch) -> str:
        self.validate(arch)
        parts = []
        for i in range(1, arch["depth"] + 1):
            op = arch[f"op_{i}"]
            text = op + (str(arch[f"kernel_{i}"]) if f"kernel_{i}" in arch else "")
            if f"width_{i}" in arch:
                text += f"-{arch[f'width_{i}']}-{arch[f'act_{i}']}" + ("-bn" if arch[f"bn_{i}"] else "")
            parts.append(text)
        return " > ".join(parts)

    def diagram(self, arch: Arch) -> list[Panel]:
        """The layers in order."""
        layers = [part.strip() for part in self.genotype(arch).split(">") if part.strip()]
        labels = ["input"] + [_wrap(layer) for layer in layers] + ["classifier"]
        return [Panel.chain(f"chain of {len(layers)} layer(s)", labels)]

    def build(self, arch: Arch, input_shape: Sequence[int], num_classes: int, *, width_mult: float = 1.0):
        from torch import nn

        self.validate(arch)
        modules, _ = self.plan(arch, input_shape, num_classes, width_mult)
        return nn.Sequential(*modules)

    def plan(
        self, arch: Arch, input_shape: Sequence[int], num_classes: int, width_mult: float = 1.0
    ) -> tuple[list, list[dict[str, Any]]]:
        """The network's modules in order, and one record per layer with weights (and one for the classifier):
        its layer number, op, the ``nn.Sequential`` indices of its modules (``dw`` for a separable conv's
        depthwise part, ``conv``, ``bn``), channels in and out, and whether its output is non-negative. Network
        morphisms (:mod:`kubenas.spaces.morphisms`) map weights between architectures through these records."""
        from torch import nn

        from kubenas.spaces import ops as O

        dim = O.spatial_dims(input_shape, "chain", allow_vector=True)
        channels = int(input_shape[0])
        spatial = [int(s) for s in input_shape[1:]] or [1]
        dim = max(dim, 1)  # vectors run as (N, F, 1): a length-1 signal
        layers: list[nn.Module] = [] if len(input_shape) > 1 else [nn.Unflatten(1, (channels, 1))]
        records: list[dict[str, Any]] = []
        nonneg = False  # the raw input can be negative
        for i in range(1, arch["depth"] + 1):
            op = arch[f"op_{i}"]
            flat = all(s == 1 for s in spatial)
            if op in ("maxpool", "avgpool"):
                if not flat:
                    k = arch[f"kernel_{i}"]
                    layers.append(O.maxpool(dim, k, 2) if op == "maxpool" else O.avgpool(dim, k, 2))
                    spatial = [(s + 1) // 2 for s in spatial]
                continue  # pooling keeps the sign of its input
            width = O.scaled(arch[f"width_{i}"], width_mult)
            if op == "dense" and not flat:
                layers.append(O.global_pool(dim))
                spatial = [1] * len(spatial)
                flat = True
            k = 1 if (flat or op == "dense") else arch[f"kernel_{i}"]
            rec: dict[str, Any] = {
                "layer": i,
                "op": op,
                "c_in": channels,
                "c_out": width,
                "kernel": k,
                "flat": flat,
                "dw": None,
                "bn": None,
            }
            if op == "sepconv" and k > 1:
                rec["dw"] = len(layers)
                layers.append(O.conv(dim, channels, channels, k, padding=k // 2, groups=channels, bias=False))
                layers.append(O.conv(dim, channels, width, 1))
            else:
                layers.append(O.conv(dim, channels, width, k, padding=k // 2))
            rec["conv"] = len(layers) - 1
            if arch[f"bn_{i}"]:
                rec["bn"] = len(layers)
                layers.append(O.batchnorm(dim, width))
            layers.append(getattr(nn, ACTIVATIONS[arch[f"act_{i}"]])())
            rec["nonneg_in"], nonneg = nonneg, arch[f"act_{i}"] == "relu"
            records.append(rec)
            channels = width
        layers += [O.global_pool(dim), nn.Flatten()]
        records.append(
            {
                "layer": None,
                "op": "head",
                "c_in": channels,
                "c_out": num_classes,
                "linear": len(layers),
                "nonneg_in": nonneg,
            }
        )
        layers.append(nn.Linear(channels, num_classes))
        return layers, records

    def morph(self, arch: Arch, rng) -> Arch | None:
        """A random function-preserving child (Net2Net): a wider layer or an inserted identity layer; None when
        no morphism applies (see :mod:`kubenas.spaces.morphisms`)."""
        from kubenas.spaces.morphisms import random_morphism

        return random_morphism(self, arch, rng)

    def inherit(
        self,
        model,
        arch: Arch,
        parent_arch: Arch,
        parent_state: dict,
        input_shape: Sequence[int],
        num_classes: int,
        width_mult: float = 1.0,
        rng=None,
    ) -> float:
        from kubenas.spaces.morphisms import transfer

        return transfer(self, model, arch, parent_arch, parent_state, input_shape, num_classes, width_mult, rng)


def _positive_ints(field: str, values: Sequence[int], odd: bool = False) -> list[int]:
    values = list(values)
    bad = [v for v in values if not is_int(v) or v < 1 or (odd and v % 2 == 0)]
    if not values or bad or len(set(values)) != len(values):
        kind = "odd positive integers" if odd else "positive integers"
        raise ValueError(f"chain: {field} must be distinct {kind}, got {values}")
    return values


def _wrap(layer: str) -> str:
    """A layer's label on two lines: its operation, then its settings."""
    head, _, rest = layer.partition("-")
    return head + ("\n" + rest.replace("-", " ") if rest else "")
