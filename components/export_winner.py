from kfp import dsl
from kfp.dsl import HTML, ClassificationMetrics, Markdown, Metrics, Output

from kubenas.components.image import IMAGE


# Retrain, test and register the winner; writes the leaderboard, the winner's report (architecture, confusion
# matrix, the whole search), its metrics and its test confusion matrix for the UI; returns a JSON summary.
@dsl.component(base_image=IMAGE, install_kfp_package=False)
def export_winner(
    config_json: str,
    parent_run_id: str,
    leaderboard: Output[Markdown],
    report: Output[HTML],
    metrics: Output[Metrics],
    confusion: Output[ClassificationMetrics],
) -> str:
    import json

    from kubenas import steps

    steps.end_promptly("export_winner")
    summary = steps.export_winner(config_json, parent_run_id)
    with open(leaderboard.path, "w") as fh:
        fh.write(summary.pop("leaderboard"))
    with open(report.path, "w", encoding="utf-8") as fh:
        fh.write(summary.pop("report"))
    for name, value in steps.winner_metrics(summary).items():
        metrics.log_metric(name, value)
    matrix = summary.pop("confusion")
    confusion.log_confusion_matrix([str(i) for i in range(len(matrix))], matrix)
    return json.dumps(summary)
