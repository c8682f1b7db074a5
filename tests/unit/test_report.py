"""The search's pictures (kubenas.report, kubenas.diagram): which figures each kind of search gets, a page that
holds everything it shows, diagrams that are the architecture's graph, and the page as Chromium shows it."""

from __future__ import annotations

import base64
import re

import numpy as np
import pytest

from kubenas import diagram, history, report
from kubenas.report import View
from kubenas.spaces import make_space
from tests import browser

OBJECTIVES = [{"metric": "val_acc", "mode": "max"}, {"metric": "params", "mode": "min"}]


def rows(n=12, epochs=(2,), failed=(3,)):
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        ok = i not in failed
        out.append(
            {
                "id": f"{i // 4:05d}-{i:08x}",
                "arch_id": f"a{i % 5}",
                "round": i // 4,
                "epochs": epochs[i % len(epochs)],
                "status": "ok" if ok else "failed",
                "genotype": f"|op~{i}|",
                "metrics": {"val_acc": float(rng.uniform(0.5, 0.9)), "params": int(rng.integers(1000, 9000))}
                if ok
                else {},
                "cost": 1.5,
            }
        )
    return out


def figures_of(page: str) -> dict[str, bytes]:
    return {
        m.group(1): base64.b64decode(m.group(2))
        for m in re.finditer(r'data-figure="(\w+)" src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    }


@pytest.mark.parametrize(
    "view, data, expected",
    [
        (View("val_acc", "max"), rows(), {"progress"}),
        (
            View("val_acc", "max", objectives=OBJECTIVES, constraints={"params": {"max": 5000}}),
            rows(),
            {"progress", "pareto"},
        ),
        (View("val_acc", "max"), rows(epochs=(1, 1, 2, 4)), {"progress", "rungs"}),
        (
            View(
                "val_acc",
                "max",
                supernet_stats=[
                    {"epoch": e, "train_loss": 1 / e, "skip_share": 0.1 * e, "seconds": 2.0} for e in (1, 2, 3)
                ],
            ),
            rows(),
            {"progress", "supernet"},
        ),
    ],
)
def test_each_kind_of_search_gets_its_figures_on_a_self_contained_page(view, data, expected):
    page = report.build("kubenas search t: after round 2", "Search `t`.\nBest so far: **0.9**", data, view)
    assert set(page.figures) == expected
    shown = figures_of(page.html)
    assert set(shown) == expected and all(png.startswith(b"\x89PNG\r\n\x1a\n") for png in shown.values())
    assert shown == page.figures  # the page shows exactly the figures logged to MLflow
    assert "<script" not in page.html.lower() and not re.search(r'(src|href)="(?!data:)', page.html)
    assert "<b>0.9</b>" in page.html and "<code>t</code>" in page.html
    assert page.table["columns"][:6] == list(report.COLUMNS)
    assert len(page.table["data"]) == 10  # the top 10 of 11 successful rows


def test_the_leaderboard_ranks_the_top_rung_first_then_the_objective_and_skips_failures():
    data = rows(epochs=(1, 2))
    ranked = history.ranked(data, "val_acc", "max")
    assert all(r["status"] == "ok" for r in ranked) and len(ranked) == 11
    keys = [(r["epochs"], r["metrics"]["val_acc"]) for r in ranked]
    assert keys == sorted(keys, reverse=True)
    low = history.ranked(data, "params", "min")
    assert [r["metrics"]["params"] for r in low if r["epochs"] == 2] == sorted(
        r["metrics"]["params"] for r in data if r["status"] == "ok" and r["epochs"] == 2
    )
    assert history.best_so_far([0.3, None, 0.1, 0.5], "min") == [0.3, 0.3, 0.1, 0.1]


def test_the_exported_member_is_marked_and_a_search_without_results_still_has_a_page():
    data = rows()
    page = report.build("t", "s", data, View("val_acc", "max", objectives=OBJECTIVES, exported=data[0]["id"]))
    assert '<tr class="exported"><td>1</td>' in page.html or '<tr class="exported">' in page.html
    empty = report.build("t", "s", [], View("val_acc", "max"))
    assert empty.figures == {} and "No successful candidate yet." in empty.html


@pytest.mark.parametrize("space", ["nb201", "cell", "chain", "multibranch", "choice"])
def test_each_space_is_drawn_as_its_graph(space):
    s = make_space(space) if space != "choice" else make_space("choice", decisions={"x": [1, 2], "y": ["a", "b"]})
    arch = s.sample(np.random.default_rng(1))
    drawn = s.diagram(arch)
    if space == "nb201":
        (p,) = drawn
        assert len(p.nodes) == 4
        assert sorted((a, b, op) for a, b, op, _ in p.edges) == sorted(
            (int(k.split("_")[2]), int(k.split("_")[1]), op) for k, op in arch.items() if op != "none"
        )
    elif space == "cell":
        assert [p.title.split()[0] for p in drawn] == ["normal", "reduction"]
        for p, kind in zip(drawn, ("normal", "reduce")):
            ops = [arch[k] for k in arch if re.fullmatch(rf"{kind}_\d+_op\d", k)]
            assert len([e for e in p.edges if e[3] != "dotted"]) == sum(op != "none" for op in ops)
            assert len([e for e in p.edges if e[3] == "dotted"]) == len(ops) // 2  # every block feeds the output
    elif space == "chain":
        (p,) = drawn
        assert len(p.nodes) == arch["depth"] + 2 and len(p.edges) == arch["depth"] + 1
    elif space == "multibranch":
        (p,) = drawn
        assert len([e for e in p.edges if e[3] == "dashed"]) == sum(
            bool(v) for k, v in arch.items() if k.startswith("skip_")
        )
    else:  # a space without a shape of its own: its decisions in order
        (p,) = drawn
        assert p.nodes == ["input", f"x\n{arch['x']}", f"y\n{arch['y']}", "output"] and len(p.edges) == 3
    png = diagram.draw(drawn)
    assert png.startswith(b"\x89PNG")
    assert diagram.draw([]) is None


@pytest.mark.skipif(browser.CHROMIUM is None, reason="Chromium is not installed (CI installs it)")
def test_chromium_loads_the_page_with_every_figure_and_no_error(tmp_path):
    data = rows(epochs=(1, 2))
    extra = {
        "architecture": diagram.draw(make_space("nb201").diagram(make_space("nb201").sample(np.random.default_rng(0)))),
        "confusion": report.confusion_figure([[5, 1], [2, 7]]),
    }
    page = report.build("t", "s", data, View("val_acc", "max", objectives=OBJECTIVES), extra)
    path = tmp_path / "report.html"
    path.write_text(page.html)
    seen = browser.check(path, tmp_path)
    assert {f["name"] for f in seen["figures"]} == {"architecture", "confusion", "progress", "pareto", "rungs"}
    assert all(f["ok"] and f["width"] > 100 for f in seen["figures"]), seen
    assert seen["rows"] == 10 and seen["errors"] == []
