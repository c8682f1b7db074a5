"""Bad input, each kind once: a clear error that names the field (or option), the value and what is expected,
raised before any service is contacted or any data is loaded. The README's Reliability section counts these kinds.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml

from kubenas import cli
from kubenas.config import ConfigError, load_config, parse_config

BASE = Path(__file__).resolve().parents[2] / "pipelines" / "configs" / "mnist1d-nb201.yaml"
PARETO = BASE.with_name("mnist1d-nb201-pareto.yaml")


def _with(path: Path, where: str, value):
    data = yaml.safe_load(path.read_text())
    *parents, last = where.split(".")
    cur = data
    for key in parents:
        cur = cur.setdefault(key, {})
    cur[last] = value
    return data


# (field, bad value, words the message must hold). The field's dotted path is where it goes in the config.
CONFIG_CASES = [
    ("fidelity.resolution", 100000, ["fidelity.resolution", "100000", "2..40"]),
    ("objective.metric", "val_accc", ["objective.metric", "val_accc", "val_acc, val_loss"]),
    ("dataset.options", {"num_samples": 10}, ["num_samples", "10", "100..1000000"]),
    ("dataset.options", {"nmu_samples": 10}, ["unknown option", "nmu_samples", "num_samples"]),
    ("dataset.options", {"seed": -1}, ["seed", "-1", "0..2**32-1"]),
    ("export.registered_model", "team/model:v1 ../x", ["export.registered_model", "team/model:v1 ../x", "1-63"]),
    ("tracking.experiment", "", ["tracking.experiment", "1-256 printable"]),
    ("tracking.experiment", " padded ", ["tracking.experiment", "spaces at either end"]),
    ("storage.prefix", "../../etc", ["storage.prefix", "'..'", "../../etc"]),
    ("storage.prefix", "a b/c", ["storage.prefix", "letters, digits"]),
    ("estimator.table", "/nope/table.parquet", ["estimator.table", "/nope/table.parquet", "nb201-4op-mnist1d"]),
    ("seed", -1, ["seed", "0..4294967295"]),
    ("seed", 2**40, ["seed", "0..4294967295"]),
    ("export.seeds", [0, 0], ["export.seeds", "repeat"]),
    ("export.seeds", [2**33], ["seeds[0]", "0..4294967295"]),
    ("tracking.uri", "localhost:5000", ["tracking.uri", "http://", "localhost:5000"]),
    ("storage.endpoint_url", "127.0.0.1:8333", ["storage.endpoint_url", "http://"]),
    ("storage.endpoint_url", "http://127.0.0.1:99999", ["storage.endpoint_url", "bad port"]),
    ("storage.region", "US East", ["storage.region", "us-east-1"]),
    ("storage.secret", "Bad_Secret", ["storage.secret", "Kubernetes Secret name"]),
    ("tracking.secret", "x" * 300, ["tracking.secret", "at most 253"]),
    ("resources.accelerator", "gpu", ["resources.accelerator", "nvidia.com/gpu"]),
    ("resources.node_selector", {"bad key!": "x"}, ["resources.node_selector", "bad key!", "label key"]),
    ("resources.node_selector", {"pool": "a b"}, ["resources.node_selector", "'a b'", "label value"]),
    ("resources.tolerations", [{"operator": "Maybe"}], ["resources.tolerations", "Maybe", "'Equal' or 'Exists'"]),
    ("resources.tolerations", [{"effect": "Never"}], ["resources.tolerations", "Never", "NoSchedule"]),
    ("resources.tolerations", [{"operator": "Exists", "value": "x"}], ["resources.tolerations", "takes no value"]),
    ("resources.image", "kubenas", ["resources.image", "tag or a digest"]),
    ("budget.parallelism", 0, ["budget.parallelism", "greater than or equal to 1"]),
    ("name", "My Search", ["name", "lowercase"]),
    # every other section, as the validation already refused them
    ("space.options", {"width": -3}, ["space", "width must be a positive integer", "-3"]),
    ("space.name", "nb202", ["space", "unknown search space 'nb202'", "nb201"]),
    ("strategy.name", "genetic", ["strategy", "unknown strategy 'genetic'", "regularized_evolution"]),
    ("strategy.options", {"population": 3}, ["strategy", "unknown option(s) ['population']", "population_size"]),
    ("oneshot", {"method": "magic"}, ["oneshot", "unknown one-shot method 'magic'", "darts"]),
    ("fidelity.data_fraction", 2, ["fidelity.data_fraction", "less than or equal to 1", "(got 2)"]),
    ("fidelity.width_mult", 0, ["fidelity.width_mult", "greater than 0"]),
    ("estimator.recipe", {"batch_size": 1}, ["estimator.recipe", "batch_size must be an integer >= 2", "1"]),
    ("estimator.recipe", "nb202", ["estimator.recipe", "unknown preset 'nb202'", "nb201"]),
    ("estimator.recipe", {"augment": {"crop": 4}}, ["recipe.augment", "unknown field(s) ['crop']", "crop_padding"]),
    ("estimator.lr", 0.1, ["['lr'] moved into estimator.recipe", "recipe: {preset: default, lr: 0.1}"]),
    ("objective.mode", "maximize", ["objective.mode", "'max' or 'min'", "maximize"]),
    ("budget.rounds", 0, ["budget.rounds", "greater than or equal to 1"]),
    ("export.epochs", 0, ["export.epochs", "greater than or equal to 1"]),
]


@pytest.mark.parametrize("where,value,words", CONFIG_CASES, ids=[f"{c[0]}={str(c[1])[:20]}" for c in CONFIG_CASES])
def test_a_bad_field_is_named_with_its_value_and_what_is_expected(where, value, words):
    with pytest.raises(ConfigError) as err:
        parse_config(_with(BASE, where, value))
    message = str(err.value)
    assert all(w in message for w in words), message
    assert "Traceback" not in message


def test_dataset_paths_are_checked_where_the_data_is_read():
    """A Parquet path is checked for its form by the config, and for existence by a run's pre-flight (a config
    submitted to a cluster names paths inside the cluster's pods)."""
    from kubenas.data import check_source

    bad_bucket = {"name": "parquet", "options": {"path": "s3://No_Bucket/x.parquet", "shape": [1, 40]}}
    with pytest.raises(ConfigError, match=r"s3://No_Bucket/x.parquet.*valid bucket name"):
        parse_config(_with(BASE, "dataset", bad_bucket))
    for bad in ({"path": "x.parquet", "shape": [0, 40]}, {"path": "x.parquet", "num_classes": 1}, {"path": 3}):
        with pytest.raises(ConfigError, match="dataset 'parquet'"):
            parse_config(_with(BASE, "dataset", {"name": "parquet", "options": bad}))
    with pytest.raises(ValueError, match=r"'/no/such/data.parquet' does not exist"):
        check_source("parquet", path="/no/such/data.parquet")


