"""Where a local pipeline run spends its time: ``python -m kubenas.bench.pipeline [CONFIG] [--epochs N]
[--runner container --image IMAGE]``.

It starts the embedded stack (timed on its own), runs the search's pipeline through ``kfp.local`` against it
under a fresh name, and reads what every task recorded (``KUBENAS_PROFILE``): start-up (imports, before the step
began), training, S3 and MLflow time, and CPU seconds. It prints:

- the wall-time split of the pipeline run (the stack already up);
- the share of the wall time outside training. Training is the candidates' ``train_seconds`` over the
  parallelism, plus the export's retraining (the definition the pipeline issue measured by);
- the fixed CPU seconds per task kind, and per candidate in the training tasks (everything but training);
- with ``--runner container``, each task's container start: from the engine's request to the task's process.

Run it on a quiet machine: it measures contention as readily as the pipeline.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from importlib import resources
from pathlib import Path
from typing import Any

DEFAULT_CONFIG = Path(str(resources.files("kubenas.pipelines").joinpath("configs", "mnist1d-nb201.yaml")))


def measure(
    config_path: str | Path = DEFAULT_CONFIG,
    epochs: int | None = None,
    home: Path | None = None,
    runner: str = "subprocess",
    image: str | None = None,
) -> dict[str, Any]:
    from kubenas import local_run, stack
    from kubenas.config import load_config
    from kubenas.store import SearchStore

    cfg = load_config(config_path)
    update: dict[str, Any] = {"name": f"{cfg.name}-bench-{int(time.time())}"}
    if epochs is not None:
        update["fidelity"] = cfg.fidelity.model_copy(update={"epochs": epochs})
    cfg = cfg.model_copy(update=update)
    cfg = cfg.model_validate(cfg.model_dump())
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(home or tmp)
        profile = home / "profile" / "profile.jsonl"
        profile.parent.mkdir()
        profile.parent.chmod(0o777)  # tasks in containers append to it as uid 10001
        started = time.perf_counter()
        running = stack.start(home / "stack", quiet=True)
        stack_seconds = time.perf_counter() - started
        saved = dict(os.environ)
        try:
            os.environ.update(running.env())
            os.environ["KUBENAS_PROFILE"] = str(profile)
            report = local_run.run(cfg, home=home, runner=runner, image=image)
            store = SearchStore.from_config(cfg)
            rows = store.read_history().to_pylist()
            tasks = [json.loads(line) for line in profile.read_text().splitlines()]
        finally:
            os.environ.clear()
            os.environ.update(saved)
            running.stop()
    return {**summarise(cfg, report.seconds, stack_seconds, rows, report.summary or {}, tasks), "runner": runner}


def summarise(
    cfg, wall: float, stack_seconds: float, rows: list[dict], export: dict, tasks: list[dict]
) -> dict[str, Any]:
    parallelism = cfg.budget.parallelism
    candidate_train = sum(r["train_seconds"] or 0.0 for r in rows)
    retrain = float(export.get("retrain_seconds") or 0.0)
    training = candidate_train / parallelism + retrain
    kinds: dict[str, dict[str, Any]] = {}
    for t in tasks:
        k = kinds.setdefault(
            t["task"],
            {
                "tasks": 0,
                "candidates": 0,
                "startup_wall": [],
                "startup_cpu": [],
                "fixed_cpu": [],
                "train_cpu": 0.0,
                "s3_requests": [],
                "s3_seconds": 0.0,
                "mlflow_requests": [],
                "mlflow_seconds": 0.0,
                "work_wall": 0.0,
                "container": [],
            },
        )
        k["tasks"] += 1
        if "requested" in t:  # the container's creation and start, before its process began
            k["container"].append(t["started"] - t["requested"])
        k["candidates"] += t.get("candidates", 0)
        k["startup_wall"].append(t["step_start"] - t["started"])
        k["startup_cpu"].append(t["startup_cpu"])
        k["fixed_cpu"].append(t["cpu"] - t["train_cpu"])
        k["train_cpu"] += t["train_cpu"]
        k["s3_requests"].append(t.get("s3_requests", 0))
        k["s3_seconds"] += t.get("s3_seconds", 0.0)
        k["mlflow_requests"].append(t.get("mlflow_requests", 0))
        k["mlflow_seconds"] += t.get("mlflow_seconds", 0.0)
        k["work_wall"] += (
            (t["ended"] - t["step_start"]) - t["train_wall"] - t.get("s3_seconds", 0.0) - t.get("mlflow_seconds", 0.0)
        )
    out_kinds = {}
    for name, k in kinds.items():
        out_kinds[name] = {
            "tasks": k["tasks"],
            "candidates": k["candidates"],
            "startup_wall_s": statistics.mean(k["startup_wall"]),
            "startup_cpu_s": statistics.mean(k["startup_cpu"]),
            "fixed_cpu_per_task_s": statistics.mean(k["fixed_cpu"]),
            "fixed_cpu_per_candidate_s": (sum(k["fixed_cpu"]) / k["candidates"]) if k["candidates"] else None,
            "s3_requests_per_task": statistics.mean(k["s3_requests"]),
            "s3_seconds": k["s3_seconds"],
            "mlflow_requests_per_task": statistics.mean(k["mlflow_requests"]),
            "mlflow_seconds": k["mlflow_seconds"],
            "step_work_wall_s": k["work_wall"],
            "container_start_s": statistics.mean(k["container"]) if k["container"] else None,
        }
    split = {
        "stack start (before the run)": stack_seconds,
        "container start (summed over tasks)": sum(t["started"] - t["requested"] for t in tasks if "requested" in t),
        "task start-up (summed over tasks)": sum(t["step_start"] - t["started"] for t in tasks),
        "step work (summed)": sum(v["step_work_wall_s"] for v in out_kinds.values()),
        "training (summed)": sum(t["train_wall"] for t in tasks),
        "S3 (summed)": sum(v["s3_seconds"] for v in out_kinds.values()),
        "MLflow REST (summed)": sum(v["mlflow_seconds"] for v in out_kinds.values()),
        "teardown": 0.0,  # every task exits right after its outputs (steps.end_promptly)
    }
    return {
        "search": cfg.name,
        "epochs": cfg.fidelity.epochs,
        "candidates": len(rows),
        "parallelism": parallelism,
        "wall_s": wall,
        "training_s": training,
        "outside_training_share": 1 - training / wall,
        "candidate_train_s": candidate_train,
        "retrain_s": retrain,
        "split_s": split,
        "tasks": out_kinds,
        "load_average": os.getloadavg(),
        "raw": tasks,
    }


def render(result: dict[str, Any]) -> str:
    lines = [
        f"search {result['search']}: {result['candidates']} candidates at {result['epochs']} epoch(s), "
        f"parallelism {result['parallelism']}; load average {', '.join(f'{x:.2f}' for x in result['load_average'])}",
        f"pipeline wall time (stack already up): {result['wall_s']:.1f} s; training {result['training_s']:.1f} s "
        f"(candidates {result['candidate_train_s']:.1f} s / {result['parallelism']} "
        f"+ export {result['retrain_s']:.1f} s)",
        f"share outside training: {100 * result['outside_training_share']:.0f} %",
        "",
        "| where (seconds) | value |",
        "| --- | --- |",
    ]
    lines += [f"| {k} | {v:.1f} |" for k, v in result["split_s"].items()]
    lines += [
        "",
        "| task | n | container start s | start-up wall s | start-up CPU s | fixed CPU s per task | "
        "fixed CPU s per candidate | S3 requests per task | MLflow requests per task |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, k in result["tasks"].items():
        per_cand = "" if k["fixed_cpu_per_candidate_s"] is None else f"{k['fixed_cpu_per_candidate_s']:.2f}"
        box = "" if k.get("container_start_s") is None else f"{k['container_start_s']:.2f}"
        lines.append(
            f"| {name} | {k['tasks']} | {box} | {k['startup_wall_s']:.2f} | {k['startup_cpu_s']:.2f} | "
            f"{k['fixed_cpu_per_task_s']:.2f} | {per_cand} | {k['s3_requests_per_task']:.1f} | "
            f"{k['mlflow_requests_per_task']:.1f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kubenas.bench.pipeline", description=__doc__.split("\n")[0])
    parser.add_argument("config", nargs="?", default=str(DEFAULT_CONFIG), help="search config (default: the README's)")
    parser.add_argument("--epochs", type=int, default=None, help="override fidelity.epochs")
    parser.add_argument("--out", default=None, help="also write the result as JSON here")
    parser.add_argument(
        "--runner",
        default="subprocess",
        choices=("subprocess", "container"),
        help="run the tasks as subprocesses (default) or in the component image",
    )
    parser.add_argument("--image", default=None, help="with --runner container: the image (see kubenas run --image)")
    args = parser.parse_args(argv)
    result = measure(args.config, args.epochs, runner=args.runner, image=args.image)
    print(render(result))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
