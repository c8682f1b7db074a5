"""Compile the pipeline for 1, 10, 30 and 100 rounds and check the task graph it gives Kubeflow."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from kubenas import __version__
from kubenas.components.image import CUDA_IMAGE, IMAGE
from kubenas.config import parse_config
from kubenas.pipelines import compile_pipeline

BASE = {
    "name": "compile-test",
    "dataset": {"name": "mnist1d"},
    "space": {"name": "nb201"},
    "budget": {"candidates_per_round": 4, "parallelism": 3},
}
GPU = {
    "resources": {
        "gpus": 2,
        "cpu": "4",
        "memory": "8Gi",
        "node_selector": {"pool": "gpu"},
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
    },
    "tracking": {"uri": "http://mlflow.kubenas:5000", "secret": "mlflow-auth"},
}


def compiled(tmp_path: Path, rounds: int, **extra) -> tuple[dict, dict, int]:
    cfg = parse_config({**BASE, **extra, "budget": {**BASE["budget"], "rounds": rounds}})
    path = compile_pipeline(cfg, tmp_path / f"p{rounds}.yaml")
    docs = list(yaml.safe_load_all(path.read_text()))
    platform = docs[1] if len(docs) > 1 else {}
    return docs[0], platform, path.stat().st_size


def _dags(spec: dict) -> dict[str, dict]:
    out = {"root": spec["root"]["dag"]}
    out.update({name: c["dag"] for name, c in spec["components"].items() if "dag" in c})
    return out


def _tasks(spec: dict) -> list[tuple[str, dict]]:
    """Every task of every DAG (sub-pipelines reuse task names, so a list of pairs, not a dict)."""
    return [(name, t) for dag in _dags(spec).values() for name, t in dag["tasks"].items()]


@pytest.mark.parametrize("rounds", [1, 10, 30, 100])
def test_task_graph(tmp_path, rounds):
    spec, platform, size = compiled(tmp_path, rounds)
    tasks = _tasks(spec)
    count = lambda prefix: sum(bool(re.fullmatch(prefix + r"(-\d+)?", n)) for n, _ in tasks)  # noqa: E731
    assert count("sample-architectures") == count("update-strategy") == count("train-candidates") == rounds
    assert count("init-search") == 1
    assert count("export-winner") == 1  # after the rounds, whichever round stopped the search

    loops = [t for _, t in tasks if "parameterIterator" in t]
    assert len(loops) == rounds and all(t["iteratorPolicy"]["parallelismLimit"] == 3 for t in loops)

    conditions = [t["triggerPolicy"]["condition"] for _, t in tasks if "condition" in t.get("triggerPolicy", {})]
    assert len(conditions) == rounds - 1  # round k+1 runs only if round k's update says "continue"
    assert all(c.endswith("== 'continue'") and "update-strategy" in c and "Output" in c for c in conditions)

    params = spec["root"]["inputDefinitions"]["parameters"]
    # the run form: the fields people change most, typed, with the config's values as defaults; then the config
    assert {k: (p["parameterType"], p["defaultValue"]) for k, p in params.items() if k != "config_json"} == {
        "name": ("STRING", "compile-test"),
        "seed": ("NUMBER_INTEGER", 0),
        "strategy": ("STRING", "regularized_evolution"),
        "epochs": ("NUMBER_INTEGER", 3),
        "data_fraction": ("NUMBER_DOUBLE", 1.0),
        "candidates_per_round": ("NUMBER_INTEGER", 4),
        "rounds": ("NUMBER_INTEGER", rounds),
    }
    assert len(params["config_json"]["defaultValue"]) < 10_000
    images = {e["container"]["image"] for e in spec["deploymentSpec"]["executors"].values()}
    assert images == {IMAGE} and IMAGE.endswith(f":{__version__}")
    # linear in the rounds (about 12.6 KB a round), and under the 1.5 MiB an Argo Workflow object may hold
    assert size < 1.5 * 1024 * 1024 and size < 13_500 * rounds + 20_000, f"{rounds} rounds compile to {size} bytes"

    # every task reads the S3 credentials from the Kubernetes Secret, never from a parameter
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert len(executors) == len(spec["deploymentSpec"]["executors"])
    for ex in executors.values():
        assert ex["secretAsEnv"][0]["secretName"] == "kubenas-s3"
        assert {k["envVar"] for k in ex["secretAsEnv"][0]["keyToEnv"]} == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}


def test_credentials_in_the_environment_never_reach_the_package(tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "sentinel-access-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "sentinel-secret-key")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "sentinel-mlflow-password")
    compiled(tmp_path, 2, **GPU)
    text = (tmp_path / "p2.yaml").read_text()
    assert "sentinel" not in text


@pytest.mark.parametrize("rounds", [1, 10, 30])
def test_the_export_waits_for_all_rounds(tmp_path, rounds):
    # The export reads the history from S3, not from an upstream output: without an explicit dependency it
    # started when the last round began and missed that round's candidates. It depends on the sub-pipeline that
    # holds round 1, which ends only when every round nested in it has ended.
    spec, _, _ = compiled(tmp_path, rounds)
    root = spec["root"]["dag"]["tasks"]
    (export,) = [t for name, t in root.items() if name.startswith("export-winner")]
    (rounds_task,) = [name for name, t in root.items() if t["componentRef"]["name"].startswith("comp-rounds-1-")]
    assert rounds_task in export["dependentTasks"]
    dags = _dags(spec)
    reached, todo = set(), [root[rounds_task]["componentRef"]["name"]]
    while todo:  # every round's update is inside the sub-DAG the export waits for
        name = todo.pop()
        reached.add(name)
        todo += [
            t["componentRef"]["name"]
            for t in dags.get(name, {"tasks": {}})["tasks"].values()
            if t["componentRef"]["name"] in dags
        ]
    assert sum(n.startswith("update-strategy") for d in reached for n in dags[d]["tasks"]) == rounds


def test_no_caching(tmp_path):
    spec, _, _ = compiled(tmp_path, 2)
    assert all(t.get("cachingOptions", {}).get("enableCache") is not True for _, t in _tasks(spec))


def test_every_step_is_retried_and_init_holds_the_run_id(tmp_path):
    """KFP retries a lost pod twice, with backoff (each step is idempotent: tests/e2e/test_faults.py); init gets
    the pipeline run's id, which holds the search's lease across those retries."""
    spec, _, _ = compiled(tmp_path, 2)
    steps = [(n, t) for n, t in _tasks(spec) if "executorLabel" in spec["components"][t["componentRef"]["name"]]]
    assert len(steps) == 2 + 3 * 2  # init, export, and sample/train/update per round
    for name, task in steps:
        assert task["retryPolicy"] == {
            "maxRetryCount": 2,
            "backoffDuration": "30s",
            "backoffFactor": 2.0,
            "backoffMaxDuration": "600s",
        }, name
    init = spec["root"]["dag"]["tasks"]["init-search"]
    assert init["inputs"]["parameters"]["job"]["runtimeValue"]["constant"] == "{{$.pipeline_job_uuid}}"


def test_local_runs_fail_at_once(tmp_path):
    """`kubenas run` compiles without retries: kfp.local honours them, and would wait 90 s before a failure."""
    from kfp import compiler

    from kubenas.pipelines import build_pipeline

    cfg = parse_config({**BASE, "budget": {**BASE["budget"], "rounds": 2}})
    compiler.Compiler().compile(build_pipeline(cfg, retries=0), package_path=str(tmp_path / "local.yaml"))
    assert "retryPolicy" not in (tmp_path / "local.yaml").read_text()


def test_gpu_settings_on_training_and_export_tasks(tmp_path):
    spec, platform, _ = compiled(tmp_path, 3, **GPU)
    executors = spec["deploymentSpec"]["executors"]
    kube = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    trained = [name for name in executors if name.startswith(("exec-train-candidates", "exec-export-winner"))]
    assert len(trained) == 3 + 1
    for name in trained:
        res = executors[name]["container"]["resources"]
        assert res["accelerator"]["resourceType"] == "nvidia.com/gpu" and res["accelerator"]["resourceCount"] == "2"
        assert res["resourceCpuLimit"] == "4" and res["resourceMemoryLimit"] == "8Gi"
        assert kube[name]["nodeSelector"]["labels"] == {"pool": "gpu"}
        assert kube[name]["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
        assert {s["secretName"] for s in kube[name]["secretAsEnv"]} == {"kubenas-s3", "mlflow-auth"}
        assert executors[name]["container"]["image"] == CUDA_IMAGE
    for name in set(executors) - set(trained):
        assert "accelerator" not in executors[name]["container"].get("resources", {})
        assert executors[name]["container"]["image"] == IMAGE  # sample/update/init stay on the small CPU image


def test_an_image_in_the_config_runs_every_task(tmp_path):
    pinned = "registry.example.com/ml/kubenas@sha256:" + "0" * 64
    spec, _, _ = compiled(tmp_path, 2, resources={"gpus": 1, "image": pinned})
    assert {e["container"]["image"] for e in spec["deploymentSpec"]["executors"].values()} == {pinned}


@pytest.mark.parametrize(
    "image", ["registry.example.com/kubenas", "registry.example.com/kubenas:latest", "localhost:5000/kubenas"]
)
def test_an_unpinned_image_is_refused(image):
    from kubenas.config import ConfigError

    with pytest.raises(ConfigError, match="resources.image"):
        parse_config({**BASE, "resources": {"image": image}})


def test_no_gpu_by_default(tmp_path):
    spec, _, _ = compiled(tmp_path, 2)
    assert not any(
        "accelerator" in e["container"].get("resources", {}) for e in spec["deploymentSpec"]["executors"].values()
    )
