"""``kubenas bench budget``: every performance estimator in a real search on MNIST-1D under a fixed budget of
CPU seconds, against full training.

Each method searches the space of a benchmark table with real training under the table's own protocol
(dataset, epochs, optimiser, training seed, one CPU thread), until the budget is spent or it is done; the
seed of a run varies the search (the strategy's or the supernet's randomness). The architecture it
would export (the best validation accuracy it measured at full fidelity, or a one-shot method's pick) is then
looked up in the table: its test accuracy there, against the table's best, is the regret. So every method is
judged on the same footing, by an independent training of its pick, and the test split is never seen during
the search.

Methods (``METHODS``): regularized evolution with full training, with learning-curve early termination, with
weight inheritance, and behind a synflow pre-filter; a search on a zero-cost proxy alone; and the one-shot
methods (random sampling, fair random sampling, ENAS, DARTS with and without its remedies), which spend what
they need and report it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from kubenas.estimators.tabular import TabularEstimator
from kubenas.strategies.prefilter import prefilter as with_prefilter

DEFAULT_SECONDS = 300.0


def protocol_estimator(table: TabularEstimator):
    """The CPU training estimator with the recipe a table was built with."""
    from kubenas.bench.table import protocol_recipe
    from kubenas.estimators.training import TrainingEstimator

    return TrainingEstimator(protocol_recipe(table.protocol), device="cpu")


def _evolution(table, data, seed, seconds, *, estimator=None, prefilter=None, options=None):
    from kubenas.core import Fidelity
    from kubenas.search import search
    from kubenas.strategies import make_strategy

    full = int(table.protocol["epochs"])
    strategy = make_strategy("regularized_evolution", table.space, seed=seed, **(options or {}))
    if prefilter is not None:
        from kubenas.estimators.zero_cost import proxy_scorer

        strategy = with_prefilter(strategy, proxy_scorer(prefilter[0], table.space, data, seed), prefilter[1])
    # the strategy varies with the seed; training uses the table's seed (the first, for a mean of seeds), so that
    # a network trained here is the table's network (deterministic on CPU) and the noise between the two is not
    # counted as regret
    res = search(
        table.space,
        strategy,
        dataset=data,
        fidelity=Fidelity(epochs=full),
        estimator=estimator or protocol_estimator(table),
        max_seconds=seconds,
        seed=table.training_seed,
    )
    done = [r for r in res.history if r["status"] == "ok" and "lc_stopped_at" not in r["metrics"]]
    pick = max(done, key=lambda r: r["metrics"]["val_acc"])["arch"] if done else None
    epochs = sum(r["metrics"].get("epochs_trained", len(r["metrics"].get("val_acc_curve", []))) for r in res.history)
    return {"arch": pick, "evaluations": len(res.history), "epochs": epochs}


def _early_stop(table, data, seed, seconds):
    from kubenas.estimators.learning_curve import EarlyTermination, EarlyTerminationEstimator

    rule = EarlyTermination(min_epochs=max(1, int(table.protocol["epochs"]) // 3))
    return _evolution(table, data, seed, seconds, estimator=EarlyTerminationEstimator(protocol_estimator(table), rule))


def _inherit(epochs):
    def run(table, data, seed, seconds):
        from kubenas.estimators.inheritance import InheritingEstimator

        return _evolution(
            table, data, seed, seconds, estimator=InheritingEstimator(protocol_estimator(table), epochs=epochs)
        )

    return run


def _zero_cost(table, data, seed, seconds):
    from kubenas.estimators.zero_cost import ZeroCostEstimator
    from kubenas.search import search

    res = search(
        table.space,
        "regularized_evolution",
        dataset=data,
        estimator=ZeroCostEstimator("synflow"),
        metric="zc_score",
        max_seconds=seconds,
        max_evals=2000,
        seed=seed,
    )
    return {"arch": res.best["arch"], "evaluations": len(res.history), "epochs": 0}


def _oneshot(method, epochs, options=None, candidates=100):
    def run(table, data, seed, seconds):
        from kubenas.oneshot import oneshot_search

        res = oneshot_search(
            table.space,
            method,
            data,
            epochs=epochs,
            candidates=candidates,
            seed=seed,
            options={**table_training(table), "device": "cpu", **(options or {})},
        )
        return {
            "arch": res.ranked[0][0],
            "evaluations": len(res.ranked),
            "epochs": epochs,
            "train_seconds": res.train_seconds,
            "rank_seconds": res.rank_seconds,
            "stats": [{k: v for k, v in s.items() if k != "seconds"} for s in res.stats[-1:]],
        }

    return run


def table_training(table: TabularEstimator) -> dict[str, Any]:
    """The table protocol's recipe, for a supernet trained like the table's networks."""
    from kubenas.bench.table import protocol_recipe

    return {"recipe": protocol_recipe(table.protocol)}


METHODS: dict[str, Callable[..., dict[str, Any]]] = {
    "evolution: full training": lambda t, d, s, sec: _evolution(t, d, s, sec),
    "evolution: learning-curve stop": _early_stop,
    "evolution: inheritance (1 epoch)": _inherit(1),
    "evolution: synflow pre-filter": lambda t, d, s, sec: _evolution(t, d, s, sec, prefilter=("synflow", 20)),
    "zero-cost search (synflow)": _zero_cost,
    "one-shot: random sampling (30 ep)": _oneshot("random_sampling", 30),
    "one-shot: fair sampling (8 ep)": _oneshot("random_sampling", 8, {"fair": True}),
    "one-shot: ENAS (30 ep)": _oneshot("enas", 30),
    "one-shot: DARTS (10 ep)": _oneshot("darts", 10, {"remedy": "none"}),
    "one-shot: DARTS- (10 ep)": _oneshot("darts", 10, {"remedy": "auxiliary_skip"}),
    "one-shot: DARTS + early stop (10 ep)": _oneshot("darts", 10, {"remedy": "early_stop"}),
}


def run_one(table_name: str, method: str, seed: int, seconds: float) -> dict[str, Any]:
    """One search on one thread; returns the pick, its regret in the table and the compute used."""
    import torch

    from kubenas.arch import arch_id

    torch.set_num_threads(1)
    table = TabularEstimator(table_name)
    data = table.search_data()
    start, cpu = time.perf_counter(), time.process_time()
    out = METHODS[method](table, data, seed, seconds)
    out.update(
        method=method,
        seed=seed,
        budget_seconds=seconds,
        wall_seconds=time.perf_counter() - start,
        cpu_seconds=time.process_time() - cpu,
    )
    arch = out.pop("arch")
    test = table.test_acc(arch) if arch is not None else None
    out.update(
        arch_id=arch_id(arch) if arch else None,
        genotype=table.space.genotype(arch) if arch else None,
        test_acc=test,
        regret=None if test is None else table.best_test_acc - test,
    )
    return out


def run(
    table: str = "nb201-4op-mnist1d",
    methods=tuple(METHODS),
    seeds: int = 3,
    seconds: float = DEFAULT_SECONDS,
    out: Path = Path("runs/bench-budget"),
    jobs: int = 1,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Every (method, seed), ``jobs`` at a time, appended to ``out/budget.jsonl`` as they finish; runs already
    in that file are kept, so an interrupted benchmark resumes."""
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}; known: {list(METHODS)}")
    out.mkdir(parents=True, exist_ok=True)
    path = out / "budget.jsonl"
    done = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    have = {(r["method"], r["seed"]) for r in done}
    todo = [(m, s) for m in methods for s in range(seeds) if (m, s) not in have]
    if jobs > 1:
        import concurrent.futures as cf
        import multiprocessing as mp

        with cf.ProcessPoolExecutor(jobs, mp_context=mp.get_context("spawn")) as pool:
            futures = [pool.submit(run_one, table, m, s, seconds) for m, s in todo]
            for f in cf.as_completed(futures):
                done.append(_record(path, f.result(), progress))
    else:
        for m, s in todo:
            done.append(_record(path, run_one(table, m, s, seconds), progress))
    return done


