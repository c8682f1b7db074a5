"""Static checks of the component image: the Dockerfiles, their pins, and one version everywhere.

The Dockerfiles are parsed (dockerfile-parse) and checked for what an image review would check: pinned bases,
several stages, no build tools in the final stage, a non-root user, and pip installs held to the committed
constraints."""

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib
import yaml
from dockerfile_parse import DockerfileParser
from packaging.requirements import Requirement

import kubenas
from kubenas.components import image as component_image

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILES = [ROOT / "images" / "Dockerfile", ROOT / "images" / "Dockerfile.cuda"]
BUILD_TOOLS = re.compile(r"\b(build-essential|gcc|g\+\+|make|cmake|git)\b")


def _parse(path: Path) -> DockerfileParser:
    return DockerfileParser(fileobj=io.BytesIO(path.read_bytes()), env_replace=True)


def _stages(parser: DockerfileParser) -> list[list[dict]]:
    stages: list[list[dict]] = []
    for instr in parser.structure:
        if instr["instruction"] == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(instr)
    return stages


def _constraints() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "images" / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version and re.fullmatch(r"[0-9][0-9A-Za-z.+!-]*", version), f"not an exact pin: {line!r}"
            pins[name.lower()] = version
    return pins


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_pins_its_bases_and_builds_in_stages(path):
    parser = _parse(path)
    assert parser.is_multistage and len(parser.parent_images) >= 2
    for base in parser.parent_images:
        assert "$" not in base, f"{path.name}: unresolved base image {base!r}"
        name, _, tag = base.rpartition(":")
        assert name and "/" not in tag, f"{path.name}: base image {base!r} has no tag"
        assert tag != "latest" and re.search(r"\d+\.\d+", tag), f"{path.name}: base {base!r} is not a pinned version"


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_final_stage_is_non_root_and_has_no_build_tools(path):
    final = _stages(_parse(path))[-1]
    users = [i["value"] for i in final if i["instruction"] == "USER"]
    assert users, f"{path.name}: the final stage sets no USER, so it runs as root"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) >= 1000, f"{path.name}: USER {users[-1]!r} should be a numeric non-root uid"
    assert any(i["instruction"] == "COPY" and "--from=" in i["value"] for i in final), (
        "final stage copies no build output"
    )
    for instr in final:
        if instr["instruction"] == "RUN":
            assert "pip install" not in instr["value"], (
                f"{path.name}: the final stage installs packages: {instr['value']}"
            )
            assert not BUILD_TOOLS.search(instr["value"]), (
                f"{path.name}: build tools in the final stage: {instr['value']}"
            )


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_every_pip_install_is_pinned(path):
    installs = [i["value"] for i in _parse(path).structure if i["instruction"] == "RUN" and "pip install" in i["value"]]
    assert installs
    for cmd in installs:
        pinned_torch = re.search(r"\btorch==\d+\.\d+\.\d+\b", cmd)
        assert "--constraint /tmp/constraints.txt" in cmd or pinned_torch, f"{path.name}: unpinned install: {cmd}"
        assert "latest" not in cmd


def test_constraints_pin_every_dependency_of_the_image():
    """Each requirement of kubenas[digits,onnx,server] (torch aside) is pinned, at a version it accepts."""
    pins = _constraints()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = project["dependencies"] + sum(
        (project["optional-dependencies"][x] for x in ("digits", "onnx", "server")), []
    )
    for text in reqs:
        req = Requirement(text)
        if req.name == "torch":
            continue
        name = req.name.lower()
        assert name in pins, f"{req.name} is not pinned in images/constraints.txt (run images/build.sh --lock)"
        assert req.specifier.contains(pins[name], prereleases=True), f"{name}=={pins[name]} violates {text!r}"


def test_cpu_and_cuda_variants_pin_the_same_torch():
    cpu = re.search(r"torch==(\d+\.\d+\.\d+)", (ROOT / "images" / "Dockerfile").read_text()).group(1)
    cuda_base = _parse(ROOT / "images" / "Dockerfile.cuda").parent_images[-1]
    assert cuda_base.split(":")[1].startswith(cpu + "-cuda"), (cpu, cuda_base)


