"""A toy search space: a stack of dense layers of one width, with an activation per layer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kubenas.arch import Arch
from kubenas.spaces.base import Decision, SearchSpace


class ToySpace(SearchSpace):
    name = "toy"

    def __init__(self, max_layers: int = 3, widths: Sequence[int] = (8, 16)):
        self.max_layers, self.widths = max_layers, list(widths)
        decisions = [Decision("layers", tuple(range(1, max_layers + 1))), Decision("width", tuple(widths))]
        for i in range(1, max_layers + 1):
            decisions.append(
                Decision(f"act_{i}", ("relu", "tanh"), parent="layers", when=tuple(range(i, max_layers + 1)))
            )
        self._init_decisions(decisions)

    def options(self) -> dict[str, Any]:
        return {"max_layers": self.max_layers, "widths": self.widths}

    def build(self, arch: Arch, input_shape: Sequence[int], num_classes: int, *, width_mult: float = 1.0):
        import math

        import torch.nn as nn

        self.validate(arch)
        if len(input_shape) not in (1, 2, 3):
            raise ValueError(
                f"toy: input_shape must be (features,), (channels, length) or (channels, h, w), got "
                f"{tuple(input_shape)}"
            )
        width, layers = max(1, round(arch["width"] * width_mult)), [nn.Flatten()]
        inputs = math.prod(input_shape)
        for i in range(1, arch["layers"] + 1):
            layers += [nn.Linear(inputs, width), nn.ReLU() if arch[f"act_{i}"] == "relu" else nn.Tanh()]
            inputs = width
        return nn.Sequential(*layers, nn.Linear(inputs, num_classes))
