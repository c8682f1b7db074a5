from kfp import dsl
from kfp.dsl import Metrics, Output

from kubenas.components.image import IMAGE


# One worker of a round (``item`` is ``"<round>/<worker>"``): train its share of the round's candidates in
# this one process; returns how many trained ``ok`` and how many ``failed``.
@dsl.component(base_image=IMAGE, install_kfp_package=False)
def train_candidates(config_json: str, item: str, metrics: Output[Metrics]) -> str:
    from kubenas import steps

    steps.end_promptly("train_candidates")
    rows = steps.train_round(config_json, item)
    for name, value in steps.scalar_metrics(rows).items():
        metrics.log_metric(name, value)
    ok = sum(r["status"] == "ok" for r in rows)
    return f"{ok} ok, {len(rows) - ok} failed"
