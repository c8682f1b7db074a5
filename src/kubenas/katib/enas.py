"""Katib's ENAS experiments: the macro space of ``nasConfig`` as the ``katib_enas`` space, the controller's settings
as the ``reinforce`` strategy's, and the trial image's training as a recipe."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from kubenas.core import is_int
from kubenas.katib.base import KatibError, Report, algorithm_settings, as_number, at, map_budget, trial_containers

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


def _parameter_values(where: str, param: Mapping) -> list[Any]:
    """One ENAS operation parameter's values: a categorical (or discrete) list, or an int range."""
    ptype = param.get("parameterType")
    space = param.get("feasibleSpace") or {}
    name = param.get("name")
    if ptype in ("categorical", "discrete"):
        values = space.get("list") or []
        if name == "reduction_type":
            return [str(v) for v in values]
        return [as_number(f"{where} ({name})", v, int) for v in values]
    if ptype == "int":
        low = as_number(f"{where}.feasibleSpace.min ({name})", space.get("min"), int)
        high = as_number(f"{where}.feasibleSpace.max ({name})", space.get("max"), int)
        step = as_number(f"{where}.feasibleSpace.step ({name})", space.get("step", "1"), int)
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

    ops = at(exp, "spec.nasConfig.operations")
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
            place = f"{where}.parameters[{j}]"
            pname = param.get("name") if isinstance(param, Mapping) else None
            if pname not in PARAMETERS[kind]:
                raise KatibError(
                    f"{place}: unknown parameter {pname!r} of {kind}; its parameters are: {', '.join(PARAMETERS[kind])}"
                )
            entry[pname] = _parameter_values(place, param)
        out.append(entry)
    return out


def map_enas(exp: Mapping, config: dict, report: Report) -> None:
    graph = at(exp, "spec.nasConfig.graphConfig") or {}
    layers = graph.get("numLayers")
    if not is_int(layers) or layers < 1:
        raise KatibError(f"spec.nasConfig.graphConfig.numLayers must be an integer >= 1, got {layers!r}")
    options: dict[str, Any] = {"layers": layers, "operations": _enas_operations(exp)}
    for key, option in (("inputSizes", "input_sizes"), ("outputSizes", "output_sizes")):
        if graph.get(key) is not None:
            options[option] = [as_number(f"spec.nasConfig.graphConfig.{key}", v, int) for v in graph[key]]
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
    settings, given = algorithm_settings(exp, ENAS_DEFAULTS, "enas")
    strategy: dict[str, Any] = {}
    for setting, option in ENAS_OPTIONS.items():
        value = settings[setting]
        if setting == "controller_learning_rate" and setting not in given:
            report.notes.append(
                "controller_learning_rate is left out: Katib's default (5e-5) is an Adam step on an LSTM, and "
                "kubenas's softmax policy takes a plain policy-gradient step per candidate, so its own default "
                "(0.1) applies"
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
    map_budget(exp, config, report)
    goal = at(exp, "spec.objective.goal")
    if goal is not None:
        config["budget"]["goal"] = as_number("spec.objective.goal", goal)
        report.mapped.append(("spec.objective.goal", f"budget.goal = {config['budget']['goal']} (the search stops)"))


def _trial_epochs(exp: Mapping, report: Report) -> int:
    words = []
    for container in trial_containers(exp):
        words += [str(w) for w in (container.get("command") or []) + (container.get("args") or [])]
    text = " ".join(words)
    match = re.search(r"--num[_-]epochs(?:=|\s+)\"?(\d+)", text)
    if match:
        epochs = int(match.group(1))
        report.mapped.append((f"trial command --num_epochs={epochs}", f"fidelity.epochs = {epochs}"))
        return epochs
    report.notes.append("the trial command has no --num_epochs: fidelity.epochs = 10, the ENAS trial's default")
    return 10
