"""A finished Katib experiment's result (an ENAS architecture in Katib's notation, or a DARTS genotype) as a config
whose search is that one architecture: ``kubenas run`` retrains it with the export recipe and registers it."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from kubenas.katib.base import Imported, KatibError, validate_config
from kubenas.katib.darts import genotype_arch
from kubenas.katib.experiment import translate


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
        arch = genotype_arch(text, space, imported.name)
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
    validate_config(config, imported.name)
    return Imported(imported.name, config, report)
