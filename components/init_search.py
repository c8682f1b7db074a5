from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Markdown, Output

from kubenas.components.image import IMAGE


# Validate the config with the run form's values (typed fields take precedence over config_json), check S3 and
# MLflow, take the search's lease for this pipeline run (``job``: its id, the same for every retry of its tasks),
# resume or start the search, open the MLflow parent run. ``summary`` shows the search as it runs.
@dsl.component(base_image=IMAGE, install_kfp_package=False)
def init_search(
    config_json: str,
    rounds: int,
    candidates_per_round: int,
    job: str,
    name: str,
    seed: int,
    strategy: str,
    epochs: int,
    data_fraction: float,
    summary: Output[Markdown],
) -> NamedTuple("InitOutputs", [("config_json", str), ("parent_run_id", str), ("start_round", int)]):
    from collections import namedtuple

    from kubenas import steps

    steps.end_promptly("init_search")
    out = steps.init_search(
        config_json,
        rounds,
        candidates_per_round,
        job,
        name=name,
        seed=seed,
        strategy=strategy,
        epochs=epochs,
        data_fraction=data_fraction,
    )
    with open(summary.path, "w") as fh:
        fh.write(out["summary"])
    return namedtuple("InitOutputs", ["config_json", "parent_run_id", "start_round"])(
        out["config_json"], out["parent_run_id"], out["start_round"]
    )
