"""``kubenas bench estimators``: how well each cheap estimator ranks architectures, against full training.

On a benchmark table, a fixed sample of architectures (200 by default, drawn with a fixed seed) is scored by
every estimator; the report gives the Kendall tau and Spearman rho of each estimator's scores with the
table's validation accuracy (the full-training answer), and the cost per architecture:
- lower-fidelity training (fewer epochs) reads the table's per-epoch validation curve, and its cost is the
  table's training seconds scaled to those epochs;
- learning-curve extrapolation fits those partial curves and predicts the last epoch;
- zero-cost proxies (``synflow``, ``grad_norm``, ``nwot``, ``params``, ``macs``) are computed for real, on
  the table's dataset and space, and timed;
- one-shot supernets (random sampling, fair sampling, ENAS) are trained for real and rank the sample with
  their shared weights; their training is spread over the sample;
- weight inheritance trains each sampled architecture for one epoch from the trained weights of a parent one
  mutation away.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from kubenas.estimators.tabular import TabularEstimator

DEFAULT_SAMPLE = 200


def sample_rows(table: TabularEstimator, n: int = DEFAULT_SAMPLE, seed: int = 0) -> list[dict[str, Any]]:
    """``n`` successful rows of the table, the same for a seed whatever the row order in the file."""
    rows = sorted((r for r in table.rows.values() if r["status"] == "ok"), key=lambda r: r["arch_id"])
    if n > len(rows):
        raise ValueError(f"sample of {n} asked, but the table has {len(rows)} successful architectures")
    return [rows[int(i)] for i in np.random.default_rng(seed).choice(len(rows), n, replace=False)]


def rank_correlations(scores, truth) -> dict[str, float]:
    from scipy.stats import kendalltau, spearmanr

    return {"kendall": float(kendalltau(scores, truth)[0]), "spearman": float(spearmanr(scores, truth)[0])}


KINDS = ("training", "curves", "zero_cost", "oneshot", "inheritance")


def measure(
    table: str | Path = "nb201-4op-mnist1d",
    n: int = DEFAULT_SAMPLE,
    seed: int = 0,
    proxies=None,
    progress: bool = True,
    kinds=KINDS,
    oneshot_epochs: int | None = None,
) -> list[dict[str, Any]]:
    """One row per estimator, for the ``kinds`` asked: fewer training epochs and learning-curve extrapolation
    read from the table, then each zero-cost proxy (default: all of them), each one-shot supernet (for
    ``oneshot_epochs`` if given, else each ranker's own) and weight inheritance, computed for real."""
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        raise ValueError(f"unknown estimator kind(s) {unknown}; known: {', '.join(KINDS)}")
    import json

    import torch

    from kubenas.estimators.zero_cost import PROXIES, ZeroCostEstimator

    est = TabularEstimator(table)
    rows = sample_rows(est, n, seed)
    truth = [r["val_acc"] for r in rows]
    full_epochs = int(est.protocol["epochs"])
    out = []
    for epochs in range(1, full_epochs + 1):
        if "training" not in kinds and epochs < full_epochs:
            continue
        scores = [r["val_acc_curve"][epochs - 1] for r in rows]
        cost = float(np.mean([r["train_seconds"] * epochs / full_epochs for r in rows]))
        label = "full training" if epochs == full_epochs else f"training, {epochs} of {full_epochs} epochs"
        out.append({"estimator": label, **rank_correlations(scores, truth), "seconds_per_arch": cost})
    data = est.search_data()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the table was built: one thread per process
    try:
        for proxy in (proxies or tuple(PROXIES)) if "zero_cost" in kinds else ():
            zc = ZeroCostEstimator(proxy)
            start = time.perf_counter()
            scores = []
            for r in rows:
                arch = json.loads(r["arch"]) if isinstance(r["arch"], str) else r["arch"]
                scores.append(zc.score(arch, est.space, data, seed=seed)["zc_score"])
            seconds = (time.perf_counter() - start) / len(rows)
            out.append(
                {"estimator": f"zero-cost: {proxy}", **rank_correlations(scores, truth), "seconds_per_arch": seconds}
            )
            if progress:
                print(f"{proxy}: {seconds * 1000:.1f} ms per architecture", flush=True)
        if "curves" in kinds:
            out += _curve_rows(est, rows, truth, seed)
        if "oneshot" in kinds:
            out += _oneshot_rows(est, rows, truth, seed, progress, oneshot_epochs)
        if "inheritance" in kinds:
            out += _inheritance_rows(est, rows, truth, seed, progress)
    finally:
        torch.set_num_threads(threads)
    return out


def _archs(rows):
    import json

    return [json.loads(r["arch"]) if isinstance(r["arch"], str) else r["arch"] for r in rows]


def _curve_rows(est: TabularEstimator, rows, truth, seed: int) -> list[dict[str, Any]]:
    """Learning-curve extrapolation of each sampled curve cut after e epochs, against the last value seen. The
    calibration's bias is one constant, so the ranking is that of the fits themselves."""
    from kubenas.estimators.learning_curve import extrapolate

    full = int(est.protocol["epochs"])
    out = []
    for cut in range(2, full):
        start = time.perf_counter()
        scores = [extrapolate(r["val_acc_curve"][:cut], full)["mean"] for r in rows]
        fit = (time.perf_counter() - start) / len(rows)
        cost = float(np.mean([r["train_seconds"] * cut / full for r in rows])) + fit
        out.append(
            {
                "estimator": f"learning-curve extrapolation from {cut} of {full} epochs",
                **rank_correlations(scores, truth),
                "seconds_per_arch": cost,
            }
        )
    return out


# Supernet epochs per method for the ranking measurement, as in ``kubenas bench budget``.
ONESHOT_RANKERS = {
    "random sampling, 30 epochs": ("random_sampling", 30, {}),
    "fair sampling, 8 epochs": ("random_sampling", 8, {"fair": True}),
    "ENAS, 30 epochs": ("enas", 30, {}),
}


def _oneshot_rows(
    est: TabularEstimator, rows, truth, seed: int, progress: bool, epochs_override: int | None = None
) -> list[dict[str, Any]]:
    """Each one-shot method's supernet, trained for real on the table's data, ranks the sample with its shared
    weights; the cost per architecture spreads the supernet's training over the sample."""
    from kubenas.bench.budget import table_training
    from kubenas.oneshot import make_oneshot, rank

    data, archs, out = est.search_data(), _archs(rows), []
    for label, (method, epochs, options) in ONESHOT_RANKERS.items():
        if epochs_override is not None:
            epochs, label = epochs_override, f"{label.split(',')[0]}, {epochs_override} epochs"
        start = time.perf_counter()
        m = make_oneshot(method, est.space, seed=seed, device="cpu", **table_training(est), **options)
        m.setup(data.input_shape, data.num_classes, epochs)
        for _ in range(epochs):
            m.train_epoch(data)
        trained = time.perf_counter() - start
        scores = rank(m.net, archs, data, 4, m.batch_size, seed)
        seconds = time.perf_counter() - start
        if progress:
            print(f"one-shot {label}: supernet {trained:.0f} s, ranking {seconds - trained:.0f} s", flush=True)
        out.append(
            {
                "estimator": f"one-shot: {label}",
                **rank_correlations(scores, truth),
                "seconds_per_arch": seconds / len(archs),
                "total_seconds": seconds,
            }
        )
    return out


def _inheritance_rows(est: TabularEstimator, rows, truth, seed: int, progress: bool) -> list[dict[str, Any]]:
    """Each sampled architecture as a child: its parent (a random one-decision mutation of it) is trained with
    the table's protocol, then the child inherits the parent's weights and trains one epoch. The cost is the
    child's alone: in a search the parent was trained anyway."""
    from kubenas.bench.budget import protocol_estimator
    from kubenas.core import Fidelity
    from kubenas.estimators.inheritance import InheritingEstimator, MemoryWeights

    data, rng = est.search_data(), np.random.default_rng(seed)
    fidelity = Fidelity(epochs=int(est.protocol["epochs"]))
    inner, scores, cost = protocol_estimator(est), [], 0.0
    start = time.perf_counter()
    for n, arch in enumerate(_archs(rows)):
        weights = MemoryWeights()
        parent = est.space.mutate(arch, rng)
        inner.evaluate(
            parent,
            est.space,
            data,
            fidelity,
            seed,
            "parent",
            keep=lambda model, w=weights, p=parent: w.save_weights("parent", model.state_dict(), p),
        )
        res = InheritingEstimator(inner, weights, epochs=1).evaluate(
            arch, est.space, data, fidelity, seed, "child", parent_id="parent"
        )
        scores.append(res.metrics["val_acc"] if res.ok else 0.0)
        cost += res.cost
        if progress and (n + 1) % 50 == 0:
            print(f"inheritance: {n + 1}/{len(rows)} ({time.perf_counter() - start:.0f} s)", flush=True)
    return [
        {
            "estimator": "weight inheritance: 1 epoch from a trained parent",
            **rank_correlations(scores, truth),
            "seconds_per_arch": cost / len(rows),
        }
    ]


def markdown(results: list[dict[str, Any]], table: str, n: int) -> str:
    full = next(r["seconds_per_arch"] for r in results if r["estimator"] == "full training")
    lines = [
        f"Rank correlation with full training (the table's validation accuracy) on a fixed sample of {n} "
        f"architectures of `{table}`; cost per architecture on one CPU thread.",
        "",
        "| estimator | Kendall tau | Spearman rho | seconds per architecture | share of full training |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r in results:
        lines.append(
            f"| {r['estimator']} | {r['kendall']:.3f} | {r['spearman']:.3f} | {r['seconds_per_arch']:.4f} | "
            f"{r['seconds_per_arch'] / full:.1%} |"
        )
    return "\n".join(lines) + "\n"
