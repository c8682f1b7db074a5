"""The pipeline's steps: one function per KFP component, each run in its own process (or pod).

- *init* validates the config, checks S3 and MLflow, records (or resumes) the search, opens the MLflow parent run;
- *sample* asks the strategy for a round of candidates and splits them over at most ``parallelism`` workers;
- *train* is one worker: it trains candidates of the round one after another, in one process, so the
  imports, the dataset and (on a GPU node) the CUDA context are paid once for many candidates. Each result is
  written as soon as it exists, so a crash or a retried pod loses at most the candidate in progress;
- *update* tells the strategy the round's results, commits the round, and decides ``continue`` or ``stop``;
- *export* retrains the winner, tests it once and registers it in MLflow.

Every step reads what it needs from the store and writes what it produces back, so any step can run on any node
and a re-run never duplicates work: candidate ids are deterministic and each round is committed only by its
history file. Small values (the round, the worker, the config) travel as KFP parameters; everything else stays in
the store. Each process parses the config once (:func:`kubenas.context.context`) and builds the space, strategy,
dataset and estimator at most once. Importing this module costs no torch, MLflow or boto3: a sample or update step that does
not need them never loads them.

A search chooses its architectures with a strategy or, with ``oneshot:`` in the config, with a weight-sharing
supernet (:mod:`kubenas.oneshot_steps`); each step dispatches once, in :func:`method`.
"""

from __future__ import annotations

import json
import math
import os
import socket
import time
import uuid
from typing import Any

from kubenas.config import ConfigError, SearchConfig, parse_config
from kubenas.context import PROFILE, Context, context, end_promptly, say  # noqa: F401 - the components call these
from kubenas.failpoints import failpoint
from kubenas.core import Candidate, Fidelity, Result, epoch_hook, history_row, top
from kubenas.report import ranked
from kubenas.store import SearchStore, lease_info, result_rows
from kubenas.tracking import SCALAR_METRICS, Tracker

LATENCY_REPS, LATENCY_WARMUP = 100, 20  # the exported model's latency: a median of many passes after a warm-up

# Config sections that define what a search is; a search resumed under the same name must keep them.
IDENTITY = ("dataset", "space", "strategy", "oneshot", "objective", "fidelity", "seed")


def method(ctx: Context):
    """How the search chooses architectures: its strategy, or its one-shot supernet."""
    if ctx.cfg.oneshot is not None:
        from kubenas import oneshot_steps

        return oneshot_steps.OneShotRounds(ctx)
    return StrategyRounds(ctx)


# The run form's typed fields (besides rounds and candidates_per_round): form field -> where it goes in the config.
FORM = {"name": ("name",), "seed": ("seed",), "strategy": ("strategy", "name"), "epochs": ("fidelity", "epochs"),
        "data_fraction": ("fidelity", "data_fraction")}


def with_overrides(config_json: str, rounds: int | None = None, candidates_per_round: int | None = None,
                   **form: Any) -> SearchConfig:
    """The config with the pipeline form's values applied, validated again. ``rounds`` and
    ``candidates_per_round`` apply when positive; the typed fields of :data:`FORM` (name, seed, strategy, epochs,
    data_fraction) when given, taking precedence over ``config_json``. A new strategy starts without the old one's
    options."""
    data = json.loads(config_json)
    budget = data.setdefault("budget", {})
    if rounds is not None and rounds > 0:
        budget["rounds"] = rounds
    if candidates_per_round is not None and candidates_per_round > 0:
        budget["candidates_per_round"] = candidates_per_round
    unknown = set(form) - set(FORM)
    if unknown:
        raise TypeError(f"unknown form field(s): {sorted(unknown)}")
    for field, value in form.items():
        if value is None or value == "":
            continue
        *path, leaf = FORM[field]
        section = data
        for key in path:
            if not isinstance(section.get(key), dict):
                section[key] = {}
            section = section[key]
        if field == "strategy" and section.get("name") != value:
            section.pop("options", None)
        section[leaf] = value
    return parse_config(data, "pipeline config (config_json with the run form's values)")


