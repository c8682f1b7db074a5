"""Pictures of a search: what the update step shows after every round and the export after the winner.

A :class:`Report` holds PNG figures (matplotlib, Agg), the leaderboard as a table, a Markdown summary and one
self-contained HTML page (figures inlined as base64 PNG, no script, no external file), because the Kubeflow UI
shows an ``HTML`` output in a sandboxed iframe. The same figures and table go to the MLflow parent run.

Figures, each drawn only where it means something:

- ``progress``: every candidate's objective in the order it was evaluated, and against the compute time spent,
  with the best so far as a step line; failed candidates as red crosses on the axis;
- ``pareto`` (a multi-objective strategy): all candidates on the first two objectives, the feasible front
  joined, the constraint bounds as dashed lines, the exported member starred;
- ``rungs`` (a multi-fidelity search): each architecture's objective at every budget it reached;
- ``supernet`` (a one-shot search): the supernet's loss and its method's own statistics per epoch.

Importing this module costs nothing; matplotlib is imported when the first figure is drawn.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kubenas import history
from kubenas.core import is_finite

TOP = 10  # leaderboard rows
COLUMNS = ("rank", "candidate", "round", "epochs", "genotype", "cost_s")  # the table's fixed columns


@dataclass
class Report:
    title: str
    summary: str  # Markdown: the search in a few lines (the MLflow parent run's description)
    figures: dict[str, bytes] = field(default_factory=dict)  # name -> PNG
    table: dict[str, list] = field(default_factory=dict)  # {"columns": [...], "data": [[...], ...]}
    html: str = ""
    tables: dict[str, dict[str, list]] = field(default_factory=dict)  # more tables, by heading, after the figures


@dataclass
class View:
    """What a report needs to know besides the rows: the objective, and where they apply, a multi-objective
    strategy's objectives and constraints, a one-shot method's per-epoch statistics, the exported candidate."""

    metric: str
    mode: str
    objectives: list[dict[str, str]] | None = None
    constraints: dict[str, dict[str, float]] = field(default_factory=dict)
    supernet_stats: list[dict[str, Any]] | None = None
    exported: str | None = None


# ---------------------------------------------------------------------- figures
def _figure(width: float, height: float, margins: tuple[float, float, float, float] = (0.85, 0.25, 0.6, 0.35)):
    """A figure with fixed margins in inches (left, right, bottom, top): half the drawing time of matplotlib's
    constrained layout, which every update would pay."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    left, right, bottom, top = margins
    fig.subplots_adjust(left=left / width, right=1 - right / width, bottom=bottom / height, top=1 - top / height)
    return fig


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()


def _locator(integer: bool):
    """At most 6 ticks (a lone point no longer crowds its axis), whole numbers for counts."""
    from matplotlib.ticker import MaxNLocator

    return MaxNLocator(nbins=6, integer=integer)


