"""The options every image dataset takes, checked in one place (and listed in each image loader's signature, so
that a typo in a config names the accepted options)."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from kubenas.data.base import check_fraction, check_seed
from kubenas.data.images import MAX_PIXELS, DecodeOptions

DATA_PATHS = ("auto", "resident", "streaming")


@dataclass(frozen=True)
class ImageOptions:
    """``val_fraction`` and ``split_seed`` make the validation split from train where the data has none; ``mode``,
    ``resize``, ``max_pixels`` and ``on_bad_image`` say how images are decoded (:class:`DecodeOptions`);
    ``data_path`` picks the resident or streaming path (``auto``: by size); ``cache_dir`` is where decoded images
    are kept (default: the kubenas cache; on a cluster, a volume mounted in every pod)."""

    val_fraction: float = 0.1
    split_seed: int = 0
    mode: str = "RGB"
    resize: int | None = None
    max_pixels: int = MAX_PIXELS
    on_bad_image: str = "fail"
    data_path: str = "auto"
    cache_dir: str | None = None

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
        return opts

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


def image_loader(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Give a loader that takes ``**options`` the signature that lists them, for the registry's option check."""
    sig = inspect.signature(fn)
    params = [p for p in sig.parameters.values() if p.kind is not p.VAR_KEYWORD]
    params += [
        inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default) for f in fields(ImageOptions)
    ]
    fn.__signature__ = sig.replace(parameters=params)
    return fn
