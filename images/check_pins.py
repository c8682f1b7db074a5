"""Check that the image's environment is exactly images/constraints.txt: every distribution installed in this
environment (but kubenas, torch and the installers) is pinned there, at the version installed. Run by the
Dockerfiles. A distribution of the base image, seen through ``--system-site-packages`` (the CUDA variant keeps its
base's torch), needs no pin, but must match its pin if it has one: it is what kubenas imports."""

import re
import sys
from importlib.metadata import distributions
from pathlib import Path

SKIP = {"kubenas", "torch", "pip", "setuptools", "wheel"}


def _name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def main(path: str) -> int:
    pins = dict(
        re.match(r"([^=\s]+)==(\S+)", line).groups() for line in open(path) if line.strip() and not line.startswith("#")
    )
    pins = {_name(k): v for k, v in pins.items()}
    prefix = Path(sys.prefix).resolve()
    wrong, seen = [], set()
    for dist in distributions():  # in sys.path order: the first of a name is the one imported
        name = _name(dist.metadata["Name"])
        if name in SKIP or name in seen:
            continue
        seen.add(name)
        own = prefix in Path(str(dist.locate_file(""))).resolve().parents
        if pins.get(name) != dist.version and (own or name in pins):
            wrong.append(
                f"{name}=={dist.version} (constraints: {pins.get(name, 'not pinned')})"
                + ("" if own else f" from the base image, {dist.locate_file('')}")
            )
    if wrong:
        print(
            "check_pins: the image differs from images/constraints.txt:\n  " + "\n  ".join(sorted(wrong)),
            file=sys.stderr,
        )
        return 1
    print(f"check_pins: {len(pins)} pins, every installed package matches")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
