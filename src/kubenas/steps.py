"""The pipeline's steps: one function per KFP component, each run in its own process (or pod).

Every step reads what it needs from the S3 store and writes what it produces back, so any step can run on
any node and a re-run never duplicates work: candidate ids are deterministic and each round is committed
only by its history file. Metrics go to MLflow. Small values (ids, the round index, the config) travel as
KFP parameters; everything else stays in S3.
"""

from __future__ import annotations

import io
import json
import math
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from kubenas import oneshot_steps
from kubenas.config import ConfigError, SearchConfig, parse_config
from kubenas.data import load_dataset
from kubenas.estimators.training import Fidelity, TrainingEstimator
from kubenas.search import history_row
from kubenas.spaces import make_space
from kubenas.store import SearchStore
from kubenas.strategies import Candidate, Result, Strategy, make_strategy
from kubenas.strategies.base import top
from kubenas.tracking import SCALAR_METRICS, Tracker

# Config sections that define what a search is; a search resumed under the same name must keep them.
IDENTITY = ("dataset", "space", "strategy", "oneshot", "objective", "fidelity", "seed")


def _say(message: str) -> None:
    print(f"[kubenas] {message}", flush=True)


def _strategy(cfg: SearchConfig, *, prefilter: bool = False) -> Strategy:
    """The configured strategy; with ``prefilter`` (where it asks) and ``strategy.prefilter`` set, a zero-cost
    proxy on the training split picks the best of each pool of proposals."""
    space = make_space(cfg.space.name, **cfg.space.options)
    strategy = make_strategy(cfg.strategy.name, space, seed=cfg.seed, metric=cfg.objective.metric,
                             mode=cfg.objective.mode, **cfg.strategy.options)
    pf = cfg.strategy.prefilter
    if prefilter and pf is not None:
        from kubenas.estimators.zero_cost import proxy_scorer

        strategy.set_prefilter(proxy_scorer(pf.proxy, space, _search_data(cfg), cfg.seed, pf.batch_size), pf.pool)
    return strategy


def _search_data(cfg: SearchConfig):
    """The configured dataset without its test split: what a search may look at."""
    return load_dataset(cfg.dataset.name, **cfg.dataset.options).without_test()


def _estimator(cfg: SearchConfig, *, train: bool = False):
    """The search's estimator: table lookups when ``estimator.table`` is set, a zero-cost proxy when
    ``estimator.proxy`` is, else training; training or lookups inherit weights (through the store) or stop
    early when ``estimator.inherit`` or ``early_stop`` say so. With ``train`` (the export, which always
    retrains the winner): plain training."""
    options = cfg.estimator.model_dump()
    table, proxy, proxy_batch = options.pop("table"), options.pop("proxy"), options.pop("proxy_batch_size")
    early_stop, inherit = options.pop("early_stop"), options.pop("inherit")
    if train:
        return TrainingEstimator(**options)
    if proxy is not None:
        from kubenas.estimators.zero_cost import ZeroCostEstimator

        return ZeroCostEstimator(proxy, batch_size=proxy_batch)
    if table is not None:
        from kubenas.estimators.tabular import TabularEstimator

        estimator = TabularEstimator(table)
    else:
        estimator = TrainingEstimator(**options)
    if inherit is not None:
        from kubenas.estimators.inheritance import InheritingEstimator

        estimator = InheritingEstimator(estimator, SearchStore.from_config(cfg), inherit["epochs"])
    if early_stop is not None:
        from kubenas.estimators.learning_curve import EarlyTermination, EarlyTerminationEstimator

        estimator = EarlyTerminationEstimator(estimator, EarlyTermination(**early_stop))
    return estimator


