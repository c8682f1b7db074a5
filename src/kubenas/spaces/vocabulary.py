"""The names the spaces are made of, and the checks on them: operations, widths and input shapes, without torch.

A space is built, sampled, mutated and validated in processes that never build a network (a pipeline's sample
and update steps), so this module and the space classes import no torch; :mod:`kubenas.spaces.ops` holds the
modules behind these names.
"""

from __future__ import annotations

from collections.abc import Sequence

# The operation vocabulary of the multi-branch and cell spaces (``kubenas.spaces.ops.OPS`` builds them). Names
# follow DARTS and NAS-Bench-201, so genotype strings read like the published ones.
OP_NAMES: tuple[str, ...] = (
    "none",
    "skip_connect",
    "max_pool_3x3",
    "avg_pool_3x3",
    "nor_conv_1x1",
    "nor_conv_3x3",
    "conv_3x3",
    "conv_5x5",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
)

# The NAS-Bench-201 cell: four nodes, an edge from every node to every later one, named in genotype order.
NB201_NODES = 4
NB201_EDGES = [(j, i) for j in range(1, NB201_NODES) for i in range(j)]  # (to, from)


def nb201_edge_name(to: int, frm: int) -> str:
    return f"edge_{to}_{frm}"


# Operations with no weights and no path through them (used by connectivity checks and path encodings).
NONE_OP = "none"


def spatial_dims(input_shape: Sequence[int], space: str, allow_vector: bool = False) -> int:
    """The number of spatial dims (0, 1 or 2) of an input shape given without the batch dim."""
    shape = tuple(int(s) for s in input_shape)
    if len(shape) == 2:
        return 1
    if len(shape) == 3:
        return 2
    if len(shape) == 1 and allow_vector:
        return 0
    expected = "(C, L) or (C, H, W)" + (" or (F,)" if allow_vector else "")
    raise ValueError(f"{space}: input_shape must be {expected} without the batch dim, got {shape}")


def check_ops(space: str, ops: Sequence[str], allowed: Sequence[str] | None = None) -> list[str]:
    """Validate a user's operation list against the vocabulary."""
    allowed = list(allowed or OP_NAMES)
    ops = list(ops)
    if not ops:
        raise ValueError(f"{space}: ops must name at least one operation; allowed: {', '.join(allowed)}")
    unknown = [o for o in ops if o not in allowed]
    if unknown:
        raise ValueError(f"{space}: unknown operation(s) {unknown}; allowed: {', '.join(allowed)}")
    if len(set(ops)) != len(ops):
        raise ValueError(f"{space}: ops lists an operation twice: {ops}")
    return ops


def scaled(width: int, width_mult: float) -> int:
    """Width under a fidelity's width multiplier; never below 1."""
    if width_mult <= 0:
        raise ValueError(f"width_mult must be > 0, got {width_mult}")
    return max(1, int(round(width * width_mult)))
