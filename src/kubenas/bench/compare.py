"""``kubenas bench compare``: strategies against a tabular benchmark, many seeds, one budget, with Optuna's
samplers as peers in the same harness.

Every searcher gets the same queries, one at a time: kubenas strategies through ask/tell, Optuna's through
``study.ask()`` / ``study.tell()`` with one ``suggest_categorical`` per active decision (define-by-run, so
conditional decisions are handled as Optuna users would write them). A query that Optuna repeats counts as a
query (the table answers it again); kubenas strategies never repeat one. An architecture the space rejects
(an Optuna proposal that breaks a constraint) is told as failed and also counts.

Regret after q queries is the table's best test accuracy minus the test accuracy of the architecture with the
best validation accuracy among the first q, so selection uses validation only (the test split judges, never picks).
Simulated time adds the table's training seconds of each query.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from kubenas.arch import arch_id
from kubenas.core import Fidelity
from kubenas.estimators.tabular import TabularEstimator
from kubenas.strategies import STRATEGIES, make_strategy
from kubenas.strategies.prefilter import prefilter

CHECKPOINTS = (25, 50, 100, 200, 400)
# Regret is also read at these simulated training times, in units of the table's median full training time
# (so "50" is the time 50 typical full evaluations take): where multi-fidelity search is meant to win.
TIME_CHECKPOINTS = (25, 50, 100, 200)


class Variant(NamedTuple):
    """A named variant: a strategy with options, optionally behind a zero-cost pre-filter (proxy, pool): each
    query is then the best-scoring of ``pool`` proposals, the proxy computed for real on the table's dataset;
    optionally with learning-curve early termination (:class:`EarlyTermination` options) on the table's curves.
    Schedulers' max_resource defaults to the table's epochs."""

    strategy: str
    options: dict[str, Any]
    prefilter: tuple[str, int] | None = None
    early_stop: dict[str, Any] | None = None


VARIANTS: dict[str, Variant] = {
    "bohb": Variant("successive_halving", {"base": "bananas", "min_resource": 1, "eta": 3}),
    "hyperband": Variant("hyperband", {"base": "random", "min_resource": 1, "eta": 3}),
    "regularized_evolution+synflow": Variant("regularized_evolution", {}, ("synflow", 20)),
    "regularized_evolution+nwot": Variant("regularized_evolution", {}, ("nwot", 20)),
    "regularized_evolution+lc": Variant("regularized_evolution", {}, early_stop={}),
}
_SCHEDULERS = ("successive_halving", "hyperband")


@functools.cache
def _scorer(table: TabularEstimator, proxy: str):
    """One proxy scorer per table and proxy, so every seed shares the cached scores."""
    from kubenas.estimators.zero_cost import proxy_scorer

    return proxy_scorer(proxy, table.space, table.search_data())


DEFAULT_STRATEGIES = (
    "random",
    "regularized_evolution",
    "local_search",
    "bananas",
    "bayes_quadratic",
    "reinforce",
    "bohb",
    "hyperband",
    "optuna_tpe",
    "optuna_random",
)
OVERHEAD_WINDOW = 10  # ask/tell overhead is averaged over the last queries before the budget


@dataclass
class Trace:
    strategy: str
    seed: int
    regret: list[float]  # test regret of the incumbent after each query
    seconds: list[float]  # cumulative simulated training seconds after each query
    ask_ms: float  # mean per ask over the last OVERHEAD_WINDOW queries
    tell_ms: float
    epochs: list[int] = field(default_factory=list)  # cumulative training epochs after each query
    full_epochs: int = 0  # the table's epochs: what a query costs without early termination or lower rungs
    val_regret: list[float] = field(default_factory=list)  # the table's best validation accuracy minus the best
    # full-fidelity validation accuracy seen so far: what the strategy itself optimises
    answered: list[int] = field(default_factory=list)  # cumulative queries the table answered (not rejected)
    # per query: architecture id (None when the space rejected it), validation and test accuracy at the epochs
    # trained (None when not answered), simulated training seconds, epochs trained
    queries: list[list[Any]] = field(default_factory=list)

    def saved(self, q: int) -> float:
        """The share of training epochs saved in the first ``q`` queries, against full training of each query the
        table answered: a proposal the space rejects was never trained, and saves nothing."""
        q = min(q, len(self.epochs))
        n = self.answered[q - 1] if q and self.answered else q
        return 1.0 - self.epochs[q - 1] / (n * self.full_epochs) if n and self.full_epochs else 0.0


def variant(name: str) -> Variant:
    """The variant called ``name``: a registered strategy, one of ``VARIANTS``, or an early-termination variant
    with its threshold, ``<variant>@<threshold>`` (``regularized_evolution+lc@0.5``)."""
    base, at, value = name.partition("@")
    found = VARIANTS.get(base) or (Variant(base, {}) if base in STRATEGIES else None)
    if found is None or (at and found.early_stop is None):
        raise ValueError(
            f"unknown strategy {name!r}: expected one of {sorted(STRATEGIES)}, the variants "
            f"{sorted(VARIANTS)} (an early-termination one with @<threshold>), or optuna_tpe, "
            "optuna_random"
        )
    if not at:
        return found
    try:
        threshold = float(value)
    except ValueError:
        threshold = 0.0  # refused below, with the value as given
    if not 0 < threshold < 1:
        raise ValueError(f"{name!r}: the threshold after '@' must be a number in (0, 1), got {value!r}")
    return found._replace(early_stop={**found.early_stop, "threshold": threshold})


def run_kubenas(name: str, options: dict[str, Any], table: TabularEstimator, space, seed: int, budget: int) -> Trace:
    """``name`` names a :func:`variant`; ``options`` are added to the variant's."""
    chosen = variant(name)
    preset = chosen.options
    if chosen.strategy in _SCHEDULERS:
        preset = {"max_resource": int(table.protocol["epochs"]), **preset}
    strategy = make_strategy(chosen.strategy, space, seed=seed, **{**preset, **options})
    if chosen.prefilter is not None:
        strategy = prefilter(strategy, _scorer(table, chosen.prefilter[0]), chosen.prefilter[1])
    evaluator = table
    if chosen.early_stop is not None:
        from kubenas.estimators.learning_curve import EarlyTermination, EarlyTerminationEstimator

        # by default the rule may judge after a third of the table's epochs
        rule = {"min_epochs": max(1, int(table.protocol["epochs"]) // 3), **chosen.early_stop}
        evaluator = EarlyTerminationEstimator(table, EarlyTermination(**rule))
    return _loop(
        name, seed, budget, table, space, lambda: _ask_one(strategy), lambda cand, res: strategy.tell([res]), evaluator
    )


def _ask_one(strategy):
    cands = strategy.ask(1)
    if not cands:
        raise StopIteration
    return cands[0]


def run_optuna(name: str, table: TabularEstimator, space, seed: int, budget: int) -> Trace:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = {
        "optuna_tpe": lambda: optuna.samplers.TPESampler(seed=seed),
        "optuna_random": lambda: optuna.samplers.RandomSampler(seed=seed),
    }[name]()
    study = optuna.create_study(direction="maximize", sampler=sampler)

    class Proposal:
        def __init__(self, trial, arch):
            self.trial, self.arch, self.id = trial, arch, str(trial.number)

    def ask():
        trial = study.ask()
        return Proposal(trial, _suggest(trial, space))

    def tell(proposal, result):
        if result.ok:
            study.tell(proposal.trial, result.metrics["val_acc"])
        else:
            study.tell(proposal.trial, state=optuna.trial.TrialState.FAIL)

    return _loop(name, seed, budget, table, space, ask, tell)


def _suggest(trial, space) -> dict[str, Any]:
    """An architecture from an Optuna trial, define-by-run: one categorical per decision that is active."""
    arch: dict[str, Any] = {}
    for d in space.decisions:
        if d.is_active(arch):
            arch[d.name] = trial.suggest_categorical(d.name, list(d.choices))
    return arch


def _loop(
    name: str, seed: int, budget: int, table: TabularEstimator, space, ask: Callable, tell: Callable, evaluator=None
) -> Trace:
    """Query the table (or ``evaluator``, e.g. the table behind early termination) ``budget`` times."""
    evaluator = evaluator or table
    best_val, incumbent_test = -np.inf, None
    full_epochs = int(table.protocol["epochs"])
    regret, seconds, total, epochs, trained = [], [], 0.0, [], 0
    val_regret, answered, queries, n_ok = [], [], [], 0
    ask_times, tell_times = [], []
    for q in range(budget):
        t0 = time.perf_counter()
        try:
            cand = ask()
        except StopIteration:  # a finite space searched to exhaustion
            break
        t1 = time.perf_counter()
        valid = space.is_valid(cand.arch)
        fidelity = Fidelity(epochs=full_epochs).override(getattr(cand, "fidelity", None))
        result = (
            evaluator.evaluate(cand.arch, None, None, fidelity, candidate_id=cand.id) if valid else _invalid(cand.id)
        )
        t2 = time.perf_counter()
        tell(cand, result)
        t3 = time.perf_counter()
        if q >= budget - OVERHEAD_WINDOW:
            ask_times.append(t1 - t0)
            tell_times.append(t3 - t2)
        m = result.metrics if result.ok else {}
        test = table.test_acc(cand.arch) if result.ok else None
        if result.ok:
            n_ok += 1
            total += result.cost
            trained += len(m["val_acc_curve"])
            # only full-fidelity results can become the incumbent: a low-rung accuracy is not what a search exports
            if m["epochs"] == full_epochs and m["val_acc"] > best_val:
                best_val, incumbent_test = m["val_acc"], test
        regret.append(table.best_test_acc - incumbent_test if incumbent_test is not None else table.best_test_acc)
        val_regret.append(table.best_val_acc - best_val if incumbent_test is not None else table.best_val_acc)
        seconds.append(total)
        epochs.append(trained)
        answered.append(n_ok)
        queries.append(
            [
                arch_id(cand.arch) if valid else None,
                m.get("val_acc"),
                test,
                round(result.cost, 4) if result.ok else 0.0,
                len(m["val_acc_curve"]) if result.ok else 0,
            ]
        )
    ms = lambda xs: 1000 * float(np.mean(xs)) if xs else float("nan")  # noqa: E731
    return Trace(
        name, seed, regret, seconds, ms(ask_times), ms(tell_times), epochs, full_epochs, val_regret, answered, queries
    )


def _invalid(cid: str):
    from kubenas.strategies.base import Result

    return Result(cid, "failed", error="not an architecture of the space")


def run_one(table: str | Path, name: str, options: dict[str, Any], seed: int, budget: int) -> dict[str, Any]:
    """One strategy, one seed, on one BLAS thread (numpy's threads slow BANANAS' small fits about fivefold, with
    the same results); returns the trace as plain data, with its wall seconds."""
    from threadpoolctl import threadpool_limits

    estimator = TabularEstimator(table)
    start = time.perf_counter()
    with threadpool_limits(1):
        if name.startswith("optuna_"):
            trace = run_optuna(name, estimator, estimator.space, seed, budget)
        else:
            trace = run_kubenas(name, options, estimator, estimator.space, seed, budget)
    return {**asdict(trace), "wall": time.perf_counter() - start}


def compare(
    table: str | Path = "nb201-4op-mnist1d",
    strategies=DEFAULT_STRATEGIES,
    seeds: int = 30,
    budget: int = 400,
    options: dict[str, dict[str, Any]] | None = None,
    progress: bool = True,
    jobs: int = 1,
) -> list[Trace]:
    """Every (strategy, seed), ``jobs`` processes at a time (one in this process), each on one BLAS thread; a line
    per finished seed when ``progress``."""
    TabularEstimator(table)  # a missing or foreign table fails here
    options = options or {}
    for name in strategies:
        if name not in ("optuna_tpe", "optuna_random"):
            variant(name)  # unknown names fail here, before any run
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    todo = [(name, seed) for name in strategies for seed in range(seeds)]
    done: dict[tuple[str, int], dict[str, Any]] = {}
    counts = dict.fromkeys(strategies, 0)
    walls = dict.fromkeys(strategies, 0.0)

    def finished(out: dict[str, Any]) -> None:
        done[out["strategy"], out["seed"]] = out
        counts[out["strategy"]] += 1
        walls[out["strategy"]] += out["wall"]
        if progress:
            n = counts[out["strategy"]]
            print(
                f"{out['strategy']} seed {out['seed']} ({n}/{seeds}): test regret {100 * out['regret'][-1]:.2f}, "
                f"validation regret {100 * out['val_regret'][-1]:.2f} points after {len(out['regret'])} queries, "
                f"{out['wall']:.1f} s",
                flush=True,
            )
            if n == seeds:
                print(
                    f"{out['strategy']}: {seeds} seeds x {budget} queries in {walls[out['strategy']]:.1f} s of work",
                    flush=True,
                )

    if jobs == 1:
        for name, seed in todo:
            finished(run_one(table, name, options.get(name, {}), seed, budget))
    else:
        import concurrent.futures as cf
        import multiprocessing as mp

        with cf.ProcessPoolExecutor(jobs, mp_context=mp.get_context("spawn")) as pool:
            futures = [pool.submit(run_one, table, name, options.get(name, {}), seed, budget) for name, seed in todo]
            for future in cf.as_completed(futures):
                finished(future.result())
    fields = {f.name for f in dataclasses.fields(Trace)}
    return [Trace(**{k: v for k, v in done[key].items() if k in fields}) for key in todo]


def summarise(
    traces: list[Trace], checkpoints=CHECKPOINTS, unit_seconds: float | None = None, time_checkpoints=TIME_CHECKPOINTS
) -> dict[str, dict[str, Any]]:
    """Median and IQR of regret per strategy at each query checkpoint (int keys) and, given ``unit_seconds``
    (the table's median full training time), at each simulated-time checkpoint (keys ``"t25"``, ...)."""
    out: dict[str, dict[str, Any]] = {}
    for name in dict.fromkeys(t.strategy for t in traces):
        mine = [t for t in traces if t.strategy == name]
        row: dict[str, Any] = {
            "seeds": len(mine),
            "ask_ms": float(np.median([t.ask_ms for t in mine])),
            "tell_ms": float(np.median([t.tell_ms for t in mine])),
        }
        for q in checkpoints:
            row[q] = _quartiles([t.regret[min(q, len(t.regret)) - 1] for t in mine])
            if all(t.val_regret for t in mine):
                row[f"val{q}"] = _quartiles([t.val_regret[min(q, len(t.val_regret)) - 1] for t in mine])
            row[f"saved{q}"] = _quartiles([t.saved(q) for t in mine])
        for k in time_checkpoints if unit_seconds else ():
            row[f"t{k}"] = _quartiles([_regret_at(t, k * unit_seconds) for t in mine])
        out[name] = row
    return out


def _quartiles(values) -> dict[str, float]:
    q1, med, q3 = np.percentile(values, [25, 50, 75])
    return {"median": float(med), "q1": float(q1), "q3": float(q3)}


def _regret_at(trace: Trace, seconds: float) -> float:
    """Regret once ``seconds`` of simulated training are spent (the last query finished by then)."""
    done = int(np.searchsorted(trace.seconds, seconds, side="right"))
    return trace.regret[min(done, len(trace.regret)) - 1] if done else trace.regret[0]


def unit_seconds(table: TabularEstimator) -> float:
    """The table's median full training time: the unit of the simulated-time checkpoints."""
    return float(np.median([r["train_seconds"] for r in table.rows.values() if r["status"] == "ok"]))


def write_outputs(traces: list[Trace], summary: dict, out_dir: Path, meta: dict[str, Any]) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path, md_path, png_path = out_dir / "compare.csv", out_dir / "compare.md", out_dir / "compare.png"
    queries_path = out_dir / "queries.csv"
    with csv_path.open("w", newline="") as fh, queries_path.open("w", newline="") as qh:
        w, wq = csv.writer(fh), csv.writer(qh)
        w.writerow(["strategy", "seed", "queries", "regret", "val_regret", "simulated_seconds"])
        wq.writerow(["strategy", "seed", "query", "arch_id", "val_acc", "test_acc", "cost_seconds", "epochs"])
        for t in traces:
            vals = t.val_regret or [float("nan")] * len(t.regret)
            for q, (r, v, s) in enumerate(zip(t.regret, vals, t.seconds), start=1):
                w.writerow([t.strategy, t.seed, q, f"{r:.6f}", f"{v:.6f}", f"{s:.3f}"])
            for q, row in enumerate(t.queries, start=1):
                wq.writerow([t.strategy, t.seed, q, *("" if x is None else x for x in row)])
    checkpoints = [k for k in next(iter(summary.values())) if isinstance(k, int)]
    cell = lambda c: f"{100 * c['median']:.2f} [{100 * c['q1']:.2f}, {100 * c['q3']:.2f}]"  # noqa: E731
    lines = []
    if all(f"val{checkpoints[0]}" in row for row in summary.values()):
        lines += [
            f"Validation regret (the table's best validation accuracy minus the best a strategy found, "
            f"percentage points) on `{meta['table']}`: median [IQR] over {meta['seeds']} seeds; lower is "
            "better. This measures the search itself.",
            "",
            "| strategy | " + " | ".join(f"{q} queries" for q in checkpoints) + " |",
            "| --- |" + " --- |" * len(checkpoints),
        ]
        lines += [
            f"| {name} | " + " | ".join(cell(row[f"val{q}"]) for q in checkpoints) + " |"
            for name, row in summary.items()
        ]
        lines += ["", *_against("optuna_tpe", summary, checkpoints), ""]
    lines += [
        f"Test regret (the table's best test accuracy minus the test accuracy of the incumbent, chosen by "
        f"validation; percentage points) on `{meta['table']}`: median [IQR] over {meta['seeds']} seeds; lower "
        "is better.",
        "",
        "| strategy | " + " | ".join(f"{q} queries" for q in checkpoints) + " | ask ms | tell ms |",
        "| --- |" + " --- |" * (len(checkpoints) + 2),
    ]
    for name, row in summary.items():
        cells = [cell(row[q]) for q in checkpoints]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {row['ask_ms']:.2f} | {row['tell_ms']:.2f} |")
    timed = [k for k in next(iter(summary.values())) if isinstance(k, str) and k[0] == "t" and k[1:].isdigit()]
    if timed:
        lines += [
            "",
            f"Regret at simulated training time, in units of the table's median full training "
            f"({meta['unit_seconds']:.2f} s): the time that many full evaluations take. Multi-fidelity "
            "strategies spend less per query.",
            "",
            "| strategy | " + " | ".join(f"{k[1:]} units" for k in timed) + " |",
            "| --- |" + " --- |" * len(timed),
        ]
        for name, row in summary.items():
            lines.append(
                f"| {name} | "
                + " | ".join(
                    f"{100 * row[k]['median']:.2f} [{100 * row[k]['q1']:.2f}, {100 * row[k]['q3']:.2f}]" for k in timed
                )
                + " |"
            )
    saving = [name for name, row in summary.items() if any(row[f"saved{q}"]["median"] > 0 for q in checkpoints)]
    if saving:
        lines += [
            "",
            "Share of training epochs saved against training every query fully (early termination, "
            "lower rungs): median [IQR].",
            "",
            "| strategy | " + " | ".join(f"{q} queries" for q in checkpoints) + " |",
            "| --- |" + " --- |" * len(checkpoints),
        ]
        for name in saving:
            lines.append(
                f"| {name} | "
                + " | ".join(
                    "{median:.1%} [{q1:.1%}, {q3:.1%}]".format(**summary[name][f"saved{q}"]) for q in checkpoints
                )
                + " |"
            )
    md_path.write_text("\n".join(lines) + "\n")
    _plot(traces, png_path, meta)
    (out_dir / "compare.json").write_text(
        json.dumps(
            {"meta": meta, "summary": {k: {str(q): v for q, v in row.items()} for k, row in summary.items()}}, indent=1
        )
    )
    return {"csv": csv_path, "queries": queries_path, "markdown": md_path, "plot": png_path}


def _against(peer: str, summary: dict, checkpoints: list[int]) -> list[str]:
    """A line naming, per checkpoint, the kubenas strategy with the lowest median validation regret and its ratio
    to ``peer``'s (an Optuna sampler); nothing when ``peer`` or no kubenas strategy was run."""
    ours = [name for name in summary if not name.startswith("optuna_")]
    if peer not in summary or not ours:
        return []
    parts = []
    for q in checkpoints:
        best = min(ours, key=lambda name: summary[name][f"val{q}"]["median"])
        mine, theirs = summary[best][f"val{q}"]["median"], summary[peer][f"val{q}"]["median"]
        ratio = f"{mine / theirs:.2f}x" if theirs > 0 else ("equal" if mine == 0 else "worse")
        parts.append(f"{q}: {best} {100 * mine:.2f} ({ratio})")
    return [f"Best kubenas strategy by median validation regret against {peer}'s: " + "; ".join(parts) + "."]


def _plot(traces: list[Trace], path: Path, meta: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_q, ax_t) = plt.subplots(1, 2, figsize=(12, 4.5))
    for name in dict.fromkeys(t.strategy for t in traces):
        mine = [t for t in traces if t.strategy == name]
        n = min(len(t.regret) for t in mine)
        r = 100 * np.array([t.regret[:n] for t in mine])
        x = np.arange(1, n + 1)
        med, q1, q3 = np.median(r, 0), np.percentile(r, 25, 0), np.percentile(r, 75, 0)
        (line,) = ax_q.plot(x, med, label=name, linestyle="--" if name.startswith("optuna") else "-")
        ax_q.fill_between(x, q1, q3, alpha=0.15, color=line.get_color())
        # regret against simulated training time, on a common grid
        grid = np.linspace(0, min(t.seconds[n - 1] for t in mine), 200)
        rt = 100 * np.array([np.interp(grid, t.seconds[:n], t.regret[:n]) for t in mine])
        ax_t.plot(grid, np.median(rt, 0), color=line.get_color(), linestyle=line.get_linestyle())
        ax_t.fill_between(grid, np.percentile(rt, 25, 0), np.percentile(rt, 75, 0), alpha=0.15, color=line.get_color())
    ax_q.set_xscale("log")
    for ax, label in ((ax_q, "queries"), (ax_t, "simulated training seconds")):
        ax.set_yscale("symlog", linthresh=0.1)
        ax.set_xlabel(label)
        ax.set_ylabel("test regret (points)")
        ax.grid(alpha=0.3)
    ax_q.legend(fontsize=8)
    fig.suptitle(f"{meta['table']}: median and IQR over {meta['seeds']} seeds")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ----------------------------------------------------------------- multi-objective: accuracy against parameters
MO_STRATEGIES = ("nsga2", "pareto_evolution", "optuna_nsga2", "random")


def run_multiobjective(name: str, table: TabularEstimator, space, seed: int, budget: int) -> float:
    """Hypervolume of the (validation accuracy, parameters) front after ``budget`` queries, normalised so that
    the table's worst accuracy and largest network are the reference point and the ideal corner has area 1."""
    rows = [r for r in table.rows.values() if r["status"] == "ok"]
    acc_lo, acc_hi = min(r["val_acc"] for r in rows), max(r["val_acc"] for r in rows)
    p_lo, p_hi = min(r["params"] for r in rows), max(r["params"] for r in rows)
    seen: list[tuple[float, float]] = []

    def point(metrics):
        return ((metrics["val_acc"] - acc_lo) / (acc_hi - acc_lo), (p_hi - metrics["params"]) / (p_hi - p_lo))

    if name == "optuna_nsga2":
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.create_study(
            directions=["maximize", "minimize"], sampler=optuna.samplers.NSGAIISampler(seed=seed)
        )
        for _ in range(budget):
            trial = study.ask()
            arch = _suggest(trial, space)
            result = table.evaluate(arch) if space.is_valid(arch) else _invalid(str(trial.number))
            if result.ok:
                study.tell(trial, [result.metrics["val_acc"], result.metrics["params"]])
                seen.append(point(result.metrics))
            else:
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
    else:
        options = (
            {}
            if name == "random"
            else {"objectives": [{"metric": "val_acc", "mode": "max"}, {"metric": "params", "mode": "min"}]}
        )
        strategy = make_strategy(name, space, seed=seed, **options)
        for _ in range(budget):
            cands = strategy.ask(1)
            if not cands:
                break
            result = table.evaluate(cands[0].arch, candidate_id=cands[0].id)
            strategy.tell([result])
            if result.ok:
                seen.append(point(result.metrics))
    from kubenas.strategies.pareto import hypervolume_2d

    return hypervolume_2d(seen, (0.0, 0.0))


def compare_multiobjective(
    table: str | Path = "nb201-4op-mnist1d", strategies=MO_STRATEGIES, seeds: int = 30, budget: int = 200
) -> dict[str, dict[str, float]]:
    estimator = TabularEstimator(table)
    space = estimator.space
    out = {}
    for name in strategies:
        hv = [run_multiobjective(name, estimator, space, seed, budget) for seed in range(seeds)]
        q1, med, q3 = np.percentile(hv, [25, 50, 75])
        out[name] = {"median": float(med), "q1": float(q1), "q3": float(q3)}
    return out