def test_a_constraint_or_objective_on_an_unknown_metric_lists_the_reported_ones():
    data = yaml.safe_load(PARETO.read_text())
    data["strategy"]["options"]["constraints"] = {"flopz": {"max": 1}}
    with pytest.raises(ConfigError, match=r"strategy.options.constraints.flopz 'flopz' is not a metric.*params, macs"):
        parse_config(data)
    data = yaml.safe_load(PARETO.read_text())
    data["strategy"]["options"]["objectives"][1]["metric"] = "latency"
    with pytest.raises(ConfigError, match=r"objectives\[1\].metric 'latency'.*latency_ms"):
        parse_config(data)


def test_a_zero_cost_search_names_the_metrics_of_a_proxy():
    data = _with(BASE, "estimator", {"proxy": "synflow"})
    data["objective"] = {"metric": "zc_score", "mode": "max"}
    assert parse_config(data).objective.metric == "zc_score"
    data["objective"] = {"metric": "val_loss", "mode": "min"}
    with pytest.raises(ConfigError, match="set objective.metric to 'zc_score'"):
        parse_config(data)


def test_resolution_on_vector_inputs_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="fidelity.resolution applies to signals and images"):
        parse_config(
            _with(BASE, "dataset", {"name": "parquet", "options": {"path": "x.parquet", "shape": [40]}})
            | {"fidelity": {"epochs": 1, "resolution": 20}}
        )


@pytest.mark.parametrize(
    "content,words",
    [
        (bytes(range(256)) * 4, ["not UTF-8 text"]),
        (b"name: x\x00\n", ["NUL"]),
        (b"# padding\n" * 120_000, ["1,200,000 bytes", "at most 1,048,576"]),
        (b"a: &a [1, *a]\n", ["refers to a node that contains it"]),
        (b"a: &a 1\nb: [" + b",".join([b"*a"] * 150) + b"]\n", ["150 YAML aliases", "at most 100"]),
        (b"a: [1\n", ["not valid YAML"]),
    ],
    ids=["binary", "nul", "too-big", "recursive-alias", "too-many-aliases", "bad-yaml"],
)
def test_a_config_file_that_is_not_a_small_yaml_text_is_refused(tmp_path, content, words):
    path = tmp_path / "config.yaml"
    path.write_bytes(content)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert all(w in str(err.value) for w in words), str(err.value)


def test_a_yaml_alias_bomb_is_refused_at_once(tmp_path):
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]" for i in range(8)]
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines) + "\n")
    started = time.perf_counter()
    with pytest.raises(ConfigError, match="more than 100,000 YAML nodes"):
        load_config(path)
    assert time.perf_counter() - started < 5  # 66 s before the limit; milliseconds now (generous for CI)


