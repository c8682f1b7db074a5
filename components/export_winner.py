from kfp import dsl
from kfp.dsl import Markdown, Output

from kubenas.components.image import IMAGE


# Retrain, test and register the winner; writes the leaderboard the UI renders; returns a JSON summary.
@dsl.component(base_image=IMAGE, install_kfp_package=False)
def export_winner(config_json: str, parent_run_id: str, leaderboard: Output[Markdown]) -> str:
    import json

    from kubenas import steps

    steps.end_promptly("export_winner")
    summary = steps.export_winner(config_json, parent_run_id)
    with open(leaderboard.path, "w") as fh:
        fh.write(summary.pop("leaderboard"))
    return json.dumps(summary)
