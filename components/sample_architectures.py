from kfp import dsl

from kubenas.components.image import IMAGE


# Ask for a round of candidates, stored in S3 and split over at most ``parallelism`` workers; returns one
# ``"<round>/<worker>"`` item per worker (a single list output, which both Kubeflow and kfp.local fan out over).
@dsl.component(base_image=IMAGE, install_kfp_package=False)
def sample_architectures(config_json: str, run_round: int, start_round: int, parent_run_id: str) -> list[str]:
    from kubenas import steps

    steps.end_promptly("sample_architectures")
    return steps.ask_round(config_json, run_round, start_round, parent_run_id)
