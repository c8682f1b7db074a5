"""``kubenas import katib``: a Katib NAS Experiment (``kubeflow.org/v1beta1``) as a kubenas search config, and a
finished Katib result (an ENAS architecture or a DARTS genotype) as a config that retrains and registers it.

Each translation keeps a :class:`Report` of what mapped to what, what kubenas replaces by design (the trial image,
its command, the metrics collector) and what it could not map, with the reason; the report is printed and written
as comments at the top of the config. Settings an experiment leaves out take Katib's documented defaults.
"""

from __future__ import annotations

import ast
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from kubenas.core import UserError, is_int

API_VERSION = "kubeflow.org/v1beta1"
CIFAR_PATH = "s3://change-me/datasets/cifar-10-python.tar.gz"  # the written config's placeholder
# the written config's sections, in the order kubenas's own configs use
SECTIONS = ("name", "dataset", "space", "strategy", "oneshot", "estimator", "fidelity", "budget", "objective")
SECTIONS += ("export", "resources", "cluster")
MAX_ROUNDS = 100  # a compiled pipeline unrolls at most this many rounds (kubenas.config's budget.rounds)

# Katib's documented defaults of each algorithm's settings
ENAS_DEFAULTS: dict[str, Any] = {
    "controller_hidden_size": 64,
    "controller_temperature": 5.0,
    "controller_tanh_const": 2.25,
    "controller_entropy_weight": 1e-5,
    "controller_baseline_decay": 0.999,
    "controller_learning_rate": 5e-5,
    "controller_skip_target": 0.4,
    "controller_skip_weight": 0.8,
    "controller_train_steps": 50,
    "controller_log_every_steps": 10,
}
DARTS_DEFAULTS: dict[str, Any] = {
    "num_epochs": 50,
    "w_lr": 0.025,
    "w_lr_min": 0.001,
    "w_momentum": 0.9,
    "w_weight_decay": 3e-4,
    "w_grad_clip": 5.0,
    "alpha_lr": 3e-4,
    "alpha_weight_decay": 1e-3,
    "batch_size": 128,
    "num_workers": 4,
    "init_channels": 16,
    "print_step": 50,
    "num_nodes": 4,
    "stem_multiplier": 3,
}
# ENAS settings and the reinforce option each reaches
ENAS_OPTIONS = {
    "controller_learning_rate": "lr",
    "controller_entropy_weight": "entropy",
    "controller_baseline_decay": "baseline_decay",
    "controller_temperature": "temperature",
    "controller_tanh_const": "tanh_const",
    "controller_skip_target": "skip_target",
    "controller_skip_weight": "skip_weight",
}
ENAS_UNMAPPED = {
    "controller_hidden_size": "kubenas's controller is a softmax per decision, not an LSTM: it has no hidden state",
    "controller_train_steps": "kubenas's controller takes one policy-gradient step per finished candidate, not a "
    "fixed number of steps per suggestion",
    "controller_log_every_steps": "kubenas logs the policy's probabilities in its state and MLflow every round",
}
# Katib's DARTS primitives (operation type and filter size) as kubenas's cell-space operations
DARTS_OPS = {
    ("separable_convolution", 3): "sep_conv_3x3",
    ("separable_convolution", 5): "sep_conv_5x5",
    ("dilated_convolution", 3): "dil_conv_3x3",
    ("dilated_convolution", 5): "dil_conv_5x5",
    ("avg_pooling", 3): "avg_pool_3x3",
    ("max_pooling", 3): "max_pool_3x3",
    ("skip_connection", None): "skip_connect",
}
GENOTYPE_OPS = {f"{kind}_{k}x{k}" if k else kind: op for (kind, k), op in DARTS_OPS.items()} | {"none": "none"}
METRICS = {"validationaccuracy": "val_acc", "valaccuracy": "val_acc", "valacc": "val_acc", "accuracy": "val_acc"}
METRICS |= {"validationloss": "val_loss", "valloss": "val_loss", "loss": "val_loss"}


class KatibError(UserError, ValueError):
    """A document that is not a Katib NAS Experiment kubenas can read, or a result that does not fit one."""


@dataclass
class Report:
    """What the import did with each part of the experiment."""

    experiment: str
    mapped: list[tuple[str, str]] = field(default_factory=list)
    replaced: list[tuple[str, str]] = field(default_factory=list)
    unmapped: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"Imported from Katib Experiment {self.experiment!r} by `kubenas import katib`."]
        for title, rows in (
            ("Mapped", self.mapped),
            ("Replaced by design (kubenas brings its own)", self.replaced),
            ("Not mapped", self.unmapped),
        ):
            if rows:
                out.append(f"{title}:")
                out += [f"  - {k}: {v}" for k, v in rows]
        if self.notes:
            out.append("Notes:")
            out += [f"  - {n}" for n in self.notes]
        return out