def form_summary(cfg: SearchConfig, config_json: str) -> str:
    """The Markdown the init task shows: the search as it runs, and the form values that changed config_json."""
    given = json.loads(config_json)
    run = cfg.model_dump(mode="json")
    changed = []
    for field, path in {**FORM, "rounds": ("budget", "rounds"),
                        "candidates_per_round": ("budget", "candidates_per_round")}.items():
        before, after = given, run
        for key in path:
            before = before.get(key) if isinstance(before, dict) else None
            after = after.get(key) if isinstance(after, dict) else None
        if before != after:
            changed.append(f"`{field}`: {before!r} → {after!r}")
    lines = [f"# kubenas search `{cfg.name}`", "",
             f"Space `{cfg.space.name}`, {cfg.search_method}, dataset `{cfg.dataset.name}`, objective "
             f"{cfg.objective.metric} ({cfg.objective.mode}); {cfg.budget.rounds} round(s) of "
             f"{cfg.budget.candidates_per_round} candidate(s), {cfg.budget.parallelism} at a time; "
             f"{cfg.fidelity.epochs} epoch(s) on {cfg.fidelity.data_fraction:g} of the training split; seed {cfg.seed}.",
             "", "Changed by the run form: " + ("; ".join(changed) if changed else "nothing (the config as compiled)."),
             "", "```json", json.dumps(run, indent=1, sort_keys=True), "```"]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------- init
def init_search(config_json: str, rounds: int | None = None, candidates_per_round: int | None = None,
                job: str = "", **form: Any) -> dict[str, Any]:
    """Validate (with the run form's values, :func:`with_overrides`), check S3 and MLflow, take the search's lease
    for the pipeline run ``job`` (its KFP run id; this process when empty), record (or resume) the search, and
    open the MLflow parent run."""
    cfg = with_overrides(config_json, rounds, candidates_per_round, **form)
    store, tracker = SearchStore.from_config(cfg), Tracker.from_config(cfg)
    store.check()
    tracker.check()
    cfg.check_data_source()
    stored, current = store.read_config(), cfg.model_dump(mode="json")
    if stored is not None:
        stored = _normalised(stored)
        changed = [k for k in IDENTITY if stored.get(k) != current[k]]
        if changed:
            raise ConfigError(f"search {cfg.name!r} already exists in {store.uri} with different {', '.join(changed)}; "
                              f"keep them, or give the search a new name")
    holder = job or f"process-{socket.gethostname()}-{os.getpid()}"
    note = store.acquire_lease(holder, lease_info())  # before anything is written: one run at a time
    if note:
        say(f"search {cfg.name!r}: {note}")
    store.write_config(current)
    start_round = store.last_committed_round() + 1
    parent = tracker.start_parent(cfg)
    store.bind_lease(holder, parent)
    what = f"resuming after round {start_round - 1}" if start_round else "new search"
    say(f"search {cfg.name!r} ({what}) in {store.uri}; MLflow run {parent}")
    return {"config_json": cfg.to_json(), "parent_run_id": parent, "start_round": start_round,
            "summary": form_summary(cfg, config_json)}


def _normalised(stored: dict[str, Any]) -> dict[str, Any]:
    """A stored config as this version writes it: fields added since it was stored take their defaults, so a
    search made by an older kubenas resumes. A config this version rejects is compared as it is."""
    try:
        return parse_config(stored, "stored config").model_dump(mode="json")
    except ConfigError:
        return stored


# ---------------------------------------------------------------------- sample
def sample_architectures(config_json: str, run_round: int, start_round: int, parent_run_id: str) -> list[str]:
    """Ask for the open round's candidates and store them. Returns one ``"<round>/<worker>"`` item per worker.

    The open round is the one after the last committed round; a re-run asks the same candidates again."""
    ctx = context(config_json)
    ctx.store.renew_lease(parent_run_id)
    committed = ctx.store.read_committed()
    round_index = committed.last + 1
    asked = method(ctx).ask(round_index, committed.state, result_rows(committed.history), start_round)
    workers = min(ctx.cfg.budget.parallelism, len(asked["candidates"])) if "supernet" not in asked else 1
    failpoint("sample")
    ctx.store.write_asked(round_index, {**asked, "parent_run_id": parent_run_id, "workers": workers,
                                        "attempt": uuid.uuid4().hex[:12]})
    if "supernet" not in asked:
        say(f"round {round_index} (#{run_round + 1} of this run): {len(asked['candidates'])} candidate(s) for "
            f"{workers} worker(s)")
    return [f"{round_index:05d}/{w}" for w in range(workers)]


