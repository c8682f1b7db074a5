"""Check that the image's environment is exactly images/constraints.txt: every installed distribution (but
kubenas, torch and the installers) is pinned there, at the version installed. Run by the Dockerfile."""

import re
import sys
from importlib.metadata import distributions

SKIP = {"kubenas", "torch", "pip", "setuptools", "wheel"}


def main(path: str) -> int:
    pins = dict(re.match(r"([^=\s]+)==(\S+)", line).groups() for line in open(path)
                if line.strip() and not line.startswith("#"))
    pins = {re.sub(r"[-_.]+", "-", k).lower(): v for k, v in pins.items()}
    wrong = []
    for dist in distributions():
        name = re.sub(r"[-_.]+", "-", dist.metadata["Name"]).lower()
        if name in SKIP:
            continue
        if pins.get(name) != dist.version:
            wrong.append(f"{name}=={dist.version} (constraints: {pins.get(name, 'not pinned')})")
    if wrong:
        print("check_pins: the image differs from images/constraints.txt:\n  " + "\n  ".join(sorted(wrong)),
              file=sys.stderr)
        return 1
    print(f"check_pins: {len(pins)} pins, every installed package matches")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
