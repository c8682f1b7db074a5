"""Core-library benchmark: space build/forward times, the accuracy spread of random nb201 cells, and
regularized evolution against random search (and local search) with real training on mnist1d.

    python -m kubenas.bench.core --out bench-core.json

Everything runs on the CPU in this process; the JSON output records the protocol with the numbers.
Results are reported as median and interquartile range over seeds (benchmarks/README.md says why).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from kubenas import Fidelity, TrainingEstimator, load_dataset, make_space, search

SPACES = ["chain", "multibranch", "cell", "nb201"]
SHAPES = {"1d (1, 40)": (1, 40), "2d (1, 8, 8)": (1, 8, 8), "2d (3, 32, 32)": (3, 32, 32)}


def quartiles(values: list[float]) -> dict[str, float]:
    q1, med, q3 = np.percentile(values, [25, 50, 75])
    return {
        "median": float(med),
        "q1": float(q1),
        "q3": float(q3),
        "min": float(min(values)),
        "max": float(max(values)),
    }


def bench_build_forward(n_archs: int = 10, batch: int = 64) -> dict:
    """Median build time and forward time (batch of ``batch``, eval mode) over random architectures."""
    out = {}
    for name in SPACES:
        space = make_space(name)
        rng = np.random.default_rng(0)
        archs = [space.sample(rng) for _ in range(n_archs)]
        for label, shape in SHAPES.items():
            builds, forwards = [], []
            x = torch.randn(batch, *shape)
            for arch in archs:
                t0 = time.perf_counter()
                model = space.build(arch, shape, 10).eval()
                builds.append(time.perf_counter() - t0)
                with torch.no_grad():
                    model(x)  # warm-up
                    t0 = time.perf_counter()
                    model(x)
                forwards.append(time.perf_counter() - t0)
            out[f"{name} {label}"] = {
                "build_ms": 1000 * statistics.median(builds),
                "forward_ms_batch64": 1000 * statistics.median(forwards),
            }
            print(
                f"{name:12s} {label:16s} build {out[f'{name} {label}']['build_ms']:7.2f} ms   "
                f"forward(64) {out[f'{name} {label}']['forward_ms_batch64']:8.2f} ms",
                flush=True,
            )
    return out


def bench_nb201_spread(fidelity: Fidelity, n: int = 20) -> dict:
    data = load_dataset("mnist1d").without_test()
    result = search("nb201", "random", dataset=data, fidelity=fidelity, max_evals=n, seed=123)
    accs = [r["metrics"]["val_acc"] for r in result.history if r["status"] == "ok"]
    secs = [r["cost"] for r in result.history]
    summary = {
        "n": n,
        "val_acc": quartiles(accs),
        "seconds_per_eval": quartiles(secs),
        "genotypes": [[r["genotype"], r["metrics"].get("val_acc")] for r in result.history],
    }
    print(
        f"nb201 x{n} random: val_acc median {summary['val_acc']['median']:.3f} "
        f"IQR [{summary['val_acc']['q1']:.3f}, {summary['val_acc']['q3']:.3f}] "
        f"range [{summary['val_acc']['min']:.3f}, {summary['val_acc']['max']:.3f}], "
        f"{summary['seconds_per_eval']['median']:.2f} s/eval",
        flush=True,
    )
    return summary


def bench_strategies(fidelity: Fidelity, budget: int, seeds: list[int]) -> dict:
    data = load_dataset("mnist1d")
    estimator = TrainingEstimator()
    space = make_space("nb201")
    configs = {
        "random": {},
        "regularized_evolution": {"population_size": 10, "sample_size": 3},
        "local_search": {"n_init": 5},
    }
    out = {}
    for name, options in configs.items():
        runs = []
        for seed in seeds:
            t0 = time.perf_counter()
            result = search(
                space, name, dataset=data, fidelity=fidelity, max_evals=budget, seed=seed, strategy_options=options
            )
            best = result.best
            # What a user gets: retrain the winner with the same protocol and score it on the test split.
            model, _ = estimator.fit(best["arch"], space, data.without_test(), fidelity, seed)
            _, test_acc = estimator.score(model, data.x_test, data.y_test)
            curve = np.maximum.accumulate([r["metrics"].get("val_acc", 0.0) for r in result.history]).tolist()
            runs.append(
                {
                    "seed": seed,
                    "best_val_acc": best["metrics"]["val_acc"],
                    "winner_test_acc": test_acc,
                    "genotype": best["genotype"],
                    "incumbent_curve": curve,
                    "seconds": time.perf_counter() - t0,
                }
            )
            print(
                f"{name:22s} seed {seed}: best val {runs[-1]['best_val_acc']:.4f}, test {test_acc:.4f}, "
                f"{runs[-1]['seconds']:.0f} s  {best['genotype']}",
                flush=True,
            )
        out[name] = {
            "options": options,
            "runs": runs,
            "best_val_acc": quartiles([r["best_val_acc"] for r in runs]),
            "winner_test_acc": quartiles([r["winner_test_acc"] for r in runs]),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench-core.json"))
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--budget", type=int, default=30)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--skip-strategies", action="store_true")
    args = parser.parse_args()
    fidelity = Fidelity(epochs=args.epochs)
    report = {
        "machine": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "cpu": platform.processor() or platform.machine(),
        },
        "protocol": {
            "dataset": "mnist1d (3200 train / 800 val / 1000 test)",
            "fidelity": fidelity.to_dict(),
            "space": make_space("nb201").spec(),
            "budget_evals": args.budget,
            "seeds": args.seeds,
            "optimizer": "AdamW lr 3e-3 wd 1e-4, cosine, batch 128",
            "device": "cpu",
        },
        "build_forward": bench_build_forward(),
        "nb201_random_spread": bench_nb201_spread(fidelity),
    }
    if not args.skip_strategies:
        report["strategies"] = bench_strategies(fidelity, args.budget, list(range(args.seeds)))
    args.out.write_text(json.dumps(report, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