def with_overrides(config_json: str, rounds: int | None = None, candidates_per_round: int | None = None) -> SearchConfig:
    """The config with the pipeline form's overrides applied, validated again."""
    data = json.loads(config_json)
    budget = data.setdefault("budget", {})
    if rounds is not None and rounds > 0:
        budget["rounds"] = rounds
    if candidates_per_round is not None and candidates_per_round > 0:
        budget["candidates_per_round"] = candidates_per_round
    return parse_config(data, "pipeline config")


# ---------------------------------------------------------------------- init
def init_search(config_json: str, rounds: int | None = None, candidates_per_round: int | None = None) -> dict[str, Any]:
    """Validate, check S3 and MLflow, record (or resume) the search, and open the MLflow parent run."""
    cfg = with_overrides(config_json, rounds, candidates_per_round)
    store, tracker = SearchStore.from_config(cfg), Tracker.from_config(cfg)
    store.check()
    tracker.check()
    stored = store.read_config()
    if stored is not None:
        stored = _normalised(stored)
        changed = [k for k in IDENTITY if stored.get(k) != cfg.model_dump(mode="json")[k]]
        if changed:
            raise ConfigError(f"search {cfg.name!r} already exists in {store.uri} with different {', '.join(changed)}; "
                              f"keep them, or give the search a new name")
    store.write_config(cfg.model_dump(mode="json"))
    start_round = store.last_committed_round() + 1
    parent = tracker.start_parent(cfg)
    what = f"resuming after round {start_round - 1}" if start_round else "new search"
    _say(f"search {cfg.name!r} ({what}) in {store.uri}; MLflow run {parent}")
    return {"config_json": cfg.to_json(), "parent_run_id": parent, "start_round": start_round}


def _normalised(stored: dict[str, Any]) -> dict[str, Any]:
    """A stored config as this version writes it: fields added since it was stored take their defaults, so a
    search made by an older kubenas resumes. A config this version rejects is compared as it is."""
    try:
        return parse_config(stored, "stored config").model_dump(mode="json")
    except ConfigError:
        return stored


# ---------------------------------------------------------------------- sample
def sample_architectures(config_json: str, run_round: int, start_round: int, parent_run_id: str) -> list[str]:
    """Ask the strategy for the open round's candidates and store them. Returns ``"<round>/<id>"`` items.

    The open round is the one after the last committed round; a re-run asks the same candidates again."""
    cfg = parse_config(config_json)
    store = SearchStore.from_config(cfg)
    round_index = store.last_committed_round() + 1
    if cfg.oneshot is not None:
        return oneshot_steps.sample(cfg, store, round_index, start_round, parent_run_id)
    strategy = _strategy(cfg, prefilter=True)
    if round_index > 0:
        strategy.load_state_dict(store.read_state(round_index - 1))
    n = cfg.budget.candidates_per_round
    if cfg.budget.max_evals is not None:
        n = min(n, cfg.budget.max_evals - _evals_since(store, start_round))
    candidates = strategy.ask(n) if n > 0 else []
    folder = store.round_dir(round_index)
    store.put_json(f"{folder}/candidates.json", {"parent_run_id": parent_run_id,
                                                  "candidates": [c.to_dict() for c in candidates]})
    store.put_json(f"{folder}/asked_state.json", strategy.state_dict())
    _say(f"round {round_index} (#{run_round + 1} of this run): {len(candidates)} candidate(s)")
    return [f"{round_index:05d}/{c.id}" for c in candidates]


def _evals_since(store: SearchStore, start_round: int) -> int:
    history = store.read_history()
    return sum(1 for r in history.column("round").to_pylist() if r >= start_round)


