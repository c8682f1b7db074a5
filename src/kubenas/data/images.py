"""Images: decoding, normalisation to one shape and mode, and the resident cache every image format shares.

A format module (folders, Parquet, WebDataset, CIFAR) lists its images as :class:`Item`\\ s, each a key, a label
and a way to read its bytes (or, for CIFAR, decoded pixels). :func:`kubenas.data.imageset.image_dataset` turns
the listing into a :class:`~kubenas.data.base.Dataset`:

1. every image is decoded with Pillow, EXIF rotation applied, converted to the dataset's mode (conversions are
   counted and said once), and checked: corrupt or truncated files, images above ``max_pixels``, and mixed sizes
   without ``resize`` are errors that name the file (or are skipped and counted with ``on_bad_image: skip``);
2. the decoded pixels are kept as uint8 in a cache file keyed by the listing (keys, sizes, modification times or
   ETags) and the decode options, written under a temporary name and renamed into place under a lock, so later
   tasks on the machine read it instead of decoding again;
3. the splits become float tensors normalised with the train split's per-channel mean and std, and the
   :class:`Preprocess` that did it travels with the dataset, the model and its registered copy, so that serving
   applies the same steps to a raw image.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from kubenas.core import is_int

MODES = {"RGB": 3, "L": 1}
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
# Pillow's own guard warns above ~89 Mpx and refuses above twice that; a NAS image is far smaller, so the default
# refuses anything above 16 Mpx before decoding it (a decompression bomb costs nothing to reject).
MAX_PIXELS = 4096 * 4096
ON_BAD = ("fail", "skip")


class BadImage(ValueError):
    """An image that cannot be used: it does not decode, is too large, or has the wrong size."""


@dataclass(frozen=True)
class Item:
    """One image of a listing: ``key`` names it in errors (a path, an object key, ``shard.tar:key``); ``read``
    returns its encoded bytes, or ``pixels`` holds it already decoded (C, H, W) uint8 (CIFAR's arrays)."""

    key: str
    label: int
    read: Callable[[], bytes] | None = None
    pixels: np.ndarray | None = None
    stamp: str = ""  # what identifies this version of the file: size and mtime, or an ETag


@dataclass(frozen=True)
class Shard:
    """A unit of a split that a format reads as a whole: a tar shard, a Parquet file, a chunk of a folder's files,
    a CIFAR batch. ``items()`` reads it lazily (the streaming path reads one shard at a time in each worker);
    ``name`` and ``stamp`` (size and mtime, or an ETag) identify this version of it for the cache; ``size`` is its
    encoded bytes; ``count`` its images where known without reading it."""

    name: str
    stamp: str
    size: int
    items: Callable[[], Iterable[Item]]
    count: int | None = None
    overhead: int = 0  # bytes a shard spends per image besides the image (a tar's headers and label file)


@dataclass
class Source:
    """What a format lists before reading any image: the shards of ``train`` and optionally ``val`` and ``test``,
    and the class names where the listing or metadata says them (None: the labels' range)."""

    splits: dict[str, list[Shard]]
    classes: list[str] | None = None


@dataclass(frozen=True)
class DecodeOptions:
    """How images become tensors of one shape: ``mode`` RGB or L; ``resize`` N scales the shorter side to N and
    takes the centre N x N (None refuses mixed sizes); ``max_pixels`` refuses larger images before decoding;
    ``on_bad_image`` fails the load on the first listing of bad images, or skips and counts them."""

    mode: str = "RGB"
    resize: int | None = None
    max_pixels: int = MAX_PIXELS
    on_bad_image: str = "fail"

    def check(self, name: str) -> DecodeOptions:
        if self.mode not in MODES:
            raise ValueError(f"dataset {name!r}: mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.resize is not None and (not is_int(self.resize) or not 4 <= self.resize <= 4096):
            raise ValueError(f"dataset {name!r}: resize must be an integer in 4..4096 or null, got {self.resize!r}")
        if not is_int(self.max_pixels) or self.max_pixels < 16:
            raise ValueError(f"dataset {name!r}: max_pixels must be an integer >= 16, got {self.max_pixels!r}")
        if self.on_bad_image not in ON_BAD:
            raise ValueError(f"dataset {name!r}: on_bad_image must be 'fail' or 'skip', got {self.on_bad_image!r}")
        return self


@dataclass(frozen=True)
class Preprocess:
    """What turns a raw image into the model's input, stored with the model: decode, EXIF rotation, ``mode``,
    ``resize`` (or a fixed ``size``), scale to [0, 1], then ``(x - mean) / std`` per channel; ``classes`` names
    the outputs."""

    mode: str
    size: tuple[int, int]
    resize: int | None
    mean: tuple[float, ...]
    std: tuple[float, ...]
    classes: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Preprocess:
        return cls(
            mode=data["mode"],
            size=tuple(data["size"]),
            resize=data.get("resize"),
            mean=tuple(data["mean"]),
            std=tuple(data["std"]),
            classes=tuple(data["classes"]),
        )

    @cached_property
    def _mean_std(self):
        import torch

        shape = (1, -1, 1, 1)
        return torch.tensor(self.mean).view(shape), torch.tensor(self.std).view(shape)

    def normalise(self, pixels: np.ndarray):
        """(N, C, H, W) uint8 pixels as the model's float32 input tensor (the streaming path calls it per image:
        the mean and std tensors are made once)."""
        import torch

        mean, std = self._mean_std
        return (torch.from_numpy(np.ascontiguousarray(pixels)).float().div_(255.0) - mean) / std

    def to_png(self, x) -> list[bytes]:
        """Model inputs (normalised float tensors) back to PNG files: an input example of the served model."""
        from PIL import Image

        mean = np.asarray(self.mean, dtype=np.float32).reshape(-1, 1, 1)
        std = np.asarray(self.std, dtype=np.float32).reshape(-1, 1, 1)
        out = []
        for image in np.asarray(x, dtype=np.float32):
            pixels = np.clip(np.rint((image * std + mean) * 255), 0, 255).astype(np.uint8).transpose(1, 2, 0)
            buf = io.BytesIO()
            Image.fromarray(pixels[:, :, 0] if self.mode == "L" else pixels).save(buf, format="PNG")
            out.append(buf.getvalue())
        return out

    def images(self, images: Iterable[bytes]):
        """Encoded images of any size (PNG or JPEG bytes) as the model's input: the serving path. The training
        data's resize policy applies; a model trained on same-size images scales any other size to its own (the
        shorter side, then the centre)."""
        h, w = self.size
        opts = DecodeOptions(self.mode, self.resize if self.resize is not None else (h if h == w else None))
        shaped = []
        for i, data in enumerate(images):
            pixels = decode(data, f"image {i}", opts)[0]
            shaped.append(pixels if pixels.shape[1:] == self.size else _fit(pixels, self.size, self.mode))
        if not shaped:
            raise ValueError("no images to predict")
        return self.normalise(np.stack(shaped))


def decode(data: bytes, key: str, opts: DecodeOptions) -> tuple[np.ndarray, str]:
    """One encoded image as (C, H, W) uint8 in ``opts.mode``, and the mode it was stored in; raises BadImage."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            width, height = img.size
            if width * height > opts.max_pixels:
                raise BadImage(
                    f"{key}: {width}x{height} pixels is above the limit of {opts.max_pixels} (max_pixels): "
                    "refused before decoding"
                )
            img = ImageOps.exif_transpose(img)
            stored = img.mode
            img = _to_mode(img, opts.mode)
            img.load()
    except BadImage:
        raise
    except Image.DecompressionBombError as exc:
        raise BadImage(f"{key}: above the limit of {opts.max_pixels} pixels (max_pixels): {exc}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombWarning) as exc:
        raise BadImage(f"{key}: not a readable PNG or JPEG image ({type(exc).__name__}: {exc})") from None
    return _array(img, opts), stored


def from_pixels(pixels: np.ndarray, opts: DecodeOptions) -> np.ndarray:
    """Decoded (C, H, W) uint8 RGB pixels (CIFAR's) in ``opts.mode`` and size."""
    if opts.mode == "RGB" and opts.resize is None:
        return pixels
    from PIL import Image

    return _array(_to_mode(Image.fromarray(np.ascontiguousarray(pixels.transpose(1, 2, 0))), opts.mode), opts)


def decode_item(item: Item, opts: DecodeOptions) -> tuple[np.ndarray, str, int]:
    """An item's (C, H, W) uint8 pixels in ``opts``'s mode and size, the mode it was stored in, and its encoded
    bytes (0 for pixels already decoded); raises BadImage."""
    if item.pixels is not None:
        return from_pixels(item.pixels, opts), opts.mode, 0
    data = item.read()
    pixels, stored = decode(data, item.key, opts)
    return pixels, stored, len(data)


def _to_mode(img, mode: str):
    if img.mode == mode:
        return img
    if img.mode in ("P", "LA", "PA") or (img.mode == "RGBA" and mode == "L"):
        img = img.convert("RGBA")
    return img.convert(mode)


def _array(img, opts: DecodeOptions) -> np.ndarray:
    if opts.resize is not None:
        img = _resize_centre(img, opts.resize)
    array = np.asarray(img, dtype=np.uint8)
    if array.ndim == 2:
        array = array[:, :, None]
    return np.ascontiguousarray(array.transpose(2, 0, 1))


def _resize_centre(img, n: int):
    """The shorter side scaled to ``n`` (bicubic, antialiased), then the centre ``n`` x ``n``."""
    from PIL import Image

    w, h = img.size
    scale = n / min(w, h)
    w2, h2 = max(n, round(w * scale)), max(n, round(h * scale))
    if (w2, h2) != (w, h):
        img = img.resize((w2, h2), Image.Resampling.BICUBIC, reducing_gap=None)
    left, top = (w2 - n) // 2, (h2 - n) // 2
    return img.crop((left, top, left + n, top + n))


def _fit(pixels: np.ndarray, size: tuple[int, int], mode: str) -> np.ndarray:
    from PIL import Image

    img = Image.fromarray(pixels.transpose(1, 2, 0).squeeze(-1) if mode == "L" else pixels.transpose(1, 2, 0))
    img = img.resize((size[1], size[0]), Image.Resampling.BICUBIC)
    array = np.asarray(img, dtype=np.uint8)
    return (array[:, :, None] if array.ndim == 2 else array).transpose(2, 0, 1)


@dataclass
class Decoded:
    """A split's decoded images: (N, C, H, W) uint8, int64 labels, the keys of the images it skipped and the
    stored modes it converted from."""

    pixels: np.ndarray
    labels: np.ndarray
    skipped: list[str] = field(default_factory=list)
    converted: Counter = field(default_factory=Counter)


def decode_all(items: Sequence[Item], opts: DecodeOptions, name: str, split: str, threads: int = 8) -> Decoded:
    """Decode a split's items in a thread pool (Pillow releases the GIL while it decodes). Every bad image is
    collected first; then the load fails naming them (at most 10, and the count), or skips them."""

    def one(item: Item):
        try:
            pixels, stored, _ = decode_item(item, opts)
            return pixels, stored, None
        except BadImage as exc:
            return None, None, str(exc)
        except OSError as exc:
            return None, None, f"{item.key}: cannot be read ({exc})"

    with ThreadPoolExecutor(max(1, min(threads, len(items)))) as pool:
        decoded = list(pool.map(one, items))
    bad = [reason for _, _, reason in decoded if reason is not None]
    shapes = Counter(p.shape[1:] for p, _, _ in decoded if p is not None)
    if len(shapes) > 1:
        common = shapes.most_common(1)[0][0]
        odd = [
            (item.key, p.shape[1:])
            for item, (p, _, _) in zip(items, decoded)
            if p is not None and p.shape[1:] != common
        ]
        examples = "; ".join(f"{k} is {s[1]}x{s[0]}" for k, s in odd[:2])
        raise ValueError(
            f"dataset {name!r}: split {split!r} mixes image sizes ({len(odd)} of {len(items)} are not "
            f"{common[1]}x{common[0]}: {examples}); set the dataset option resize: N to scale them to N x N"
        )
    if bad and opts.on_bad_image == "fail":
        listed = "\n  ".join(bad[:10])
        more = f"\n  ... and {len(bad) - 10} more" if len(bad) > 10 else ""
        raise ValueError(
            f"dataset {name!r}: {len(bad)} bad image(s) in split {split!r} (set on_bad_image: skip to leave them "
            f"out):\n  {listed}{more}"
        )
    kept = [(p, item.label, stored) for item, (p, stored, _) in zip(items, decoded) if p is not None]
    if not kept:
        raise ValueError(f"dataset {name!r}: split {split!r} has no readable image")
    converted = Counter(stored for _, _, stored in kept if stored != opts.mode)
    skipped = [item.key for item, (p, _, _) in zip(items, decoded) if p is None]
    return Decoded(
        np.stack([p for p, _, _ in kept]), np.asarray([lb for _, lb, _ in kept], dtype=np.int64), skipped, converted
    )


# ------------------------------------------------------------------------------------------------ the resident cache
def cache_key(name: str, shards: dict[str, list[tuple[str, str]]], opts: DecodeOptions) -> str:
    """What identifies a decoded cache: every shard's name and stamp per split, and the decode options."""
    h = hashlib.sha256()
    h.update(json.dumps({"name": name, "opts": asdict(opts), "shards": shards}, sort_keys=True).encode())
    return h.hexdigest()[:24]


def cached_decode(
    key: str, build: Callable[[], tuple[dict[str, Decoded], list[str]]], directory: Path | None
) -> tuple[tuple[dict[str, Decoded], list[str]], bool]:
    """The decoded splits and the class names from ``directory/images-KEY.npz``, or built, written to a temporary
    name and renamed into place under an exclusive lock (parallel tasks on one machine decode once); True when read
    from the cache. A build that fails writes nothing. Without a writable directory every call decodes."""
    if directory is None:
        return build(), False
    path = directory / f"images-{key}.npz"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        lock = open(directory / f"images-{key}.lock", "a+")  # noqa: SIM115 - held for the whole build
    except OSError:
        return build(), False
    import fcntl

    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        loaded = _read_cache(path)
        if loaded is not None:
            return loaded, True
        splits, classes = build()
        tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npz")
        arrays: dict[str, Any] = {}
        meta: dict[str, Any] = {"classes": classes, "splits": {}}
        for split, d in splits.items():
            arrays[f"{split}_pixels"], arrays[f"{split}_labels"] = d.pixels, d.labels
            meta["splits"][split] = {"skipped": d.skipped, "converted": dict(d.converted)}
        try:
            np.savez(tmp, meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8), **arrays)
            os.replace(tmp, path)
        except OSError:
            Path(tmp).unlink(missing_ok=True)
        return (splits, classes), False


def _read_cache(path: Path) -> tuple[dict[str, Decoded], list[str]] | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(bytes(z["meta"]).decode())
            splits = {
                split: Decoded(z[f"{split}_pixels"], z[f"{split}_labels"], m["skipped"], Counter(m["converted"]))
                for split, m in meta["splits"].items()
            }
            return splits, meta["classes"]
    except (OSError, KeyError, ValueError, TypeError):
        return None


def stats(pixels: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of (N, C, H, W) uint8 pixels, on the [0, 1] scale (in float64, chunked)."""
    c = pixels.shape[1]
    total, square, count = np.zeros(c), np.zeros(c), 0
    for start in range(0, len(pixels), 4096):
        chunk = pixels[start : start + 4096].astype(np.float64) / 255.0
        total += chunk.sum(axis=(0, 2, 3))
        square += (chunk**2).sum(axis=(0, 2, 3))
        count += chunk.shape[0] * chunk.shape[2] * chunk.shape[3]
    mean = total / count
    std = np.sqrt(np.maximum(square / count - mean**2, 1e-12))
    return tuple(float(m) for m in mean), tuple(float(max(s, 1e-3)) for s in std)
