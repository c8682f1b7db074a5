from kfp import dsl
from kfp.dsl import Metrics, Output

from components.image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def train_candidates(config_json: str, item: str, metrics: Output[Metrics]) -> str:
    """Train one candidate (one ParallelFor iteration; ``item`` is ``"<round>/<candidate id>"``); returns its
    status, ``ok`` or ``failed``."""
    from kubenas import steps

    row = steps.train_candidate(config_json, item)
    for name, value in steps.scalar_metrics(row).items():
        metrics.log_metric(name, value)
    return row["status"]
