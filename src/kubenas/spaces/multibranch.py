"""``multibranch``: a macro network where each layer picks its operation and which earlier layers feed it.

Layer i (1-based) applies ``op_i`` to layer i-1's output and merges in the outputs of every earlier layer j
(0 is the stem) with ``skip_i_j`` true: a sum as in ResNet, or a concatenation followed by a 1x1 conv as in
DenseNet (``merge="concat"``). Stride-2 reductions follow the layers listed in ``reduce_after``; a skip from
before a reduction is average-pooled to the target size.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kubenas.arch import Arch
from kubenas.core import is_int
from kubenas.spaces import vocabulary as V
from kubenas.spaces.base import Decision, Panel, SearchSpace

MULTIBRANCH_OPS = ("conv_3x3", "conv_5x5", "sep_conv_3x3", "sep_conv_5x5", "max_pool_3x3", "avg_pool_3x3")


class MultiBranchSpace(SearchSpace):
    name = "multibranch"

    def __init__(
        self,
        layers: int = 6,
        ops: Sequence[str] = MULTIBRANCH_OPS,
        width: int = 32,
        merge: str = "sum",
        reduce_after: Sequence[int] | None = None,
    ):
        if not is_int(layers) or layers < 1:
            raise ValueError(f"multibranch: layers must be a positive integer, got {layers!r}")
        if not isinstance(width, int) or width < 1:
            raise ValueError(f"multibranch: width must be a positive integer, got {width!r}")
        if merge not in ("sum", "concat"):
            raise ValueError(f"multibranch: merge must be 'sum' or 'concat', got {merge!r}")
        self.layers, self.width, self.merge = layers, width, merge
        self.ops = V.check_ops("multibranch", ops)
        if reduce_after is None:
            reduce_after = sorted({layers // 3, 2 * layers // 3} - {0, layers})
        self.reduce_after = sorted(int(r) for r in reduce_after)
        bad = [r for r in self.reduce_after if not 1 <= r < layers]
        if bad:
            raise ValueError(f"multibranch: reduce_after values must lie in 1..{layers - 1}, got {bad}")
        decisions = [Decision(f"op_{i}", tuple(self.ops)) for i in range(1, layers + 1)]
        for i in range(2, layers + 1):
            decisions += [Decision(f"skip_{i}_{j}", (False, True)) for j in range(0, i - 1)]
        self._init_decisions(decisions)

    def options(self) -> dict[str, Any]:
        return {
            "layers": self.layers,
            "ops": list(self.ops),
            "width": self.width,
            "merge": self.merge,
            "reduce_after": list(self.reduce_after),
        }

    def _inputs(self, arch: Arch, i: int) -> list[int]:
        return [j for j in range(0, i - 1) if arch[f"skip_{i}_{j}"]]

    def genotype(self, arch: Arch) -> str:
        self.validate(arch)
        parts = []
        for i in range(1, self.layers + 1):
            skips = self._inputs(arch, i)
            parts.append(f"{i}:{arch[f'op_{i}']}" + "".join(f"+{j}" for j in skips))
        return " ".join(parts)

    def diagram(self, arch: Arch) -> list[Panel]:
        """The layers in order, each fed by the one before, plus its skip connections (dashed)."""
        return [Panel.layers(arch, "stem", str, f"merged by {self.merge}")]

    def build(self, arch: Arch, input_shape: Sequence[int], num_classes: int, *, width_mult: float = 1.0):
        from kubenas.spaces.networks import MultiBranchNet

        self.validate(arch)
        return MultiBranchNet(
            dim=V.spatial_dims(input_shape, "multibranch"),
            c_in=int(input_shape[0]),
            width=V.scaled(self.width, width_mult),
            ops=[arch[f"op_{i}"] for i in range(1, self.layers + 1)],
            inputs=[self._inputs(arch, i) for i in range(1, self.layers + 1)],
            reduce_after=self.reduce_after,
            concat=self.merge == "concat",
            num_classes=num_classes,
        )
