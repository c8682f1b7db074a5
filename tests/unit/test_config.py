"""The search config: examples load, and every bad field is named at once."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from kubenas.config import ConfigError, load_config, parse_config

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "pipelines" / "configs").glob("*.yaml"))
MINIMAL = {"name": "demo", "dataset": {"name": "mnist1d"}, "space": {"name": "nb201"}}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_example_configs_are_valid(path):
    cfg = load_config(path)
    assert cfg.name == yaml.safe_load(path.read_text())["name"]
    assert parse_config(cfg.to_json()) == cfg  # JSON round trip, as the pipeline passes it


def test_defaults():
    cfg = parse_config(MINIMAL)
    assert cfg.strategy.name == "regularized_evolution" and cfg.objective.metric == "val_acc"
    assert cfg.model_name == "demo" and cfg.budget.rounds >= 1 and cfg.storage.bucket == "kubenas"


def test_every_bad_field_is_listed_with_what_is_expected():
    bad = {
        "name": "Bad_Name",
        "dataset": {"name": "cifar"},
        "space": {"name": "nb201", "options": {"widht": 8}},
        "strategy": {"name": "local_search", "options": {"n_inti": 3}},
        "fidelity": {"epochs": 0},
        "budget": {"parallelism": 0, "roundz": 3},
        "objective": {"mode": "maximize"},
        "storage": {"bucket": "Not A Bucket"},
        "resources": {"memory": "lots"},
    }
    with pytest.raises(ConfigError) as err:
        parse_config(bad, "bad.yaml")
    text = str(err.value)
    for expected in [
        "name: must be 1-63 lowercase letters",
        "dataset: unknown dataset 'cifar'; registered: mnist1d, digits, parquet",
        "space: search space 'nb201': unknown option(s) ['widht']; accepted: ops, width, cells_per_stage",
        "strategy: strategy 'local_search': unknown option(s) ['n_inti']; accepted: n_init, seed, metric, mode",
        "fidelity.epochs: Input should be greater than or equal to 1",
        "budget.parallelism: Input should be greater than or equal to 1",
        "budget.roundz: Extra inputs are not permitted",
        "objective.mode: Input should be 'max' or 'min'",
        "storage.bucket: must be a valid S3 bucket name",
        "resources.memory: must be a Kubernetes memory quantity",
    ]:
        assert expected in text, f"{expected!r} missing from:\n{text}"
    assert text.startswith("bad.yaml: 10 problem(s):")


def test_missing_fields_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match=r"(?s)dataset: Field required.*space: Field required"):
        parse_config({"name": "x"})
    path = tmp_path / "c.yaml"
    path.write_text("name: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path)
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "missing.yaml")
    path.write_text("- a list")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(path)


def test_space_option_values_are_checked():
    with pytest.raises(ConfigError, match="space: nb201: unknown operation"):
        parse_config({**MINIMAL, "space": {"name": "nb201", "options": {"ops": ["conv9x9"]}}})
    with pytest.raises(ConfigError, match=r"set \['seed'\] at the top level"):
        parse_config({**MINIMAL, "strategy": {"name": "random", "options": {"seed": 3}}})
