"""`kubenas import katib`: each fixture (tests/fixtures/katib, written to Katib's v1beta1 schema as Katib's examples
write it) imports into a config that validates and compiles, every ENAS and DARTS setting reaches its counterpart,
the report says what was mapped, replaced and left out, and every bad input is named."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml

from kubenas import katib
from kubenas.cli import main
from kubenas.config import parse_config
from kubenas.strategies import make_strategy

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "katib"


def _experiment(name: str, index: int = 0) -> dict:
    return katib.read_experiments(FIXTURES / f"{name}.yaml")[0][index]


def _imported(name: str, index: int = 0) -> katib.Imported:
    return katib.translate(_experiment(name, index))


def _mapped(imported: katib.Imported) -> dict[str, str]:
    return dict(imported.report.mapped)


def test_every_fixture_imports_into_configs_that_validate_and_compile(tmp_path, capsys):
    out = tmp_path / "configs"
    for fixture in sorted(FIXTURES.glob("*.yaml")):
        assert main(["import", "katib", str(fixture), "-o", str(out)]) == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    written = sorted(p.name for p in out.glob("*.yaml"))
    assert written == [
        "darts-defaults.yaml",
        "darts-every-setting.yaml",
        "enas-every-operation.yaml",
        "enas-gpu-every-setting.yaml",
        "enas-small.yaml",
    ]
    assert "document 2: ConfigMap (v1) skipped: not a Katib Experiment" in printed
    for name in written:
        text = (out / name).read_text()
        assert text.startswith("# Imported from Katib Experiment")  # the report, as comments above the config
        assert "# Not mapped:" in text or "# Replaced by design" in text
        parse_config(yaml.safe_load(text))
        package = tmp_path / f"pipeline-{name}"
        assert main(["compile", str(out / name), "-o", str(package)]) == 0, capsys.readouterr().err
        assert package.stat().st_size > 1000


def test_katibs_enas_example_maps_its_space_objective_and_budget():
    imported = _imported("enas-every-operation")
    config = parse_config(imported.config)
    space = config.space.build()
    assert space.name == "katib_enas" and len(space.expanded) == 106 and space.size() == 106
    assert (space.input_sizes, space.output_sizes) == ([32, 32, 3], [10])
    assert (config.objective.metric, config.objective.mode, config.budget.goal) == ("val_acc", "max", 0.99)
    budget = config.budget
    assert (budget.rounds, budget.candidates_per_round, budget.parallelism, budget.max_evals) == (2, 2, 2, 3)
    assert budget.max_failed == 2 and config.fidelity.epochs == 1  # the trial command's --num_epochs=1
    assert config.cluster.namespace == "kubeflow" and config.dataset.name == "cifar10"
    assert config.dataset.options["path"] == katib.CIFAR_PATH
    replaced = dict(imported.report.replaced)
    assert "trial image and command" in replaced and "spec.trialTemplate.trialParameters" in replaced
    # left out: Katib's own defaults shape the controller, except the learning rate (said why)
    strategy = config.strategy.options
    assert (strategy["temperature"], strategy["tanh_const"], strategy["skip_weight"]) == (5.0, 2.25, 0.8)
    assert "lr" not in strategy and any("controller_learning_rate is left out" in n for n in imported.report.notes)
    assert imported.report.unmapped == []  # Katib's own example maps whole: --strict passes it


def test_every_enas_setting_reaches_the_reinforce_policy_and_the_rest_are_reported():
    imported = _imported("enas-gpu-every-setting")
    config = parse_config(imported.config)
    policy = make_strategy("reinforce", config.space.build(), **config.strategy.options).policy
    assert (policy.lr, policy.entropy_weight, policy.baseline_decay) == (0.05, 1e-4, 0.99)
    assert (policy.temperature, policy.tanh_const) == (None, 1.5)  # "None": no temperature
    assert (policy.skip_target, policy.skip_weight) == (0.3, 0.5)
    unmapped = dict(imported.report.unmapped)
    for setting in ("controller_hidden_size", "controller_train_steps", "controller_log_every_steps"):
        assert f"algorithmSettings.{setting}" in unmapped
    assert "not an LSTM" in unmapped["algorithmSettings.controller_hidden_size"]
    assert any("one-shot form (oneshot: {method: enas}" in n for n in imported.report.notes)
    # 8 layers of 4 + 1 operations: the int range 32..128 step 32 is 4 filter counts
    space = config.space.build()
    assert len(space.expanded) == 2 * 4 * 1 + 1 and space.size() == 9**8 * 2**28
    assert (config.budget.rounds, config.budget.max_evals, config.budget.max_failed) == (8, 30, 10)
    # a trial budget beyond one pipeline is capped, and the report says how a schedule goes on
    exp = _experiment("enas-gpu-every-setting")
    exp["spec"]["maxTrialCount"] = 1000
    capped = katib.translate(exp)
    assert (capped.config["budget"]["rounds"], capped.config["budget"]["max_evals"]) == (100, 1000)
    assert any("250 rounds of 4" in n and "kubenas schedule" in n for n in capped.report.notes)
    # median stop maps to learning-curve early stopping, its two settings to their counterparts
    assert config.estimator.early_stop.min_calibration == 4 and config.estimator.early_stop.min_epochs == 3
    assert "spec.resumePolicy LongRunning" in _mapped(imported)


def test_a_jobs_resources_node_selector_tolerations_and_service_account_map():
    config = parse_config(_imported("enas-gpu-every-setting").config)
    res = config.resources
    assert (res.gpus, res.accelerator, res.cpu, res.memory) == (1, "nvidia.com/gpu", "4", "8Gi")
    assert res.node_selector == {"cloud.google.com/gke-accelerator": "nvidia-tesla-t4"}
    assert res.tolerations == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert (config.cluster.namespace, config.cluster.service_account) == ("team-vision", "katib-trials")


def test_every_darts_setting_reaches_the_one_shot_method_recipe_and_space():
    imported = _imported("darts-every-setting")
    config = parse_config(imported.config)
    space = config.space.build()
    assert space.name == "cell" and space.ops == [
        "sep_conv_3x3",
        "sep_conv_5x5",
        "dil_conv_3x3",
        "dil_conv_5x5",
        "avg_pool_3x3",
        "max_pool_3x3",
        "skip_connect",
        "none",
    ]
    assert (space.blocks, space.width, space.stem_multiplier, space.cells_per_stage) == (3, 8, 2, 2)
    recipe = config.estimator.recipe
    assert recipe == {
        "preset": "darts",
        "lr": 0.05,
        "lr_min": 0.002,
        "momentum": 0.8,
        "weight_decay": 0.0005,
        "grad_clip": 3.0,
        "arch_lr": 0.0006,
        "arch_weight_decay": 0.002,
        "batch_size": 64,
    }
    assert (config.oneshot.method, config.oneshot.epochs, config.oneshot.options) == ("darts", 3, {"remedy": "none"})
    assert (config.dataset.options["workers"], config.dataset.options["val_fraction"]) == (2, 0.5)
    from kubenas.oneshot import make_oneshot
    from kubenas.recipes import resolve

    method = make_oneshot("darts", space, recipe=resolve(recipe), **config.oneshot.options)
    assert (method.lr, method.arch_lr, method.arch_weight_decay, method.batch_size) == (0.05, 0.0006, 0.002, 64)
    assert "algorithmSettings.print_step" in dict(imported.report.replaced)
    assert any("second order" in n and "first order" in n for n in imported.report.notes)
    assert _mapped(imported)["objective Best-Genotype"].startswith("not a metric: kubenas derives the genotype")
    # a PyTorchJob trial: its Master's resources; its Workers are reported
    res = config.resources
    assert (res.gpus, res.cpu, res.memory) == (2, "8", "32Gi")
    assert "pytorchReplicaSpecs.Worker" in dict(imported.report.unmapped)
    assert "spec.maxTrialCount 1" in _mapped(imported) and "spec.maxFailedTrialCount" in dict(imported.report.replaced)


def test_darts_settings_left_out_take_katibs_defaults_and_a_configmap_template_is_reported():
    imported = _imported("darts-defaults-configmap")
    config = parse_config(imported.config)
    recipe = config.estimator.recipe
    assert (recipe["lr"], recipe["lr_min"], recipe["momentum"], recipe["weight_decay"]) == (0.025, 0.001, 0.9, 3e-4)
    assert (recipe["grad_clip"], recipe["arch_lr"], recipe["arch_weight_decay"], recipe["batch_size"]) == (
        5.0,
        3e-4,
        1e-3,
        128,  # Katib's default, where the paper's is 64
    )
    space = config.space.build()
    assert (space.blocks, space.width, space.stem_multiplier) == (4, 16, 3) and config.oneshot.epochs == 50
    unmapped = dict(imported.report.unmapped)
    assert "ConfigMap kubeflow/trial-templates" in unmapped["spec.trialTemplate.configMap"]
    assert "3c+2 cells" in unmapped["graphConfig.numLayers"]  # 1 layer has no exact counterpart


def test_names_objectives_and_trial_epochs_are_read_as_katib_writes_them():
    imported = _imported("darts-defaults-configmap", 1)
    assert imported.config["name"] == "enas-small" and imported.name == "ENAS_Small"
    assert imported.config["objective"] == {"metric": "val_loss", "mode": "min"}
    assert imported.config["fidelity"]["epochs"] == 2  # args: ["--num-epochs", "2"]
    # Katib's default parallelism (3); without maxTrialCount, as many rounds as one pipeline holds
    exp = _experiment("darts-defaults-configmap", 1)
    del exp["spec"]["maxTrialCount"]
    unbounded = katib.translate(exp)
    assert unbounded.config["budget"] == {"candidates_per_round": 3, "parallelism": 3, "rounds": 100}
    assert "kubenas schedule" in _mapped(unbounded)["spec.maxTrialCount (left out: no limit)"]


def test_output_files_directories_overwrites_and_strict(tmp_path, capsys):
    both = FIXTURES / "darts-defaults-configmap.yaml"
    assert main(["import", "katib", str(both), "-o", str(tmp_path / "one.yaml")]) == 2
    assert "2 Experiments: give -o a directory" in capsys.readouterr().err
    assert not (tmp_path / "one.yaml").exists()
    single = FIXTURES / "enas-every-operation.yaml"
    assert main(["import", "katib", str(single), "-o", str(tmp_path / "one.yaml")]) == 0
    before = (tmp_path / "one.yaml").read_text()
    assert main(["import", "katib", str(both), "-o", str(tmp_path)]) == 0
    assert main(["import", "katib", str(both), "-o", str(tmp_path)]) == 2
    assert "exists: give another -o, or --force" in capsys.readouterr().err
    gpu = FIXTURES / "enas-gpu-every-setting.yaml"
    assert main(["import", "katib", str(gpu), "-o", str(tmp_path / "one.yaml"), "--strict", "--force"]) == 2
    err = capsys.readouterr().err
    assert "--strict: not mapped: enas-gpu-every-setting: algorithmSettings.controller_hidden_size" in err
    assert (tmp_path / "one.yaml").read_text() == before  # nothing written on a refusal
    # everything mapped or replaced by design: --strict passes
    assert main(["import", "katib", str(single), "-o", str(tmp_path / "strict"), "--strict"]) == 0
    capsys.readouterr()
    assert main(["import", "katib"]) == 2 and "give the Experiment YAML" in capsys.readouterr().err
    assert main(["import", "katib", "--result", "[[27]]"]) == 2
    assert "--result needs the experiment it came from" in capsys.readouterr().err
    assert main(["import", "katib", str(tmp_path / "nope.yaml")]) == 2
    assert "cannot read" in capsys.readouterr().err


def _bad(tmp_path, mutate=None, text=None) -> str:
    path = tmp_path / "bad.yaml"
    if text is None:
        exp = copy.deepcopy(_experiment("enas-every-operation"))
        mutate(exp)
        text = yaml.safe_dump(exp)
    path.write_text(text)
    with pytest.raises(katib.KatibError) as err:
        exps, _ = katib.read_experiments(path)
        katib.translate(exps[0])
    return str(err.value)


def _ops(exp):
    return exp["spec"]["nasConfig"]["operations"]


def test_every_bad_input_is_named(tmp_path):
    assert "holds no Katib Experiment" in _bad(tmp_path, text="apiVersion: v1\nkind: ConfigMap\n")
    assert "document 1 is not a mapping (got list)" in _bad(tmp_path, text="- a\n- b\n")
    assert "is not YAML" in _bad(tmp_path, text="kind: [unclosed\n")
    old = _bad(tmp_path, lambda e: e.update(apiVersion="kubeflow.org/v1alpha3"))
    assert "apiVersion kubeflow.org/v1alpha3 is not read; kubenas reads kubeflow.org/v1beta1" in old

    def hpo(e):
        e["spec"]["algorithm"]["algorithmName"] = "random"
        e["spec"].pop("nasConfig")
        e["spec"]["parameters"] = [{"name": "lr", "parameterType": "double"}]

    assert "'random' is a hyperparameter search; kubenas searches architectures" in _bad(tmp_path, hpo)
    unknown = _bad(tmp_path, lambda e: _ops(e)[0].update(operationType="attention"))
    assert "operations[0].operationType: unknown ENAS operation type 'attention'" in unknown
    param = _bad(tmp_path, lambda e: _ops(e)[1]["parameters"][0].update(name="kernel"))
    assert "operations[1].parameters[0]: unknown parameter 'kernel' of separable_convolution" in param
    assert "operations must list at least one operation" in _bad(
        tmp_path, lambda e: e["spec"]["nasConfig"].update(operations=[])
    )
    zero = _bad(tmp_path, lambda e: e["spec"]["nasConfig"]["graphConfig"].update(numLayers=0))
    assert "graphConfig.numLayers must be an integer >= 1, got 0" in zero
    backwards = _bad(tmp_path, lambda e: _ops(e)[3]["parameters"][1]["feasibleSpace"].update(min="4"))
    assert "operations[3].parameters[1] (pool_size): feasibleSpace min 4 is above max 3" in backwards
    word = _bad(tmp_path, lambda e: _ops(e)[0]["parameters"][1]["feasibleSpace"].update(list=["32", "many"]))
    assert "(num_filter): 'many' is not an integer" in word
    setting = _bad(tmp_path, lambda e: e["spec"]["algorithm"].update(algorithmSettings=[{"name": "lr", "value": "1"}]))
    assert "unknown enas setting 'lr'" in setting


def test_a_result_becomes_a_config_that_retrains_that_one_architecture():
    exp = _experiment("enas-gpu-every-setting")
    layers = [[0]] + [[i % 9] + [(i + j) % 2 for j in range(i)] for i in range(1, 8)]
    imported = katib.from_result(json.dumps(layers), exp)
    config = parse_config(imported.config)
    space = config.space.build()
    (arch,) = config.strategy.options["archs"]
    assert config.strategy.name == "grid" and space.to_katib(arch) == layers
    assert (config.budget.rounds, config.budget.candidates_per_round, config.estimator.proxy) == (1, 1, "params")
    assert config.name == "enas-gpu-every-setting-result" and config.export.registered_model == "enas-gpu-every-setting"
    assert imported.report.notes[0].startswith("--result: this search is the ENAS architecture")
    wrong = [list(layer) for layer in layers]
    wrong[1][0] = 9  # the space has operations 0..8
    with pytest.raises(katib.KatibError, match="does not fit experiment 'enas-gpu-every-setting'.*layer 2's operation"):
        katib.from_result(json.dumps(wrong), exp)
    with pytest.raises(katib.KatibError, match="expected one list per layer \\(8\\)"):
        katib.from_result("[[0], [1, 0]]", exp)


GENOTYPE = (
    "Genotype(normal=[[('separable_convolution_3x3', 0), ('skip_connection', 1)], [('max_pooling_3x3', 2), "
    "('dilated_convolution_5x5', 0)], [('avg_pooling_3x3', 3), ('separable_convolution_5x5', 1)]], "
    "normal_concat=range(2, 5), reduce=[[('max_pooling_3x3', 0), ('max_pooling_3x3', 1)], [('skip_connection', 2), "
    "('dilated_convolution_3x3', 1)], [('avg_pooling_3x3', 0), ('separable_convolution_3x3', 3)]], "
    "reduce_concat=range(2, 5))"
)


def test_a_darts_genotype_becomes_a_config_that_retrains_that_cell():
    exp = _experiment("darts-every-setting")
    imported = katib.from_result(GENOTYPE, exp)
    config = parse_config(imported.config)
    (arch,) = config.strategy.options["archs"]
    assert config.oneshot is None and config.space.name == "cell"
    assert (arch["normal_2_inputs"], arch["normal_2_op0"], arch["normal_2_op1"]) == (
        [0, 1],
        "sep_conv_3x3",
        "skip_connect",
    )
    assert (arch["normal_3_inputs"], arch["normal_3_op0"], arch["normal_3_op1"]) == (
        [0, 2],
        "dil_conv_5x5",
        "max_pool_3x3",
    )
    assert (arch["reduce_4_inputs"], arch["reduce_4_op0"], arch["reduce_4_op1"]) == (
        [0, 3],
        "avg_pool_3x3",
        "sep_conv_3x3",
    )
    for bad, words in (
        (GENOTYPE.replace("range(2, 5)", "range(2, 6)", 1), "normal_concat must be range(2, 5)"),
        (GENOTYPE.replace("('skip_connection', 1)", "('skip_connection', 0)"), "normal node 2 needs two"),
        (GENOTYPE.replace("separable_convolution_5x5", "separable_convolution_7x7"), "'separable_convolution_7x7'"),
        ("[[1], [2, 0]]", "a DARTS result is a Genotype(normal=[...], reduce=[...]) string"),
    ):
        with pytest.raises(katib.KatibError) as err:
            katib.from_result(bad, exp)
        assert words in str(err.value)
    fewer = _experiment("darts-defaults-configmap")  # 4 nodes, max pooling only
    with pytest.raises(katib.KatibError, match="normal cell has 3 node\\(s\\); experiment 'darts-defaults'"):
        katib.from_result(GENOTYPE, fewer)
