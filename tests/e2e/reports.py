"""What a search run leaves to look at: its HTML reports (opened in Chromium where it is installed)."""

from __future__ import annotations

import re
from pathlib import Path

from tests import browser


def check_reports(home: Path, name: str, tmp_path: Path, search: set[str], winner: set[str]) -> dict[str, str]:
    """The run's two reports hold (at least) these figures, and Chromium decodes every one of them without error."""
    pages = {}
    for kind, expected in (("search", search), ("winner", winner)):
        path = home / "reports" / name / f"{kind}.html"
        page = path.read_text()
        assert expected <= set(re.findall(r'data-figure="(\w+)"', page)), (kind, expected)
        if browser.CHROMIUM is not None:
            seen = browser.check(path, tmp_path)
            assert {f["name"] for f in seen["figures"]} >= expected and all(f["ok"] for f in seen["figures"]), seen
            assert seen["errors"] == [] and seen["rows"] > 0
        pages[kind] = page
    return pages
