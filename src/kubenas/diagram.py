"""Architecture diagrams: :func:`draw` renders the panels a space makes of an architecture
(:meth:`kubenas.spaces.SearchSpace.diagram`, plain graphs testable without drawing) into one PNG with matplotlib."""

from __future__ import annotations

import io

from kubenas.spaces.base import Panel

__all__ = ["Panel", "draw"]

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
    fig = Figure(
        figsize=(width * INCH, sum(heights) * INCH + 0.45 * len(drawn) + (0.3 if title else 0)),
        dpi=100,
        layout="constrained",
    )
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
        ax.annotate(
            "",
            xy=(xs[b], 0),
            xytext=(xs[a], 0),
            zorder=1,
            arrowprops=dict(
                arrowstyle="-|>",
                color=COLORS[style],
                lw=1.3,
                mutation_scale=12,
                linestyle={"solid": "-", "dashed": "--", "dotted": ":"}[style],
                connectionstyle=f"arc3,rad={rad}",
                shrinkA=_half_width(panel.nodes[a]),
                shrinkB=_half_width(panel.nodes[b]) + 1,
            ),
        )
        if label:
            # the midpoint of the arc3 curve is half its control point's offset from the chord; a straight edge's
            # label sits just above it
            my = -rad * (xs[b] - xs[a]) / 2 if rad else 0.22
            ax.text(
                (xs[a] + xs[b]) / 2,
                my,
                label,
                ha="center",
                va="center",
                fontsize=7,
                color=COLORS[style],
                zorder=3,
                bbox=dict(boxstyle="round,pad=0.12", fc="white", ec="none", alpha=0.9),
            )
    for x, label in zip(xs, panel.nodes):
        ax.text(
            x,
            0,
            label,
            ha="center",
            va="center",
            fontsize=8,
            zorder=4,
            bbox=dict(boxstyle="round,pad=0.35", fc="#f4f4f4", ec="#555555", lw=1),
        )