def _style(ax, xlabel: str, ylabel: str, title: str) -> None:
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10, loc="left")
    ax.grid(alpha=0.3)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def progress_figure(rows: Sequence[Mapping[str, Any]], view: View) -> bytes:
    """The objective of every candidate, in evaluation order and against compute time, with the best so far."""
    values = [
        r["metrics"].get(view.metric)
        if r["status"] == "ok" and is_finite((r.get("metrics") or {}).get(view.metric))
        else None
        for r in rows
    ]
    best = history.best_so_far(values, view.mode)
    costs = [float(r.get("cost") or 0.0) for r in rows]
    spent = [sum(costs[: i + 1]) for i in range(len(costs))]
    rounds = [r.get("round", 0) for r in rows]
    fig = _figure(9.0, 3.4)
    axes = fig.subplots(1, 2, sharey=True, gridspec_kw={"wspace": 0.06})
    ok = [i for i, v in enumerate(values) if v is not None]
    failed = [i for i, v in enumerate(values) if v is None]
    low = min((values[i] for i in ok), default=0.0)
    for ax, xs, xlabel in (
        (axes[0], list(range(1, len(rows) + 1)), "candidates evaluated"),
        (axes[1], spent, "compute time (s, summed over workers)"),
    ):
        points = ax.scatter(
            [xs[i] for i in ok],
            [values[i] for i in ok],
            c=[rounds[i] for i in ok],
            cmap="viridis",
            s=22,
            alpha=0.85,
            edgecolors="none",
            label="candidate",
            zorder=3,
        )
        if failed:
            ax.scatter(
                [xs[i] for i in failed],
                [low] * len(failed),
                marker="x",
                color="#d62728",
                s=30,
                label=f"failed ({len(failed)})",
                zorder=3,
            )
        steps = [(x, b) for x, b in zip(xs, best) if b is not None]
        if steps:
            ax.step(
                [x for x, _ in steps],
                [b for _, b in steps],
                where="post",
                color="#ff7f0e",
                lw=2,
                label="best so far",
                zorder=2,
            )
        _style(ax, xlabel, view.metric if ax is axes[0] else "", "")
        ax.xaxis.set_major_locator(_locator(integer=ax is axes[0]))
    axes[0].set_title(f"{view.metric} ({view.mode}) of every candidate", fontsize=10, loc="left")
    axes[0].legend(fontsize=8, loc="best")
    if ok and len(set(rounds)) > 1:
        from matplotlib.ticker import MaxNLocator

        bar = fig.colorbar(points, ax=list(axes), label="round", pad=0.015, aspect=30, fraction=0.03)
        bar.locator = MaxNLocator(integer=True)
        bar.update_ticks()
    return _png(fig)


def pareto_records(rows: Sequence[Mapping[str, Any]], view: View) -> list[dict[str, Any]]:
    from kubenas.strategies.pareto import objective_values, violation

    out = []
    for r in rows:
        values = objective_values(r.get("metrics") or {}, view.objectives) if r["status"] == "ok" else None
        if values is not None:
            out.append(
                {
                    "id": r["id"],
                    "objectives": values,
                    "violation": violation(r["metrics"], view.constraints),
                    "metrics": r["metrics"],
                }
            )
    return out


def pareto_figure(rows: Sequence[Mapping[str, Any]], view: View) -> bytes | None:
    """All candidates on the first two objectives, the feasible front, the constraint bounds, the export."""
    from kubenas.strategies.pareto import pareto_front

    records = pareto_records(rows, view)
    if not records or not view.objectives or len(view.objectives) < 2:
        return None
    (y_obj, x_obj) = view.objectives[0], view.objectives[1]
    xm, ym = x_obj["metric"], y_obj["metric"]
    feasible = [r for r in records if r["violation"] == 0]
    front = sorted((r for r in pareto_front(feasible)), key=lambda r: r["metrics"][xm])
    fig = _figure(6.4, 4.2)
    ax = fig.subplots()
    infeasible = [r for r in records if r["violation"] > 0]
    if infeasible:
        ax.scatter(
            [r["metrics"][xm] for r in infeasible],
            [r["metrics"][ym] for r in infeasible],
            color="#bbbbbb",
            s=20,
            label=f"violates a constraint ({len(infeasible)})",
            zorder=2,
        )
    ax.scatter(
        [r["metrics"][xm] for r in feasible],
        [r["metrics"][ym] for r in feasible],
        color="#1f77b4",
        s=20,
        alpha=0.8,
        label=f"feasible ({len(feasible)})",
        zorder=3,
    )
    if front:
        ax.step(
            [r["metrics"][xm] for r in front],
            [r["metrics"][ym] for r in front],
            where="post" if x_obj["mode"] == "min" else "pre",
            color="#ff7f0e",
            lw=1.8,
            zorder=4,
        )
        ax.scatter(
            [r["metrics"][xm] for r in front],
            [r["metrics"][ym] for r in front],
            color="#ff7f0e",
            s=36,
            label=f"Pareto front ({len(front)})",
            zorder=5,
        )
    for metric, bound in view.constraints.items():
        for side, v in bound.items():
            text = f"{metric} {'≤' if side == 'max' else '≥'} {v:g}"
            if metric == xm:
                ax.axvline(v, color="#d62728", ls="--", lw=1.2, label=text)
            elif metric == ym:
                ax.axhline(v, color="#d62728", ls="--", lw=1.2, label=text)
    chosen = next((r for r in records if r["id"] == view.exported), None)
    if chosen is not None:
        ax.scatter(
            [chosen["metrics"][xm]],
            [chosen["metrics"][ym]],
            marker="*",
            s=260,
            color="#2ca02c",
            edgecolors="black",
            linewidths=0.6,
            label=f"exported {chosen['id']}",
            zorder=6,
        )
    xs = [r["metrics"][xm] for r in records]
    if min(xs) > 0 and max(xs) / min(xs) > 30:  # sizes spanning orders of magnitude
        from matplotlib.ticker import FuncFormatter

        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}" if v >= 1 else f"{v:g}"))
    more = f" (and {len(view.objectives) - 2} more objective(s))" if len(view.objectives) > 2 else ""
    _style(
        ax, f"{xm} ({x_obj['mode']})", f"{ym} ({y_obj['mode']})", f"Pareto front over {len(records)} candidates{more}"
    )
    ax.legend(fontsize=8, loc="best")
    return _png(fig)


