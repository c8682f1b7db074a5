"""Image data and training recipes, measured (benchmarks/README.md states the figures and the machine).

    python benchmarks/images.py passmark     # the built-in shapes at the example's search fidelity: 20 random cells
    python benchmarks/images.py throughput   # kubenas's trainer against a plain PyTorch loop, resident path
    python benchmarks/images.py augment      # what batched augmentation costs an epoch; kubenas's against kornia's
    python benchmarks/images.py accuracy     # best of 5 cells with and without augmentation, 3 seeds (long)
    python benchmarks/images.py datapath     # an epoch streamed from the embedded S3 against a resident one; memory
    python benchmarks/images.py gpu --epochs 3   # on a GPU: the nb201 recipe, bf16 and channels-last on and off

Every figure is printed and appended as one JSON line to ``benchmarks/results/images.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
import yaml

from kubenas import Fidelity, make_space
from kubenas.data import load_dataset
from kubenas.estimators import loop
from kubenas.estimators.training import TrainingEstimator
from kubenas.recipes import Augment, resolve

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "pipelines" / "configs" / "shapes-nb201.yaml"
RESULTS = ROOT / "benchmarks" / "results" / "images.jsonl"


def record(kind: str, save: bool = True, **values) -> None:
    line = {"kind": kind, "load": list(_load()), "threads": torch.get_num_threads(), **values}
    print(json.dumps(line), flush=True)
    if not save:  # a check of the script, not a measurement
        return
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with RESULTS.open("a") as f:
        f.write(json.dumps(line) + "\n")


def _load() -> tuple[float, ...]:
    import os

    return tuple(round(v, 2) for v in os.getloadavg())


def passmark(args) -> None:
    """Validation accuracy of 20 random NB-201 cells at the README example's search fidelity."""
    cfg = yaml.safe_load(EXAMPLE.read_text())
    data = load_dataset(cfg["dataset"]["name"], **cfg["dataset"].get("options", {})).without_test()
    space = make_space(cfg["space"]["name"], **cfg["space"].get("options", {}))
    fidelity = Fidelity(**cfg["fidelity"])
    est = TrainingEstimator(resolve(cfg.get("estimator", {}).get("recipe")), device="cpu")
    accs, start = [], time.perf_counter()
    for i in range(args.cells):
        res = est.evaluate(space.sample(1000 + i), space, data, fidelity, seed=0)
        accs.append(res.metrics.get("val_acc", float("nan")))
        print(f"cell {i}: {res.status} val_acc {accs[-1]:.3f} ({time.perf_counter() - start:.0f} s)", flush=True)
    record(
        "passmark",
        cells=args.cells,
        fidelity=cfg["fidelity"],
        val_acc=[round(a, 4) for a in accs],
        best=max(accs),
        worst=min(accs),
        span_points=round(100 * (max(accs) - min(accs)), 1),
        passed=bool(max(accs) <= 0.92 and max(accs) - min(accs) >= 0.15),
        seconds=round(time.perf_counter() - start, 1),
    )


