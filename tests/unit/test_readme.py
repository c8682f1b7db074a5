"""The README's Python examples run as written. Those that read the stack (they call ``kubenas.connect()`` or read
S3) run in tests/e2e/test_readme_and_status.py, after a search of the README's name."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def python_blocks() -> list[str]:
    """The README's Python blocks, without the indentation of a block inside a list item."""
    return [textwrap.dedent(b) for b in re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)]


def needs_services(block: str) -> bool:
    return "kubenas.connect()" in block or "s3_filesystem()" in block


def test_readme_python_blocks_run(tmp_path, monkeypatch):
    blocks = [b for b in python_blocks() if not needs_services(b)]
    assert len(blocks) >= 2
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for block in blocks:  # later blocks use names from earlier ones, as a reader would
        exec(compile(block, str(README), "exec"), namespace)
    assert namespace["best"]["metrics"]["score"] == 6  # depth 4, conv5, conv3: the optimum of the example
    assert namespace["state"]["strategy"] == "regularized_evolution"


def test_the_readme_shows_pictures_that_exist():
    pictures = re.findall(r"!\[[^\]]+\]\(([^)]+)\)", README.read_text())
    assert len(pictures) >= 3
    for picture in pictures:
        path = README.parent / picture
        assert path.read_bytes().startswith(b"\x89PNG") and path.stat().st_size < 200_000, picture
