"""What an installed kubenas holds: every package, under names of its own."""

from __future__ import annotations

from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[2]


def test_every_package_under_src_is_installed():
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    on_disk = {".".join(p.parent.relative_to(ROOT / "src").parts) for p in (ROOT / "src").rglob("__init__.py")}
    assert on_disk <= set(setuptools["packages"]), sorted(on_disk - set(setuptools["packages"]))


def test_the_kfp_wiring_installs_under_kubenas():
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert setuptools["package-dir"]["kubenas.components"] == "components"
    assert setuptools["package-dir"]["kubenas.pipelines"] == "pipelines"
    assert not {"components", "pipelines"} & set(setuptools["packages"])  # no generic top-level names

    import kubenas.components
    import kubenas.pipelines

    assert Path(kubenas.components.__file__).resolve() == ROOT / "components" / "__init__.py"
    assert Path(kubenas.pipelines.__file__).resolve() == ROOT / "pipelines" / "__init__.py"
