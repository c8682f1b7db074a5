"""Katib's DARTS experiments: its primitives and settings as the ``cell`` space, the one-shot ``darts`` method and
its recipe; and a DARTS ``Genotype(...)`` as a ``cell`` architecture."""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping
from typing import Any

from kubenas.core import is_int
from kubenas.katib.base import KatibError, Report, algorithm_settings, as_number, at

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


def _darts_operations(exp: Mapping) -> list[str]:
    ops = at(exp, "spec.nasConfig.operations")
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
            listed = at(param, "feasibleSpace.list") or []
            sizes += [as_number(f"{where}.parameters[{j}] (filter_size)", v, int) for v in listed]
        if not sizes:
            raise KatibError(f"{where}: {kind} needs a filter_size list")
        for size in sizes:
            if (kind, size) not in DARTS_OPS:
                have = sorted(k for t, k in DARTS_OPS if t == kind)
                raise KatibError(f"{where}: {kind} with filter_size {size} is not built by kubenas; sizes: {have}")
            out.append(DARTS_OPS[kind, size])
    return list(dict.fromkeys(out)) + ["none"]  # Katib's DARTS adds 'none' to every edge, as DARTS does


def map_darts(exp: Mapping, config: dict, report: Report) -> None:
    settings, given = algorithm_settings(exp, DARTS_DEFAULTS, "darts")
    source = {k: ("" if k in given else " (Katib's default)") for k in DARTS_DEFAULTS}
    for key in ("num_epochs", "num_nodes", "init_channels", "stem_multiplier", "print_step", "num_workers"):
        if settings[key] is None or settings[key] < (0 if key == "num_workers" else 1):
            raise KatibError(f"spec.algorithm.algorithmSettings {key} must be an integer >= 1, got {settings[key]!r}")
    graph = at(exp, "spec.nasConfig.graphConfig") or {}
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
    for key in ("maxTrialCount", "parallelTrialCount"):
        count = at(exp, f"spec.{key}")
        if count == 1:
            report.mapped.append((f"spec.{key} 1", "budget: one round of one supernet (the budget is num_epochs)"))
        elif count is not None:
            report.unmapped.append((f"spec.{key} {count}", "a DARTS experiment is one trial; its budget is num_epochs"))
    if at(exp, "spec.maxFailedTrialCount") is not None:
        report.replaced.append(
            ("spec.maxFailedTrialCount", "a failed supernet task is retried, and resumes from its last checkpoint")
        )
    config["export"] = {
        "epochs": 600,
        "recipe": {"preset": "darts", "lr": 0.025, "lr_min": 0.0, "batch_size": 96, "augment": {"cutout": 16}},
    }
    report.notes.append(
        "export: Katib stops at the genotype; kubenas retrains the derived cell (600 epochs with cutout, as DARTS "
        "evaluates) and registers it in MLflow; lower export.epochs for a quicker model"
    )


def genotype_arch(text: str, space, name: str) -> dict[str, Any]:
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
