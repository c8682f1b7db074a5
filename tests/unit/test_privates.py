"""No module reaches into another module's private names: a class's ``_attribute`` is read only by that class's
own module (``self._x`` in a subclass is its own business), and no module imports another's ``_function``.
The public APIs (``SearchSpace.index``, ``violation``, ``complete``, ``encode_many``; ``Strategy.proposals`` and
``accept``) exist so that nothing needs to."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = [p for d in ("src", "components", "pipelines") for p in sorted((ROOT / d).rglob("*.py"))]


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _defined(tree: ast.AST) -> set[str]:
    """The private names a module defines: functions, classes, attributes it assigns, names it binds."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            out.add(node.attr)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            out.add(node.id)
        elif isinstance(node, ast.arg):
            out.add(node.arg)
    return {n for n in out if _private(n)}


def reaches(files: list[Path]) -> list[str]:
    """Where a module in ``files`` reads a private name that only another module of ``files`` defines."""
    trees = {p: ast.parse(p.read_text()) for p in files}
    own = {p: _defined(t) for p, t in trees.items()}
    everyone = set().union(*own.values())
    found = []
    for path, tree in trees.items():
        where = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and _private(node.attr)
                and node.attr in everyone - own[path]
                and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
            ):
                found.append(f"{where}:{node.lineno} reads .{node.attr}")
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("kubenas"):
                found += [
                    f"{where}:{node.lineno} imports {node.module}.{a.name}" for a in node.names if _private(a.name)
                ]
    return found


def test_no_module_reads_another_modules_private_names():
    assert reaches(PRODUCT) == []


def test_the_check_finds_a_reach(tmp_path):
    (tmp_path / "a.py").write_text("class Space:\n    def __init__(self):\n        self._index = {}\n")
    (tmp_path / "b.py").write_text("from kubenas.spaces.base import _key\n\ndef f(space):\n    return space._index\n")
    assert sorted(reaches([tmp_path / "a.py", tmp_path / "b.py"])) == [
        f"{tmp_path / 'b.py'}:1 imports kubenas.spaces.base._key",
        f"{tmp_path / 'b.py'}:4 reads ._index",
    ]
