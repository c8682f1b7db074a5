"""Imported Katib experiments and results run end to end with `kubenas run` (kfp.local, the embedded SeaweedFS and
MLflow) on the built-in image dataset at a tiny budget, each registering a champion. The test swaps in the data
(Katib's examples read CIFAR-10), the model's name and the budget; everything else is the import's."""

from __future__ import annotations

from pathlib import Path

import yaml
from mlflow.tracking import MlflowClient

from kubenas import history
from kubenas.cli import main
from kubenas.config import load_config
from kubenas.store import SearchStore

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "katib"
SHAPES = {"name": "shapes", "options": {"train": 200, "test": 50}}  # 32x32 RGB, 10 classes: Katib's inputSizes


def _import(tmp_path: Path, args: list[str], out: str) -> dict:
    path = tmp_path / out
    assert main(["import", "katib", *args, "-o", str(path)]) == 0
    return yaml.safe_load(path.read_text())


def _run(tmp_path: Path, config: dict, capsys) -> tuple[list[dict], dict]:
    path = tmp_path / f"{config['name']}.run.yaml"
    path.write_text(yaml.safe_dump(config))
    capsys.readouterr()
    assert main(["run", str(path), "--home", str(tmp_path / "home")]) == 0
    out = capsys.readouterr().out
    champion = MlflowClient().get_model_version_by_alias(config["export"]["registered_model"], "champion")
    assert f"registered {config['export']['registered_model']} version 1" in out and champion.version == "1"
    store = SearchStore.from_config(load_config(path))
    return history.rows(store.read_history()), store.get_json("export.json")


def test_an_imported_enas_experiment_and_an_enas_result_each_register_a_champion(stack_env, tmp_path, capsys):
    fixture = str(FIXTURES / "enas-every-operation.yaml")
    config = _import(tmp_path, [fixture], "enas.yaml")
    config["dataset"] = SHAPES
    config["budget"].update(rounds=1, candidates_per_round=2, max_evals=2)
    config["estimator"]["recipe"]["batch_size"] = 32
    config["export"].update(epochs=1, registered_model="katib-enas-e2e")
    rows, export = _run(tmp_path, config, capsys)
    assert [r["status"] for r in rows] == ["ok", "ok"], [r["error"] for r in rows]
    assert export["candidate_id"] in {r["id"] for r in rows} and export["val_acc"] > 0

    result = _import(tmp_path, ["--result", "[[27]]", "--experiment", fixture], "enas-result.yaml")
    assert result["strategy"] == {"name": "grid", "options": {"archs": [{"op_1": 27}]}}
    result["dataset"] = SHAPES
    result["export"].update(epochs=1, registered_model="katib-enas-result-e2e")
    rows, export = _run(tmp_path, result, capsys)
    assert len(rows) == 1 and rows[0]["metrics"]["zc_proxy"] == "params"  # scored, not trained
    assert export["genotype"] == "1:conv_7x7_96_s2" and export["val_acc"] > 0


def test_an_imported_darts_experiment_and_a_darts_genotype_each_register_a_champion(stack_env, tmp_path, capsys):
    fixture = str(FIXTURES / "darts-every-setting.yaml")
    config = _import(tmp_path, [fixture], "darts.yaml")
    config["dataset"] = {**SHAPES, "options": {**SHAPES["options"], "val_fraction": 0.5, "resize": 8}}
    config["space"]["options"].update(width=4, cells_per_stage=1)  # 5 cells of the 8, at 8x8: a tiny budget
    config["oneshot"]["epochs"] = 1
    config["estimator"]["recipe"]["batch_size"] = 32
    config["export"].update(epochs=1, registered_model="katib-darts-e2e")
    config["export"]["recipe"]["batch_size"] = 32
    _, export = _run(tmp_path, config, capsys)
    assert export["genotype"].startswith("normal=") and export["val_acc"] > 0

    genotype = (
        "Genotype(normal=[[('separable_convolution_3x3', 0), ('skip_connection', 1)], [('max_pooling_3x3', 2), "
        "('dilated_convolution_5x5', 0)], [('avg_pooling_3x3', 3), ('separable_convolution_5x5', 1)]], "
        "normal_concat=range(2, 5), reduce=[[('max_pooling_3x3', 0), ('max_pooling_3x3', 1)], "
        "[('skip_connection', 2), ('dilated_convolution_3x3', 1)], [('avg_pooling_3x3', 0), "
        "('separable_convolution_3x3', 3)]], reduce_concat=range(2, 5))"
    )
    (tmp_path / "genotype.txt").write_text(genotype)
    result = _import(tmp_path, ["--result", str(tmp_path / "genotype.txt"), "--experiment", fixture], "genotype.yaml")
    result["dataset"] = config["dataset"]
    result["space"]["options"].update(width=4, cells_per_stage=1)
    result["export"].update(epochs=1, registered_model="katib-darts-genotype-e2e")
    result["export"]["recipe"]["batch_size"] = 32
    _, export = _run(tmp_path, result, capsys)
    assert export["genotype"].startswith("normal=|sep_conv_3x3~0|skip_connect~1|") and export["val_acc"] > 0