def test_dockerignore_admits_only_what_the_build_copies():
    lines = [
        ln.strip() for ln in (ROOT / ".dockerignore").read_text().splitlines() if ln.strip() and not ln.startswith("#")
    ]
    assert lines[0] == "*", "start from 'ignore everything' so that .git, .venv and runs/ never enter the context"
    admitted = {ln[1:].rstrip("/") for ln in lines if ln.startswith("!")}
    copied = set()
    for path in DOCKERFILES:
        for instr in _parse(path).structure:
            if instr["instruction"] == "COPY" and "--from=" not in instr["value"]:
                copied.update(p.rstrip("/") for p in instr["value"].split()[:-1])
    assert copied <= admitted, f"COPY sources missing from .dockerignore: {copied - admitted}"


def test_one_version_tags_every_image_reference():
    version = kubenas.__version__
    assert component_image.IMAGE.endswith(f":{version}")
    assert component_image.CUDA_IMAGE == f"{component_image.IMAGE}-cuda"
    # build.sh derives its tags from the same __version__
    env = {**os.environ, "CONTAINER_ENGINE": "docker"}
    out = subprocess.run(
        ["bash", str(ROOT / "images" / "build.sh"), "registry.test/ml/kubenas", "--dry-run", "--push"],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    ).stdout
    tags = re.findall(r"--tag (\S+)", out)
    assert tags == [f"registry.test/ml/kubenas:{version}", f"registry.test/ml/kubenas:{version}-cuda"]
    assert re.findall(r"push (\S+)", out) == tags
    # the manifests' MLflow server runs the same image
    kustomization = yaml.safe_load((ROOT / "manifests" / "base" / "kustomization.yaml").read_text())
    kubenas_image = next(i for i in kustomization["images"] if i["name"] == "kubenas")
    assert f"{kubenas_image['newName']}:{kubenas_image['newTag']}" == component_image.IMAGE


def test_build_script_refuses_a_tagged_repository():
    run = subprocess.run(
        ["bash", str(ROOT / "images" / "build.sh"), "registry.test/kubenas:latest", "--dry-run"],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 2 and "without a tag" in run.stderr


def test_the_build_fails_when_an_installed_package_differs_from_its_pin(tmp_path, monkeypatch, capsys):
    """images/check_pins.py, which the Dockerfile runs after installing: names unpinned and mispinned packages."""
    import importlib.util
    from types import SimpleNamespace

    spec = importlib.util.spec_from_file_location(
        "check_pins", Path(__file__).resolve().parents[2] / "images" / "check_pins.py"
    )
    check_pins = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(check_pins)
    pins = tmp_path / "constraints.txt"
    pins.write_text("# header\nmlflow==3.17.2\npython-dateutil==2.9.0\n")

    venv = Path(sys.prefix) / "lib" / "site-packages"
    base = tmp_path / "base-image" / "site-packages"  # outside this environment, as --system-site-packages shows it

    def installed(*names, where=venv):
        return lambda: [
            SimpleNamespace(metadata={"Name": n}, version=v, locate_file=lambda _, w=w: w)
            for n, v, *w in names
            for w in (w[0] if w else where,)
        ]

    monkeypatch.setattr(
        check_pins,
        "distributions",
        installed(("MLflow", "3.17.2"), ("python_dateutil", "2.9.0"), ("torch", "2.13.0+cpu"), ("pip", "24.0")),
    )
    assert check_pins.main(str(pins)) == 0  # names normalised; torch and pip are not pinned by design
    monkeypatch.setattr(check_pins, "distributions", installed(("mlflow", "3.17.1"), ("requests", "2.32.3")))
    assert check_pins.main(str(pins)) == 1
    err = capsys.readouterr().err
    assert "mlflow==3.17.1 (constraints: 3.17.2)" in err and "requests==2.32.3 (constraints: not pinned)" in err
    # the CUDA variant's base: its own packages need no pin; a pinned one must match, unless this environment's
    # copy (first on sys.path) shadows it
    monkeypatch.setattr(
        check_pins,
        "distributions",
        installed(
            ("mlflow", "3.17.2"), ("python-dateutil", "2.9.0"), ("conda", "24.1", base), ("mlflow", "3.0.0", base)
        ),
    )
    assert check_pins.main(str(pins)) == 0
    monkeypatch.setattr(
        check_pins, "distributions", installed(("mlflow", "3.17.2"), ("python-dateutil", "2.8.0", base))
    )
    assert check_pins.main(str(pins)) == 1
    assert "python-dateutil==2.8.0 (constraints: 2.9.0) from the base image" in capsys.readouterr().err
