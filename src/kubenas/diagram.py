"""Architecture diagrams: a searched architecture drawn as the graph it builds, one panel per cell.

- ``nb201``: the cell's four nodes, an edge per operation (``none`` edges are absent: they carry nothing);
- ``cell``: the normal and the reduction cell, each with its two inputs, its blocks (each sums two operations on
  earlier nodes) and the output that concatenates the blocks;
- ``chain``: the layers in order;
- ``multibranch``: the layers in order, each fed by the one before, plus its skip connections (dashed) merged by
  sum or concatenation.

:func:`panels` turns an architecture into plain graphs (testable without drawing); :func:`draw` renders them with
matplotlib into one PNG.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from typing import Any, Mapping


@dataclass
class Panel:
    title: str
    nodes: list[str]  # labels, in topological order (drawn left to right)
    edges: list[tuple[int, int, str, str]] = field(default_factory=list)  # (from, to, label, "solid"|"dashed"|"dotted")


def panels(space: str, arch: Mapping[str, Any], genotype: str = "", options: Mapping[str, Any] | None = None
           ) -> list[Panel]:
    """The architecture's graph(s); empty for a space with no diagram (``choice``)."""
    if space == "nb201":
        return [_nb201(arch)]
    if space == "cell":
        return [_cell(arch, kind) for kind in ("normal", "reduce")]
    if space == "chain":
        return [_chain(genotype)]
    if space == "multibranch":
        return [_multibranch(arch, (options or {}).get("merge", "sum"))]
    return []


def _nb201(arch: Mapping[str, Any]) -> Panel:
    edges = []
    for key, op in arch.items():
        m = re.fullmatch(r"edge_(\d+)_(\d+)", key)
        if m and op != "none":
            edges.append((int(m.group(2)), int(m.group(1)), op, "dashed" if op == "skip_connect" else "solid"))
    nodes = 1 + max((int(m.group(1)) for k in arch if (m := re.fullmatch(r"edge_(\d+)_\d+", k))), default=0)
    labels = ["input"] + [f"node {i}" for i in range(1, nodes - 1)] + ["output"]
    return Panel("cell (repeated in every stage)", labels, sorted(edges))


def _cell(arch: Mapping[str, Any], kind: str) -> Panel:
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


def _chain(genotype: str) -> Panel:
    layers = [part.strip() for part in genotype.split(">") if part.strip()]
    labels = ["input"] + [_wrap(layer) for layer in layers] + ["classifier"]
    return Panel(f"chain of {len(layers)} layer(s)", labels, [(i, i + 1, "", "solid") for i in range(len(labels) - 1)])


def _multibranch(arch: Mapping[str, Any], merge: str) -> Panel:
    layers = sorted(int(m.group(1)) for k in arch if (m := re.fullmatch(r"op_(\d+)", k)))
    labels = ["stem"] + [f"{i}\n{arch[f'op_{i}']}" for i in layers]
    edges = [(i - 1, i, "", "solid") for i in layers]
    for key, on in arch.items():
        m = re.fullmatch(r"skip_(\d+)_(\d+)", key)
        if m and on:
            edges.append((int(m.group(2)), int(m.group(1)), "", "dashed"))
    return Panel(f"{len(layers)} layers; dashed: skip connections, merged by {merge}", labels, sorted(edges))


def _wrap(layer: str) -> str:
    head, _, rest = layer.partition("-")
    return head + ("\n" + rest.replace("-", " ") if rest else "")


COLORS = {"solid": "#1f77b4", "dashed": "#2ca02c", "dotted": "#999999"}
STEP = 2.0  # data units between neighbouring nodes
RAD = 0.3  # how far a longer edge bends (matplotlib's arc3)
INCH = 0.62  # inches per data unit


def _extent(panel: Panel) -> tuple[float, float]:
    """The panel's width and half height in data units: arcs rise by RAD / 2 of their length."""
    reach = max((b - a for a, b, _, _ in panel.edges), default=1)
    return STEP * (len(panel.nodes) - 1) + 2.8, RAD / 2 * STEP * reach + 0.55


def draw(drawn: list[Panel], title: str = "") -> bytes | None:
    """The panels stacked in one PNG (None when there is nothing to draw)."""
    if not drawn:
        return None
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    width = max(_extent(p)[0] for p in drawn)
    heights = [2 * _extent(p)[1] for p in drawn]
    fig = Figure(figsize=(width * INCH, sum(heights) * INCH + 0.45 * len(drawn) + (0.3 if title else 0)), dpi=100,
                 layout="constrained")
    axes = fig.subplots(len(drawn), 1, squeeze=False, gridspec_kw={"height_ratios": heights})[:, 0]
    for ax, panel in zip(axes, drawn):
        _draw_panel(ax, panel, width)
    if title:
        fig.suptitle(title, fontsize=9, x=0.01, ha="left")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight", pad_inches=0.08)
    return buf.getvalue()


def _half_width(label: str) -> float:
    """Half a node box's width in points (8 pt text, about 4.9 pt a character, plus the padding)."""
    return max(len(line) for line in label.splitlines()) * 2.45 + 5


def _draw_panel(ax, panel: Panel, width: float) -> None:
    xs = [STEP * i for i in range(len(panel.nodes))]
    half = _extent(panel)[1]
    ax.set_xlim(-1.4, width - 1.4)
    ax.set_ylim(-half, half)
    ax.set_aspect("equal")  # arcs bend in display space: equal scales keep the labels on them
    ax.axis("off")
    ax.set_title(panel.title, fontsize=9, loc="left")
    for k, (a, b, label, style) in enumerate(panel.edges):
        # neighbours: straight; longer edges: arcs, alternately above and below
        rad = 0.0 if b - a == 1 else (RAD if (a + b + k) % 2 == 0 else -RAD)
        ax.annotate("", xy=(xs[b], 0), xytext=(xs[a], 0), zorder=1,
                    arrowprops=dict(arrowstyle="-|>", color=COLORS[style], lw=1.3, mutation_scale=12,
                                    linestyle={"solid": "-", "dashed": "--", "dotted": ":"}[style],
                                    connectionstyle=f"arc3,rad={rad}", shrinkA=_half_width(panel.nodes[a]),
                                    shrinkB=_half_width(panel.nodes[b]) + 1))
        if label:
            # the midpoint of the arc3 curve is half its control point's offset from the chord; a straight edge's
            # label sits just above it
            my = -rad * (xs[b] - xs[a]) / 2 if rad else 0.22
            ax.text((xs[a] + xs[b]) / 2, my, label, ha="center", va="center", fontsize=7, color=COLORS[style],
                    zorder=3, bbox=dict(boxstyle="round,pad=0.12", fc="white", ec="none", alpha=0.9))
    for x, label in zip(xs, panel.nodes):
        ax.text(x, 0, label, ha="center", va="center", fontsize=8, zorder=4,
                bbox=dict(boxstyle="round,pad=0.35", fc="#f4f4f4", ec="#555555", lw=1))
