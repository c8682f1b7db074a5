"""``nas_search``: init, then R rounds unrolled at compile time, then export.

KFP v2 has no while loop, so the rounds are unrolled: round k+1 runs inside round k's
``dsl.If(update == "continue")``, and the export runs once, after the rounds, whichever round stopped the search.
The number of rounds and the ParallelFor parallelism are fixed when the pipeline is compiled; the form's ``rounds``
can lower the rounds of a run, not raise them.
"""

# No `from __future__ import annotations` here: kfp reads the pipeline signature's annotations as types.

import functools
from pathlib import Path

from kfp import compiler, dsl, kubernetes

from kubenas.components import export_winner, init_search, sample_architectures, train_candidates, update_strategy
from kubenas.components.image import IMAGE, image_for
from kubenas.config import SearchConfig

RETRIES = 2  # attempts after the first, per task


def _task_settings(
    task, config: SearchConfig, *, train: bool = False, retries: int = RETRIES, image: str | None = None
):
    """Pod settings shared by every task: the image, no caching (steps read and write the store), credentials
    from Kubernetes Secrets; the CUDA image, GPUs, tolerations, node selector and resources for training tasks."""
    task.set_caching_options(False)
    # A pod lost to a node failure, an eviction or a transient error is retried: every step is idempotent (a retried
    # worker skips what it trained, a retried update after its commit only answers, a retried export deletes the
    # version its failed attempt registered), so a retry leaves the state of a clean run.
    if retries:
        task.set_retry(num_retries=retries, backoff_duration="30s", backoff_factor=2.0, backoff_max_duration="600s")
    res = config.resources
    image = image or image_for(res.gpus if train else 0, res.image)
    if image != IMAGE:
        task.set_container_image(image)
    kubernetes.use_secret_as_env(
        task,
        secret_name=config.storage.secret,
        secret_key_to_env={"AWS_ACCESS_KEY_ID": "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY": "AWS_SECRET_ACCESS_KEY"},
    )
    if config.tracking.secret:
        kubernetes.use_secret_as_env(
            task,
            secret_name=config.tracking.secret,
            secret_key_to_env={
                "MLFLOW_TRACKING_USERNAME": "MLFLOW_TRACKING_USERNAME",
                "MLFLOW_TRACKING_PASSWORD": "MLFLOW_TRACKING_PASSWORD",
            },
            optional=True,
        )
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
        kubernetes.add_toleration(
            task,
            key=tol.get("key"),
            operator=tol.get("operator", "Equal"),
            value=tol.get("value"),
            effect=tol.get("effect"),
        )
    return task


# Rounds per sub-pipeline. Inside one DAG, KFP hands every enclosing condition's input down to every nested level,
# so nesting N rounds in one DAG compiles to O(N^2) bytes; a sub-pipeline starts afresh with its own three
# inputs. But KFP merges each sub-pipeline's Kubernetes settings into every enclosing one, which costs compile
# time quadratic in the number of nested sub-pipelines. Blocks of a few rounds keep both small.
ROUNDS_PER_BLOCK = 10


def build_pipeline(config: SearchConfig, retries: int = RETRIES, image: str | None = None):
    """The pipeline function for ``config``: its rounds and parallelism are unrolled into the graph.

    Round k+1 runs inside round k's ``dsl.If(update == "continue")``; rounds come in sub-pipelines of
    ``ROUNDS_PER_BLOCK``, each running the next block inside its last round's condition. The export runs once,
    after the first block, which ends when the round that stopped the search has ended. ``retries``: KFP's
    retries of a failed task (``kubenas run`` uses none: on one machine a failure is rarely transient, and
    ``kfp.local`` would wait 30 s and 60 s before failing). ``image``: one image for every task (``kubenas run
    --runner container --image``), instead of the config's."""
    max_rounds, parallelism = config.budget.rounds, config.budget.parallelism
    _settings = functools.partial(_task_settings, image=image)

    def block_pipeline(first: int, next_block):
        last = min(first + ROUNDS_PER_BLOCK, max_rounds) - 1

        @dsl.pipeline(name=f"rounds-{first + 1}-{last + 1}", description=f"rounds {first + 1} to {last + 1}")
        def block(config_json: str, parent_run_id: str, start_round: int):
            def round_at(k: int) -> None:
                sample = _settings(
                    sample_architectures(
                        config_json=config_json, run_round=k, start_round=start_round, parent_run_id=parent_run_id
                    ),
                    config,
                    retries=retries,
                )
                sample.set_display_name(f"round {k + 1}: sample")
                # One iteration per worker; the workers take the round's candidates from one queue.
                with dsl.ParallelFor(sample.output, parallelism=parallelism) as item:
                    train = _settings(
                        train_candidates(config_json=config_json, item=item), config, train=True, retries=retries
                    )
                    train.set_display_name(f"round {k + 1}: train")
                update = _settings(
                    update_strategy(
                        config_json=config_json,
                        run_round=k,
                        start_round=start_round,
                        parent_run_id=parent_run_id,
                        statuses=dsl.Collected(train.outputs["Output"]),
                    ),
                    config,
                    retries=retries,
                )
                update.set_display_name(f"round {k + 1}: update")
                if k == max_rounds - 1:
                    return
                with dsl.If(update.outputs["Output"] == "continue", name=f"continue after round {k + 1}"):
                    if k < last:
                        round_at(k + 1)
                    else:
                        rest = next_block(config_json=config_json, parent_run_id=parent_run_id, start_round=start_round)
                        rest.set_display_name(f"rounds {k + 2}+").set_caching_options(False)

            round_at(first)

        return block

    block = None
    for first in reversed(range(0, max_rounds, ROUNDS_PER_BLOCK)):
        block = block_pipeline(first, block)

    @dsl.pipeline(
        name=f"kubenas-{config.name}",
        description=f"kubenas NAS: {config.space.name} space, {config.search_method} strategy, "
        f"{config.dataset.name} data, up to {max_rounds} rounds",
    )
    def nas_search(
        name: str = config.name,
        seed: int = config.seed,
        strategy: str = config.strategy.name,
        epochs: int = config.fidelity.epochs,
        data_fraction: float = config.fidelity.data_fraction,
        candidates_per_round: int = config.budget.candidates_per_round,
        rounds: int = max_rounds,
        config_json: str = config.to_json(),
    ):
        # the fields people change most are typed in the run form, and take precedence over config_json
        init = _settings(
            init_search(
                config_json=config_json,
                rounds=rounds,
                candidates_per_round=candidates_per_round,
                job=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
                name=name,
                seed=seed,
                strategy=strategy,
                epochs=epochs,
                data_fraction=data_fraction,
            ),
            config,
            retries=retries,
        )
        init.set_display_name("init")
        # Every later task reads the config init validated (with the form's overrides): one source of truth.
        cfg, parent = init.outputs["config_json"], init.outputs["parent_run_id"]
        rounds_task = block(config_json=cfg, parent_run_id=parent, start_round=init.outputs["start_round"])
        rounds_task.set_display_name("rounds").set_caching_options(False)
        # The export reads the history from S3: it runs once the rounds, however many ran, have all ended.
        export = _settings(export_winner(config_json=cfg, parent_run_id=parent), config, train=True, retries=retries)
        export.set_display_name("export").after(rounds_task)

    return nas_search


def compile_pipeline(config: SearchConfig, path) -> Path:
    """Write the pipeline package (YAML) that the Kubeflow UI's "Upload pipeline" accepts."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(build_pipeline(config), package_path=str(path))
    return path
