from kfp import dsl
from kfp.dsl import HTML, Output

from kubenas.components.image import IMAGE


# Tell the strategy the open round's results and commit it; draws the search so far as an HTML report (the same
# pictures go to the MLflow parent run); returns ``continue`` or ``stop``.
@dsl.component(base_image=IMAGE, install_kfp_package=False)
def update_strategy(
    config_json: str, run_round: int, start_round: int, parent_run_id: str, statuses: list[str], report: Output[HTML]
) -> str:
    from kubenas import steps

    steps.end_promptly("update_strategy")
    steps.say(f"workers: {'; '.join(statuses) or 'none'}")
    return steps.tell_round(config_json, run_round, start_round, parent_run_id, report.path)
