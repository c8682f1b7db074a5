"""The README's pictures exist. Its Python examples run as written, every one in order, in
tests/e2e/test_readme_and_status.py (after a search of the README's name: some read the stack)."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def python_blocks() -> list[str]:
    """The README's Python blocks, without the indentation of a block inside a list item."""
    return [textwrap.dedent(b) for b in re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)]


def test_the_readme_shows_pictures_that_exist():
    pictures = re.findall(r"!\[[^\]]+\]\(([^)]+)\)", README.read_text())
    assert len(pictures) >= 3
    for picture in pictures:
        path = README.parent / picture
        assert path.read_bytes().startswith(b"\x89PNG") and path.stat().st_size < 200_000, picture