# ---------------------------------------------------------------------- train
def train_candidate(config_json: str, item: str) -> dict[str, Any]:
    """Train one candidate (``item`` is ``"<round>/<candidate id>"``) with the configured estimator and fidelity;
    store and track its result.

    Everything else it needs (the candidate, the MLflow parent run) comes from the round's record in S3, so
    inside a ParallelFor the task takes only pipeline parameters and the loop item."""
    round_text, _, candidate_id = item.partition("/")
    round_index = int(round_text)
    cfg = parse_config(config_json)
    store = SearchStore.from_config(cfg)
    if cfg.oneshot is not None and candidate_id == oneshot_steps.SUPERNET:
        _pin_threads(cfg)
        return oneshot_steps.train(cfg, store, round_index)
    folder = store.round_dir(round_index)
    asked = store.get_json(f"{folder}/candidates.json") or {"candidates": []}
    parent_run_id = asked["parent_run_id"]
    candidates = {c["id"]: c for c in asked["candidates"]}
    if candidate_id not in candidates:
        raise KeyError(f"candidate {candidate_id!r} is not in round {round_index} of {store.uri}")
    cand = Candidate.from_dict(candidates[candidate_id])
    _pin_threads(cfg)
    space = make_space(cfg.space.name, **cfg.space.options)
    fidelity = cfg.fidelity.to_fidelity().override(cand.fidelity)  # a scheduler sets each candidate's rung
    data = _search_data(cfg)
    estimator, context = _estimator(cfg), {}
    if cfg.estimator.early_stop is not None:  # the rule learns from the committed rounds' completed curves
        estimator.add_history(c for c in store.read_history().column("val_acc_curve").to_pylist() if c)
    if getattr(estimator, "inherits", False):
        context["parent_id"] = cand.parent_id
    result = estimator.evaluate(cand.arch, space, data, fidelity, seed=cfg.seed, candidate_id=cand.id, **context)
    row = history_row(space, cand, result, fidelity)
    store.put_json(f"{folder}/results/{cand.id}.json", row)
    Tracker.from_config(cfg).log_candidate(parent_run_id, row, round_index, cfg)
    value = result.metrics.get(cfg.objective.metric)
    shown = f"{cfg.objective.metric}={value:.4f}" if result.ok and isinstance(value, (int, float)) else f"FAILED: {result.error}"
    _say(f"round {round_index} candidate {cand.id}: {shown} ({result.cost:.1f} s) {row['genotype']}")
    return row


def _pin_threads(cfg: SearchConfig) -> None:
    """Use this task's share of the CPU: torch would take every core it sees, and parallel training tasks on
    one machine (kfp.local) or node would then fight over them."""
    import torch

    cpu = cfg.resources.cpu
    if cpu:
        share = float(cpu[:-1]) / 1000 if cpu.endswith("m") else float(cpu)
    else:
        share = (os.cpu_count() or 1) / cfg.budget.parallelism
    torch.set_num_threads(max(1, int(share)))


def scalar_metrics(row: dict[str, Any]) -> dict[str, float]:
    m = row.get("metrics") or {}
    out = {k: float(m[k]) for k in SCALAR_METRICS if isinstance(m.get(k), (int, float)) and math.isfinite(m[k])}
    out["cost_seconds"] = float(row.get("cost") or 0.0)
    return out


# ---------------------------------------------------------------------- update
def update_strategy(config_json: str, run_round: int, start_round: int, parent_run_id: str) -> str:
    """Tell the strategy the open round's results, commit the round, and decide ``continue`` or ``stop``."""
    cfg = parse_config(config_json)
    store = SearchStore.from_config(cfg)
    round_index = store.last_committed_round() + 1
    if cfg.oneshot is not None:
        rows, state = oneshot_steps.update(cfg, store, round_index, parent_run_id)
        store.commit_round(round_index, rows, state)
        best = oneshot_steps.winner(store)
    else:
        rows, strategy = _tell_round(cfg, store, round_index)
        store.commit_round(round_index, rows, strategy.state_dict())
        best = top(strategy.best())

    history = store.read_history()
    values = {"evaluations": float(history.num_rows)}
    if best is not None:
        values[f"best_{cfg.objective.metric}"] = best["value"]
    Tracker.from_config(cfg).log_round(parent_run_id, round_index, values)

    reason = _stop_reason(cfg, store, history, rows, run_round, start_round)
    best_text = f"{best['value']:.4f}" if best else "none yet"
    _say(f"round {round_index} committed: {len(rows)} row(s), best {cfg.objective.metric} {best_text}"
         + (f"; stopping: {reason}" if reason else ""))
    return "stop" if reason else "continue"


