"""What every part of the Katib import shares: the error, the report, the translated config, and readers of
Katib's values (Katib writes every value as a string)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from kubenas.core import UserError, is_int

API_VERSION = "kubeflow.org/v1beta1"
CIFAR_PATH = "s3://change-me/datasets/cifar-10-python.tar.gz"  # the written config's placeholder
# the written config's sections, in the order kubenas's own configs use
SECTIONS = ("name", "dataset", "space", "strategy", "oneshot", "estimator", "fidelity", "budget", "objective")
SECTIONS += ("export", "resources", "cluster")
MAX_ROUNDS = 100  # a compiled pipeline unrolls at most this many rounds (kubenas.config's budget.rounds)


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


def at(doc: Mapping, path: str, default: Any = None) -> Any:
    node: Any = doc
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return default
        node = node[part]
    return node


def as_number(where: str, value: Any, kind: type = float) -> Any:
    """A Katib string value as a number (Katib writes every value as a string)."""
    try:
        number = kind(str(value).strip())
    except ValueError:
        raise KatibError(f"{where}: {value!r} is not {'an integer' if kind is int else 'a number'}") from None
    if kind is float and not math.isfinite(number):
        raise KatibError(f"{where}: {value!r} is not a finite number")
    return number


def algorithm_settings(exp: Mapping, known: Mapping[str, Any], algorithm: str) -> tuple[dict[str, Any], set[str]]:
    """The experiment's algorithmSettings over Katib's defaults (``"None"`` is None), and the names it gave;
    unknown names are errors."""
    out = dict(known)
    given: set[str] = set()
    for i, item in enumerate(at(exp, "spec.algorithm.algorithmSettings") or []):
        where = f"spec.algorithm.algorithmSettings[{i}]"
        if not isinstance(item, Mapping) or "name" not in item:
            raise KatibError(f"{where} must be a mapping with a name and a value, got {item!r}")
        name = item["name"]
        if name not in known:
            raise KatibError(f"{where}: unknown {algorithm} setting {name!r}; Katib's are: {', '.join(known)}")
        value = item.get("value")
        kind = int if isinstance(known[name], int) else float
        out[name] = None if value in (None, "None") else as_number(f"{where} ({name})", value, kind)
        given.add(name)
    return out, given


def map_budget(exp: Mapping, config: dict, report: Report) -> None:
    parallel = at(exp, "spec.parallelTrialCount")
    parallel = 3 if parallel is None else parallel  # Katib's default
    if not is_int(parallel) or parallel < 1:
        raise KatibError(f"spec.parallelTrialCount must be an integer >= 1, got {parallel!r}")
    budget: dict[str, Any] = {"candidates_per_round": parallel, "parallelism": parallel}
    trials = at(exp, "spec.maxTrialCount")
    if trials is None:
        budget["rounds"] = MAX_ROUNDS
        report.mapped.append(
            (
                "spec.maxTrialCount (left out: no limit)",
                f"budget.rounds = {MAX_ROUNDS}, the most one pipeline holds; `kubenas schedule` continues the search",
            )
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
    failed = at(exp, "spec.maxFailedTrialCount")
    if failed is not None:
        if not is_int(failed) or failed < 0:
            raise KatibError(f"spec.maxFailedTrialCount must be an integer >= 0, got {failed!r}")
        budget["max_failed"] = max(1, failed)
        report.mapped.append(("spec.maxFailedTrialCount", f"budget.max_failed = {max(1, failed)}"))
    config["budget"] = budget


def trial_containers(exp: Mapping) -> list[Mapping]:
    spec = pod_spec(at(exp, "spec.trialTemplate.trialSpec") or {})
    return [c for c in (spec or {}).get("containers") or [] if isinstance(c, Mapping)]


def pod_spec(trial: Mapping) -> Mapping | None:
    """The pod spec of a batch/v1 Job trial, or of a PyTorchJob's master replica."""
    if trial.get("kind") == "PyTorchJob":
        replicas = at(trial, "spec.pytorchReplicaSpecs") or {}
        return at(replicas.get("Master") or {}, "template.spec")
    return at(trial, "spec.template.spec")


def validate_config(config: dict, name: str) -> None:
    from kubenas.config import parse_config

    try:
        parse_config(config)
    except ValueError as exc:  # a bug of this translation or a value Katib accepts and kubenas does not
        raise KatibError(f"experiment {name!r} translates to a config that does not validate: {exc}") from None