# ---------------------------------------------------------------------- train
def train_candidates(config_json: str, item: str) -> list[dict[str, Any]]:
    """One worker (``item`` is ``"<round>/<worker>"``): train the round's candidates that no other worker has
    taken, one after another, writing each result as soon as it exists. Returns the worker's rows."""
    round_text, _, worker_text = item.partition("/")
    round_index, worker = int(round_text), int(worker_text)
    ctx = context(config_json)
    asked = ctx.store.read_asked(round_index)
    if asked is None:
        raise RuntimeError(f"round {round_index} of {ctx.store.uri} has no asked candidates: run its sample step first")
    ctx.pin_threads()
    return method(ctx).train(round_index, worker, asked)


def scalar_metrics(rows: list[dict[str, Any]]) -> dict[str, float]:
    """The worker's results as the Kubeflow UI's Metrics table: per candidate, its objective-related scalars."""
    out: dict[str, float] = {}
    for row in rows:
        m = row.get("metrics") or {}
        for k in SCALAR_METRICS:
            if isinstance(m.get(k), (int, float)) and math.isfinite(m[k]):
                out[f"{row['id']}/{k}"] = float(m[k])
        out[f"{row['id']}/cost_seconds"] = float(row.get("cost") or 0.0)
    return out


# ---------------------------------------------------------------------- update
def update_strategy(config_json: str, run_round: int, start_round: int, parent_run_id: str,
                    report_path: str | None = None) -> str:
    """Tell the strategy the open round's results, commit the round, and decide ``continue`` or ``stop``. Then
    draw the search so far (:func:`report_round`) into the MLflow parent run and, given ``report_path``, into the
    HTML page the Kubeflow UI shows."""
    ctx = context(config_json)
    cfg, store = ctx.cfg, ctx.store
    committed = store.read_committed()
    round_index = committed.last + 1
    asked = store.read_asked(round_index)
    if asked is None and committed.last >= 0:  # sample always writes the round it opens: this one is committed
        decision = _decided(ctx, committed, run_round, start_round)  # a retry after this step committed its round
        report_round(ctx, result_rows(committed.history), committed.state, parent_run_id, report_path)
        return decision
    asked = asked or {"candidates": [], "workers": 0, "state": None}
    rows = store.read_all_results(round_index)
    past = result_rows(committed.history)
    rows, state, best = method(ctx).tell(round_index, asked, rows, past)
    store.renew_lease(parent_run_id)  # a run whose lease was taken over must not commit
    store.commit_round(round_index, rows, state, committed)

    values = {"evaluations": float(len(past) + len(rows))}
    if best is not None:
        values[f"best_{cfg.objective.metric}"] = best["value"]
    ctx.tracker.log_round(parent_run_id, round_index, values)

    reason = stop_reason(cfg, past + [{**r, "round": round_index} for r in rows], rows, run_round, start_round)
    best_text = f"{best['value']:.4f}" if best else "none yet"
    say(f"round {round_index} committed: {len(rows)} row(s), best {cfg.objective.metric} {best_text}"
        + (f"; stopping: {reason}" if reason else ""))
    # this round's rows as the committed history holds them (the round and the epochs as columns of their own)
    report_round(ctx, past + [{**r, "round": round_index, "epochs": (r.get("fidelity") or {}).get("epochs")}
                              for r in rows], state, parent_run_id, report_path)
    return "stop" if reason else "continue"


def report_round(ctx: Context, history: list[dict[str, Any]], state: dict | None, parent_run_id: str,
                 report_path: str | None = None) -> None:
    """The search so far as pictures (:mod:`kubenas.report`), on the MLflow parent run (refreshed every round) and
    in ``report_path``. The round is committed before: a report that cannot be drawn is said, not raised."""
    from kubenas import report

    try:
        page = report.build(f"kubenas search {ctx.cfg.name}: after round {max(r['round'] for r in history)}"
                            if history else f"kubenas search {ctx.cfg.name}", search_summary(ctx.cfg, history),
                            history, search_view(ctx, state))
    except Exception as exc:  # noqa: BLE001 - a picture must not fail a committed round
        say(f"the round's report could not be drawn: {type(exc).__name__}: {exc}")
        return
    ctx.tracker.log_report(parent_run_id, page)
    if report_path:
        with open(report_path, "w", encoding="utf-8") as fh:
            fh.write(page.html)


