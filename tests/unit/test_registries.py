"""Every registry's entries are reachable the way kubenas reaches them: spaces build with their test options, every
component is a registered pipeline stage that the pipeline runs, and every stage's report is collected."""

from __future__ import annotations

import ast
from pathlib import Path

from kubenas.config import parse_config
from kubenas.spaces import SPACES
from tests.conftest import SPACE_OPTIONS, space_for_tests

ROOT = Path(__file__).resolve().parents[2]


def test_every_registered_space_builds_with_its_test_options():
    assert set(SPACE_OPTIONS) <= set(SPACES)  # no options for a space that is gone
    for name in SPACES:
        assert space_for_tests(name).spec()["name"] == name


def test_every_component_is_a_registered_stage_of_the_pipeline():
    from kubenas.components import STAGES
    from kubenas.pipelines.nas_search import build_pipeline

    modules = {p.stem for p in (ROOT / "components").glob("*.py")} - {"__init__", "image"}
    assert modules == set(STAGES)
    cfg = parse_config(
        {"name": "reg", "dataset": {"name": "mnist1d"}, "space": {"name": "nb201"}, "budget": {"rounds": 2}}
    )
    spec = build_pipeline(cfg).pipeline_spec
    tasks = {name for block in [spec.root.dag, *[c.dag for c in spec.components.values()]] for name in block.tasks}
    assert all(any(t == s.task or t.startswith(s.task + "-") for t in tasks) for s in STAGES.values()), tasks
    reporting = {name: s for name, s in STAGES.items() if s.report}
    assert {s.report for s in reporting.values()} == {"search", "winner"}
    for name in reporting:  # what the local runner copies out is the component's `report` output
        source = (ROOT / "components" / f"{name}.py").read_text()
        func = next(n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.FunctionDef))
        assert "report" in [a.arg for a in func.args.args], name
