"""``nas_search``: init, then R rounds unrolled at compile time, then export.

KFP v2 has no while loop, so the rounds are unrolled: round k+1 runs inside ``dsl.If(update_k == "continue")``,
and the export runs in the ``dsl.Else`` of every round and after the last one, so it runs exactly once,
whichever round stopped the search. The number of rounds and the ParallelFor parallelism are fixed when the
pipeline is compiled; the form's ``rounds`` can lower the rounds of a run, not raise them.
"""

# No `from __future__ import annotations` here: kfp reads the pipeline signature's annotations as types.

from pathlib import Path

from kfp import compiler, dsl, kubernetes

from components import export_winner, init_search, sample_architectures, train_candidates, update_strategy
from components.image import IMAGE, image_for
from kubenas.config import SearchConfig


def _settings(task, config: SearchConfig, *, train: bool = False):
    """Pod settings shared by every task: the image, no caching (steps read and write the store), credentials
    from Kubernetes Secrets; the CUDA image, GPUs, tolerations, node selector and resources for training tasks."""
    task.set_caching_options(False)
    res = config.resources
    image = image_for(res.gpus if train else 0, res.image)
    if image != IMAGE:
        task.set_container_image(image)
    kubernetes.use_secret_as_env(task, secret_name=config.storage.secret, secret_key_to_env={
        "AWS_ACCESS_KEY_ID": "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY": "AWS_SECRET_ACCESS_KEY"})
    if config.tracking.secret:
        kubernetes.use_secret_as_env(task, secret_name=config.tracking.secret, secret_key_to_env={
            "MLFLOW_TRACKING_USERNAME": "MLFLOW_TRACKING_USERNAME",
            "MLFLOW_TRACKING_PASSWORD": "MLFLOW_TRACKING_PASSWORD"}, optional=True)
    if not train:
        return task
    if res.gpus:
        task.set_accelerator_type(res.accelerator).set_accelerator_limit(res.gpus)
    if res.cpu:
        task.set_cpu_request(res.cpu).set_cpu_limit(res.cpu)
    if res.memory:
        task.set_memory_request(res.memory).set_memory_limit(res.memory)
    for key, value in res.node_selector.items():
        kubernetes.add_node_selector(task, label_key=key, label_value=value)
    for tol in res.tolerations:
        kubernetes.add_toleration(task, key=tol.get("key"), operator=tol.get("operator", "Equal"),
                                  value=tol.get("value"), effect=tol.get("effect"))
    return task


def build_pipeline(config: SearchConfig):
    """The pipeline function for ``config``: its rounds and parallelism are unrolled into the graph."""
    max_rounds, parallelism = config.budget.rounds, config.budget.parallelism

    @dsl.pipeline(name=f"kubenas-{config.name}",
                  description=f"kubenas NAS: {config.space.name} space, {config.search_method} strategy, "
                              f"{config.dataset.name} data, up to {max_rounds} rounds")
    def nas_search(config_json: str = config.to_json(), rounds: int = max_rounds,
                   candidates_per_round: int = config.budget.candidates_per_round):
        init = _settings(init_search(config_json=config_json, rounds=rounds,
                                     candidates_per_round=candidates_per_round), config)
        init.set_display_name("init")
        cfg, parent, start = init.outputs["config_json"], init.outputs["parent_run_id"], init.outputs["start_round"]

        def export(update):
            # The export reads the history from S3, not from `update`'s outputs, so the dependency must be
            # explicit: without it the export of the last round started as soon as that round began.
            task = _settings(export_winner(config_json=cfg, parent_run_id=parent), config, train=True)
            task.set_display_name("export").after(update)

        def round_from(k: int) -> None:
            sample = _settings(sample_architectures(config_json=cfg, run_round=k, start_round=start,
                                                    parent_run_id=parent), config)
            sample.set_display_name(f"round {k + 1}: sample")
            # Inside the loop only pipeline parameters and the loop item: the task reads the rest from S3.
            with dsl.ParallelFor(sample.output, parallelism=parallelism) as item:
                train = _settings(train_candidates(config_json=config_json, item=item), config, train=True)
                train.set_display_name(f"round {k + 1}: train")
            update = _settings(update_strategy(config_json=cfg, run_round=k, start_round=start, parent_run_id=parent,
                                               statuses=dsl.Collected(train.outputs["Output"])), config)
            update.set_display_name(f"round {k + 1}: update")
            if k == max_rounds - 1:
                export(update)
                return
            with dsl.If(update.outputs["Output"] == "continue", name=f"continue after round {k + 1}"):
                round_from(k + 1)
            with dsl.Else(name=f"stop after round {k + 1}"):
                export(update)

        round_from(0)

    return nas_search


def compile_pipeline(config: SearchConfig, path) -> Path:
    """Write the pipeline package (YAML) that the Kubeflow UI's "Upload pipeline" accepts."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(build_pipeline(config), package_path=str(path))
    return path
