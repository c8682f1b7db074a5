"""An in-process search loop: ask, evaluate, tell, until a budget is spent. No KFP, no services.

It is what tests, benchmarks and notebooks use; the Kubeflow pipeline runs the same ask/tell steps, one
process per step.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kubenas import history as hist
from kubenas.arch import Arch
from kubenas.core import Candidate, Fidelity, Result, is_int, top
from kubenas.data.base import Dataset
from kubenas.spaces import SearchSpace, make_space
from kubenas.strategies import Strategy, make_strategy

Objective = Callable[[Arch], "float | Mapping[str, Any]"]


@dataclass
class SearchResult:
    """What a search found.

    Attributes:
        best: the best successful row of ``history``, or None when every evaluation failed.
        history: one row per evaluation (:mod:`kubenas.history`'s rows: id, arch_id, arch, genotype, parent_id,
            status, error, metrics, cost in seconds, fidelity and epochs; no round).
        state: the strategy's final ``state_dict()``, from which the search can be resumed.
        stopped: why the loop ended: ``max_evals``, ``max_seconds`` or ``exhausted``.
    """

    best: dict[str, Any] | None
    history: list[dict[str, Any]] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)
    stopped: str = ""


def search(
    space: SearchSpace | str,
    strategy: Strategy | str = "random",
    *,
    dataset: Dataset | None = None,
    objective: Objective | None = None,
    fidelity: Fidelity | Mapping[str, Any] | None = None,
    estimator: Any = None,
    max_evals: int | None = None,
    max_seconds: float | None = None,
    batch_size: int = 1,
    seed: int = 0,
    metric: str = "val_acc",
    mode: str = "max",
    strategy_options: Mapping[str, Any] | None = None,
    progress: bool = False,
    on_result: Callable[[dict[str, Any]], None] | None = None,
) -> SearchResult:
    """Search ``space`` with ``strategy`` until ``max_evals`` evaluations or ``max_seconds`` have passed.

    Give either ``dataset`` (candidates are trained by ``estimator`` at ``fidelity``) or ``objective``, a
    function of the architecture returning the metric's value or a dict of metrics (a black box; an exception
    makes a failed result). An objective with a ``fidelity`` parameter also gets each candidate's fidelity as
    a dict, which multi-fidelity schedulers (``successive_halving``, ``hyperband``) set per candidate.
    ``batch_size`` candidates are asked at a time, as parallel workers would. ``estimator`` is any estimator
    (default :class:`TrainingEstimator`): e.g. :class:`EarlyTerminationEstimator` or
    :class:`InheritingEstimator`, which gets each candidate's parent id.
    """
    if (dataset is None) == (objective is None):
        raise ValueError("search: pass exactly one of dataset= (train candidates) or objective= (a function)")
    if max_evals is None and max_seconds is None:
        raise ValueError("search: set a budget, max_evals and/or max_seconds")
    if max_evals is not None and (not is_int(max_evals) or max_evals < 1):
        raise ValueError(f"search: max_evals must be a positive integer, got {max_evals!r}")
    if max_seconds is not None and not max_seconds > 0:
        raise ValueError(f"search: max_seconds must be > 0, got {max_seconds!r}")
    if not is_int(batch_size) or batch_size < 1:
        raise ValueError(f"search: batch_size must be a positive integer, got {batch_size!r}")
    space = make_space(space) if isinstance(space, str) else space
    if isinstance(strategy, str):
        strategy = make_strategy(strategy, space, seed=seed, metric=metric, mode=mode, **dict(strategy_options or {}))
    elif strategy_options:
        raise ValueError("search: strategy_options apply only when the strategy is given by name")
    if not isinstance(fidelity, Fidelity):
        fidelity = Fidelity.from_dict(fidelity)
    if dataset is not None:
        if estimator is None:
            from kubenas.estimators.training import TrainingEstimator

            estimator = TrainingEstimator()
        search_data = dataset.without_test()  # the test split is for the final export only
        lineage = getattr(estimator, "inherits", False)  # an inheriting estimator starts children from parents

        def evaluate(c: Candidate) -> Result:
            context = {"parent_id": c.parent_id} if lineage else {}
            return estimator.evaluate(c.arch, space, search_data, fidelity.override(c.fidelity), seed, c.id, **context)
    else:
        takes_fidelity = _takes_fidelity(objective)

        def evaluate(c: Candidate) -> Result:
            return _call_objective(objective, c, metric, fidelity.override(c.fidelity) if takes_fidelity else None)

    history: list[dict[str, Any]] = []
    start = time.perf_counter()
    stopped = "max_evals"
    with _Progress(progress, max_evals, strategy.metric, strategy.mode) as bar:
        while max_evals is None or len(history) < max_evals:
            if max_seconds is not None and time.perf_counter() - start >= max_seconds:
                stopped = "max_seconds"
                break
            n = batch_size if max_evals is None else min(batch_size, max_evals - len(history))
            candidates = strategy.ask(n)
            if not candidates:
                stopped = "exhausted"
                break
            results = [evaluate(c) for c in candidates]
            strategy.tell(results)
            for cand, res in zip(candidates, results):
                row = hist.row(
                    space, cand, res, fidelity.override(cand.fidelity) if dataset is not None or cand.fidelity else None
                )
                history.append(row)
                bar.update(row, top(strategy.best()))
                if on_result is not None:
                    on_result(row)

    best = top(strategy.best())
    best_row = next((r for r in history if best and r["id"] == best["id"]), None)
    return SearchResult(best=best_row, history=history, state=strategy.state_dict(), stopped=stopped)


def _takes_fidelity(objective: Objective) -> bool:
    try:
        return "fidelity" in inspect.signature(objective).parameters
    except (TypeError, ValueError):  # a builtin or C callable without a signature
        return False


def _call_objective(objective: Objective, cand: Candidate, metric: str, fidelity: Fidelity | None) -> Result:
    start = time.perf_counter()
    try:
        out = objective(cand.arch) if fidelity is None else objective(cand.arch, fidelity=fidelity.to_dict())
    except Exception as exc:  # noqa: BLE001 - a crashing candidate is a failed result, and the search goes on
        return Result(cand.id, "failed", cost=time.perf_counter() - start, error=f"{type(exc).__name__}: {exc}")
    metrics = dict(out) if isinstance(out, Mapping) else {metric: out}
    result = Result(cand.id, "ok", metrics, cost=time.perf_counter() - start)
    if hist.value(result, metric) is None:
        return Result(
            cand.id,
            "failed",
            metrics,
            cost=result.cost,
            error=f"objective returned no finite {metric!r}: {metrics.get(metric)!r}",
        )
    return result


class _Progress:
    """A rich progress bar with the latest and best values; silent when disabled."""

    def __init__(self, enabled: bool, total: int | None, metric: str, mode: str):
        self.enabled, self.total, self.metric, self.mode = enabled, total, metric, mode
        self._progress = None

    def __enter__(self) -> _Progress:
        if self.enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._progress = Progress(
                TextColumn("[bold]search"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("{task.description}"),
            )
            self._progress.start()
            self._task = self._progress.add_task("", total=self.total)
        return self

    def update(self, row: dict[str, Any], best: dict[str, Any] | None) -> None:
        if self._progress is None:
            return
        value = row["metrics"].get(self.metric)
        latest = f"{value:.4f}" if row["status"] == "ok" and isinstance(value, (int, float)) else row["status"]
        best_text = f"{best['value']:.4f}" if best else "-"
        self._progress.console.print(
            f"{row['id']}  {self.metric}={latest}  {row['cost']:.1f}s  {row['genotype']}",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
        self._progress.update(self._task, advance=1, description=f"best {self.metric} ({self.mode}) {best_text}")

    def __exit__(self, *exc: Any) -> None:
        if self._progress is not None:
            self._progress.stop()
