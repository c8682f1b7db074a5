"""What the steps show: the search so far as a report after every round, the winner's report, the leaderboard and
the few lines that sum a search up."""

from __future__ import annotations

from typing import Any

from kubenas import history
from kubenas.config import SearchConfig
from kubenas.context import Context, say
from kubenas.rounds import rounds


def report_round(
    ctx: Context, rows: list[dict[str, Any]], state: dict | None, parent_run_id: str, report_path: str | None = None
) -> None:
    """The search so far as pictures (:mod:`kubenas.report`), on the MLflow parent run (refreshed every round) and
    in ``report_path``. The round is committed before: a report that cannot be drawn is said, not raised."""
    from kubenas import report

    try:
        page = report.build(
            f"kubenas search {ctx.cfg.name}: after round {max(r['round'] for r in rows)}"
            if rows
            else f"kubenas search {ctx.cfg.name}",
            search_summary(ctx.cfg, rows),
            rows,
            rounds(ctx).report(state),
        )
    except Exception as exc:  # noqa: BLE001 - a picture must not fail a committed round
        say(f"the round's report could not be drawn: {type(exc).__name__}: {exc}")
        return
    ctx.tracker.log_report(parent_run_id, page)
    if report_path:
        with open(report_path, "w", encoding="utf-8") as fh:
            fh.write(page.html)


def search_summary(cfg: SearchConfig, rows: list[dict[str, Any]]) -> str:
    """A few Markdown lines: what is searched, how far it got, the best so far (the parent run's description)."""
    failed = sum(r["status"] != "ok" for r in rows)
    n_rounds = len({r["round"] for r in rows})
    cost = sum(float(r.get("cost") or 0.0) for r in rows)
    lines = [
        f"Search `{cfg.name}`: space `{cfg.space.name}`, {cfg.search_method}, dataset `{cfg.dataset.name}`, "
        f"objective {cfg.objective.metric} ({cfg.objective.mode}).",
        f"Budget: {cfg.budget.rounds} round(s) of {cfg.budget.candidates_per_round} candidate(s) per run; "
        f"so far {n_rounds} round(s), {len(rows)} evaluation(s) ({failed} failed), {cost:.0f} s of compute.",
    ]
    best = history.ranked(rows, cfg.objective.metric, cfg.objective.mode)
    if best:
        b = best[0]
        lines.append(
            f"Best so far: {cfg.objective.metric} **{b['metrics'][cfg.objective.metric]:.4f}**, candidate "
            f"`{b['id']}` (round {b['round']}): `{b['genotype']}`."
        )
    return "\n".join(lines)


