"""The options every image dataset takes, checked in one place (and listed in each image loader's signature, so
that a typo in a config names the accepted options)."""

from __future__ import annotations

import inspect
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from kubenas.core import is_int
from kubenas.data.base import check_fraction, check_seed
from kubenas.data.images import MAX_PIXELS, DecodeOptions

DATA_PATHS = ("auto", "resident", "streaming")


@dataclass(frozen=True)
class ImageOptions:
    """``val_fraction`` and ``split_seed`` make the validation split from train where the data has none; ``mode``,
    ``resize``, ``max_pixels`` and ``on_bad_image`` say how images are decoded (:class:`DecodeOptions`);
    ``data_path`` picks the resident or streaming path (``auto``: resident when the decoded training images fit
    ``memory_budget``, bytes or a quantity such as ``2Gi``; default: a quarter of the memory this process may use);
    ``cache_dir`` is where decoded images are kept (default: the kubenas cache; on a cluster, a volume mounted in
    every pod); ``workers`` are the streaming path's DataLoader processes."""

    val_fraction: float = 0.1
    split_seed: int = 0
    mode: str = "RGB"
    resize: int | None = None
    max_pixels: int = MAX_PIXELS
    on_bad_image: str = "fail"
    data_path: str = "auto"
    cache_dir: str | None = None
    memory_budget: str | int | None = None
    workers: int = 2

    @classmethod
    def parse(cls, name: str, options: Mapping[str, Any]) -> ImageOptions:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ValueError(f"dataset {name!r}: unknown option(s) {unknown}; accepted: {', '.join(sorted(known))}")
        opts = cls(**options)
        check_fraction(name, "val_fraction", opts.val_fraction)
        check_seed(name, "split_seed", opts.split_seed)
        opts.decode.check(name)
        if opts.data_path not in DATA_PATHS:
            raise ValueError(
                f"dataset {name!r}: data_path must be one of {', '.join(DATA_PATHS)}, got {opts.data_path!r}"
            )
        if opts.cache_dir is not None and (not isinstance(opts.cache_dir, str) or not opts.cache_dir):
            raise ValueError(f"dataset {name!r}: cache_dir must be a directory path, got {opts.cache_dir!r}")
        if opts.memory_budget is not None:
            try:
                if parse_bytes(opts.memory_budget) < 1 << 20:
                    raise ValueError
            except ValueError:
                raise ValueError(
                    f"dataset {name!r}: memory_budget must be bytes (at least 1 MiB) or a quantity such as 512Mi or "
                    f"2Gi, got {opts.memory_budget!r}"
                ) from None
        if not is_int(opts.workers) or not 0 <= opts.workers <= 64:
            raise ValueError(f"dataset {name!r}: workers must be an integer in 0..64, got {opts.workers!r}")
        return opts

    def budget_bytes(self) -> int:
        """The memory the resident path may fill: ``memory_budget``, else a quarter of what this process may use."""
        return parse_bytes(self.memory_budget) if self.memory_budget is not None else available_memory() // 4

    @property
    def decode(self) -> DecodeOptions:
        return DecodeOptions(self.mode, self.resize, self.max_pixels, self.on_bad_image)

    def shape(self) -> tuple[int, ...] | None:
        """The input shape where the options fix it (``resize``), else None: only the images can tell."""
        from kubenas.data.images import MODES

        return (MODES[self.mode], self.resize, self.resize) if self.resize is not None else None

    def cache(self) -> Path | None:
        from kubenas.data.builtin import cache_dir

        return Path(self.cache_dir) if self.cache_dir else cache_dir() / "images"

    @staticmethod
    def check_path(name: str, path: Any) -> None:
        from kubenas.data.s3 import check_path

        check_path(path, name)


_UNITS = {
    "": 1,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "Ki": 1 << 10,
    "Mi": 1 << 20,
    "Gi": 1 << 30,
    "Ti": 1 << 40,
}


def parse_bytes(value: str | int) -> int:
    """Bytes from an integer or a Kubernetes-style quantity (``512Mi``, ``2Gi``, ``1G``); raises ValueError."""
    if is_int(value):
        return int(value)
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kMGT]i?|)\s*", str(value))
    if not match:
        raise ValueError(f"not a quantity of bytes: {value!r}")
    return int(float(match.group(1)) * _UNITS[match.group(2)])


def available_memory() -> int:
    """The memory this process may use: its cgroup's limit where one is set, else the machine's."""
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(path).read_text().strip()
            if text.isdigit() and int(text) < 1 << 60:
                return int(text)
        except OSError:
            pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def image_loader(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Give a loader that takes ``**options`` the signature that lists them, for the registry's option check."""
    sig = inspect.signature(fn)
    params = [p for p in sig.parameters.values() if p.kind is not p.VAR_KEYWORD]
    params += [
        inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default) for f in fields(ImageOptions)
    ]
    fn.__signature__ = sig.replace(parameters=params)
    return fn