def rungs_figure(rows: Sequence[Mapping[str, Any]], view: View) -> bytes | None:
    """Each architecture's objective at every budget (epochs) it was evaluated at: a multi-fidelity search's
    rungs, with the architectures promoted to a higher rung joined by a line."""
    scored = [r for r in rows if r["status"] == "ok" and r.get("epochs") and is_finite(r["metrics"].get(view.metric))]
    budgets = sorted({r["epochs"] for r in scored})
    if len(budgets) < 2:
        return None
    by_arch: dict[str, dict[int, float]] = {}
    for r in scored:  # an architecture's latest value at each budget
        by_arch.setdefault(r["arch_id"], {})[r["epochs"]] = r["metrics"][view.metric]
    fig = _figure(6.4, 4.0, (0.85, 0.25, 0.85, 0.35))
    ax = fig.subplots()
    for values in by_arch.values():
        points = sorted(values.items())
        if len(points) > 1:
            ax.plot([p[0] for p in points], [p[1] for p in points], color="#1f77b4", alpha=0.45, lw=1, zorder=2)
    ax.scatter(
        [r["epochs"] for r in scored], [r["metrics"][view.metric] for r in scored], color="#1f77b4", s=18, zorder=3
    )
    ax.set_xscale("log", base=2)
    ax.set_xticks(budgets, [f"{b}\n({sum(1 for r in scored if r['epochs'] == b)} evaluated)" for b in budgets])
    ax.minorticks_off()
    _style(ax, "budget (epochs)", view.metric, f"rungs: {len(scored)} evaluations of {len(by_arch)} architectures")
    return _png(fig)


def supernet_figure(stats: Sequence[Mapping[str, Any]] | None) -> bytes | None:
    """The supernet's training loss and the method's statistics (skip share, controller reward, ...) per epoch."""
    if not stats:
        return None
    keys = ["train_loss"] + sorted(
        {k for s in stats for k, v in s.items() if is_finite(v) and k not in ("epoch", "seconds", "train_loss")}
    )
    keys = keys[:4]
    fig = _figure(3.0 * len(keys), 3.0, (0.55, 0.2, 0.55, 0.35))
    axes = fig.subplots(1, len(keys), squeeze=False, gridspec_kw={"wspace": 0.35})[0]
    epochs = [s.get("epoch", i + 1) for i, s in enumerate(stats)]
    for ax, key in zip(axes, keys):
        ax.plot(
            epochs,
            [s.get(key) if is_finite(s.get(key)) else float("nan") for s in stats],
            marker="o",
            ms=3,
            color="#1f77b4",
        )
        _style(ax, "supernet epoch", "", key.replace("_", " "))
        ax.xaxis.set_major_locator(_locator(integer=True))
    return _png(fig)


