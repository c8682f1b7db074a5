"""Reading Katib Experiments and translating one into a kubenas search config: identity, objective, early stopping,
the trial template's resources, and the algorithm's part (:mod:`kubenas.katib.enas`, :mod:`kubenas.katib.darts`)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from kubenas.katib.base import (
    API_VERSION,
    CIFAR_PATH,
    Imported,
    KatibError,
    Report,
    as_number,
    at,
    pod_spec,
    validate_config,
)
from kubenas.katib.darts import map_darts
from kubenas.katib.enas import map_enas

METRICS = {"validationaccuracy": "val_acc", "valaccuracy": "val_acc", "valacc": "val_acc", "accuracy": "val_acc"}
METRICS |= {"validationloss": "val_loss", "valloss": "val_loss", "loss": "val_loss"}


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


def _algorithm(exp: Mapping) -> str:
    name = exp["metadata"]["name"]
    algorithm = at(exp, "spec.algorithm.algorithmName")
    nas = at(exp, "spec.nasConfig")
    if algorithm not in ("enas", "darts"):
        kind = "hyperparameter" if at(exp, "spec.parameters") or nas is None else "NAS"
        raise KatibError(
            f"experiment {name!r}: spec.algorithm.algorithmName {algorithm!r} is a {kind} search; kubenas searches "
            "architectures and reads Katib's NAS algorithms, enas and darts"
        )
    if not isinstance(nas, Mapping):
        raise KatibError(f"experiment {name!r}: spec.nasConfig is missing; an {algorithm} experiment needs it")
    return algorithm


def translate(exp: Mapping[str, Any]) -> Imported:
    """The kubenas search config of one Katib NAS Experiment."""
    name = str(at(exp, "metadata.name") or "")
    if not name:
        raise KatibError("metadata.name is missing: an Experiment is named")
    algorithm = _algorithm(exp)
    report = Report(name)
    config: dict[str, Any] = {"name": _search_name(name, report)}
    namespace = at(exp, "metadata.namespace")
    if namespace:
        config["cluster"] = {"namespace": namespace}
        report.mapped.append(("metadata.namespace", f"cluster.namespace = {namespace} (kubenas submit and schedule)"))
    config["dataset"] = {"name": "cifar10", "options": {"path": CIFAR_PATH}}
    report.notes.append(
        f"dataset.options.path: put CIFAR-10's python archive (cifar-10-python.tar.gz) in your S3 or a volume and "
        f"name it here instead of {CIFAR_PATH}; kubenas downloads nothing at run time"
    )
    (map_enas if algorithm == "enas" else map_darts)(exp, config, report)
    _trial_template(exp, config, report)
    _common(exp, config, report)
    validate_config(config, name)
    return Imported(name, config, report)


def _search_name(name: str, report: Report) -> str:
    search = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")[:63].strip("-") or "katib-experiment"
    report.mapped.append(("metadata.name", f"name = {search}" + ("" if search == name else " (a DNS label)")))
    return search


def _common(exp: Mapping, config: dict, report: Report) -> None:
    objective = at(exp, "spec.objective") or {}
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
    resume = at(exp, "spec.resumePolicy")
    report.mapped.append(
        (
            f"spec.resumePolicy {resume or 'Never (default)'}",
            "kubenas resumes every search from its store: a run (or a schedule's next run) with the same name "
            "continues it, whatever the policy",
        )
    )
    early = at(exp, "spec.earlyStopping")
    if early:
        _early_stopping(early, config, report)
    if at(exp, "spec.metricsCollectorSpec") is not None:
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
        trials = as_number("earlyStopping min_trials_required", settings["min_trials_required"], int)
        rule["min_calibration"] = max(2, trials)
    if "start_step" in settings:
        rule["min_epochs"] = max(1, as_number("earlyStopping start_step", settings["start_step"], int))
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


def _trial_template(exp: Mapping, config: dict, report: Report) -> None:
    template = at(exp, "spec.trialTemplate") or {}
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
    spec = pod_spec(trial)
    if spec is None:
        report.unmapped.append(("spec.trialTemplate.trialSpec", f"a {kind} trial: kubenas reads a Job or a PyTorchJob"))
        return
    report.replaced.append(("trial image and command", "kubenas's component image runs each candidate"))
    for key in ("trialParameters", "primaryContainerName", "successCondition", "failureCondition", "retain"):
        if key in template:
            report.replaced.append((f"spec.trialTemplate.{key}", "kubenas's tasks pass candidates and results"))
    if kind == "PyTorchJob":
        workers = at(trial, "spec.pytorchReplicaSpecs.Worker.replicas")
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
        for key, value in (at(main, f"resources.{section}") or {}).items():
            if key == "cpu":
                resources["cpu"] = str(value)
            elif key == "memory":
                resources["memory"] = str(value)
            elif key.endswith("/gpu"):
                resources["gpus"], resources["accelerator"] = as_number(f"resources.{section}.{key}", value, int), key
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