def search_view(ctx: Context, state: dict | None = None, exported: str | None = None):
    """What the report needs besides the rows: a multi-objective strategy's objectives and constraints (read from
    its options as the strategy reads them, without building a second strategy), a one-shot method's statistics
    per epoch."""
    from kubenas.report import View
    from kubenas.strategies import STRATEGIES
    from kubenas.strategies.pareto import MultiObjective, parse_constraints, parse_objectives

    cfg = ctx.cfg
    view = View(cfg.objective.metric, cfg.objective.mode, exported=exported)
    if cfg.oneshot is not None:
        view.supernet_stats = (state or {}).get("stats")
    elif issubclass(STRATEGIES[cfg.strategy.name], MultiObjective):
        options = cfg.strategy.options
        view.objectives = parse_objectives(options.get("objectives"), cfg.strategy.name)
        view.constraints = parse_constraints(options.get("constraints"), cfg.strategy.name)
    return view


def search_summary(cfg: SearchConfig, history: list[dict[str, Any]]) -> str:
    """A few Markdown lines: what is searched, how far it got, the best so far (the parent run's description)."""
    failed = sum(r["status"] != "ok" for r in history)
    rounds = len({r["round"] for r in history})
    cost = sum(float(r.get("cost") or 0.0) for r in history)
    lines = [f"Search `{cfg.name}`: space `{cfg.space.name}`, {cfg.search_method}, dataset `{cfg.dataset.name}`, "
             f"objective {cfg.objective.metric} ({cfg.objective.mode}).",
             f"Budget: {cfg.budget.rounds} round(s) of {cfg.budget.candidates_per_round} candidate(s) per run; "
             f"so far {rounds} round(s), {len(history)} evaluation(s) ({failed} failed), {cost:.0f} s of compute."]
    best = ranked(history, cfg.objective.metric, cfg.objective.mode)
    if best:
        b = best[0]
        lines.append(f"Best so far: {cfg.objective.metric} **{b['metrics'][cfg.objective.metric]:.4f}**, candidate "
                     f"`{b['id']}` (round {b['round']}): `{b['genotype']}`.")
    return "\n".join(lines)


def _decided(ctx: Context, committed, run_round: int, start_round: int) -> str:
    """The decision of an update whose round is already committed (the step is retried after its commit, as KFP
    retries a pod): the same answer from the committed rows, nothing written again."""
    history = result_rows(committed.history)
    rows = [r for r in history if r["round"] == committed.last]
    reason = stop_reason(ctx.cfg, history, rows, run_round, start_round)
    say(f"round {committed.last} was already committed (a retried update): "
        + (f"stopping: {reason}" if reason else "continuing"))
    return "stop" if reason else "continue"


def stop_reason(cfg: SearchConfig, history: list[dict[str, Any]], rows, run_round: int, start_round: int) -> str | None:
    """Why the search stops after this round (``history``: every committed row, this round's included), or None."""
    if not rows:
        return "the space has no unseen architecture left"
    if run_round + 1 >= cfg.budget.rounds:
        return f"all {cfg.budget.rounds} round(s) of this run are done"
    if cfg.budget.max_evals is not None and evals_since(history, start_round) >= cfg.budget.max_evals:
        return f"max_evals ({cfg.budget.max_evals}) reached"
    if cfg.budget.patience is not None:
        metric, sign = cfg.objective.metric, (1 if cfg.objective.mode == "max" else -1)
        best_by_round: dict[int, float] = {}
        for r in history:
            v = r["metrics"].get(metric)
            best_by_round.setdefault(r["round"], -math.inf)
            if r["status"] == "ok" and isinstance(v, (int, float)) and math.isfinite(v):
                best_by_round[r["round"]] = max(best_by_round[r["round"]], sign * v)
        ordered = [best_by_round[r] for r in sorted(best_by_round)]
        incumbent = [max(ordered[: i + 1]) for i in range(len(ordered))]
        stale = 0
        for i in range(len(incumbent) - 1, 0, -1):
            if incumbent[i] > incumbent[i - 1]:
                break
            stale += 1
        if stale >= cfg.budget.patience:
            return f"no improvement for {stale} round(s) (patience {cfg.budget.patience})"
    return None


def evals_since(history: list[dict[str, Any]], start_round: int) -> int:
    return sum(1 for r in history if r["round"] >= start_round)