def _record(path: Path, result: dict[str, Any], progress: bool) -> dict[str, Any]:
    with path.open("a") as fh:
        fh.write(json.dumps(result) + "\n")
    if progress:
        regret = "-" if result["regret"] is None else f"{100 * result['regret']:.2f}"
        print(
            f"{result['method']} seed {result['seed']}: regret {regret} points, {result['cpu_seconds']:.0f} CPU s, "
            f"{result['evaluations']} evaluations",
            flush=True,
        )
    return result


def evolution_seconds_to(table: str, regrets: list[float], seeds: int = 30, queries: int = 1000) -> list[float]:
    """For each regret, the median over ``seeds`` of the simulated training seconds that regularized evolution
    with full training needs on the table to get at least that close (inf where the median run never does):
    the reference cost for "as close as this method got"."""
    from kubenas.bench.compare import run_kubenas

    est = TabularEstimator(table)
    traces = [run_kubenas("regularized_evolution", {}, est, est.space, seed, queries) for seed in range(seeds)]
    out = []
    for target in regrets:
        firsts = [next((t.seconds[i] for i, r in enumerate(t.regret) if r <= target + 1e-12), np.inf) for t in traces]
        out.append(float(np.median(firsts)))
    return out


def markdown(results: list[dict[str, Any]], table: str, seconds: float, reference: bool = True) -> str:
    """The results, one row per method; with ``reference``, the compute that regularized evolution with full
    training needs (on the table, 30 seeds) to reach each method's median regret, and the method's share of
    it."""
    methods = list(dict.fromkeys(r["method"] for r in results))
    regrets = {m: [100 * r["regret"] for r in results if r["method"] == m and r["regret"] is not None] for m in methods}
    medians = {m: float(np.median(v)) for m, v in regrets.items() if v}
    needed = dict(zip(medians, evolution_seconds_to(table, [v / 100 for v in medians.values()]))) if reference else {}
    lines = [
        f"Real searches on `{table}`'s space and protocol, {seconds:.0f} s budget each (one CPU thread); the "
        "pick's test accuracy is looked up in the table. Regret in points: median [min, max] over seeds; "
        "compute: median CPU seconds. *Evolution needs*: the simulated training seconds regularized evolution "
        "with full training takes on the table to get as close (median of 30 seeds).",
        "",
        "| method | seeds | regret | CPU seconds | evaluations | epochs trained | evolution needs | share |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for m in methods:
        rs = [r for r in results if r["method"] == m]
        reg = regrets[m]
        cell = f"{np.median(reg):.2f} [{min(reg):.2f}, {max(reg):.2f}]" if reg else "-"
        cpu = float(np.median([r["cpu_seconds"] for r in rs]))
        need = needed.get(m)
        ref = "-" if need is None else ("never" if not np.isfinite(need) else f"{need:.0f} s")
        share = f"{cpu / need:.0%}" if need and np.isfinite(need) else "-"
        lines.append(
            f"| {m} | {len(rs)} | {cell} | {cpu:.0f} | {np.median([r['evaluations'] for r in rs]):.0f} | "
            f"{np.median([r['epochs'] for r in rs]):.0f} | {ref} | {share} |"
        )
    return "\n".join(lines) + "\n"
