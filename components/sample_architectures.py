from typing import List

from kfp import dsl

from components.image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def sample_architectures(config_json: str, run_round: int, start_round: int, parent_run_id: str) -> List[str]:
    """Ask the strategy for a round of candidates, stored in S3; returns ``"<round>/<candidate id>"`` items
    (a single list output, which both Kubeflow and kfp.local can fan out over)."""
    from kubenas import steps

    return steps.sample_architectures(config_json, run_round, start_round, parent_run_id)
