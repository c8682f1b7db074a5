"""*export*: retrain the winner at the export fidelity, test it once, register it in MLflow, and move the
``champion`` alias only if it beats the current champion."""

from __future__ import annotations

import json
import time
from typing import Any

from kubenas import context as contexts
from kubenas import history
from kubenas.context import PROFILE, Context, say
from kubenas.core import Fidelity, epoch_hook
from kubenas.failpoints import failpoint
from kubenas.rounds import rounds
from kubenas.steps.summary import leaderboard, report_winner

LATENCY_REPS, LATENCY_WARMUP = 100, 20  # the exported model's latency: a median of many passes after a warm-up


def export_winner(config_json: str, parent_run_id: str) -> dict[str, Any]:
    """Retrain the best candidate at the export fidelity, test it once, register it in MLflow and move the
    ``champion`` alias only if it beats the current champion. Returns a summary with the leaderboard."""
    ctx = contexts.context(config_json)
    cfg, store, tracker = ctx.cfg, ctx.store, ctx.tracker
    ctx.lease.renew(parent_run_id)
    committed = store.read_committed()
    rows = committed.rows
    scored = history.ranked(rows, cfg.objective.metric, cfg.objective.mode)  # the top rung first, then the best
    pick, front = rounds(ctx).winner(committed.state, rows) if committed.last >= 0 else (None, None)
    if pick is None:
        tracker.finish(parent_run_id, ok=False)
        why = (
            "no successful candidate satisfies the constraints"
            if scored and front is not None
            else "no successful candidate"
        )
        raise RuntimeError(f"search {cfg.name!r}: {why} to export")
    winner = next(r for r in scored if r["id"] == pick["id"])
    data = ctx.full_data
    if not data.has_test:
        raise RuntimeError(f"dataset {cfg.dataset.name!r} has no test split; the export evaluates on it once")
    dropped = ctx.registry.discard_incomplete(cfg.model_name, cfg.name, parent_run_id)
    if dropped:
        say(
            f"export: deleted version(s) {', '.join(dropped)} of {cfg.model_name}, registered by an export of this "
            "search that did not complete"
        )
    ctx.pin_threads(alone=True)
    retrained = _retrain(ctx, winner, data)
    summary = _register(ctx, winner, retrained, data, parent_run_id)
    if front is not None:
        summary["front"] = [{"candidate_id": f["id"], **f["objectives"]} for f in front]
        summary["pick"] = cfg.export.pick
    summary["confusion"] = retrained["confusion"]
    summary["classes"] = data.class_names()
    summary["class_counts"] = data.class_counts()
    summary["leaderboard"] = leaderboard(cfg, scored, summary)
    summary["report"] = report_winner(ctx, rows, committed.state, summary, winner)
    tracker.finish(parent_run_id)
    store.put_json("export.json", {k: v for k, v in summary.items() if k != "report"})
    ctx.lease.release(parent_run_id)  # the run is complete: the next one may start
    metric = summary["retrained_metric"]
    say(
        f"export: {winner['genotype']} {metric}={summary[metric]:.4f} test_acc={summary['test_acc']:.4f}; "
        f"registered {summary['model_name']} v{summary['version']} as {summary['alias']}"
    )
    return summary


def _retrain(ctx: Context, winner: dict[str, Any], data) -> dict[str, Any]:
    """Train the winner's architecture from scratch with every export seed on train+val; keep the best on the
    objective (on ``val_acc`` when training does not report it, e.g. a proxy's ``zc_score``) and test each once."""
    import torch

    from kubenas.estimators.training import eval_batches

    cfg = ctx.cfg
    estimator = ctx.estimator(train=True)
    fidelity = Fidelity(epochs=cfg.export.epochs)
    seeds = cfg.export.seeds
    say(
        f"export: retraining {winner['id']} for {cfg.export.epochs} epoch(s) with seed(s) {seeds}, recipe "
        f"{estimator.recipe.describe()}"
    )
    trained = []
    start, cpu = time.perf_counter(), time.process_time()
    for i, seed in enumerate(seeds):

        def progress(epoch: int, epochs: int, values: dict[str, float], seed=seed, i=i) -> None:
            spent = time.perf_counter() - start
            left = spent / (i * epochs + epoch) * ((len(seeds) - i) * epochs - epoch)
            say(
                f"export: seed {seed} epoch {epoch}/{epochs}: train_loss {values['train_loss']:.4f}, val_acc "
                f"{values['val_acc']:.4f} ({spent:.0f} s, about {left:.0f} s left)"
            )

        with epoch_hook(progress):
            model, m = estimator.fit(winner["arch"], ctx.space, data.without_test(), fidelity, seed)
        _, test_acc = estimator.score(model, eval_batches(data, "test"))
        trained.append((seed, model, m, test_acc))
    metric, mode = (
        (cfg.objective.metric, cfg.objective.mode) if cfg.objective.metric in trained[0][2] else ("val_acc", "max")
    )
    seed, model, m, test_acc = max(trained, key=lambda t: history.sign(mode) * t[2][metric])
    tests = [t[3] for t in trained]
    seconds = time.perf_counter() - start
    PROFILE["train_cpu"] += time.process_time() - cpu
    PROFILE["train_wall"] += seconds
    model = model.cpu().eval()
    # the model card's latency: measured again on the CPU model as registered, longer than during the search
    x1 = torch.zeros(1, *data.input_shape)
    latency = estimator.latency_ms(model, x1, reps=LATENCY_REPS, warmup=LATENCY_WARMUP)
    return {
        "seed": seed,
        "model": model,
        "metrics": m,
        "metric": metric,
        "mode": mode,
        "test_acc": test_acc,
        "tests": tests,
        "seconds": seconds,
        "latency": latency,
        "confusion": estimator.confusion(model, eval_batches(data, "test"), None, data.num_classes),
    }


