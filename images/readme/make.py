"""The README's pictures, taken from the reports of real runs of two example configs:

    kubenas run pipelines/configs/mnist1d-nb201.yaml
    kubenas run pipelines/configs/mnist1d-nb201-pareto.yaml
    python images/readme/make.py [--home DIR]

Each picture is a figure of a winner's report (``HOME/reports/<search>/winner.html``), as kubenas drew it."""

from __future__ import annotations

import argparse
import base64
import re
from pathlib import Path

PICTURES = {
    "progress.png": ("mnist1d-nb201", "progress"),
    "architecture.png": ("mnist1d-nb201", "architecture"),
    "pareto.png": ("mnist1d-nb201-pareto", "pareto"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, default=Path.home() / ".kubenas")
    args = parser.parse_args()
    here = Path(__file__).parent
    for out, (search, figure) in PICTURES.items():
        page = (args.home / "reports" / search / "winner.html").read_text()
        found = re.search(rf'data-figure="{figure}" src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
        if found is None:
            raise SystemExit(f"the {search} report has no {figure} figure")
        (here / out).write_bytes(base64.b64decode(found.group(1)))
        print(f"wrote {here / out} ({(here / out).stat().st_size / 1024:.0f} KiB) from {search}")


if __name__ == "__main__":
    main()
