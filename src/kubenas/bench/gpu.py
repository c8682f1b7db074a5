"""GPU path check: the training estimator on CUDA, with and without bfloat16 autocast, against the CPU.

    python -m kubenas.bench.gpu --out bench-gpu.json
    python -m kubenas.bench.gpu --oneshot --out bench-gpu-oneshot.json    # supernets: SPOS and DARTS

For each space, the same random architectures are trained with the same seed on mnist1d (1-D) and on a
synthetic 3x32x32 image task (2-D, larger tensors where the GPU matters). It reports accuracy, train
seconds, batch-1 latency and whether fp32 and bf16 runs agree on accuracy. ``--oneshot`` instead trains the
random-sampling and DARTS supernets of ``nb201`` and ``cell`` for a few epochs in each mode and reports
their throughput in training samples per second. CI never runs this.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from kubenas import Fidelity, TrainingEstimator, load_dataset, make_space
from kubenas.data.base import Dataset
from kubenas.recipes import Recipe


def synthetic_images(n_train=4096, n_val=1024, classes=10, seed=0) -> Dataset:
    """Class-dependent blobs on noise: learnable, so accuracy shows that training works."""
    gen = torch.Generator().manual_seed(seed)

    def split(n):
        y = torch.randint(0, classes, (n,), generator=gen)
        x = torch.randn(n, 3, 32, 32, generator=gen) * 0.5
        rows, cols = (y // 4) * 8 + 4, (y % 4) * 8 + 4
        for i in range(n):
            x[i, y[i] % 3, rows[i] : rows[i] + 6, cols[i] : cols[i] + 6] += 1.5
        return x, y

    return Dataset("blobs32", *split(n_train), *split(n_val), num_classes=classes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench-gpu.json"))
    parser.add_argument("--archs", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--cpu", action="store_true", help="also time the CPU (slow for the 2-D task)")
    parser.add_argument("--images", type=int, default=4096, help="training images of the 2-D task")
    parser.add_argument("--oneshot", action="store_true", help="time supernet training instead")
    args = parser.parse_args()
    cuda = torch.cuda.is_available()
    if not cuda:
        print("no CUDA device: timing the CPU only", flush=True)
    modes = {"cuda-bf16": ("cuda", True), "cuda-fp32": ("cuda", False)} if cuda else {}  # name: (device, amp)
    if args.cpu or not cuda:
        modes["cpu"] = ("cpu", False)
    tasks = {
        "mnist1d": load_dataset("mnist1d").without_test(),
        "blobs32": synthetic_images(args.images, args.images // 4),
    }
    report = {
        "device": torch.cuda.get_device_name(0) if cuda else "cpu",
        "torch": torch.__version__,
        "epochs": args.epochs,
        "runs": [],
    }
    for row in (oneshot if args.oneshot else training)(args, modes, tasks):
        report["runs"].append(row)
        print(json.dumps(row), flush=True)
    args.out.write_text(json.dumps(report, indent=1))
    print(f"wrote {args.out}")


def training(args, modes, tasks):
    """Stand-alone training of ``args.archs`` random architectures per space, task and mode."""
    estimators = {mode: TrainingEstimator(Recipe(amp=amp), device=device) for mode, (device, amp) in modes.items()}
    for task, data in tasks.items():
        for name in ("chain", "multibranch", "nb201", "cell"):
            space = make_space(name)
            rng = np.random.default_rng(0)
            for k in range(args.archs):
                arch = space.sample(rng)
                for mode, est in estimators.items():
                    t0 = time.perf_counter()
                    res = est.evaluate(arch, space, data, Fidelity(epochs=args.epochs), seed=0)
                    row = {
                        "task": task,
                        "space": name,
                        "arch": k,
                        "mode": mode,
                        "status": res.status,
                        "error": res.error,
                        "wall_s": time.perf_counter() - t0,
                    }
                    row.update(
                        {m: res.metrics.get(m) for m in ("val_acc", "train_seconds", "latency_ms", "params", "macs")}
                    )
                    yield row


def oneshot(args, modes, tasks):
    """Supernet training throughput per mode: random sampling (one path a step) and DARTS (every operation a
    step, plus the architecture step)."""
    from kubenas.oneshot import make_oneshot

    for task, data in tasks.items():
        for space_name in ("nb201", "cell"):
            space = make_space(space_name)
            for method in ("random_sampling", "darts"):
                for mode, (device, amp) in modes.items():
                    m = make_oneshot(method, space, seed=0, device=device, amp=amp)
                    m.setup(data.input_shape, data.num_classes, args.epochs)
                    stats = [m.train_epoch(data) for _ in range(args.epochs)]
                    seconds = sum(s["seconds"] for s in stats[1:]) or stats[0]["seconds"]  # the first epoch warms up
                    epochs = max(1, len(stats) - 1)
                    scores = m.score(m.propose(4), data, 2)
                    yield {
                        "task": task,
                        "space": space_name,
                        "method": method,
                        "mode": mode,
                        "samples_per_s": epochs * len(data.x_train) / seconds,
                        "epoch_s": seconds / epochs,
                        "train_loss": stats[-1]["train_loss"],
                        "val_acc": max(scores),
                    }


if __name__ == "__main__":
    main()