def _register(
    ctx: Context, winner: dict[str, Any], retrained: dict[str, Any], data, parent_run_id: str
) -> dict[str, Any]:
    """Register the retrained model with its card, promote it if it beats the champion, keep its weights in the
    store; returns the export's summary."""
    import torch

    from kubenas.estimators.training import latency_protocol

    cfg, store, tracker, space = ctx.cfg, ctx.store, ctx.tracker, ctx.space
    registry = ctx.registry
    m, metric, tests = retrained["metrics"], retrained["metric"], retrained["tests"]
    name, arch = cfg.model_name, winner["arch"]
    params = {
        "candidate_id": winner["id"],
        "arch_id": winner["arch_id"],
        "genotype": winner["genotype"],
        "export_epochs": cfg.export.epochs,
        "export_seeds": json.dumps(cfg.export.seeds),
        "chosen_seed": retrained["seed"],
        "space": cfg.space.name,
        "dataset": cfg.dataset.name,
        "search": cfg.name,
        "input_shape": json.dumps(list(data.input_shape)),
        "num_classes": data.num_classes,
        "latency": latency_protocol(LATENCY_REPS, LATENCY_WARMUP),
        "data_split": json.dumps(data.splits()),
        "classes": json.dumps(data.class_names()),
        **({"preprocess": json.dumps(data.preprocess.to_dict())} if data.preprocess else {}),
        **cfg.export_recipe().params(),
    }
    metrics = {
        metric: float(m[metric]),
        "test_acc": retrained["test_acc"],
        "test_acc_mean": sum(tests) / len(tests),
        "test_acc_min": min(tests),
        "params": m["params"],
        "macs": m["macs"],
        "latency_ms": retrained["latency"],
        "retrain_seconds": retrained["seconds"],
    }
    failpoint("export-before-registration")
    registered = registry.register_model(
        parent_run_id,
        cfg,
        retrained["model"],
        name=name,
        params=params,
        metrics=metrics,
        files={
            "arch.json": arch,
            "space.json": space.spec(),
            "config.json": cfg.model_dump(mode="json"),
            "class_counts.json": data.class_counts(),
            **({"preprocess.json": data.preprocess.to_dict()} if data.preprocess else {}),
        },
        served={
            "arch": arch,
            "space": space.spec(),
            "input_shape": data.input_shape,
            "num_classes": data.num_classes,
            "preprocess": data.preprocess,
        },
        input_example=_example(data),
        # the served model's code imports kubenas: serve it where kubenas is installed (the component image)
        pip_requirements=[f"torch=={torch.__version__.split('+')[0]}", "pillow"],
    )
    tracker.log_dataset(registered["run_id"], data, cfg, "evaluation")  # trained on train+val, tested on test
    tracker.log_dataset(parent_run_id, data, cfg, "search")
    failpoint("export-before-alias")
    alias = registry.promote(name, registered["version"], metric, float(m[metric]), retrained["mode"])
    registry.mark_complete(name, registered["version"])  # right after the alias: a version that holds one is kept
    failpoint("export-after-alias")
    store.put_bytes(f"weights/{winner['id']}.pt", registered["weights"])
    store.put_json(f"weights/{winner['id']}.json", {"arch": arch, "space": space.spec()})
    return {
        "candidate_id": winner["id"],
        "genotype": winner["genotype"],
        "arch": arch,
        metric: float(m[metric]),
        "retrained_metric": metric,
        "test_acc": retrained["test_acc"],
        "params": m["params"],
        "macs": m["macs"],
        "model_name": name,
        "version": registered["version"],
        "alias": alias,
        "model_uri": f"models:/{name}@champion",
        "mlflow_uri": tracker.uri,
        "parent_run_id": parent_run_id,
        "export_run_id": registered["run_id"],
        "retrain_seconds": retrained["seconds"],
    }


def _example(data):
    """Two test inputs: as PNG files for an image model, else as an array."""
    from kubenas.estimators.training import eval_batches

    x = next(iter(eval_batches(data, "test", batch_size=2)))[0]
    return data.preprocess.to_png(x) if data.preprocess else x.numpy()


def winner_metrics(summary: dict[str, Any]) -> dict[str, float]:
    """The export's scalars for the Kubeflow UI's Metrics view."""
    keys = (summary.get("retrained_metric"), "test_acc", "params", "macs", "retrain_seconds")
    return {k: float(summary[k]) for k in keys if k in summary and isinstance(summary[k], (int, float))}