@dataclass
class Imported:
    """One experiment, translated: its kubenas search config and the report."""

    name: str
    config: dict[str, Any]
    report: Report

    def text(self) -> str:
        """The config as YAML, the report as comments above it."""
        header = "".join(f"# {line}\n" for line in self.report.lines())
        order = {key: i for i, key in enumerate(SECTIONS)}
        config = dict(sorted(self.config.items(), key=lambda kv: order.get(kv[0], len(order))))
        return header + yaml.safe_dump(config, sort_keys=False, width=120, default_flow_style=None)


# ----------------------------------------------------------------------------------------------------- documents
def read_experiments(path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """The Katib Experiments of a YAML file, and a note per document of another kind that was skipped."""
    try:
        docs = list(yaml.safe_load_all(Path(path).read_text()))
    except OSError as exc:
        raise KatibError(f"cannot read {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise KatibError(f"{path} is not YAML: {exc}".splitlines()[0]) from None
    experiments, skipped = [], []
    for i, doc in enumerate(docs, start=1):
        if doc is None:
            continue
        where = f"{path}, document {i}"
        if not isinstance(doc, Mapping):
            raise KatibError(f"{where} is not a mapping (got {type(doc).__name__}): expected a Katib Experiment")
        kind, api = doc.get("kind"), str(doc.get("apiVersion", ""))
        if kind != "Experiment" or not api.startswith("kubeflow.org/"):
            skipped.append(f"{where}: {kind or 'no kind'} ({api or 'no apiVersion'}) skipped: not a Katib Experiment")
            continue
        if api != API_VERSION:
            raise KatibError(
                f"{where}: apiVersion {api} is not read; kubenas reads {API_VERSION} Experiments (Katib 0.11 and "
                "later): apply it to a current Katib and export it, or move its fields to v1beta1"
            )
        experiments.append(dict(doc))
    if not experiments:
        raise KatibError(f"{path} holds no Katib Experiment (kind: Experiment, apiVersion: {API_VERSION})")
    return experiments, skipped


def _get(doc: Mapping, path: str, default: Any = None) -> Any:
    node: Any = doc
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return default
        node = node[part]
    return node


def _algorithm(exp: Mapping) -> str:
    name = exp["metadata"]["name"]
    algorithm = _get(exp, "spec.algorithm.algorithmName")
    nas = _get(exp, "spec.nasConfig")
    if algorithm not in ("enas", "darts"):
        kind = "hyperparameter" if _get(exp, "spec.parameters") or nas is None else "NAS"
        raise KatibError(
            f"experiment {name!r}: spec.algorithm.algorithmName {algorithm!r} is a {kind} search; kubenas searches "
            "architectures and reads Katib's NAS algorithms, enas and darts"
        )
    if not isinstance(nas, Mapping):
        raise KatibError(f"experiment {name!r}: spec.nasConfig is missing; an {algorithm} experiment needs it")
    return algorithm


# ----------------------------------------------------------------------------------------------------- values
def _number(where: str, value: Any, kind: type = float) -> Any:
    """A Katib string value as a number (Katib writes every value as a string)."""
    try:
        number = kind(str(value).strip())
    except ValueError:
        raise KatibError(f"{where}: {value!r} is not {'an integer' if kind is int else 'a number'}") from None
    if kind is float and not math.isfinite(number):
        raise KatibError(f"{where}: {value!r} is not a finite number")
    return number


def _settings(exp: Mapping, known: Mapping[str, Any], algorithm: str) -> dict[str, Any]:
    """The experiment's algorithmSettings over Katib's defaults (``"None"`` is None); unknown names are errors."""
    out = dict(known)
    given: set[str] = set()
    for i, item in enumerate(_get(exp, "spec.algorithm.algorithmSettings") or []):
        where = f"spec.algorithm.algorithmSettings[{i}]"
        if not isinstance(item, Mapping) or "name" not in item:
            raise KatibError(f"{where} must be a mapping with a name and a value, got {item!r}")
        name = item["name"]
        if name not in known:
            raise KatibError(f"{where}: unknown {algorithm} setting {name!r}; Katib's are: {', '.join(known)}")
        value = item.get("value")
        kind = int if isinstance(known[name], int) else float
        out[name] = None if value in (None, "None") else _number(f"{where} ({name})", value, kind)
        given.add(name)
    out["_given"] = given
    return out


def _parameter_values(where: str, param: Mapping) -> list[Any]:
    """One ENAS operation parameter's values: a categorical (or discrete) list, or an int range."""
    ptype = param.get("parameterType")
    space = param.get("feasibleSpace") or {}
    name = param.get("name")
    if ptype in ("categorical", "discrete"):
        values = space.get("list") or []
        if name == "reduction_type":
            return [str(v) for v in values]
        return [_number(f"{where} ({name})", v, int) for v in values]
    if ptype == "int":
        low = _number(f"{where}.feasibleSpace.min ({name})", space.get("min"), int)
        high = _number(f"{where}.feasibleSpace.max ({name})", space.get("max"), int)
        step = _number(f"{where}.feasibleSpace.step ({name})", space.get("step", "1"), int)
        if low > high:
            raise KatibError(f"{where} ({name}): feasibleSpace min {low} is above max {high}")
        if step < 1:
            raise KatibError(f"{where} ({name}): feasibleSpace step must be at least 1, got {step}")
        return list(range(low, high + 1, step))
    raise KatibError(
        f"{where} ({name}): parameterType {ptype!r} is not read; expected categorical, discrete or int (the ENAS "
        "trial code reads every operation parameter as an integer or a reduction type)"
    )


def _enas_operations(exp: Mapping) -> list[dict[str, Any]]:
    from kubenas.spaces.katib_enas import PARAMETERS

    ops = _get(exp, "spec.nasConfig.operations")
    if not isinstance(ops, list) or not ops:
        raise KatibError("spec.nasConfig.operations must list at least one operation")
    out = []
    for i, op in enumerate(ops):
        where = f"spec.nasConfig.operations[{i}]"
        kind = op.get("operationType") if isinstance(op, Mapping) else None
        if kind not in PARAMETERS:
            raise KatibError(
                f"{where}.operationType: unknown ENAS operation type {kind!r}; Katib's are: {', '.join(PARAMETERS)}"
            )
        entry: dict[str, Any] = {"type": kind}
        for j, param in enumerate(op.get("parameters") or []):
            at = f"{where}.parameters[{j}]"
            pname = param.get("name") if isinstance(param, Mapping) else None
            if pname not in PARAMETERS[kind]:
                raise KatibError(
                    f"{at}: unknown parameter {pname!r} of {kind}; its parameters are: {', '.join(PARAMETERS[kind])}"
                )
            entry[pname] = _parameter_values(at, param)
        out.append(entry)
    return out


def _darts_operations(exp: Mapping) -> list[str]:
    ops = _get(exp, "spec.nasConfig.operations")
    if not isinstance(ops, list) or not ops:
        raise KatibError("spec.nasConfig.operations must list at least one operation")
    known = sorted({kind for kind, _ in DARTS_OPS})
    out: list[str] = []
    for i, op in enumerate(ops):
        where = f"spec.nasConfig.operations[{i}]"
        kind = op.get("operationType") if isinstance(op, Mapping) else None
        if kind not in known:
            raise KatibError(f"{where}.operationType: unknown DARTS operation type {kind!r}; Katib's are: {known}")
        if kind == "skip_connection":
            out.append("skip_connect")
            continue
        params = op.get("parameters") or []
        sizes = []
        for j, param in enumerate(params):
            if not isinstance(param, Mapping) or param.get("name") != "filter_size":
                name = param.get("name") if isinstance(param, Mapping) else param
                raise KatibError(f"{where}.parameters[{j}]: unknown parameter {name!r} of {kind}; it takes filter_size")
            listed = _get(param, "feasibleSpace.list") or []
            sizes += [_number(f"{where}.parameters[{j}] (filter_size)", v, int) for v in listed]
        if not sizes:
            raise KatibError(f"{where}: {kind} needs a filter_size list")
        for size in sizes:
            if (kind, size) not in DARTS_OPS:
                have = sorted(k for t, k in DARTS_OPS if t == kind)
                raise KatibError(f"{where}: {kind} with filter_size {size} is not built by kubenas; sizes: {have}")
            out.append(DARTS_OPS[kind, size])
    return list(dict.fromkeys(out)) + ["none"]  # Katib's DARTS adds 'none' to every edge, as DARTS does


# ----------------------------------------------------------------------------------------------------- translation
def translate(exp: Mapping[str, Any]) -> Imported:
    """The kubenas search config of one Katib NAS Experiment."""
    name = str(_get(exp, "metadata.name") or "")
    if not name:
        raise KatibError("metadata.name is missing: an Experiment is named")
    algorithm = _algorithm(exp)
    report = Report(name)
    config: dict[str, Any] = {"name": _search_name(name, report)}
    namespace = _get(exp, "metadata.namespace")
    if namespace:
        config["cluster"] = {"namespace": namespace}
        report.mapped.append(("metadata.namespace", f"cluster.namespace = {namespace} (kubenas submit and schedule)"))
    config["dataset"] = {"name": "cifar10", "options": {"path": CIFAR_PATH}}
    report.notes.append(
        f"dataset.options.path: put CIFAR-10's python archive (cifar-10-python.tar.gz) in your S3 or a volume and "
        f"name it here instead of {CIFAR_PATH}; kubenas downloads nothing at run time"
    )
    (_enas if algorithm == "enas" else _darts)(exp, config, report)
    _trial_template(exp, config, report)
    _common(exp, config, report)
    _validate(config, name)
    return Imported(name, config, report)


def _search_name(name: str, report: Report) -> str:
    search = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")[:63].strip("-") or "katib-experiment"
    report.mapped.append(("metadata.name", f"name = {search}" + ("" if search == name else " (a DNS label)")))
    return search


def _enas(exp: Mapping, config: dict, report: Report) -> None:
    graph = _get(exp, "spec.nasConfig.graphConfig") or {}
    layers = graph.get("numLayers")
    if not is_int(layers) or layers < 1:
        raise KatibError(f"spec.nasConfig.graphConfig.numLayers must be an integer >= 1, got {layers!r}")
    options: dict[str, Any] = {"layers": layers, "operations": _enas_operations(exp)}
    for key, option in (("inputSizes", "input_sizes"), ("outputSizes", "output_sizes")):
        if graph.get(key) is not None:
            options[option] = [_number(f"spec.nasConfig.graphConfig.{key}", v, int) for v in graph[key]]
    from kubenas.spaces.katib_enas import expand

    try:
        count = len(expand(options["operations"]))
    except ValueError as exc:
        raise KatibError(f"spec.nasConfig.operations: {exc}") from None
    config["space"] = {"name": "katib_enas", "options": options}
    report.mapped.append(
        (
            "spec.nasConfig",
            f"space katib_enas: {layers} layer(s), {count} operations per layer and a skip bit per earlier layer, "
            f"{count}^{layers} x 2^{layers * (layers - 1) // 2} architectures",
        )
    )
    settings = _settings(exp, ENAS_DEFAULTS, "enas")
    given = settings.pop("_given")
    strategy: dict[str, Any] = {}
    for setting, option in ENAS_OPTIONS.items():
        value = settings[setting]
        if setting == "controller_learning_rate" and setting not in given:
            report.unmapped.append(
                (
                    setting,
                    "left out: Katib's default 5e-5 is an Adam step on an LSTM; kubenas's softmax policy takes a plain "
                    "policy-gradient step per candidate, so its own default (0.1) is used",
                )
            )
            continue
        if value is None:  # Katib's "None": off
            value = 0.0 if option in ("entropy", "skip_weight") else None
        strategy[option] = value
        source = "" if setting in given else " (Katib's default)"
        report.mapped.append((f"algorithmSettings.{setting}", f"strategy.options.{option} = {value}{source}"))
    if "controller_learning_rate" in given:
        report.notes.append(
            "controller_learning_rate reaches reinforce's lr as written; Katib steps an LSTM with Adam, kubenas "
            "steps its logits by the policy gradient directly, so a rate near 0.05-0.1 moves it at a useful pace"
        )
    for setting, reason in ENAS_UNMAPPED.items():
        if setting in given:
            report.unmapped.append((f"algorithmSettings.{setting}", reason))
    config["strategy"] = {"name": "reinforce", "options": strategy}
    report.mapped.append(("algorithm.algorithmName enas", "strategy reinforce (each candidate trains from scratch)"))
    report.notes.append(
        "kubenas also has ENAS's one-shot form (oneshot: {method: enas}: candidates share a supernet's weights), "
        "on cell spaces (nb201, cell) rather than this macro space"
    )
    epochs = _trial_epochs(exp, report)
    config["estimator"] = {
        "recipe": {
            "preset": "default",
            "lr": 1.0e-3,
            "weight_decay": 0.0,
            "schedule": "constant",
            "batch_size": 128,
            "augment": {"crop_padding": 3, "flip": True},
        }
    }
    config["fidelity"] = {"epochs": epochs}
    report.replaced.append(
        (
            "the trial's training (Katib's ENAS trial image)",
            "estimator.recipe: Adam lr 1e-3 without weight decay, constant, batch 128, horizontal flip and a "
            "3-pixel shift (Katib's 10 % translation at 32x32), as the trial image trains",
        )
    )
    report.notes.append(
        "Katib's ENAS trial validates on CIFAR-10's test split; kubenas holds out 10 % of train for validation "
        "(dataset.options.val_fraction) and keeps the test split for the winner"
    )
    config["export"] = {"epochs": max(2 * epochs, 10), "recipe": {"augment": {"cutout": 8}}}
    _budget(exp, config, report)
    goal = _get(exp, "spec.objective.goal")
    if goal is not None:
        config["budget"]["goal"] = _number("spec.objective.goal", goal)
        report.mapped.append(("spec.objective.goal", f"budget.goal = {config['budget']['goal']} (the search stops)"))


def _trial_epochs(exp: Mapping, report: Report) -> int:
    words = []
    for container in _containers(exp):
        words += [str(w) for w in (container.get("command") or []) + (container.get("args") or [])]
    text = " ".join(words)
    match = re.search(r"--num[_-]epochs(?:=|\s+)\"?(\d+)", text)
    if match:
        epochs = int(match.group(1))
        report.mapped.append((f"trial command --num_epochs={epochs}", f"fidelity.epochs = {epochs}"))
        return epochs
    report.notes.append("the trial command has no --num_epochs: fidelity.epochs = 10, the ENAS trial's default")
    return 10


def _darts(exp: Mapping, config: dict, report: Report) -> None:
    settings = _settings(exp, DARTS_DEFAULTS, "darts")
    given = settings.pop("_given")
    source = {k: ("" if k in given else " (Katib's default)") for k in DARTS_DEFAULTS}
    for key in ("num_epochs", "num_nodes", "init_channels", "stem_multiplier", "print_step", "num_workers"):
        if settings[key] is None or settings[key] < (0 if key == "num_workers" else 1):
            raise KatibError(f"spec.algorithm.algorithmSettings {key} must be an integer >= 1, got {settings[key]!r}")
    graph = _get(exp, "spec.nasConfig.graphConfig") or {}
    layers = graph.get("numLayers")
    if not is_int(layers) or layers < 1:
        raise KatibError(f"spec.nasConfig.graphConfig.numLayers must be an integer >= 1, got {layers!r}")
    per_stage = max(1, round((layers - 2) / 3))
    ops = _darts_operations(exp)
    config["space"] = {
        "name": "cell",
        "options": {
            "ops": ops,
            "blocks": settings["num_nodes"],
            "width": settings["init_channels"],
            "cells_per_stage": per_stage,
            "stem_multiplier": settings["stem_multiplier"],
        },
    }
    report.mapped.append(("spec.nasConfig.operations", f"space.options.ops = {ops} ('none' added, as Katib does)"))
    for key, option in (("num_nodes", "blocks"), ("init_channels", "width"), ("stem_multiplier", "stem_multiplier")):
        report.mapped.append((f"algorithmSettings.{key}", f"space.options.{option} = {settings[key]}{source[key]}"))
    if 3 * per_stage + 2 == layers:
        report.mapped.append(
            ("graphConfig.numLayers", f"space.options.cells_per_stage = {per_stage} ({layers} cells, 2 reductions)")
        )
    else:
        report.unmapped.append(
            (
                "graphConfig.numLayers",
                f"{layers} cells: kubenas's cell network has 3c+2 cells (c normal cells per stage, a reduction cell "
                f"between stages); cells_per_stage = {per_stage} gives {3 * per_stage + 2}",
            )
        )
    recipe = {
        "preset": "darts",
        "lr": settings["w_lr"],
        "lr_min": settings["w_lr_min"],
        "momentum": settings["w_momentum"],
        "weight_decay": settings["w_weight_decay"],
        "grad_clip": settings["w_grad_clip"],
        "arch_lr": settings["alpha_lr"],
        "arch_weight_decay": settings["alpha_weight_decay"],
        "batch_size": settings["batch_size"] or DARTS_DEFAULTS["batch_size"],
    }
    config["estimator"] = {"recipe": recipe}
    names = {"w_lr": "lr", "w_lr_min": "lr_min", "w_momentum": "momentum", "w_weight_decay": "weight_decay"}
    names |= {"w_grad_clip": "grad_clip", "alpha_lr": "arch_lr", "alpha_weight_decay": "arch_weight_decay"}
    names |= {"batch_size": "batch_size"}
    for key, option in names.items():
        report.mapped.append((f"algorithmSettings.{key}", f"estimator.recipe.{option} = {recipe[option]}{source[key]}"))
    config["dataset"]["options"].update({"val_fraction": 0.5, "workers": settings["num_workers"]})
    report.mapped.append(
        ("algorithmSettings.num_workers", f"dataset.options.workers = {settings['num_workers']}{source['num_workers']}")
    )
    report.notes.append(
        "dataset.options.val_fraction = 0.5: the train split halves into train and validation, as Katib's DARTS "
        "trial does"
    )
    epochs = settings["num_epochs"]
    config["oneshot"] = {"method": "darts", "epochs": epochs, "candidates": 1, "options": {"remedy": "none"}}
    report.mapped.append(
        ("algorithmSettings.num_epochs", f"oneshot.epochs = {epochs}{source['num_epochs']} (the budget)")
    )
    report.mapped.append(("algorithm.algorithmName darts", "oneshot.method darts, remedy none (Katib's plain DARTS)"))
    report.replaced.append(
        ("algorithmSettings.print_step", "kubenas logs every supernet epoch to the terminal and MLflow")
    )
    report.notes.append(
        "Katib's DARTS is second order (its architecture step differentiates through one unrolled weight step); "
        "kubenas's DARTS is first order, which the DARTS paper reports at a little lower accuracy for about half "
        "the cost per step. oneshot.options.remedy auxiliary_skip or early_stop guard against its collapse to "
        "skip connections"
    )
    config["budget"] = {"rounds": 1, "candidates_per_round": 1, "parallelism": 1}
    for key in ("maxTrialCount", "parallelTrialCount", "maxFailedTrialCount"):
        if _get(exp, f"spec.{key}") is not None:
            report.unmapped.append((f"spec.{key}", "a DARTS experiment is one trial; its budget is num_epochs"))
    config["export"] = {
        "epochs": 600,
        "recipe": {"preset": "darts", "lr": 0.025, "lr_min": 0.0, "batch_size": 96, "augment": {"cutout": 16}},
    }
    report.notes.append(
        "export: Katib stops at the genotype; kubenas retrains the derived cell (600 epochs with cutout, as DARTS "
        "evaluates) and registers it in MLflow; lower export.epochs for a quicker model"
    )


def _budget(exp: Mapping, config: dict, report: Report) -> None:
    parallel = _get(exp, "spec.parallelTrialCount")
    parallel = 3 if parallel is None else parallel  # Katib's default
    if not is_int(parallel) or parallel < 1:
        raise KatibError(f"spec.parallelTrialCount must be an integer >= 1, got {parallel!r}")
    budget: dict[str, Any] = {"candidates_per_round": parallel, "parallelism": parallel}
    trials = _get(exp, "spec.maxTrialCount")
    if trials is None:
        budget["rounds"] = MAX_ROUNDS
        report.unmapped.append(
            ("spec.maxTrialCount", f"left out (no limit): one run is {MAX_ROUNDS} rounds; a schedule continues it")
        )
    else:
        if not is_int(trials) or trials < 1:
            raise KatibError(f"spec.maxTrialCount must be an integer >= 1, got {trials!r}")
        rounds = math.ceil(trials / parallel)
        budget["rounds"], budget["max_evals"] = min(rounds, MAX_ROUNDS), trials
        text = f"budget: {min(rounds, MAX_ROUNDS)} round(s) of {parallel} candidates, max_evals = {trials}"
        report.mapped.append(("spec.maxTrialCount, spec.parallelTrialCount", text))
        if rounds > MAX_ROUNDS:
            report.notes.append(
                f"maxTrialCount {trials} needs {rounds} rounds of {parallel}; one compiled pipeline holds at most "
                f"{MAX_ROUNDS}, so a run evaluates at most {MAX_ROUNDS * parallel}. `kubenas schedule` runs it again "
                "on a cron: each run resumes the search where the last stopped and evaluates as many more"
            )
    failed = _get(exp, "spec.maxFailedTrialCount")
    if failed is not None:
        if not is_int(failed) or failed < 0:
            raise KatibError(f"spec.maxFailedTrialCount must be an integer >= 0, got {failed!r}")
        budget["max_failed"] = max(1, failed)
        report.mapped.append(("spec.maxFailedTrialCount", f"budget.max_failed = {max(1, failed)}"))
    config["budget"] = budget


def _common(exp: Mapping, config: dict, report: Report) -> None:
    objective = _get(exp, "spec.objective") or {}
    metric_name = str(objective.get("objectiveMetricName", ""))
    mode = {"maximize": "max", "minimize": "min"}.get(objective.get("type"), "max")
    if metric_name == "Best-Genotype":
        config["objective"] = {"metric": "val_acc", "mode": "max"}
        report.mapped.append(
            (
                "objective Best-Genotype",
                "not a metric: kubenas derives the genotype and optimises val_acc, the derived cell's validation "
                "accuracy with the supernet's weights; the export retrains it",
            )
        )
    else:
        metric = METRICS.get(re.sub(r"[^a-z]", "", metric_name.lower()))
        if metric is None:
            metric = "val_acc"
            mode = "max"
            report.unmapped.append(
                ("objective.objectiveMetricName", f"{metric_name!r} is not a metric kubenas reports: val_acc (max)")
            )
        else:
            report.mapped.append((f"objective {metric_name} ({objective.get('type')})", f"objective: {metric}, {mode}"))
        config["objective"] = {"metric": metric, "mode": mode}
    if objective.get("additionalMetricNames"):
        report.replaced.append(
            ("objective.additionalMetricNames", "kubenas logs val_acc, val_loss, params, MACs and time per candidate")
        )
    if "goal" in objective and config.get("oneshot"):
        report.unmapped.append(("objective.goal", "a DARTS search is one supernet training: nothing to stop early"))
    resume = _get(exp, "spec.resumePolicy")
    report.mapped.append(
        (
            f"spec.resumePolicy {resume or 'Never (default)'}",
            "kubenas resumes every search from its store: a run (or a schedule's next run) with the same name "
            "continues it, whatever the policy",
        )
    )
    early = _get(exp, "spec.earlyStopping")
    if early:
        _early_stopping(early, config, report)
    if _get(exp, "spec.metricsCollectorSpec") is not None:
        report.replaced.append(("spec.metricsCollectorSpec", "kubenas's tasks report their metrics to MLflow"))
    config.setdefault("export", {})["registered_model"] = config["name"]
    report.notes.append(
        f"export: the winner is registered in MLflow as {config['name']!r} with the 'champion' alias (Katib keeps "
        "no model)"
    )


def _early_stopping(early: Mapping, config: dict, report: Report) -> None:
    name = early.get("algorithmName")
    if name != "medianstop":
        report.unmapped.append(("spec.earlyStopping", f"algorithm {name!r}: kubenas maps medianstop only"))
        return
    if config.get("oneshot"):
        report.unmapped.append(("spec.earlyStopping", "a one-shot search trains no separate candidates to stop"))
        return
    settings = {s.get("name"): s.get("value") for s in early.get("algorithmSettings") or [] if isinstance(s, Mapping)}
    rule: dict[str, Any] = {}
    if "min_trials_required" in settings:
        trials = _number("earlyStopping min_trials_required", settings["min_trials_required"], int)
        rule["min_calibration"] = max(2, trials)
    if "start_step" in settings:
        rule["min_epochs"] = max(1, _number("earlyStopping start_step", settings["start_step"], int))
    config.setdefault("estimator", {})["early_stop"] = rule
    report.mapped.append(
        (
            "spec.earlyStopping medianstop",
            f"estimator.early_stop = {rule or 'its defaults'}: learning-curve extrapolation stops a candidate "
            "unlikely to beat the k-th best (start_step -> min_epochs, min_trials_required -> min_calibration)",
        )
    )
    unknown = sorted(set(settings) - {"min_trials_required", "start_step"})
    if unknown:
        report.unmapped.append((f"earlyStopping settings {unknown}", "medianstop's own; kubenas's rule has none"))


def _containers(exp: Mapping) -> list[Mapping]:
    spec = _pod_spec(_get(exp, "spec.trialTemplate.trialSpec") or {})
    return [c for c in (spec or {}).get("containers") or [] if isinstance(c, Mapping)]


def _pod_spec(trial: Mapping) -> Mapping | None:
    """The pod spec of a batch/v1 Job trial, or of a PyTorchJob's master replica."""
    if trial.get("kind") == "PyTorchJob":
        replicas = _get(trial, "spec.pytorchReplicaSpecs") or {}
        return _get(replicas.get("Master") or {}, "template.spec")
    return _get(trial, "spec.template.spec")


def _trial_template(exp: Mapping, config: dict, report: Report) -> None:
    template = _get(exp, "spec.trialTemplate") or {}
    if template.get("configMap"):
        ref = template["configMap"]
        where = f"{ref.get('configMapNamespace', '?')}/{ref.get('configMapName', '?')}"
        report.unmapped.append(
            (
                "spec.trialTemplate.configMap",
                f"the trial template lives in the cluster (ConfigMap {where}, key {ref.get('templatePath', '?')}): "
                "copy its resources, nodeSelector and tolerations into the config's resources section",
            )
        )
        return
    trial = template.get("trialSpec") or {}
    kind = trial.get("kind", "?")
    spec = _pod_spec(trial)
    if spec is None:
        report.unmapped.append(("spec.trialTemplate.trialSpec", f"a {kind} trial: kubenas reads a Job or a PyTorchJob"))
        return
    report.replaced.append(("trial image and command", "kubenas's component image runs each candidate"))
    for key in ("trialParameters", "primaryContainerName", "successCondition", "failureCondition", "retain"):
        if key in template:
            report.replaced.append((f"spec.trialTemplate.{key}", "kubenas's tasks pass candidates and results"))
    if kind == "PyTorchJob":
        workers = _get(trial, "spec.pytorchReplicaSpecs.Worker.replicas")
        report.mapped.append(("PyTorchJob trial", "resources from its Master replica"))
        if workers:
            report.unmapped.append(
                ("pytorchReplicaSpecs.Worker", f"{workers} worker(s): a kubenas candidate trains on one node for now")
            )
    containers = [c for c in spec.get("containers") or [] if isinstance(c, Mapping)]
    primary = template.get("primaryContainerName")
    main = next((c for c in containers if c.get("name") == primary), containers[0] if containers else {})
    resources: dict[str, Any] = {}
    for section in ("requests", "limits"):  # a limit wins over a request
        for key, value in (_get(main, f"resources.{section}") or {}).items():
            if key == "cpu":
                resources["cpu"] = str(value)
            elif key == "memory":
                resources["memory"] = str(value)
            elif key.endswith("/gpu"):
                resources["gpus"], resources["accelerator"] = _number(f"resources.{section}.{key}", value, int), key
    if resources:
        report.mapped.append(("trial container resources", f"resources: {resources}"))
    if spec.get("nodeSelector"):
        resources["node_selector"] = {str(k): str(v) for k, v in spec["nodeSelector"].items()}
        report.mapped.append(("trial nodeSelector", f"resources.node_selector = {resources['node_selector']}"))
    if spec.get("tolerations"):
        keep = ("key", "operator", "value", "effect")
        resources["tolerations"] = [{k: str(t[k]) for k in keep if k in t} for t in spec["tolerations"]]
        dropped = sorted({k for t in spec["tolerations"] for k in t} - set(keep))
        report.mapped.append(("trial tolerations", f"resources.tolerations ({len(resources['tolerations'])})"))
        if dropped:
            report.unmapped.append((f"toleration fields {dropped}", "kubenas takes key, operator, value, effect"))
    if resources:
        config["resources"] = resources
    account = spec.get("serviceAccountName")
    if account:
        config.setdefault("cluster", {})["service_account"] = account
        report.mapped.append(("trial serviceAccountName", f"cluster.service_account = {account} (the run's pods)"))


def _validate(config: dict, name: str) -> None:
    from kubenas.config import parse_config

    try:
        parse_config(config)
    except ValueError as exc:  # a bug of this translation or a value Katib accepts and kubenas does not
        raise KatibError(f"experiment {name!r} translates to a config that does not validate: {exc}") from None


# ----------------------------------------------------------------------------------------------------- results
def from_result(result: str, exp: Mapping[str, Any]) -> Imported:
    """A config whose search is the one architecture a finished Katib experiment returned: ``kubenas run`` scores
    it without training (its parameter count), then the export retrains it and registers it as the champion."""
    imported = translate(exp)
    config, report = imported.config, imported.report
    space_spec = config["space"]
    from kubenas.spaces import make_space

    space = make_space(space_spec["name"], **space_spec["options"])
    text = result.strip().strip("'\"")
    if space_spec["name"] == "katib_enas":
        try:
            layers = json.loads(text.replace("'", '"'))
        except ValueError:
            example = "[[27], [29, 0]]"
            raise KatibError(f"--result {result[:80]!r}: an ENAS result is a list per layer, e.g. {example}") from None
        try:
            arch = space.from_katib(layers)
        except ValueError as exc:
            raise KatibError(f"--result does not fit experiment {imported.name!r}'s space: {exc}") from None
        what = f"the ENAS architecture {json.dumps(layers)}"
    else:
        arch = _genotype_arch(text, space, imported.name)
        what = "the DARTS genotype"
    for key in ("oneshot", "strategy", "fidelity"):
        config.pop(key, None)
    config["name"] = f"{config['name']}-result"[:63]
    config["strategy"] = {"name": "grid", "options": {"archs": [arch]}}
    config["estimator"] = {"proxy": "params"}
    config["objective"] = {"metric": "zc_score", "mode": "max"}
    config["budget"] = {"rounds": 1, "candidates_per_round": 1, "parallelism": 1}
    config["export"]["registered_model"] = imported.name
    report.notes.insert(
        0,
        f"--result: this search is {what} ({space.genotype(arch)}); `kubenas run` scores it without training, then "
        "the export retrains it with export.recipe and registers it in MLflow as the champion",
    )
    _validate(config, imported.name)
    return Imported(imported.name, config, report)


def _genotype_arch(text: str, space, name: str) -> dict[str, Any]:
    """The cell-space architecture of a DARTS ``Genotype(normal=[...], normal_concat=..., reduce=[...], ...)``."""
    if not text.startswith("Genotype("):
        raise KatibError(f"--result {text[:60]!r}: a DARTS result is a Genotype(normal=[...], reduce=[...]) string")
    arch: dict[str, Any] = {}
    for cell, key in (("normal", "normal"), ("reduce", "reduce")):
        nodes = _literal_after(text, f"{key}=")
        if not isinstance(nodes, list) or len(nodes) != space.blocks:
            raise KatibError(
                f"--result: the genotype's {key} cell has {len(nodes) if isinstance(nodes, list) else 'no'} node(s); "
                f"experiment {name!r}'s space has {space.blocks} (num_nodes)"
            )
        concat = re.search(rf"{key}_concat\s*=\s*range\((\d+)\s*,\s*(\d+)\)", text)
        if concat and (int(concat.group(1)), int(concat.group(2))) != (2, space.blocks + 2):
            end = space.blocks + 2
            raise KatibError(f"--result: {key}_concat must be range(2, {end}): kubenas concatenates every node")
        for j, node in enumerate(nodes, start=2):
            edges = sorted((int(i), str(op)) for op, i in node) if _edges(node) else None
            if edges is None or len(edges) != 2 or edges[0][0] == edges[1][0] or edges[1][0] >= j:
                raise KatibError(f"--result: {key} node {j} needs two (operation, input) pairs, inputs distinct, < {j}")
            ops = []
            for _, op in edges:
                if op not in GENOTYPE_OPS or GENOTYPE_OPS[op] not in space.ops:
                    raise KatibError(f"--result: {key} node {j}: operation {op!r} is not in {name!r}'s space")
                ops.append(GENOTYPE_OPS[op])
            arch[f"{cell}_{j}_inputs"] = [edges[0][0], edges[1][0]]
            arch[f"{cell}_{j}_op0"], arch[f"{cell}_{j}_op1"] = ops
    try:
        return space.validate(arch)
    except ValueError as exc:
        raise KatibError(f"--result does not fit experiment {name!r}'s space: {exc}") from None


def _edges(node: Any) -> bool:
    return isinstance(node, (list, tuple)) and all(
        isinstance(e, (list, tuple)) and len(e) == 2 and isinstance(e[0], str) and is_int(e[1]) for e in node
    )


def _literal_after(text: str, key: str) -> Any:
    """The bracketed Python literal after ``key`` in ``text`` (read by ast.literal_eval: data only, no code)."""
    start = text.find(key)
    if start < 0 or text.find("[", start) < 0:
        return None
    i = text.index("[", start)
    depth = 0
    for j in range(i, len(text)):
        depth += {"[": 1, "]": -1}.get(text[j], 0)
        if depth == 0:
            try:
                return ast.literal_eval(text[i : j + 1])
            except (ValueError, SyntaxError):
                return None
    return None