def _tell_round(cfg: SearchConfig, store: SearchStore, round_index: int) -> tuple[list[dict[str, Any]], Strategy]:
    """The round's result rows (a failed row where a training task left none), told to the strategy."""
    folder = store.round_dir(round_index)
    strategy = _strategy(cfg)
    strategy.load_state_dict(store.get_json(f"{folder}/asked_state.json"))
    space, fidelity = strategy.space, cfg.fidelity.to_fidelity()
    rows = []
    for c in (store.get_json(f"{folder}/candidates.json") or {"candidates": []})["candidates"]:
        row = store.get_json(f"{folder}/results/{c['id']}.json")
        if row is None:  # the training task died without a result (OOM-killed pod, node loss, ...)
            cand = Candidate.from_dict(c)
            row = history_row(space, cand, Result(cand.id, "failed", error="no result: the training task failed"),
                              fidelity.override(cand.fidelity))
        rows.append(row)
    strategy.tell([Result(r["id"], r["status"], r["metrics"], r["cost"], r["error"]) for r in rows])
    return rows, strategy


def _stop_reason(cfg, store, history, rows, run_round, start_round) -> str | None:
    if not rows:
        return "the space has no unseen architecture left"
    if run_round + 1 >= cfg.budget.rounds:
        return f"all {cfg.budget.rounds} round(s) of this run are done"
    rounds = history.column("round").to_pylist()
    if cfg.budget.max_evals is not None and sum(r >= start_round for r in rounds) >= cfg.budget.max_evals:
        return f"max_evals ({cfg.budget.max_evals}) reached"
    if cfg.budget.patience is not None:
        metric, sign = cfg.objective.metric, (1 if cfg.objective.mode == "max" else -1)
        best_by_round: dict[int, float] = {}
        for r, status, metrics in zip(rounds, history.column("status").to_pylist(), history.column("metrics").to_pylist()):
            v = json.loads(metrics).get(metric)
            if status == "ok" and isinstance(v, (int, float)):
                best_by_round[r] = max(best_by_round.get(r, -math.inf), sign * v)
        ordered = [best_by_round.get(r, -math.inf) for r in sorted(set(rounds))]
        incumbent = [max(ordered[: i + 1]) for i in range(len(ordered))]
        stale = 0
        for i in range(len(incumbent) - 1, 0, -1):
            if incumbent[i] > incumbent[i - 1]:
                break
            stale += 1
        if stale >= cfg.budget.patience:
            return f"no improvement for {stale} round(s) (patience {cfg.budget.patience})"
    return None


