"""``katib_enas``: the macro space of Katib's ENAS, so that a Katib NAS experiment searches the same networks here.

``operations`` lists operation types with a list of values per parameter, as a Katib Experiment's
``nasConfig.operations`` does; each type expands into the grid of its values, and the expanded operations are
numbered in order (the types in the order listed; within a type, the grid with its last parameter varying
fastest). These numbers are the operation ids of Katib's architecture notation. Katib's CPU and GPU examples
expand to 106 operations.

Layer i (1..``layers``) takes the concatenation, along channels, of layer i-1's output and of every earlier
output j (0 is the input image) with ``skip_i_j`` true, zero-padded to the largest spatial size among them, and
applies its operation ``op_i``:

- ``convolution``: ReLU, convolution (``filter_size``, ``num_filter`` outputs, ``stride``, same padding), BN;
- ``separable_convolution``: ReLU, depthwise convolution (``depth_multiplier``), pointwise to ``num_filter``, BN;
- ``depthwise_convolution``: ReLU, depthwise convolution (``depth_multiplier`` outputs per input channel), BN;
- ``reduction``: ``max_pooling`` or ``avg_pooling`` of ``pool_size`` (stride ``stride``, else ``pool_size``, no
  padding); an input already smaller than the pool passes through.

The last layer's output is averaged over space, dropped out (0.4) and classified by one linear layer. A network
with ``layers`` L has one of N operations per layer and L(L-1)/2 skip bits: N^L x 2^(L(L-1)/2) architectures.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

from kubenas.arch import Arch
from kubenas.core import is_int
from kubenas.spaces import vocabulary as V
from kubenas.spaces.base import Decision, InvalidArchitecture, Panel, SearchSpace

# Each operation type's parameters and their values when an experiment leaves one out (Katib's trial code).
PARAMETERS: dict[str, dict[str, Any]] = {
    "convolution": {"filter_size": 3, "num_filter": 64, "stride": 1},
    "separable_convolution": {"filter_size": 3, "num_filter": 64, "stride": 1, "depth_multiplier": 1},
    "depthwise_convolution": {"filter_size": 3, "stride": 1, "depth_multiplier": 1},
    "reduction": {"reduction_type": "max_pooling", "pool_size": 2, "stride": None},
}
REDUCTION_TYPES = ("max_pooling", "avg_pooling")
# Katib's CPU and GPU examples: 30 convolutions, 60 separable, 12 depthwise and 4 reductions
KATIB_EXAMPLE_OPERATIONS: tuple[dict[str, Any], ...] = (
    {"type": "convolution", "filter_size": [3, 5, 7], "num_filter": [32, 48, 64, 96, 128], "stride": [1, 2]},
    {
        "type": "separable_convolution",
        "filter_size": [3, 5, 7],
        "num_filter": [32, 48, 64, 96, 128],
        "stride": [1, 2],
        "depth_multiplier": [1, 2],
    },
    {"type": "depthwise_convolution", "filter_size": [3, 5, 7], "stride": [1, 2], "depth_multiplier": [1, 2]},
    {"type": "reduction", "reduction_type": ["max_pooling", "avg_pooling"], "pool_size": [2, 3]},
)


def expand(operations: Sequence[Mapping[str, Any]], where: str = "katib_enas: operations") -> list[dict[str, Any]]:
    """The grid of each operation type, in id order: every expanded operation with all its parameters (the
    defaults filled in). Raises ValueError naming the operation and parameter."""
    if isinstance(operations, (str, bytes)) or not isinstance(operations, Sequence) or not operations:
        raise ValueError(f"{where} must list at least one operation type, got {operations!r}")
    out: list[dict[str, Any]] = []
    for i, spec in enumerate(operations):
        at = f"{where}[{i}]"
        if not isinstance(spec, Mapping):
            raise ValueError(f"{at} must be a mapping with a type and its parameters' values, got {spec!r}")
        kind = spec.get("type")
        if kind not in PARAMETERS:
            raise ValueError(f"{at}.type: unknown operation type {kind!r}; known: {', '.join(PARAMETERS)}")
        defaults = PARAMETERS[kind]
        unknown = sorted(set(spec) - {"type"} - set(defaults))
        if unknown:
            raise ValueError(f"{at}: unknown parameter(s) {unknown} of {kind}; known: {', '.join(defaults)}")
        grid = {}
        for name, values in spec.items():
            if name == "type":
                continue
            if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values:
                raise ValueError(f"{at}.{name} must list at least one value, got {values!r}")
            for value in values:
                _check_value(f"{at}.{name}", name, value)
            if len(set(values)) != len(values):
                raise ValueError(f"{at}.{name} lists a value twice: {list(values)}")
            grid[name] = list(values)
        for combo in itertools.product(*grid.values()):
            out.append({"type": kind, **defaults, **dict(zip(grid, combo))})
    return out


def _check_value(at: str, name: str, value: Any) -> None:
    if name == "reduction_type":
        if value not in REDUCTION_TYPES:
            raise ValueError(f"{at}: {value!r} is not a reduction type; expected {' or '.join(REDUCTION_TYPES)}")
        return
    if not is_int(value) or value < 1:
        raise ValueError(f"{at}: expected integers >= 1, got {value!r}")
    if name == "filter_size" and value % 2 == 0:
        raise ValueError(f"{at}: filter sizes must be odd (same padding is symmetric), got {value}")


def label(op: Mapping[str, Any]) -> str:
    """A short name of an expanded operation, e.g. ``conv_5x5_64_s2``, ``sep_conv_3x3_32_s1_m2``, ``max_pool_2``."""
    kind, k = op["type"], op.get("filter_size")
    if kind == "convolution":
        return f"conv_{k}x{k}_{op['num_filter']}_s{op['stride']}"
    if kind == "separable_convolution":
        return f"sep_conv_{k}x{k}_{op['num_filter']}_s{op['stride']}_m{op['depth_multiplier']}"
    if kind == "depthwise_convolution":
        return f"dw_conv_{k}x{k}_s{op['stride']}_m{op['depth_multiplier']}"
    pool = op["reduction_type"].split("_")[0]
    return f"{pool}_pool_{op['pool_size']}" + (f"_s{op['stride']}" if op["stride"] is not None else "")


class KatibEnasSpace(SearchSpace):
    name = "katib_enas"

    def __init__(
        self,
        layers: int = 4,
        operations: Sequence[Mapping[str, Any]] = KATIB_EXAMPLE_OPERATIONS,
        input_sizes: Sequence[int] | None = None,
        output_sizes: Sequence[int] | None = None,
    ):
        if not is_int(layers) or layers < 1:
            raise ValueError(f"katib_enas: layers must be a positive integer, got {layers!r}")
        for field, sizes in (("input_sizes", input_sizes), ("output_sizes", output_sizes)):
            if sizes is not None and (
                isinstance(sizes, (str, bytes))
                or not isinstance(sizes, Sequence)
                or not sizes
                or not all(is_int(s) and s >= 1 for s in sizes)
            ):
                raise ValueError(f"katib_enas: {field} must list positive integers, got {sizes!r}")
        self.layers = layers
        self.operations = [dict(op) for op in operations]
        self.expanded = expand(self.operations)
        self.input_sizes = None if input_sizes is None else [int(s) for s in input_sizes]
        self.output_sizes = None if output_sizes is None else [int(s) for s in output_sizes]
        ids = tuple(range(len(self.expanded)))
        decisions = [Decision(f"op_{i}", ids) for i in range(1, layers + 1)]
        for i in range(2, layers + 1):
            decisions += [Decision(f"skip_{i}_{j}", (False, True)) for j in range(0, i - 1)]
        self._init_decisions(decisions)

    def options(self) -> dict[str, Any]:
        out: dict[str, Any] = {"layers": self.layers, "operations": [dict(op) for op in self.operations]}
        if self.input_sizes is not None:
            out["input_sizes"] = list(self.input_sizes)
        if self.output_sizes is not None:
            out["output_sizes"] = list(self.output_sizes)
        return out

    def check_data(self, input_shape: Sequence[int] | None, num_classes: int | None) -> None:
        """The experiment's ``inputSizes`` (height, width, channels, as Katib writes them) and ``outputSizes``
        (the classes, last) against the dataset's (channels, height, width) and classes, where both are known."""
        if self.input_sizes is not None and input_shape is not None:
            expected = tuple(self.input_sizes[-1:] + self.input_sizes[:-1])  # channels last -> first
            if tuple(input_shape) != expected:
                raise ValueError(
                    f"katib_enas: input_sizes {self.input_sizes} (height, width, channels) do not match the "
                    f"dataset's inputs {list(input_shape)} (channels, height, width): resize the images "
                    "(dataset option resize) or change input_sizes"
                )
        if self.output_sizes is not None and num_classes is not None and self.output_sizes[-1] != num_classes:
            raise ValueError(
                f"katib_enas: output_sizes {self.output_sizes} end in {self.output_sizes[-1]} classes; the "
                f"dataset has {num_classes}"
            )

    def _inputs(self, arch: Arch, i: int) -> list[int]:
        return [j for j in range(0, i - 1) if arch[f"skip_{i}_{j}"]]

    def op(self, arch: Arch, i: int) -> dict[str, Any]:
        """Layer i's expanded operation."""
        return self.expanded[arch[f"op_{i}"]]

    def genotype(self, arch: Arch) -> str:
        self.validate(arch)
        return " ".join(
            f"{i}:{label(self.op(arch, i))}" + "".join(f"+{j}" for j in self._inputs(arch, i))
            for i in range(1, self.layers + 1)
        )

    def to_katib(self, arch: Arch) -> list[list[int]]:
        """The architecture in Katib's notation: per layer, the operation id, then a skip bit per earlier output
        (the input first), e.g. ``[[27], [29, 0], [22, 1, 0]]``."""
        self.validate(arch)
        return [
            [arch[f"op_{i}"]] + [int(arch[f"skip_{i}_{j}"]) for j in range(0, i - 1)] for i in range(1, self.layers + 1)
        ]

    def from_katib(self, layers: Any) -> Arch:
        """The architecture a Katib ENAS result names (see :meth:`to_katib`); raises InvalidArchitecture saying
        which layer does not fit this space."""
        if not isinstance(layers, list) or len(layers) != self.layers:
            raise InvalidArchitecture(f"katib_enas: expected one list per layer ({self.layers}), got {layers!r}"[:300])
        arch: Arch = {}
        for i, layer in enumerate(layers, start=1):
            if not isinstance(layer, list) or len(layer) != i:
                raise InvalidArchitecture(
                    f"katib_enas: layer {i} must be [operation id] plus {i - 1} skip bit(s), got {layer!r}"
                )
            op, *bits = layer
            if not is_int(op) or not 0 <= op < len(self.expanded):
                raise InvalidArchitecture(
                    f"katib_enas: layer {i}'s operation id {op!r} is not one of the space's 0..{len(self.expanded) - 1}"
                )
            if any(b not in (0, 1) or isinstance(b, float) for b in bits):
                raise InvalidArchitecture(f"katib_enas: layer {i}'s skip bits must be 0 or 1, got {bits}")
            arch[f"op_{i}"] = int(op)
            arch.update({f"skip_{i}_{j}": bool(b) for j, b in enumerate(bits)})
        return self.validate(arch)

    def diagram(self, arch: Arch) -> list[Panel]:
        """The layers in order, each fed by the one before, plus its skip inputs (dashed), concatenated."""
        return [Panel.layers(arch, "input", lambda op: label(self.expanded[op]), "concatenated")]

    def build(self, arch: Arch, input_shape: Sequence[int], num_classes: int, *, width_mult: float = 1.0):
        from kubenas.spaces.networks import KatibEnasNet

        self.validate(arch)
        ops = []
        for i in range(1, self.layers + 1):
            op = dict(self.op(arch, i))
            if "num_filter" in op:
                op["num_filter"] = V.scaled(op["num_filter"], width_mult)
            ops.append(op)
        return KatibEnasNet(
            shape=tuple(int(s) for s in input_shape),
            dim=V.spatial_dims(input_shape, "katib_enas"),
            ops=ops,
            inputs=[self._inputs(arch, i) for i in range(1, self.layers + 1)],
            num_classes=num_classes,
        )
