"""What a user runs after the quick start: the README's snippets that read the stack, `kubenas env`,
`kubenas.connect()` and `kubenas status`, on the real stack."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import yaml

import kubenas
from kubenas import stack, steps
from kubenas.cli import main
from kubenas.config import parse_config
from kubenas.estimators.tabular import TabularEstimator
from kubenas.store import SearchStore
from tests.e2e.test_lifecycle import ENV
from tests.unit.test_readme import README, python_blocks

TABLE = "nb201-4op-mnist1d"


def tabular(name: str, **budget) -> dict:
    return {
        "name": name,
        "seed": 0,
        "dataset": {"name": "mnist1d"},
        "space": {"name": "nb201", "options": TabularEstimator(TABLE).protocol["space_options"]},
        "strategy": {"name": "random"},
        "estimator": {"table": TABLE},
        "budget": {"rounds": 1, "candidates_per_round": 2, "parallelism": 1, **budget},
        "export": {"epochs": 1},
    }


def tiny_shapes(name: str) -> dict:
    """The README example's search at its smallest: 200 generated images, two candidates, one epoch each."""
    return {
        "name": name,
        "seed": 0,
        "dataset": {"name": "shapes", "options": {"train": 200, "test": 40, "val_fraction": 0.2}},
        "space": {"name": "nb201", "options": {"width": 4}},
        "strategy": {"name": "random"},
        "fidelity": {"epochs": 1, "resolution": 16},
        "budget": {"rounds": 1, "candidates_per_round": 2, "parallelism": 1},
        "export": {"epochs": 1, "recipe": {"augment": {"crop_padding": 4, "flip": True}}},
    }


def test_every_python_snippet_of_the_readme_runs_after_a_search_of_its_name(stack_env, tmp_path, monkeypatch):
    path = tmp_path / "readme.yaml"
    path.write_text(yaml.safe_dump(tiny_shapes("shapes-nb201")))  # the README's search name, in small
    assert main(["run", str(path), "--home", str(tmp_path / "home")]) == 0
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for block in python_blocks():  # all of them, in order, as a reader runs them
        exec(compile(block, str(README), "exec"), namespace)
    assert type(namespace["model"]).__name__ != "NoneType" and namespace["table"].num_rows == 2
    # the champion classified the PNG file the snippet drew, by one of its class names
    import mlflow

    from kubenas.data.shapes import CLASSES

    served = mlflow.pyfunc.load_model("models:/shapes-nb201@champion")
    assert served.predict([(tmp_path / "disk.png").read_bytes()])[0] in CLASSES
    assert namespace["best"]["metrics"]["score"] == 6  # depth 4, conv5, conv3: the optimum of the example
    assert namespace["state"]["strategy"] == "regularized_evolution"
    # the winner's report names the classes and counts them per split; pull works on image data too
    page = (tmp_path / "home" / "reports" / "shapes-nb201" / "winner.html").read_text()
    assert 'data-table="class counts"' in page and "<td>crescent</td>" in page
    assert main(["pull", "shapes-nb201", "-o", str(tmp_path / "pulled"), "--evaluate"]) == 0
    card = (tmp_path / "pulled" / "MODEL_CARD.md").read_text()
    assert "disk, ring, square" in card and "takes PNG or JPEG files" in card and "recipe `default`" in card


def test_connect_and_env_point_a_process_and_a_shell_at_the_stack_without_printing_the_keys(local_stack, monkeypatch):
    for key in local_stack.env():
        monkeypatch.delenv(key, raising=False)
    shown = kubenas.connect(local_stack.home)
    assert shown["MLFLOW_TRACKING_URI"] == local_stack.mlflow_uri and not any("KEY" in k for k in shown)
    assert os.environ["AWS_SECRET_ACCESS_KEY"] == local_stack.secret_key
    assert kubenas.connect(local_stack.home) == {}  # already pointed somewhere: kept
    for key in local_stack.env():
        monkeypatch.delenv(key, raising=False)
    with pytest.raises(stack.StackError, match=r"no local stack runs under .*: start it with `kubenas up --home "):
        kubenas.connect(local_stack.home / "elsewhere")

    printed = subprocess.run(
        [sys.executable, "-m", "kubenas.cli", "env", "--home", str(local_stack.home)],
        env=ENV,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert local_stack.secret_key not in printed and local_stack.access_key not in printed
    shell = subprocess.run(
        [
            "bash",
            "-c",
            f'eval "$({sys.executable} -m kubenas.cli env --home {local_stack.home})"; '
            'echo "$MLFLOW_TRACKING_URI $AWS_ENDPOINT_URL_S3 $AWS_ACCESS_KEY_ID $AWS_SECRET_ACCESS_KEY"',
        ],
        env=ENV,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert shell == [local_stack.mlflow_uri, local_stack.s3_endpoint, local_stack.access_key, local_stack.secret_key]


def test_status_shows_rounds_the_best_candidates_in_flight_the_holder_and_the_last_error(stack_env, capsys):
    cfg = parse_config(tabular("watched", rounds=3, candidates_per_round=3))
    init = steps.init_search(cfg.to_json(), job="run-watched")
    for k in range(2):  # round 0 committed; round 1 open: one result of three, a failed one
        [item] = steps.ask_round(init["config_json"], k, 0, init["parent_run_id"])
        if k == 0:
            steps.train_round(init["config_json"], item)
            steps.tell_round(init["config_json"], 0, 0, init["parent_run_id"])
    store = SearchStore.from_config(cfg)
    asked = store.read_asked(1)
    store.write_results(
        1,
        0,
        [
            {
                "id": asked["candidates"][0]["id"],
                "status": "failed",
                "metrics": {},
                "error": "OutOfMemoryError: CUDA out of memory",
                "cost": 1.0,
            }
        ],
    )
    capsys.readouterr()
    assert main(["status", "watched", "--endpoint", stack_env.s3_endpoint]) == 0
    out = capsys.readouterr().out
    best = max(store.read_history().column("val_acc").to_pylist())
    for text in (
        "search watched in s3://kubenas/searches/watched: space nb201, random, dataset mnist1d",
        "rounds committed: 1; evaluations: 3 (0 failed)",
        f"best so far: val_acc {best:.4f}",
        "round 1 open: 1 of 3 candidate(s) have a result, 2 in flight or not started",
        "held by pipeline run 'run-watched'",
        f"last error: round 1 candidate {asked['candidates'][0]['id']}: OutOfMemoryError: CUDA out of memory",
    ):
        assert text in out, (text, out)
    assert main(["status", "nobody", "--endpoint", stack_env.s3_endpoint]) == 2
    assert "no search 'nobody' in s3://kubenas/searches; searches there: " in capsys.readouterr().err