def plain_loop(model, x, y, xv, yv, epochs, batch, augment, seed, sgd=False, bf16=False, channels_last=False) -> None:
    """A plain PyTorch loop doing what kubenas's trainer does, nothing more: AdamW (or the nb201 recipe's SGD),
    cosine, the same batches and augmentation calls, a validation pass per epoch, and no per-step read of the loss;
    on CUDA, optionally bf16 autocast and channels-last."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    steps = -(-len(x) // batch)
    if sgd:
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    else:
        opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * steps)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    autocast = torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16 and x.device.type == "cuda")
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(x), generator=gen).to(x.device)
        total = torch.zeros((), device=x.device)
        for step in range(steps):
            idx = order[step * batch : (step + 1) * batch]
            xb = augment(x[idx]) if augment is not None else x[idx]
            with autocast:
                loss = F.cross_entropy(model(xb.contiguous(memory_format=fmt)), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.detach()
        model.eval()
        with torch.no_grad(), autocast:
            correct = sum(
                (model(xv[s : s + 1024]).argmax(1) == yv[s : s + 1024]).sum() for s in range(0, len(xv), 1024)
            )
        float(total), int(correct)  # one read of each an epoch, as the trainer does


def _bench_data(train: int):
    data = load_dataset("shapes", train=train, test=1000, val_fraction=0.1).without_test()
    space = make_space("nb201", width=16, cells_per_stage=1)
    arch = {d.name: "nor_conv_3x3" for d in space.decisions}  # the costliest cell: every edge a convolution
    return data, space, arch


def throughput(args) -> None:
    """Training images a second: kubenas's trainer and the plain loop, one epoch each, ``repeats`` times, with
    and without augmentation."""
    data, space, arch = _bench_data(args.train)
    shape, n = data.input_shape, len(data.x_train)
    for aug in (Augment(), Augment(crop_padding=4, flip=True)):
        recipe = resolve({"batch_size": args.batch, "augment": aug})
        est = TrainingEstimator(recipe, device="cpu", latency_reps=1)
        ours, plain = [], []
        for rep in range(args.repeats):
            t = time.perf_counter()
            est.fit(arch, space, data, Fidelity(epochs=args.epochs), seed=rep)
            ours.append(time.perf_counter() - t)
            model = space.build(arch, shape, data.num_classes)
            augment = loop.Augmenter(aug, torch.device("cpu"), rep) if aug.active else None
            t = time.perf_counter()
            plain_loop(model, data.x_train, data.y_train, data.x_val, data.y_val, args.epochs, args.batch, augment, rep)
            plain.append(time.perf_counter() - t)
        record(
            "throughput",
            augment=aug.active,
            images=n,
            epochs=args.epochs,
            batch=args.batch,
            kubenas_s=[round(v, 2) for v in ours],
            plain_s=[round(v, 2) for v in plain],
            kubenas_images_per_s=round(args.epochs * n / statistics.median(ours), 1),
            plain_images_per_s=round(args.epochs * n / statistics.median(plain), 1),
            ratio=round(statistics.median(plain) / statistics.median(ours), 3),
        )


def gpu(args) -> None:
    """Images a second of the nb201 recipe at CIFAR-10's shape (the built-in shapes are 32x32 RGB) on a GPU:
    kubenas's trainer against the plain loop, bf16 autocast and channels-last each on and off, ``repeats`` runs
    of ``epochs`` epochs (the first epoch includes cuDNN's autotuning: give 2 or more)."""
    device = torch.device(args.device)
    data, space, arch = _bench_data(args.train)
    x, y, xv, yv = (t.to(device) for t in (data.x_train, data.y_train, data.x_val, data.y_val))
    aug = Augment(crop_padding=4, flip=True)
    for bf16 in (False, True):
        for channels_last in (False, True):
            recipe = resolve({"preset": "nb201", "amp": bf16, "channels_last": channels_last})
            est = TrainingEstimator(recipe, device=args.device, latency_reps=1)
            ours, plain = [], []
            for rep in range(args.repeats):
                t = time.perf_counter()
                est.fit(arch, space, data, Fidelity(epochs=args.epochs), seed=rep)
                ours.append(time.perf_counter() - t)
                model = space.build(arch, data.input_shape, data.num_classes).to(device)
                augment = loop.Augmenter(aug, device, rep)
                t = time.perf_counter()
                plain_loop(model, x, y, xv, yv, args.epochs, recipe.batch_size, augment, rep, True, bf16, channels_last)
                if device.type == "cuda":
                    torch.cuda.synchronize()
                plain.append(time.perf_counter() - t)
            images = args.epochs * len(x)
            record(
                "gpu_throughput",
                save=device.type == "cuda",
                device=torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
                bf16=bf16,
                channels_last=channels_last,
                images=len(x),
                epochs=args.epochs,
                kubenas_images_per_s=round(images / statistics.median(ours), 1),
                plain_images_per_s=round(images / statistics.median(plain), 1),
                ratio=round(statistics.median(plain) / statistics.median(ours), 3),
            )


def augment_cost(args) -> None:
    """Seconds an epoch's augmentation takes alone, kubenas's batched indexing against kornia's, and what it adds to
    a resident epoch of the plain loop."""
    data, space, arch = _bench_data(args.train)
    x = data.x_train
    aug = Augment(crop_padding=4, flip=True, cutout=8)
    ours = loop.Augmenter(aug, torch.device("cpu"), 0)
    batches = [x[s : s + args.batch] for s in range(0, len(x), args.batch)]

    def timed(fn) -> float:
        out = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            for b in batches:
                fn(b)
            out.append(time.perf_counter() - t)
        return statistics.median(out)

    row = {"images": len(x), "batch": args.batch, "kubenas_s": round(timed(ours), 3)}
    try:
        import kornia.augmentation as K

        kornia = torch.nn.Sequential(
            K.RandomCrop((x.shape[2], x.shape[3]), padding=4),
            K.RandomHorizontalFlip(),
            K.RandomErasing(scale=(0.0625, 0.0625), ratio=(1.0, 1.0), p=1.0),
        )
        row["kornia_s"] = round(timed(kornia), 3)
    except ImportError:
        row["kornia_s"] = None
    model = space.build(arch, data.input_shape, data.num_classes)
    epoch = []
    for rep in range(args.repeats):
        t = time.perf_counter()
        plain_loop(model, data.x_train, data.y_train, data.x_val, data.y_val, 1, args.batch, None, rep)
        epoch.append(time.perf_counter() - t)
    row["epoch_s"] = round(statistics.median(epoch), 2)
    row["augment_share_of_epoch"] = round(row["kubenas_s"] / row["epoch_s"], 4)
    record("augment_cost", **row)


def accuracy(args) -> None:
    """The best validation accuracy of 5 random cells, trained at the example's export epochs with and without
    crop and flip, for 3 seeds."""
    cfg = yaml.safe_load(EXAMPLE.read_text())
    data = load_dataset(cfg["dataset"]["name"], **cfg["dataset"].get("options", {})).without_test()
    space = make_space(cfg["space"]["name"], **cfg["space"].get("options", {}))
    base = resolve(cfg.get("estimator", {}).get("recipe"))
    cells = [space.sample(2000 + i) for i in range(5)]
    for seed in range(3):
        best = {}
        for aug in (Augment(), Augment(crop_padding=4, flip=True)):
            est = TrainingEstimator(resolve({"augment": aug}, base=base), device="cpu")
            accs = [est.evaluate(c, space, data, Fidelity(epochs=cfg["export"]["epochs"]), seed=seed) for c in cells]
            best[aug.active] = max(r.metrics.get("val_acc", 0.0) for r in accs)
        record("augment_accuracy", seed=seed, without=best[False], with_crop_flip=best[True])


class PeakRss:
    """The peak memory of this process plus its children (DataLoader workers), sampled every 50 ms: the sum of
    their RSS (which counts the pages they share, torch's libraries above all, once per process) and of their PSS
    (which splits shared pages between the processes that share them: what they use together)."""

    def __init__(self) -> None:
        import threading

        self.peak = self.peak_pss = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def _memory(pid: int) -> tuple[int, int]:
        rss = pss = 0
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Rss:"):
                    rss = int(line.split()[1]) * 1024
                elif line.startswith("Pss:"):
                    pss = int(line.split()[1]) * 1024
        except OSError:
            pass
        return rss, pss

    def _children(self, pid: int) -> list[int]:
        out = []
        try:
            tasks = list(Path(f"/proc/{pid}/task").iterdir())
        except OSError:  # the process has ended
            return out
        for task in tasks:
            try:
                kids = [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                kids = []
            for kid in kids:
                out += [kid, *self._children(kid)]
        return out

    def _run(self) -> None:
        import os

        me = os.getpid()
        while not self._stop.wait(0.05):
            both = [self._memory(p) for p in [me, *self._children(me)]]
            self.peak = max(self.peak, sum(r for r, _ in both))
            self.peak_pss = max(self.peak_pss, sum(p for _, p in both))

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def datapath(args) -> None:
    """A resident epoch against an epoch streamed from the embedded S3 (same images, network and recipe), and the
    peak memory of streaming a dataset several times larger than a memory budget."""
    import tempfile

    import boto3

    from kubenas import stack
    from kubenas.data.shapes import write_shapes

    home = Path(tempfile.mkdtemp(prefix="kubenas-bench-"))
    s = stack.start(home, quiet=True)
    try:
        import os

        os.environ.update(s.env())
        client = boto3.client("s3")
        client.create_bucket(Bucket="bench")

        def upload(train: int, test: int) -> str:
            local = write_shapes(train, test, 0, home / "cache")
            for f in sorted(local.glob("*.parquet")):
                client.upload_file(str(f), "bench", f"shapes-{train}/{f.name}")
            return f"s3://bench/shapes-{train}/"

        common = {"image_column": "image", "label_column": "label", "cache_dir": str(home / "cache" / "images")}
        space = make_space("nb201", width=16, cells_per_stage=1)
        arch = {d.name: "nor_conv_3x3" for d in space.decisions}
        uri = upload(args.train, 1000)
        recipe = resolve({"batch_size": args.batch, "augment": {"crop_padding": 4, "flip": True}})
        times = {}
        for path in ("resident", "streaming"):
            data = load_dataset("parquet", path=uri, data_path=path, workers=args.workers, **common).without_test()
            est = TrainingEstimator(recipe, device="cpu", latency_reps=1)
            runs = []
            for rep in range(args.repeats):
                t = time.perf_counter()
                est.fit(arch, space, data, Fidelity(epochs=1), seed=rep)
                runs.append(time.perf_counter() - t)
            times[path] = statistics.median(runs)
        record(
            "datapath_epoch",
            images=args.train,
            workers=args.workers,
            resident_s=round(times["resident"], 2),
            streaming_s=round(times["streaming"], 2),
            ratio=round(times["streaming"] / times["resident"], 3),
        )
        # memory: stream a dataset whose decoded images are 4x the budget, in a process of its own (as a training
        # task would: a process that has held other data keeps its pages, and forked workers count them again)
        import subprocess

        budget = args.budget_mib << 20
        count = 4 * budget // (3 * args.side * args.side * 4)
        uri = upload(count, 10)
        subprocess.run(
            [
                sys.executable,
                __file__,
                "memory",
                "--uri",
                uri,
                "--budget-mib",
                str(args.budget_mib),
                "--side",
                str(args.side),
                "--workers",
                str(args.workers),
                "--images",
                str(count),
                "--cache",
                str(home / "cache" / "images"),
            ],
            check=True,
        )
    finally:
        s.stop()


def memory(args) -> None:
    """Stream ``--uri`` (shapes Parquet in S3, resized to ``--side``) through every worker and read it all,
    sampling the peak memory of this process and its workers."""
    budget = args.budget_mib << 20
    per_image = 3 * args.side * args.side * 4
    data = load_dataset(
        "parquet",
        path=args.uri,
        image_column="image",
        label_column="label",
        memory_budget=budget,
        resize=args.side,
        workers=args.workers,
        cache_dir=args.cache,
    ).without_test()
    assert data.streamed, "the dataset should not fit the budget"
    seen = 0
    with PeakRss() as rss:
        for xb, _ in data.loader("train", 256):
            seen += len(xb)
    record(
        "datapath_memory",
        images=args.images,
        decoded_mib=round(args.images * per_image / 2**20),
        budget_mib=args.budget_mib,
        peak_rss_mib=round(rss.peak / 2**20),
        peak_pss_mib=round(rss.peak_pss / 2**20),
        rss_under_budget=rss.peak < budget,
        seen=seen,
        workers=args.workers,
    )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=("passmark", "throughput", "augment", "accuracy", "datapath", "memory", "gpu"))
    parser.add_argument("--device", default="cuda", help="gpu: the device (cpu runs it as a check of the script)")
    parser.add_argument("--uri", help="memory: the streamed Parquet's s3:// URI")
    parser.add_argument("--images", type=int, default=0, help="memory: how many images it holds")
    parser.add_argument("--cache", help="memory: the image cache folder")
    parser.add_argument("--workers", type=int, default=2, help="the streaming path's DataLoader workers")
    parser.add_argument("--budget-mib", type=int, default=1536, help="the memory budget the streamed data exceeds 4x")
    parser.add_argument("--side", type=int, default=96, help="image side of the memory measurement (resize)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cells", type=int, default=20)
    parser.add_argument("--train", type=int, default=10_000, help="training images of the built-in dataset")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    kinds = {"passmark": passmark, "throughput": throughput, "augment": augment_cost, "accuracy": accuracy}
    kinds.update(datapath=datapath, memory=memory, gpu=gpu)
    kinds[args.what](args)


if __name__ == "__main__":
    sys.exit(main())