# ---------------------------------------------------------------------- a strategy's rounds
class StrategyRounds:
    """A round of a strategy search: ask candidates, train each with the estimator, tell the results."""

    def __init__(self, ctx: Context):
        self.ctx = ctx

    def ask(self, round_index: int, state: dict | None, history: list[dict[str, Any]], start_round: int) -> dict[str, Any]:
        cfg = self.ctx.cfg
        strategy = self.ctx.strategy(prefilter=True)
        if state is not None:
            strategy.load_state_dict(state, history=history)
        n = cfg.budget.candidates_per_round
        if cfg.budget.max_evals is not None:
            n = min(n, cfg.budget.max_evals - evals_since(history, start_round))
        candidates = strategy.ask(n) if n > 0 else []
        return {"candidates": [c.to_dict() for c in candidates], "state": strategy.state_dict(history=False)}

    def train(self, round_index: int, worker: int, asked: dict[str, Any]) -> list[dict[str, Any]]:
        """Train candidates of the round until none is left: every worker takes the next one that no worker has
        claimed from one queue, the costliest first (:meth:`queue`), so the workers of a round finish close
        together. Each candidate is claimed before it trains, so no two workers train the same one."""
        store, tracker = self.ctx.store, self.ctx.tracker
        rows = store.read_results(round_index, worker)  # a retried worker keeps what it trained before
        done = {r["id"] for r in store.read_all_results(round_index)}  # and no attempt trains a candidate twice
        attempt = asked.get("attempt", "")
        estimator, opened = None, None
        if rows:  # retried: end the runs of results written just before the previous attempt died
            opened = tracker.candidate_runs(self.ctx.cfg.name, round_index, asked["parent_run_id"])
            for row in rows:
                if opened.get(row["id"], {}).get("status") == "RUNNING":
                    tracker.finish_candidate(opened[row["id"]]["run_id"], row)
        for cand in self.queue([Candidate.from_dict(c) for c in asked["candidates"]]):
            if cand.id in done or not store.claim(round_index, attempt, cand.id, worker):
                continue
            if estimator is None:
                estimator = self._estimator()
            if opened is None:  # runs a killed attempt opened for this round's candidates: one run per candidate
                opened = tracker.candidate_runs(self.ctx.cfg.name, round_index, asked["parent_run_id"])
            row, run_id = self._train_one(round_index, worker, cand, estimator, asked["parent_run_id"],
                                          opened.get(cand.id, {}).get("run_id"))
            rows.append(row)
            store.write_results(round_index, worker, rows)  # committed before anything else can fail
            failpoint("train")
            tracker.finish_candidate(run_id, row)
        return rows

    def queue(self, candidates: list[Candidate]) -> list[Candidate]:
        """The order the workers take the round's candidates in. With a training estimator, the longest first
        (their estimated cost, :func:`~kubenas.estimators.training.estimated_cost`): taken greedily from one
        queue, the jobs left for the end are the short ones, and the last worker to finish waits less. Every
        worker computes the same order. Estimators that answer at once (a table, a zero-cost proxy) keep the
        asked order."""
        from kubenas.estimators import selected

        if selected(self.ctx.cfg.estimator.model_dump())[0] != "training" or len(candidates) < 2:
            return candidates
        from kubenas.estimators.training import estimated_cost

        base = self.ctx.cfg.fidelity.to_fidelity()
        costs = [estimated_cost(c.arch, self.ctx.space, self.ctx.search_data, base.override(c.fidelity))
                 for c in candidates]
        order = sorted(range(len(candidates)), key=lambda i: (-costs[i], i))
        return [candidates[i] for i in order]

    def _estimator(self):
        estimator = self.ctx.estimator()
        if self.ctx.cfg.estimator.early_stop is not None:  # the rule learns from the committed rounds' curves
            curves = self.ctx.store.read_history().column("val_acc_curve").to_pylist()
            estimator.add_history(c for c in curves if c)
        return estimator

    def _train_one(self, round_index: int, worker: int, cand: Candidate, estimator, parent_run_id: str,
                   run_id: str | None = None):
        """Train one candidate in its own MLflow run, opened now (or opened again: ``run_id``); returns its row
        and the run's id."""
        ctx, cfg, space = self.ctx, self.ctx.cfg, self.ctx.space
        fidelity = cfg.fidelity.to_fidelity().override(cand.fidelity)  # a scheduler sets each candidate's rung
        run_id = ctx.tracker.start_candidate(parent_run_id, cand.to_dict(), round_index, cfg, space.genotype(cand.arch),
                                             run_id)
        context = {"parent_id": cand.parent_id} if getattr(estimator, "inherits", False) else {}
        streamed = []

        def stream(epoch: int, epochs: int, values: dict[str, float]) -> None:  # the run's curves, as they grow
            ctx.tracker.log_epoch(run_id, epoch, values)
            streamed.append(epoch)

        say(f"round {round_index} worker {worker} candidate {cand.id}: training ({fidelity.epochs} epoch(s))")
        cpu, wall = time.process_time(), time.perf_counter()
        with epoch_hook(stream):
            result = estimator.evaluate(cand.arch, space, ctx.search_data, fidelity, seed=cfg.seed,
                                        candidate_id=cand.id, **context)
        PROFILE["train_cpu"] += time.process_time() - cpu
        PROFILE["train_wall"] += time.perf_counter() - wall
        PROFILE["candidates"] += 1
        if "search_data" in vars(ctx):  # the estimator looked at the data (a table answers without it)
            ctx.tracker.log_dataset(run_id, ctx.search_data, cfg, "training")
        row = history_row(space, cand, result, fidelity)
        value = result.metrics.get(cfg.objective.metric)
        shown = (f"{cfg.objective.metric}={value:.4f}" if result.ok and isinstance(value, (int, float))
                 else f"FAILED: {result.error}")
        say(f"round {round_index} worker {worker} candidate {cand.id}: {shown} ({result.cost:.1f} s) {row['genotype']}")
        row["streamed_epochs"] = len(streamed)  # (not a history column: the run's curves already hold them)
        return row, run_id

    def tell(self, round_index: int, asked: dict[str, Any], rows: list[dict[str, Any]], history: list[dict[str, Any]]):
        """The round's rows in asked order (a failed row where no worker left one), told to the strategy; returns
        them, the strategy's state (without its history, which the committed rows hold) and its best."""
        strategy = self.ctx.strategy()
        if asked.get("state") is not None:
            strategy.load_state_dict(asked["state"], history=history)
        by_id = {r["id"]: r for r in rows}
        fidelity = self.ctx.cfg.fidelity.to_fidelity()
        out = []
        for c in asked["candidates"]:
            row = by_id.get(c["id"])
            if row is None:  # the training task died without a result (OOM-killed pod, node loss, ...)
                cand = Candidate.from_dict(c)
                row = history_row(strategy.space, cand, Result(cand.id, "failed", error="no result: the training task failed"),
                                  fidelity.override(cand.fidelity))
            out.append(row)
        strategy.tell([Result(r["id"], r["status"], r["metrics"], r["cost"], r["error"]) for r in out])
        return out, strategy.state_dict(history=False), top(strategy.best())

    def winner(self, state: dict[str, Any], history: list[dict[str, Any]]):
        """The strategy's own choice, and its Pareto front (None with one objective): a scheduler's best at its
        highest rung, a multi-objective strategy's pick under the constraints."""
        strategy = self.ctx.strategy()
        strategy.load_state_dict(state, history=history)
        if hasattr(strategy, "pick"):
            return strategy.pick(self.ctx.cfg.export.pick), strategy.best()
        return strategy.best(), None