def confusion_figure(matrix: Sequence[Sequence[int]], labels: Sequence[str] | None = None) -> bytes:
    """The test split's confusion matrix as a heatmap, each cell with its count."""
    n = len(matrix)
    labels = list(labels or [str(i) for i in range(n)])
    fig = _figure(min(2.4 + 0.3 * n, 8.0), min(1.9 + 0.3 * n, 7.6), (0.6, 0.3, 0.6, 0.35))
    ax = fig.subplots()
    image = ax.imshow(matrix, cmap="Blues")
    top = max((max(row) for row in matrix), default=0)
    if n <= 20:
        for i, row in enumerate(matrix):
            for j, v in enumerate(row):
                ax.text(
                    j,
                    i,
                    str(v),
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if top and v > top / 2 else "black",
                )
    long = max((len(s) for s in labels), default=0) > 3
    ax.set_xticks(range(n), labels, fontsize=8, rotation=45 if long else 0, ha="right" if long else "center")
    ax.set_yticks(range(n), labels, fontsize=8)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    total = sum(map(sum, matrix))
    correct = sum(matrix[i][i] for i in range(n))
    ax.set_title(f"test split: {correct} of {total} right", fontsize=10, loc="left")
    fig.colorbar(image, ax=ax, shrink=0.8)
    return _png(fig)


def class_counts_table(counts: Mapping[str, Mapping[str, int]]) -> dict[str, list]:
    """The examples of each class in each split (``{split: {class: n}}``) as a table, with a total row."""
    splits = list(counts)
    classes = list(next(iter(counts.values()), {}))
    data = [[c, *(counts[s].get(c, 0) for s in splits)] for c in classes]
    data.append(["all", *(sum(counts[s].values()) for s in splits)])
    return {"columns": ["class", *splits], "data": data}


def markdown_table(table: Mapping[str, list], top: int = 30) -> str:
    """A table as Markdown (the Kubeflow UI's leaderboard), its first ``top`` rows and its last."""
    rows = table["data"]
    shown = rows if len(rows) <= top + 1 else [*rows[:top], ["...", *("" for _ in rows[0][1:])], rows[-1]]
    lines = ["| " + " | ".join(map(str, table["columns"])) + " |", "|---|" + "---:|" * (len(table["columns"]) - 1)]
    return "\n".join(lines + ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in shown])


# ---------------------------------------------------------------------- the report
def leaderboard_table(rows: Sequence[Mapping[str, Any]], view: View, top: int = TOP) -> dict[str, list]:
    """The top ``top`` rows as a table: fixed columns, then the objective(s) and the size metrics."""
    metrics = [view.metric] + [o["metric"] for o in (view.objectives or []) if o["metric"] != view.metric]
    metrics += [m for m in ("params", "macs") if m not in metrics]
    data = []
    for i, r in enumerate(history.ranked(rows, view.metric, view.mode)[:top], start=1):
        m = r["metrics"]
        data.append(
            [i, r["id"], r.get("round"), r.get("epochs"), r["genotype"], round(float(r.get("cost") or 0.0), 2)]
            + [m.get(k) if is_finite(m.get(k)) else None for k in metrics]
        )
    return {"columns": [*COLUMNS, *metrics], "data": data}


def build(
    title: str,
    summary: str,
    rows: Sequence[Mapping[str, Any]],
    view: View,
    extra: Mapping[str, bytes] | None = None,
    tables: Mapping[str, dict[str, list]] | None = None,
) -> Report:
    """The report of ``rows`` (every committed row, in commit order), with ``extra`` figures first and ``tables``
    after the figures."""
    figures = dict(extra or {})
    if rows:
        figures["progress"] = progress_figure(rows, view)
    for name, png in (
        ("pareto", pareto_figure(rows, view) if view.objectives else None),
        ("rungs", rungs_figure(rows, view)),
        ("supernet", supernet_figure(view.supernet_stats)),
    ):
        if png is not None:
            figures[name] = png
    report = Report(title, summary, figures, leaderboard_table(rows, view), tables=dict(tables or {}))
    report.html = to_html(report, view)
    return report


