"""The module graph: no import circles, and the core layers importing only what they may."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"


def _module(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


FILES = {_module(p): p for p in SRC.rglob("*.py")}


def _imports(path: Path, everywhere: bool) -> set[str]:
    """kubenas modules that ``path`` imports: at module level only, or ``everywhere`` (inside functions too).
    ``from package import submodule`` counts as importing the submodule."""
    tree = ast.parse(path.read_text())
    nodes = (
        ast.walk(tree)
        if everywhere
        else (n for n in tree.body if not isinstance(n, ast.If) or "TYPE_CHECKING" not in ast.unparse(n.test))
    )
    out = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("kubenas")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("kubenas"):
            subs = {f"{node.module}.{a.name}" for a in node.names} & set(FILES)
            out |= subs if len(subs) == len(node.names) else subs | {node.module}
    return out


def _graph(everywhere: bool) -> dict[str, set[str]]:
    # A module's parent packages are imported before it whatever it says: those edges are not circles.
    return {
        m: {i for i in _imports(p, everywhere) if i in FILES and i != m and not m.startswith(i + ".")}
        for m, p in FILES.items()
    }


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                return stack[stack.index(n) :] + [n]
            if n not in state and (found := visit(n)):
                return found
        state[m] = 2
        stack.pop()
        return None

    for m in sorted(graph):
        if m not in state and (found := visit(m)):
            return found
    return None


def _without_packages(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    # A package's __init__ re-exports its modules (a registry, or lazy names); a module importing a sibling
    # through its package is not a circle of the design, so edges into package __init__ files are dropped.
    packages = {m for m in graph if (SRC / m.replace(".", "/") / "__init__.py").exists()}
    return {m: {n for n in deps if n not in packages} for m, deps in graph.items()}


def test_no_import_circles_at_module_level():
    assert _cycle(_graph(everywhere=False)) is None


def test_no_import_circles_between_modules_even_in_functions():
    assert _cycle(_without_packages(_graph(everywhere=True))) is None


@pytest.mark.parametrize("layer", ["kubenas.spaces", "kubenas.strategies", "kubenas.estimators"])
def test_the_core_layers_depend_on_the_core_not_on_each_other(layer):
    graph = _graph(everywhere=True)
    allowed = {"kubenas.arch", "kubenas.core", "kubenas.history", "kubenas.registry", "kubenas.spaces", "kubenas.data"}
    allowed.add("kubenas.recipes")  # how to train: part of the core vocabulary, as a Fidelity is
    if layer != "kubenas.spaces":
        allowed.add("kubenas.strategies" if layer == "kubenas.strategies" else "kubenas.estimators")
    for module, deps in graph.items():
        if module == layer or module.startswith(layer + "."):
            bad = {d for d in deps if not any(d == a or d.startswith(a + ".") for a in allowed)}
            bad -= {layer} | {d for d in deps if d.startswith(layer + ".")}
            assert not bad, f"{module} imports {sorted(bad)}"


def _third_party(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize(
    "sdk, adapters",
    [
        ("mlflow", {"kubenas.tracking"}),  # every MLflow call, the export's and pull's too
        ("boto3", {"kubenas.store", "kubenas.stack"}),  # the S3 store, and the stack probing its own S3
        ("botocore", {"kubenas.store", "kubenas.stack"}),
        (
            "kfp",
            {
                "kubenas.local_run",
                "kubenas.cluster",  # plus components/ and pipelines/, the KFP wiring,
                "kubenas.containers",
            },
        ),  # and kfp.local's DockerRunner
        ("docker", {"kubenas.containers"}),  # the container runner's engine
    ],
)
def test_each_sdk_is_used_by_its_adapter_only(sdk, adapters):
    users = {m for m, p in FILES.items() if sdk in _third_party(p)}
    outside = {u for u in users if not any(u == a or u.startswith(a + ".") for a in adapters)}  # an adapter package
    assert not outside, sorted(outside)
