"""A strategy's rounds: ask the strategy for candidates, train each with the estimator, tell it the results."""

from __future__ import annotations

import time
from typing import Any

from kubenas import history
from kubenas.context import PROFILE, Context, say
from kubenas.core import Candidate, epoch_hook, top
from kubenas.estimators import reads_data, selected
from kubenas.failpoints import failpoint


class StrategyRounds:
    """The :class:`~kubenas.rounds.Rounds` of a search with a strategy."""

    def __init__(self, ctx: Context):
        self.ctx = ctx

    def ask(self, round_index: int, committed, start_round: int) -> dict[str, Any]:
        cfg = self.ctx.cfg
        strategy = self.ctx.strategy(prefilter=True)
        if committed.state is not None:
            strategy.load_state_dict(committed.state, history=committed.rows)
        n = cfg.budget.candidates_per_round
        if cfg.budget.max_evals is not None:
            n = min(n, cfg.budget.max_evals - history.since(committed.rows, start_round))
        candidates = strategy.ask(n) if n > 0 else []
        return {
            "candidates": [c.to_dict() for c in candidates],
            "state": strategy.state_dict(history=False),
            "workers": min(cfg.budget.parallelism, len(candidates)),
        }

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
            row, run_id = self._train_one(
                round_index, worker, cand, estimator, asked["parent_run_id"], opened.get(cand.id, {}).get("run_id")
            )
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
        if selected(self.ctx.cfg.estimator.model_dump())[0] != "training" or len(candidates) < 2:
            return candidates
        from kubenas.estimators.training import estimated_cost

        base = self.ctx.cfg.fidelity.to_fidelity()
        costs = [
            estimated_cost(c.arch, self.ctx.space, self.ctx.search_data, base.override(c.fidelity)) for c in candidates
        ]
        order = sorted(range(len(candidates)), key=lambda i: (-costs[i], i))
        return [candidates[i] for i in order]

    def _estimator(self):
        estimator = self.ctx.estimator()
        if self.ctx.cfg.estimator.early_stop is not None:  # the rule learns from the committed rounds' curves
            curves = self.ctx.store.read_history(columns=["val_acc_curve"]).column("val_acc_curve").to_pylist()
            estimator.add_history(c for c in curves if c)
        return estimator

    def _train_one(
        self, round_index: int, worker: int, cand: Candidate, estimator, parent_run_id: str, run_id: str | None = None
    ):
        """Train one candidate in its own MLflow run, opened now (or opened again: ``run_id``); returns its row
        and the run's id."""
        ctx, cfg, space = self.ctx, self.ctx.cfg, self.ctx.space
        fidelity = cfg.fidelity.to_fidelity().override(cand.fidelity)  # a scheduler sets each candidate's rung
        run_id = ctx.tracker.start_candidate(
            parent_run_id, cand.to_dict(), round_index, cfg, space.genotype(cand.arch), run_id
        )
        context = {"parent_id": cand.parent_id} if getattr(estimator, "inherits", False) else {}
        streamed = []

        def stream(epoch: int, epochs: int, values: dict[str, float]) -> None:  # the run's curves, as they grow
            ctx.tracker.log_epoch(run_id, epoch, values)
            streamed.append(epoch)

        say(f"round {round_index} worker {worker} candidate {cand.id}: training ({fidelity.epochs} epoch(s))")
        data = ctx.search_data if reads_data(cfg.estimator.model_dump()) else None  # a table answers without it
        cpu, wall = time.process_time(), time.perf_counter()
        with epoch_hook(stream):
            result = estimator.evaluate(
                cand.arch, space, data, fidelity, seed=cfg.seed, candidate_id=cand.id, **context
            )
        PROFILE["train_cpu"] += time.process_time() - cpu
        PROFILE["train_wall"] += time.perf_counter() - wall
        PROFILE["candidates"] += 1
        if data is not None:
            ctx.tracker.log_dataset(run_id, data, cfg, "training")
        row = history.row(space, cand, result, fidelity)
        value = history.value(row, cfg.objective.metric)
        shown = f"{cfg.objective.metric}={value:.4f}" if value is not None else f"FAILED: {result.error}"
        say(f"round {round_index} worker {worker} candidate {cand.id}: {shown} ({result.cost:.1f} s) {row['genotype']}")
        row["streamed_epochs"] = len(streamed)  # (not a history column: the run's curves already hold them)
        return row, run_id

    def tell(self, round_index: int, asked: dict[str, Any], rows: list[dict[str, Any]], past: list[dict[str, Any]]):
        """The round's rows in asked order (a failed row where no worker left one), told to the strategy; returns
        them, the strategy's state (without its history, which the committed rows hold) and its best."""
        strategy = self.ctx.strategy()
        if asked.get("state") is not None:
            strategy.load_state_dict(asked["state"], history=past)
        by_id = {r["id"]: r for r in rows}
        fidelity = self.ctx.cfg.fidelity.to_fidelity()
        out = []
        for c in asked["candidates"]:
            row = by_id.get(c["id"])
            if row is None:  # the training task died without a result (OOM-killed pod, node loss, ...)
                cand = Candidate.from_dict(c)
                row = history.failed(
                    strategy.space, cand, "no result: the training task failed", fidelity.override(cand.fidelity)
                )
            out.append(row)
        strategy.tell([history.result(r) for r in out])
        return history.committed(out, round_index), strategy.state_dict(history=False), top(strategy.best())

    def winner(self, state: dict[str, Any], past: list[dict[str, Any]]):
        """The strategy's own choice, and its Pareto front (None with one objective): a scheduler's best at its
        highest rung, a multi-objective strategy's pick under the constraints."""
        strategy = self.ctx.strategy()
        strategy.load_state_dict(state, history=past)
        return strategy.pick(self.ctx.cfg.export.pick), strategy.best() if strategy.multi_objective else None

    def train_seconds(self, rows: list[dict[str, Any]]) -> float:
        return sum(r["metrics"].get("train_seconds") or 0.0 for r in rows)

    def describe(self, rows: list[dict[str, Any]], seconds: float) -> str:
        return (
            f"{len(rows)} candidates trained for {seconds:.0f} s in all ({self.ctx.cfg.budget.parallelism} at a time)"
        )

    def report(self, state: dict[str, Any] | None, exported: str | None = None):
        """The objective, and a multi-objective strategy's objectives and constraints (read from its options as the
        strategy reads them, without building a second strategy)."""
        from kubenas.report import View
        from kubenas.strategies import STRATEGIES
        from kubenas.strategies.pareto import parse_constraints, parse_objectives

        cfg = self.ctx.cfg
        view = View(cfg.objective.metric, cfg.objective.mode, exported=exported)
        if STRATEGIES[cfg.strategy.name].multi_objective:
            options = cfg.strategy.options
            view.objectives = parse_objectives(options.get("objectives"), cfg.strategy.name)
            view.constraints = parse_constraints(options.get("constraints"), cfg.strategy.name)
        return view