CAPTIONS = {
    "architecture": "The exported architecture: nodes are feature maps, arrows the operations between them "
    "(an operation 'none' draws no arrow); dashed green: identity (skip) connections.",
    "progress": "Every candidate's objective in evaluation order (left) and against compute time (right); the "
    "orange line is the best so far, red crosses are failed candidates.",
    "pareto": "All candidates on the first two objectives. Orange: the Pareto front of the feasible candidates; "
    "dashed red: constraint bounds; green star: the exported member.",
    "rungs": "Multi-fidelity: each architecture at every budget it reached; a line joins an architecture's promotions.",
    "supernet": "One-shot: the supernet's training loss and its method's statistics per epoch.",
    "confusion": "Confusion matrix of the exported model on the test split.",
}

_CSS = """
body{font-family:-apple-system,Segoe UI,Roboto,Helvetica,Arial,sans-serif;margin:16px;color:#222;max-width:1000px}
h1{font-size:20px;margin:0 0 6px} h2{font-size:15px;margin:22px 0 6px;color:#333}
p.summary{margin:4px 0;line-height:1.45} figure{margin:8px 0 14px} figure img{max-width:100%;height:auto}
figcaption{font-size:12px;color:#555} table{border-collapse:collapse;font-size:12px}
th,td{border-bottom:1px solid #ddd;padding:3px 8px;text-align:right;vertical-align:top}
th{background:#f3f3f3} td.text{text-align:left;font-family:ui-monospace,Menlo,Consolas,monospace;font-size:11px}
td.id{white-space:nowrap} td.genotype{word-break:break-all;min-width:260px}
tr.exported td{background:#eaf6ea}
"""


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1e5 else f"{v:,.0f}"
    if isinstance(v, int) and abs(v) >= 1000:
        return f"{v:,}"
    return str(v)


def to_html(report: Report, view: View) -> str:
    """One self-contained page: no script, no external resource."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(report.title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(report.title)}</h1>",
    ]
    parts += [f'<p class="summary">{_inline(line)}</p>' for line in report.summary.splitlines() if line.strip()]
    for name, png in report.figures.items():
        src = "data:image/png;base64," + base64.b64encode(png).decode()
        caption = CAPTIONS.get(name, "")
        parts.append(
            f'<h2>{html.escape(name.capitalize())}</h2><figure><img alt="{name}" data-figure="{name}" '
            f'src="{src}"><figcaption>{html.escape(caption)}</figcaption></figure>'
        )
    for heading, extra in report.tables.items():
        parts.append(
            f'<h2>{html.escape(heading.capitalize())}</h2><table data-table="{html.escape(heading)}"><thead><tr>'
        )
        parts += [f"<th>{html.escape(str(c))}</th>" for c in extra["columns"]]
        parts.append("</tr></thead><tbody>")
        parts += ["<tr>" + "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in row) + "</tr>" for row in extra["data"]]
        parts.append("</tbody></table>")
    table = report.table
    if table.get("data"):
        parts.append(f'<h2>Leaderboard: top {len(table["data"])}</h2><table id="leaderboard"><thead><tr>')
        parts += [f"<th>{html.escape(str(c))}</th>" for c in table["columns"]]
        parts.append("</tr></thead><tbody>")
        for row in table["data"]:
            mark = ' class="exported"' if view.exported is not None and row[1] == view.exported else ""
            parts.append(
                f"<tr{mark}>"
                + "".join(
                    f'<td class="text {"id" if c == "candidate" else c}">{html.escape(_fmt(v))}</td>'
                    if c in ("candidate", "genotype")
                    else f"<td>{html.escape(_fmt(v))}</td>"
                    for c, v in zip(table["columns"], row)
                )
                + "</tr>"
            )
        parts.append("</tbody></table>")
    else:
        parts.append("<p>No successful candidate yet.</p>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _inline(markdown: str) -> str:
    """A line of the Markdown summary as HTML: escaped, with **bold** and `code` kept."""
    import re

    text = html.escape(markdown.lstrip("- "))
    text = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", text)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", text)
