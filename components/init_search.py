from typing import NamedTuple

from kfp import dsl

from kubenas.components.image import IMAGE


# Validate the config, check S3 and MLflow, take the search's lease for this pipeline run (``job``: its id, the same
# for every retry of its tasks), resume or start the search, open the MLflow parent run.
@dsl.component(base_image=IMAGE, install_kfp_package=False)
def init_search(config_json: str, rounds: int, candidates_per_round: int, job: str) -> NamedTuple(
        "InitOutputs", [("config_json", str), ("parent_run_id", str), ("start_round", int)]):
    from collections import namedtuple

    from kubenas import steps

    steps.end_promptly("init_search")
    out = steps.init_search(config_json, rounds, candidates_per_round, job)
    return namedtuple("InitOutputs", ["config_json", "parent_run_id", "start_round"])(
        out["config_json"], out["parent_run_id"], out["start_round"])