# ---------------------------------------------------------------------- export
def export_winner(config_json: str, parent_run_id: str) -> dict[str, Any]:
    """Retrain the best candidate at the export fidelity, test it once, register it in MLflow and move the
    ``champion`` alias only if it beats the current champion. Returns a summary with the leaderboard."""
    import mlflow
    import torch

    cfg = parse_config(config_json)
    store, tracker = SearchStore.from_config(cfg), Tracker.from_config(cfg)
    metric, mode = cfg.objective.metric, cfg.objective.mode
    rows = [{**r, "metrics": json.loads(r["metrics"])} for r in store.read_history().to_pylist() if r["status"] == "ok"]
    scored = [r for r in rows if isinstance(r["metrics"].get(metric), (int, float))]
    # Rows at the highest fidelity first (a multi-fidelity scheduler's top rung), then by the objective.
    scored.sort(key=lambda r: (r["epochs"] or 0, r["metrics"][metric] if mode == "max" else -r["metrics"][metric]),
                reverse=True)
    pick, front = _winner(cfg, store)
    if pick is None:
        tracker.finish(parent_run_id, ok=False)
        why = ("no successful candidate satisfies the constraints" if scored and front is not None
               else "no successful candidate")
        raise RuntimeError(f"search {cfg.name!r}: {why} to export")
    winner = next(r for r in scored if r["id"] == pick["id"])
    arch = json.loads(winner["arch"])
    space = make_space(cfg.space.name, **cfg.space.options)
    data = load_dataset(cfg.dataset.name, **cfg.dataset.options)
    if not data.has_test:
        raise RuntimeError(f"dataset {cfg.dataset.name!r} has no test split; the export evaluates on it once")
    estimator = _estimator(cfg, train=True)
    fidelity = Fidelity(epochs=cfg.export.epochs)
    _say(f"export: retraining {winner['id']} for {cfg.export.epochs} epoch(s) with seed(s) {cfg.export.seeds}")

    trained = []
    start = time.perf_counter()
    for seed in cfg.export.seeds:
        model, m = estimator.fit(arch, space, data.without_test(), fidelity, seed)
        _, test_acc = estimator.score(model, data.x_test, data.y_test)
        trained.append((seed, model, m, test_acc))
    # the retrained model is judged on the objective when training reports it, else (a proxy's zc_score) on val_acc
    rmetric, rmode = (metric, mode) if metric in trained[0][2] else ("val_acc", "max")
    seed, model, m, test_acc = max(trained, key=lambda t: t[2][rmetric] if rmode == "max" else -t[2][rmetric])
    tests = [t[3] for t in trained]
    retrain_seconds = time.perf_counter() - start
    model = model.cpu().eval()
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    weights = buf.getvalue()  # the same bytes go to MLflow and to the store

    mlflow.set_tracking_uri(tracker.uri)
    name = cfg.model_name
    run = tracker.client.create_run(tracker.parent_experiment(parent_run_id), run_name=f"{cfg.name}-export",
                                    tags={"mlflow.parentRunId": parent_run_id, "kubenas.kind": "export",
                                          "kubenas.search": cfg.name})
    with mlflow.start_run(run_id=run.info.run_id):
        mlflow.log_params({"candidate_id": winner["id"], "arch_id": winner["arch_id"], "genotype": winner["genotype"][:6000],
                           "export_epochs": cfg.export.epochs, "export_seeds": json.dumps(cfg.export.seeds),
                           "chosen_seed": seed, "space": cfg.space.name, "dataset": cfg.dataset.name,
                           "search": cfg.name, "input_shape": json.dumps(list(data.input_shape)),
                           "num_classes": data.num_classes, "data_split": json.dumps(
                               {"train": len(data.y_train), "val": len(data.y_val), "test": len(data.y_test)})})
        mlflow.log_metrics({rmetric: float(m[rmetric]), "test_acc": test_acc,
                            "test_acc_mean": sum(tests) / len(tests), "test_acc_min": min(tests),
                            "params": m["params"], "macs": m["macs"], "latency_ms": m["latency_ms"],
                            "retrain_seconds": retrain_seconds})
        mlflow.log_dict(arch, "arch.json")
        mlflow.log_dict(space.spec(), "space.json")
        mlflow.log_dict(cfg.model_dump(mode="json"), "config.json")  # the dataset and its split, for `kubenas pull`
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "state_dict.pt").write_bytes(weights)
            mlflow.log_artifact(str(Path(tmp) / "state_dict.pt"))
        info = mlflow.pytorch.log_model(model, name="model", input_example=data.x_test[:2].numpy(),
                                        registered_model_name=name)
    version = str(info.registered_model_version)
    alias = tracker.promote(name, version, rmetric, float(m[rmetric]), rmode)
    store.put_bytes(f"weights/{winner['id']}.pt", weights)
    store.put_json(f"weights/{winner['id']}.json", {"arch": arch, "space": space.spec()})
    tracker.finish(parent_run_id)

    summary = {"candidate_id": winner["id"], "genotype": winner["genotype"], "arch": arch,
               rmetric: float(m[rmetric]), "retrained_metric": rmetric, "test_acc": test_acc, "params": m["params"], "macs": m["macs"],
               "model_name": name, "version": version, "alias": alias, "model_uri": f"models:/{name}@champion",
               "mlflow_uri": tracker.uri, "parent_run_id": parent_run_id, "export_run_id": run.info.run_id,
               "retrain_seconds": retrain_seconds}
    if front is not None:
        summary["front"] = [{"candidate_id": m["id"], **m["objectives"]} for m in front]
        summary["pick"] = cfg.export.pick
    summary["leaderboard"] = leaderboard(cfg, scored, summary)
    store.put_json("export.json", summary)
    _say(f"export: {winner['genotype']} {rmetric}={m[rmetric]:.4f} test_acc={test_acc:.4f}; registered {name} "
         f"v{version} as {alias}")
    return summary