def test_a_directory_given_as_the_config_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="is a directory"):
        load_config(tmp_path)


def test_the_weed_binary_is_found_next_to_the_interpreter(tmp_path, monkeypatch):
    from kubenas import stack

    weed = tmp_path / "bin" / "weed"
    weed.parent.mkdir()
    weed.write_text("#!/bin/sh\n")
    weed.chmod(0o755)
    monkeypatch.setattr("sys.executable", str(tmp_path / "bin" / "python"))
    monkeypatch.setenv("PATH", "/nonexistent")
    assert stack.weed_binary() == str(weed)
    weed.unlink()
    assert stack.weed_binary() is None


def test_a_local_run_warns_of_gpus_and_fails_on_missing_data_before_any_stack_starts(tmp_path, monkeypatch, capsys):
    from kubenas import local_run

    cfg = parse_config(
        _with(
            BASE, "dataset", {"name": "parquet", "options": {"path": str(tmp_path / "none.parquet"), "shape": [1, 40]}}
        )
        | {"resources": {"gpus": 1}}
    )
    monkeypatch.setattr(local_run, "has_gpu", lambda: False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    with pytest.raises(ConfigError, match=r"dataset.options.path: .*none.parquet' does not exist"):
        local_run.run(cfg, home=tmp_path / "home")
    assert "resources.gpus is 1, but this machine has no NVIDIA GPU" in capsys.readouterr().err
    assert not (tmp_path / "home" / "stack.json").exists()  # nothing was started


# Command lines, each refused before a server is contacted: 127.0.0.1:1 would answer "cannot reach" if it were.
CLI_CASES = [
    (["run", str(BASE), "--rounds", "0"], "--rounds: expected a positive integer"),
    (["pull", "m", "-o", "FILE", "--tracking-uri", "http://127.0.0.1:1"], "is a file; give a directory"),
    (["pull", "m", "-o", "OUT", "--tracking-uri", "notaurl"], "--tracking-uri 'notaurl'"),
    (["pull", "m@a@b", "-o", "OUT"], "expected NAME or NAME@ALIAS"),
    (["submit", str(BASE), "--host", "http://127.0.0.1:1", "--namespace", "Bad_NS"], "--namespace 'Bad_NS'"),
    (["submit", str(BASE), "--host", "http://127.0.0.1:1", "--run-name", ""], "--run-name ''"),
    (["submit", str(BASE), "--host", "http://127.0.0.1:1", "--service-account", "Bad SA"], "--service-account"),
    (["submit", str(BASE), "--host", "notaurl"], "--host 'notaurl'"),
    (["schedule", str(BASE), "--host", "http://127.0.0.1:1", "--cron", "bad"], "--cron 'bad'"),
    (["schedule", str(BASE), "--host", "http://127.0.0.1:1", "--cron", "0 0 2 * * *", "--name", " x"], "--name ' x'"),
    (["upload", str(BASE), "--host", "http://127.0.0.1:1", "--version", ""], "--version ''"),
    (["bench", "compare", "--seeds", "0"], "--seeds, --budget and --jobs must be positive"),
    (["bench", "compare", "--jobs", "0"], "--seeds, --budget and --jobs must be positive"),
    (
        ["bench", "import", "nope.csv", "--mapping", "nope.yaml", "--out", "t.parquet"],
        "cannot read the mapping nope.yaml",
    ),
    (["bench", "mean", "one.parquet", "--out", "m.parquet"], "give two or more tables"),
    (["bench", "budget", "--jobs", "0"], "must be positive"),
    (["bench", "estimators", "--sample", "1"], "--sample must be at least 3"),
    (["bench", "build", "--preset", "nope"], "--preset 'nope'"),
]


@pytest.mark.parametrize("argv,words", CLI_CASES, ids=[" ".join(c[0][:2] + c[0][-2:]) for c in CLI_CASES])
def test_a_bad_command_line_is_refused_before_any_server_is_contacted(tmp_path, capsys, monkeypatch, argv, words):
    (tmp_path / "FILE").write_text("x")
    argv = [str(tmp_path / a) if a in ("FILE", "OUT") else a for a in argv]
    monkeypatch.chdir(tmp_path)  # bench commands write under the working directory: nothing may be written
    with pytest.raises(SystemExit) if "--rounds" in argv else _returns(2) as outcome:
        code = cli.main(argv)
        outcome.code = code
    err = capsys.readouterr().err
    assert words in err, err
    assert "cannot reach" not in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["FILE"]


class _returns:
    """A context that checks a command's exit code (argparse's errors raise SystemExit instead)."""

    def __init__(self, expected: int):
        self.expected, self.code = expected, None

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        if exc_info[0] is None:
            assert self.code == self.expected, self.code
        return False
