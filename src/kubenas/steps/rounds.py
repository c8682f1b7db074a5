"""A round's steps: *ask* its candidates (or supernet job), *train* one worker's share, *tell* the results and
commit the round. Each runs in its own process; the search's :class:`~kubenas.rounds.Rounds` does the method's
part."""

from __future__ import annotations

import uuid
from typing import Any

from kubenas import context as contexts
from kubenas import history
from kubenas.config import SearchConfig
from kubenas.context import Context, say
from kubenas.core import is_finite
from kubenas.failpoints import failpoint
from kubenas.rounds import rounds
from kubenas.steps.summary import report_round
from kubenas.tracking import SCALAR_METRICS


def ask_round(config_json: str, run_round: int, start_round: int, parent_run_id: str) -> list[str]:
    """Ask for the open round and store it. Returns one ``"<round>/<worker>"`` item per worker.

    The open round is the one after the last committed round; a re-run asks the same candidates again."""
    ctx = contexts.context(config_json)
    ctx.lease.renew(parent_run_id)
    committed = ctx.store.read_committed()
    round_index = committed.last + 1
    asked = rounds(ctx).ask(round_index, committed, start_round)
    failpoint("sample")
    ctx.store.write_asked(round_index, {**asked, "parent_run_id": parent_run_id, "attempt": uuid.uuid4().hex[:12]})
    if asked["candidates"]:
        say(
            f"round {round_index} (#{run_round + 1} of this run): {len(asked['candidates'])} candidate(s) for "
            f"{asked['workers']} worker(s)"
        )
    elif not asked["workers"]:
        say(f"round {round_index} (#{run_round + 1} of this run): no candidate left to ask")
    return [f"{round_index:05d}/{w}" for w in range(asked["workers"])]


def train_round(config_json: str, item: str) -> list[dict[str, Any]]:
    """One worker (``item`` is ``"<round>/<worker>"``): its share of the round, each row written as soon as it
    exists. Returns the worker's rows."""
    round_text, _, worker_text = item.partition("/")
    round_index, worker = int(round_text), int(worker_text)
    ctx = contexts.context(config_json)
    asked = ctx.store.read_asked(round_index)
    if asked is None:
        raise RuntimeError(f"round {round_index} of {ctx.store.uri} has no asked candidates: run its sample step first")
    ctx.pin_threads()
    return rounds(ctx).train(round_index, worker, asked)


def scalar_metrics(rows: list[dict[str, Any]]) -> dict[str, float]:
    """The worker's results as the Kubeflow UI's Metrics table: per candidate, its objective-related scalars."""
    out: dict[str, float] = {}
    for row in rows:
        metrics = row.get("metrics") or {}
        for k in SCALAR_METRICS:
            if is_finite(metrics.get(k)):
                out[f"{row['id']}/{k}"] = float(metrics[k])
        out[f"{row['id']}/cost_seconds"] = float(row.get("cost") or 0.0)
    return out


def tell_round(
    config_json: str, run_round: int, start_round: int, parent_run_id: str, report_path: str | None = None
) -> str:
    """Tell the open round's results, commit the round, and decide ``continue`` or ``stop``. Then draw the search
    so far (:func:`~kubenas.steps.summary.report_round`) into the MLflow parent run and, given ``report_path``,
    into the HTML page the Kubeflow UI shows."""
    ctx = contexts.context(config_json)
    cfg, store = ctx.cfg, ctx.store
    committed = store.read_committed()
    round_index = committed.last + 1
    asked = store.read_asked(round_index)
    if asked is None and committed.last >= 0:  # sample always writes the round it opens: this one is committed
        decision = _decided(ctx, committed, run_round, start_round)  # a retry after this step committed its round
        report_round(ctx, committed.rows, committed.state, parent_run_id, report_path)
        return decision
    asked = asked or {"candidates": [], "workers": 0, "state": None}
    past = committed.rows
    rows, state, best = rounds(ctx).tell(round_index, asked, store.read_all_results(round_index), past)
    ctx.lease.renew(parent_run_id)  # a run whose lease was taken over must not commit
    store.commit_round(round_index, rows, state, committed)

    values = {"evaluations": float(len(past) + len(rows))}
    if best is not None:
        values[f"best_{cfg.objective.metric}"] = best["value"]
    ctx.tracker.log_round(parent_run_id, round_index, values)

    reason = stop_reason(cfg, past + rows, rows, run_round, start_round)
    best_text = f"{best['value']:.4f}" if best else "none yet"
    say(
        f"round {round_index} committed: {len(rows)} row(s), best {cfg.objective.metric} {best_text}"
        + (f"; stopping: {reason}" if reason else "")
    )
    report_round(ctx, past + rows, state, parent_run_id, report_path)
    return "stop" if reason else "continue"


def _decided(ctx: Context, committed, run_round: int, start_round: int) -> str:
    """The decision of a tell whose round is already committed (the step is retried after its commit, as KFP
    retries a pod): the same answer from the committed rows, nothing written again."""
    rows = [r for r in committed.rows if r["round"] == committed.last]
    reason = stop_reason(ctx.cfg, committed.rows, rows, run_round, start_round)
    say(
        f"round {committed.last} was already committed (a retried update): "
        + (f"stopping: {reason}" if reason else "continuing")
    )
    return "stop" if reason else "continue"


def stop_reason(cfg: SearchConfig, rows: list[dict[str, Any]], latest, run_round: int, start_round: int) -> str | None:
    """Why the search stops after this round (``rows``: every committed row, this round's ``latest`` included),
    or None."""
    if not latest:
        return "the space has no unseen architecture left"
    if run_round + 1 >= cfg.budget.rounds:
        return f"all {cfg.budget.rounds} round(s) of this run are done"
    if cfg.budget.max_evals is not None and history.since(rows, start_round) >= cfg.budget.max_evals:
        return f"max_evals ({cfg.budget.max_evals}) reached"
    failed = sum(1 for r in rows if r["status"] == "failed")
    if cfg.budget.max_failed is not None and failed >= cfg.budget.max_failed:
        return f"{failed} candidate(s) failed: max_failed ({cfg.budget.max_failed}) reached"
    metric, mode = cfg.objective.metric, cfg.objective.mode
    if cfg.budget.goal is not None:
        best = history.best_so_far([history.value(r, metric) for r in rows], mode)
        if best and best[-1] is not None and not history.better(cfg.budget.goal, best[-1], mode):
            return f"the goal is reached: {metric} {best[-1]:.4g} ({'>=' if mode == 'max' else '<='} {cfg.budget.goal})"
    if cfg.budget.patience is not None:
        best_by_round: dict[int, float | None] = {}
        for r in rows:
            v = history.value(r, metric)
            best = best_by_round.setdefault(r["round"], None)
            if v is not None and history.better(v, best, mode):
                best_by_round[r["round"]] = v
        incumbent = history.best_so_far([best_by_round[k] for k in sorted(best_by_round)], mode)
        stale = 0
        for i in range(len(incumbent) - 1, 0, -1):
            if incumbent[i] != incumbent[i - 1]:
                break
            stale += 1
        if stale >= cfg.budget.patience:
            return f"no improvement for {stale} round(s) (patience {cfg.budget.patience})"
    return None