def report_winner(
    ctx: Context, rows: list[dict[str, Any]], state: dict | None, summary: dict[str, Any], winner: dict[str, Any]
) -> str:
    """The export's report: the winner's architecture, its test confusion matrix and the whole search, on the
    MLflow parent run (replacing the last round's), the diagram on the export run, a description and tags on the
    registered version. Returns the HTML page ("" when it could not be drawn: the export has completed)."""
    from kubenas import diagram, report

    cfg, tracker = ctx.cfg, ctx.tracker
    metric = summary["retrained_metric"]
    try:
        architecture = diagram.draw(ctx.space.diagram(winner["arch"]))
        extra = {"architecture": architecture} if architecture else {}
        extra["confusion"] = report.confusion_figure(summary["confusion"], summary.get("classes"))
        text = (
            search_summary(cfg, rows) + f"\nExported `{winner['id']}`, retrained for {cfg.export.epochs} "
            f"epoch(s): {metric} **{summary[metric]:.4f}**, test accuracy **{summary['test_acc']:.4f}**, "
            f"{summary['params']:,} parameters; registered `{summary['model_name']}` version "
            f"{summary['version']} as `{summary['alias']}`."
        )
        tables = (
            {"class counts": report.class_counts_table(summary["class_counts"])} if "class_counts" in summary else {}
        )
        page = report.build(
            f"kubenas search {cfg.name}: the winner",
            text,
            rows,
            rounds(ctx).report(state, exported=winner["id"]),
            extra,
            tables,
        )
    except Exception as exc:  # noqa: BLE001 - the model is registered: a picture must not fail the export
        say(f"export: the report could not be drawn: {type(exc).__name__}: {exc}")
        return ""
    tracker.log_report(summary["parent_run_id"], page)
    files = {"report.html": page.html.encode()}
    if architecture:
        files["architecture.png"] = architecture
    tracker.put_artifacts(summary["export_run_id"], files)
    link = f"runs:/{summary['export_run_id']}/architecture.png"
    ctx.registry.describe_version(
        summary["model_name"],
        summary["version"],
        f"Architecture `{winner['genotype']}` ({cfg.space.name} space), found by kubenas search `{cfg.name}` "
        f"with {cfg.search_method} on {cfg.dataset.name}, retrained for {cfg.export.epochs} epoch(s): {metric} "
        f"{summary[metric]:.4f}, test accuracy {summary['test_acc']:.4f}, {summary['params']:,} parameters, "
        f"{summary['macs']:,} MACs. Diagram: {link}; report: runs:/{summary['export_run_id']}/report.html.",
        {
            "kubenas.genotype": winner["genotype"],
            "kubenas.candidate": winner["id"],
            "kubenas.space": cfg.space.name,
            "kubenas.source_run": summary["export_run_id"],
            "kubenas.architecture": link,
            f"kubenas.{metric}": f"{summary[metric]:.4f}",
            "kubenas.test_acc": f"{summary['test_acc']:.4f}",
            "kubenas.params": summary["params"],
            "kubenas.macs": summary["macs"],
        },
    )
    return page.html


def leaderboard(cfg: SearchConfig, scored: list[dict[str, Any]], summary: dict[str, Any], top: int = 10) -> str:
    """The Markdown leaderboard the Kubeflow UI renders; ``scored`` rows carry parsed ``metrics`` dicts."""
    metric = cfg.objective.metric
    lines = [
        f"# kubenas search `{cfg.name}`",
        "",
        f"Winner `{summary['candidate_id']}` retrained for {cfg.export.epochs} epoch(s): "
        f"{summary['retrained_metric']} **{summary[summary['retrained_metric']]:.4f}**, "
        f"test accuracy **{summary['test_acc']:.4f}**, "
        f"registered as `{summary['model_name']}` version {summary['version']} (alias `{summary['alias']}`).",
        "",
        f"Top {min(top, len(scored))} of {len(scored)} successful evaluations (most epochs first, then "
        f"{cfg.objective.mode} {metric}):",
        "",
        f"| # | candidate | round | epochs | {metric} | params | MACs | cost (s) | genotype |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for i, r in enumerate(scored[:top], start=1):
        m = r["metrics"]
        epochs = "-" if r["epochs"] is None else r["epochs"]  # a one-shot ranking trains no candidate
        lines.append(
            f"| {i} | `{r['id']}` | {r['round']} | {epochs} | {m[metric]:.4f} | {m.get('params', '')} | "
            f"{m.get('macs', '')} | {r['cost']:.1f} | `{_cell(r['genotype'])}` |"
        )
    if summary.get("front") is not None:
        names = [k for k in summary["front"][0] if k != "candidate_id"] if summary["front"] else []
        lines += [
            "",
            f"Pareto front: {len(summary['front'])} feasible candidate(s), "
            f"best first on {names[0] if names else metric}; "
            f"the export picked the `{summary['pick']}` one (marked).",
            "",
            "| candidate | " + " | ".join(names) + " |",
            "| --- |" + " --- |" * len(names),
        ]
        for m in summary["front"]:
            mark = " **(exported)**" if m["candidate_id"] == summary["candidate_id"] else ""
            lines.append(f"| `{m['candidate_id']}`{mark} | " + " | ".join(f"{m[k]:.6g}" for k in names) + " |")
    if summary.get("class_counts"):
        from kubenas import report

        lines += [
            "",
            "Examples per class:",
            "",
            report.markdown_table(report.class_counts_table(summary["class_counts"])),
        ]
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    """Escape the pipes of a genotype so that a Markdown table keeps its columns."""
    return text.replace("|", "\\|")
