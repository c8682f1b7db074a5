"""``kubenas bench estimators``: how well each cheap estimator ranks architectures, against full training.

On a benchmark table, a fixed sample of architectures (200 by default, drawn with a fixed seed) is scored by
every estimator; the report gives the Kendall tau and Spearman rho of each estimator's scores with the
table's validation accuracy (the full-training answer), and the cost per architecture:
- zero-cost proxies (``synflow``, ``grad_norm``, ``nwot``, ``params``, ``macs``) are computed for real, on
  the table's dataset and space, and timed;
- lower-fidelity training (fewer epochs) reads the table's per-epoch validation curve, and its cost is the
  table's training seconds scaled to those epochs.
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


def measure(table: str | Path = "nb201-4op-mnist1d", n: int = DEFAULT_SAMPLE, seed: int = 0,
            proxies=None, progress: bool = True) -> list[dict[str, Any]]:
    """One row per estimator: fewer training epochs read from the table, then each zero-cost proxy (default:
    all of them) computed for real."""
    import json

    import torch

    from kubenas.estimators.zero_cost import PROXIES, ZeroCostEstimator

    est = TabularEstimator(table)
    rows = sample_rows(est, n, seed)
    truth = [r["val_acc"] for r in rows]
    full_epochs = int(est.protocol["epochs"])
    out = []
    for epochs in range(1, full_epochs + 1):
        scores = [r["val_acc_curve"][epochs - 1] for r in rows]
        cost = float(np.mean([r["train_seconds"] * epochs / full_epochs for r in rows]))
        label = "full training" if epochs == full_epochs else f"training, {epochs} of {full_epochs} epochs"
        out.append({"estimator": label, **rank_correlations(scores, truth), "seconds_per_arch": cost})
    data = est.search_data()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the table was built: one thread per process
    try:
        for proxy in proxies or tuple(PROXIES):
            zc = ZeroCostEstimator(proxy)
            start = time.perf_counter()
            scores = []
            for r in rows:
                arch = json.loads(r["arch"]) if isinstance(r["arch"], str) else r["arch"]
                scores.append(zc.score(arch, est.space, data, seed=seed)["zc_score"])
            seconds = (time.perf_counter() - start) / len(rows)
            out.append({"estimator": f"zero-cost: {proxy}", **rank_correlations(scores, truth),
                        "seconds_per_arch": seconds})
            if progress:
                print(f"{proxy}: {seconds * 1000:.1f} ms per architecture", flush=True)
    finally:
        torch.set_num_threads(threads)
    return out


def markdown(results: list[dict[str, Any]], table: str, n: int) -> str:
    full = next(r["seconds_per_arch"] for r in results if r["estimator"] == "full training")
    lines = [f"Rank correlation with full training (the table's validation accuracy) on a fixed sample of {n} "
             f"architectures of `{table}`; cost per architecture on one CPU thread.", "",
             "| estimator | Kendall tau | Spearman rho | seconds per architecture | share of full training |",
             "| --- | --- | --- | --- | --- |"]
    for r in results:
        lines.append(f"| {r['estimator']} | {r['kendall']:.3f} | {r['spearman']:.3f} | {r['seconds_per_arch']:.4f} | "
                     f"{r['seconds_per_arch'] / full:.1%} |")
    return "\n".join(lines) + "\n"