def _winner(cfg: SearchConfig, store: SearchStore) -> tuple[dict[str, Any] | None, list[dict[str, Any]] | None]:
    """The strategy's own choice from the last committed state, and its Pareto front (None when it has one
    objective): a scheduler's best at its highest rung, a multi-objective strategy's pick under the constraints."""
    last = store.last_committed_round()
    if last < 0:
        return None, None
    if cfg.oneshot is not None:
        return oneshot_steps.winner(store), None
    strategy = _strategy(cfg)
    strategy.load_state_dict(store.read_state(last))
    if hasattr(strategy, "pick"):
        return strategy.pick(cfg.export.pick), strategy.best()
    return strategy.best(), None


def leaderboard(cfg: SearchConfig, scored: list[dict[str, Any]], summary: dict[str, Any], top: int = 10) -> str:
    """The Markdown leaderboard the Kubeflow UI renders; ``scored`` rows carry parsed ``metrics`` dicts."""
    metric = cfg.objective.metric
    lines = [f"# kubenas search `{cfg.name}`", "",
             f"Winner `{summary['candidate_id']}` retrained for {cfg.export.epochs} epoch(s): "
             f"{summary['retrained_metric']} **{summary[summary['retrained_metric']]:.4f}**, test accuracy **{summary['test_acc']:.4f}**, "
             f"registered as `{summary['model_name']}` version {summary['version']} (alias `{summary['alias']}`).",
             "", f"Top {min(top, len(scored))} of {len(scored)} successful evaluations (most epochs first, then "
             f"{cfg.objective.mode} {metric}):", "",
             f"| # | candidate | round | epochs | {metric} | params | MACs | cost (s) | genotype |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for i, r in enumerate(scored[:top], start=1):
        m = r["metrics"]
        lines.append(f"| {i} | `{r['id']}` | {r['round']} | {r['epochs']} | {m[metric]:.4f} | {m.get('params', '')} | "
                     f"{m.get('macs', '')} | {r['cost']:.1f} | `{_cell(r['genotype'])}` |")
    if summary.get("front") is not None:
        names = [k for k in summary["front"][0] if k != "candidate_id"] if summary["front"] else []
        lines += ["", f"Pareto front: {len(summary['front'])} feasible candidate(s), best first on {names[0] if names else metric}; "
                  f"the export picked the `{summary['pick']}` one (marked).", "",
                  "| candidate | " + " | ".join(names) + " |", "| --- |" + " --- |" * len(names)]
        for m in summary["front"]:
            mark = " **(exported)**" if m["candidate_id"] == summary["candidate_id"] else ""
            lines.append(f"| `{m['candidate_id']}`{mark} | " + " | ".join(f"{m[k]:.6g}" for k in names) + " |")
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    """Escape the pipes of a genotype so that a Markdown table keeps its columns."""
    return text.replace("|", "\\|")
