"""*init*: validate the config with the run form's values, check S3 and MLflow, take the search's lease, record (or
resume) the search and open its MLflow parent run."""

from __future__ import annotations

import json
import os
import socket
from typing import Any

from kubenas import lease
from kubenas.config import IDENTITY, ConfigError, SearchConfig, parse_config
from kubenas.context import say
from kubenas.store import SearchStore
from kubenas.tracking import Tracker

# The run form's typed fields (besides rounds and candidates_per_round): form field -> where it goes in the config.
FORM = {
    "name": ("name",),
    "seed": ("seed",),
    "strategy": ("strategy", "name"),
    "epochs": ("fidelity", "epochs"),
    "data_fraction": ("fidelity", "data_fraction"),
}


def with_overrides(
    config_json: str, rounds: int | None = None, candidates_per_round: int | None = None, **form: Any
) -> SearchConfig:
    """The config with the pipeline form's values applied, validated again. ``rounds`` and
    ``candidates_per_round`` apply when positive; the typed fields of :data:`FORM` (name, seed, strategy, epochs,
    data_fraction) when given, taking precedence over ``config_json``. A new strategy starts without the old one's
    options."""
    data = json.loads(config_json)
    budget = data.setdefault("budget", {})
    if rounds is not None and rounds > 0:
        budget["rounds"] = rounds
    if candidates_per_round is not None and candidates_per_round > 0:
        budget["candidates_per_round"] = candidates_per_round
    unknown = set(form) - set(FORM)
    if unknown:
        raise TypeError(f"unknown form field(s): {sorted(unknown)}")
    for field, value in form.items():
        if value is None or value == "":
            continue
        *path, leaf = FORM[field]
        section = data
        for key in path:
            if not isinstance(section.get(key), dict):
                section[key] = {}
            section = section[key]
        if field == "strategy" and section.get("name") != value:
            section.pop("options", None)
        section[leaf] = value
    return parse_config(data, "pipeline config (config_json with the run form's values)")


def form_summary(cfg: SearchConfig, config_json: str) -> str:
    """The Markdown the init task shows: the search as it runs, and the form values that changed config_json."""
    given = json.loads(config_json)
    run = cfg.model_dump(mode="json")
    changed = []
    for field, path in {
        **FORM,
        "rounds": ("budget", "rounds"),
        "candidates_per_round": ("budget", "candidates_per_round"),
    }.items():
        before, after = given, run
        for key in path:
            before = before.get(key) if isinstance(before, dict) else None
            after = after.get(key) if isinstance(after, dict) else None
        if before != after:
            changed.append(f"`{field}`: {before!r} → {after!r}")
    lines = [
        f"# kubenas search `{cfg.name}`",
        "",
        f"Space `{cfg.space.name}`, {cfg.search_method}, dataset `{cfg.dataset.name}`, objective "
        f"{cfg.objective.metric} ({cfg.objective.mode}); {cfg.budget.rounds} round(s) of "
        f"{cfg.budget.candidates_per_round} candidate(s), {cfg.budget.parallelism} at a time; "
        f"{cfg.fidelity.epochs} epoch(s) on {cfg.fidelity.data_fraction:g} of the training split; seed {cfg.seed}.",
        "",
        "Changed by the run form: " + ("; ".join(changed) if changed else "nothing (the config as compiled)."),
        "",
        "```json",
        json.dumps(run, indent=1, sort_keys=True),
        "```",
    ]
    return "\n".join(lines) + "\n"


def init_search(
    config_json: str, rounds: int | None = None, candidates_per_round: int | None = None, job: str = "", **form: Any
) -> dict[str, Any]:
    """Validate (with the run form's values, :func:`with_overrides`), check S3 and MLflow, take the search's lease
    for the pipeline run ``job`` (its KFP run id; this process when empty), record (or resume) the search, and
    open the MLflow parent run."""
    cfg = with_overrides(config_json, rounds, candidates_per_round, **form)
    store, tracker = SearchStore.from_config(cfg), Tracker.from_config(cfg)
    store.check()
    tracker.check()
    cfg.check_data_source()
    stored, current = store.read_config(), cfg.model_dump(mode="json")
    if stored is not None:
        stored = _normalised(stored)
        changed = [k for k in IDENTITY if stored.get(k) != current[k]]
        if changed:
            raise ConfigError(
                f"search {cfg.name!r} already exists in {store.uri} with different {', '.join(changed)}; "
                f"keep them, or give the search a new name"
            )
    holder = job or f"process-{socket.gethostname()}-{os.getpid()}"
    note = lease.Lease(store).acquire(holder, lease.info())  # before anything is written: one run at a time
    if note:
        say(f"search {cfg.name!r}: {note}")
    store.write_config(current)
    start_round = store.last_committed_round() + 1
    parent = tracker.start_parent(cfg)
    lease.Lease(store).bind(holder, parent)
    what = f"resuming after round {start_round - 1}" if start_round else "new search"
    say(f"search {cfg.name!r} ({what}) in {store.uri}; MLflow run {parent}")
    return {
        "config_json": cfg.to_json(),
        "parent_run_id": parent,
        "start_round": start_round,
        "summary": form_summary(cfg, config_json),
    }


def _normalised(stored: dict[str, Any]) -> dict[str, Any]:
    """A stored config as this version writes it: fields added since it was stored take their defaults, so a
    search made by an older kubenas resumes. A config this version rejects is compared as it is."""
    try:
        return parse_config(stored, "stored config").model_dump(mode="json")
    except ConfigError:
        return stored