# ---------------------------------------------------------------------- export
def export_winner(config_json: str, parent_run_id: str) -> dict[str, Any]:
    """Retrain the best candidate at the export fidelity, test it once, register it in MLflow and move the
    ``champion`` alias only if it beats the current champion. Returns a summary with the leaderboard."""
    import torch

    ctx = context(config_json)
    cfg, store, tracker = ctx.cfg, ctx.store, ctx.tracker
    store.renew_lease(parent_run_id)
    metric, mode = cfg.objective.metric, cfg.objective.mode
    last, table, state, _ = store.read_committed()
    history = result_rows(table)
    scored = ranked(history, metric, mode)  # the highest fidelity (a scheduler's top rung) first, then the best
    pick, front = (None, None)
    if last >= 0:
        pick, front = method(ctx).winner(state, history)
    if pick is None:
        tracker.finish(parent_run_id, ok=False)
        why = ("no successful candidate satisfies the constraints" if scored and front is not None
               else "no successful candidate")
        raise RuntimeError(f"search {cfg.name!r}: {why} to export")
    winner = next(r for r in scored if r["id"] == pick["id"])
    arch = winner["arch"]
    space, data = ctx.space, ctx.full_data
    if not data.has_test:
        raise RuntimeError(f"dataset {cfg.dataset.name!r} has no test split; the export evaluates on it once")
    dropped = tracker.discard_incomplete(cfg.model_name, cfg.name, parent_run_id)
    if dropped:
        say(f"export: deleted version(s) {', '.join(dropped)} of {cfg.model_name}, registered by an export of this "
            "search that did not complete")
    ctx.pin_threads()
    estimator = ctx.estimator(train=True)
    fidelity = Fidelity(epochs=cfg.export.epochs)
    say(f"export: retraining {winner['id']} for {cfg.export.epochs} epoch(s) with seed(s) {cfg.export.seeds}")

    trained = []
    start, cpu = time.perf_counter(), time.process_time()
    for i, seed in enumerate(cfg.export.seeds):
        def progress(epoch: int, epochs: int, values: dict[str, float], seed=seed, i=i) -> None:
            spent = time.perf_counter() - start
            left = spent / (i * epochs + epoch) * ((len(cfg.export.seeds) - i) * epochs - epoch)
            say(f"export: seed {seed} epoch {epoch}/{epochs}: train_loss {values['train_loss']:.4f}, val_acc "
                f"{values['val_acc']:.4f} ({spent:.0f} s, about {left:.0f} s left)")

        with epoch_hook(progress):
            model, m = estimator.fit(arch, space, data.without_test(), fidelity, seed)
        _, test_acc = estimator.score(model, data.x_test, data.y_test)
        trained.append((seed, model, m, test_acc))
    # the retrained model is judged on the objective when training reports it, else (a proxy's zc_score) on val_acc
    rmetric, rmode = (metric, mode) if metric in trained[0][2] else ("val_acc", "max")
    seed, model, m, test_acc = max(trained, key=lambda t: t[2][rmetric] if rmode == "max" else -t[2][rmetric])
    tests = [t[3] for t in trained]
    retrain_seconds = time.perf_counter() - start
    PROFILE["train_cpu"] += time.process_time() - cpu
    PROFILE["train_wall"] += retrain_seconds
    model = model.cpu().eval()
    confusion = estimator.confusion(model, data.x_test, data.y_test, data.num_classes)
    # the model card's latency: measured again on the CPU model as registered, longer than during the search
    from kubenas.estimators.training import latency_protocol

    latency = estimator.latency_ms(model, data.x_test[:1], reps=LATENCY_REPS, warmup=LATENCY_WARMUP)

    name = cfg.model_name
    params = {"candidate_id": winner["id"], "arch_id": winner["arch_id"], "genotype": winner["genotype"],
              "export_epochs": cfg.export.epochs, "export_seeds": json.dumps(cfg.export.seeds),
              "chosen_seed": seed, "space": cfg.space.name, "dataset": cfg.dataset.name,
              "search": cfg.name, "input_shape": json.dumps(list(data.input_shape)),
              "num_classes": data.num_classes,
              "latency": latency_protocol(LATENCY_REPS, LATENCY_WARMUP), "data_split": json.dumps(
                  {"train": len(data.y_train), "val": len(data.y_val), "test": len(data.y_test)})}
    metrics = {rmetric: float(m[rmetric]), "test_acc": test_acc, "test_acc_mean": sum(tests) / len(tests),
               "test_acc_min": min(tests), "params": m["params"], "macs": m["macs"], "latency_ms": latency,
               "retrain_seconds": retrain_seconds}
    failpoint("export-before-registration")
    registered = tracker.register_model(
        parent_run_id, cfg, model, name=name, params=params, metrics=metrics,
        files={"arch.json": arch, "space.json": space.spec(), "config.json": cfg.model_dump(mode="json")},
        input_example=data.x_test[:2].numpy(), pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"])
    tracker.log_dataset(registered["run_id"], data, cfg, "evaluation")  # trained on train+val, tested on test
    tracker.log_dataset(parent_run_id, data, cfg, "search")
    failpoint("export-before-alias")
    alias = tracker.promote(name, registered["version"], rmetric, float(m[rmetric]), rmode)
    tracker.mark_complete(name, registered["version"])  # right after the alias: a version that holds one is kept
    failpoint("export-after-alias")
    store.put_bytes(f"weights/{winner['id']}.pt", registered["weights"])
    store.put_json(f"weights/{winner['id']}.json", {"arch": arch, "space": space.spec()})

    summary = {"candidate_id": winner["id"], "genotype": winner["genotype"], "arch": arch,
               rmetric: float(m[rmetric]), "retrained_metric": rmetric, "test_acc": test_acc, "params": m["params"],
               "macs": m["macs"], "model_name": name, "version": registered["version"], "alias": alias,
               "model_uri": f"models:/{name}@champion", "mlflow_uri": tracker.uri, "parent_run_id": parent_run_id,
               "export_run_id": registered["run_id"], "retrain_seconds": retrain_seconds}
    if front is not None:
        summary["front"] = [{"candidate_id": f["id"], **f["objectives"]} for f in front]
        summary["pick"] = cfg.export.pick
    summary["leaderboard"] = leaderboard(cfg, scored, summary)
    summary["confusion"] = confusion
    summary["report"] = report_winner(ctx, history, state, summary, winner)
    tracker.finish(parent_run_id)
    store.put_json("export.json", {k: v for k, v in summary.items() if k != "report"})
    store.release_lease(parent_run_id)  # the run is complete: the next one may start
    say(f"export: {winner['genotype']} {rmetric}={m[rmetric]:.4f} test_acc={test_acc:.4f}; registered {name} "
        f"v{registered['version']} as {alias}")
    return summary


def winner_metrics(summary: dict[str, Any]) -> dict[str, float]:
    """The export's scalars for the Kubeflow UI's Metrics view."""
    keys = (summary.get("retrained_metric"), "test_acc", "params", "macs", "retrain_seconds")
    return {k: float(summary[k]) for k in keys if k in summary and isinstance(summary[k], (int, float))}


def report_winner(ctx: Context, history: list[dict[str, Any]], state: dict | None, summary: dict[str, Any],
                  winner: dict[str, Any]) -> str:
    """The export's report: the winner's architecture, its test confusion matrix and the whole search, on the
    MLflow parent run (replacing the last round's), the diagram on the export run, a description and tags on the
    registered version. Returns the HTML page ("" when it could not be drawn: the export has completed)."""
    from kubenas import diagram, report

    cfg, tracker = ctx.cfg, ctx.tracker
    metric = summary["retrained_metric"]
    try:
        architecture = diagram.draw(diagram.panels(cfg.space.name, winner["arch"], winner["genotype"],
                                                   ctx.space.spec().get("options")))
        extra = {"architecture": architecture} if architecture else {}
        extra["confusion"] = report.confusion_figure(summary["confusion"])
        text = (search_summary(cfg, history) + f"\nExported `{winner['id']}`, retrained for {cfg.export.epochs} "
                f"epoch(s): {metric} **{summary[metric]:.4f}**, test accuracy **{summary['test_acc']:.4f}**, "
                f"{summary['params']:,} parameters; registered `{summary['model_name']}` version "
                f"{summary['version']} as `{summary['alias']}`.")
        page = report.build(f"kubenas search {cfg.name}: the winner", text, history,
                            search_view(ctx, state, exported=winner["id"]), extra)
    except Exception as exc:  # noqa: BLE001 - the model is registered: a picture must not fail the export
        say(f"export: the report could not be drawn: {type(exc).__name__}: {exc}")
        return ""
    tracker.log_report(summary["parent_run_id"], page)
    files = {"report.html": page.html.encode()}
    if architecture:
        files["architecture.png"] = architecture
    tracker.put_artifacts(summary["export_run_id"], files)
    link = f"runs:/{summary['export_run_id']}/architecture.png"
    tracker.describe_version(
        summary["model_name"], summary["version"],
        f"Architecture `{winner['genotype']}` ({cfg.space.name} space), found by kubenas search `{cfg.name}` "
        f"with {cfg.search_method} on {cfg.dataset.name}, retrained for {cfg.export.epochs} epoch(s): {metric} "
        f"{summary[metric]:.4f}, test accuracy {summary['test_acc']:.4f}, {summary['params']:,} parameters, "
        f"{summary['macs']:,} MACs. Diagram: {link}; report: runs:/{summary['export_run_id']}/report.html.",
        {"kubenas.genotype": winner["genotype"], "kubenas.candidate": winner["id"], "kubenas.space": cfg.space.name,
         "kubenas.source_run": summary["export_run_id"], "kubenas.architecture": link,
         f"kubenas.{metric}": f"{summary[metric]:.4f}", "kubenas.test_acc": f"{summary['test_acc']:.4f}",
         "kubenas.params": summary["params"], "kubenas.macs": summary["macs"]})
    return page.html


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
        epochs = "-" if r["epochs"] is None else r["epochs"]  # a one-shot ranking trains no candidate
        lines.append(f"| {i} | `{r['id']}` | {r['round']} | {epochs} | {m[metric]:.4f} | {m.get('params', '')} | "
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
