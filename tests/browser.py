"""Open a report in headless Chromium, as the Kubeflow UI shows it: inside an ``<iframe sandbox>``.

:func:`check` loads a copy of the page with a few lines of script added at its end (the report itself has none)
that record, for every figure, whether Chromium decoded it, and the page's console errors; it reads them back
from the DOM that Chromium dumps. :func:`screenshot` renders the page in a sandboxed iframe to a PNG."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--virtual-time-budget=5000"]

_PROBE = """<script>
addEventListener('load', () => {
  const figures = [...document.querySelectorAll('img[data-figure]')].map(
    img => ({name: img.dataset.figure, ok: img.complete && img.naturalWidth > 0, width: img.naturalWidth}));
  const out = document.createElement('pre');
  out.id = 'kubenas-probe';
  out.textContent = JSON.stringify({figures, rows: document.querySelectorAll('#leaderboard tbody tr').length});
  document.body.appendChild(out);
});
</script>"""


def check(page: Path, work: Path) -> dict:
    """Every figure of ``page`` as Chromium decoded it, the leaderboard's row count, and the console errors."""
    probe = work / f"probe-{page.stem}.html"
    probe.write_text(page.read_text().replace("</body>", _PROBE + "</body>"))
    done = subprocess.run(
        [CHROMIUM, *FLAGS, "--enable-logging=stderr", "--v=0", "--dump-dom", probe.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    found = re.search(r'<pre id="kubenas-probe">(.*?)</pre>', done.stdout, re.S)
    assert found, f"Chromium did not load {page}: {done.stderr[-2000:]}"
    result = json.loads(found.group(1).replace("&quot;", '"'))
    result["errors"] = [line for line in done.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    return result


def screenshot(page: Path, out: Path, width: int = 1100, height: int = 2400) -> Path:
    """``page`` rendered in a sandboxed iframe (no script, no same-origin), as the KFP UI frames an HTML output."""
    frame = out.with_suffix(".frame.html")
    frame.write_text(
        f'<!DOCTYPE html><html><body style="margin:0"><iframe sandbox="" src="{page.as_uri()}" '
        f'style="width:{width}px;height:{height}px;border:0"></iframe></body></html>'
    )
    subprocess.run(
        [CHROMIUM, *FLAGS, f"--screenshot={out}", f"--window-size={width + 20},{height}", frame.as_uri()],
        capture_output=True,
        timeout=120,
        check=True,
    )
    return out
