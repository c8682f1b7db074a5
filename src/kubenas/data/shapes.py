"""``shapes``: a built-in image dataset, generated offline and deterministically from a seed, so that the default
example searches on real images without the network. 32x32 RGB pictures of ten kinds of object (disk, ring,
square, frame, triangle, diamond, plus, cross, star, crescent) at random positions, scales, rotations and colours,
on random backgrounds with clutter.

It is written once into the cache as Parquet with an image column of PNG files and ``ClassLabel`` metadata, the
layout Hugging Face ``datasets`` writes, and then read like a user's Parquet: the example exercises the same
decoding path as a user's data.
"""

from __future__ import annotations

import io
import json
import math
import os
from pathlib import Path

import numpy as np

from kubenas.core import is_int
from kubenas.data.base import DatasetInfo
from kubenas.data.options import ImageOptions, image_loader

CLASSES = ("disk", "ring", "square", "frame", "triangle", "diamond", "plus", "cross", "star", "crescent")
SIDE = 32
GENERATOR = 1  # bumped whenever the pictures change: a cache of another generator's pictures is not reused
_SCALE = 4  # drawn at 4x, then downsampled with antialiasing


@image_loader
def load_shapes(train: int = 10_000, test: int = 2_000, seed: int = 0, name: str = "shapes", **options):
    """The generated shapes: ``train`` training images (``val_fraction`` of them become validation) and ``test``
    test images, balanced over the ten classes, from ``seed``."""
    from kubenas.data.parquet import load_parquet

    shapes_info(train, test, seed, name, **options)
    path = write_shapes(train, test, seed, ImageOptions.parse(name, options).cache())
    return load_parquet(str(path), image_column="image", label_column="label", name=name, **options)


@image_loader
def shapes_info(train: int = 10_000, test: int = 2_000, seed: int = 0, name: str = "shapes", **options) -> DatasetInfo:
    opts = ImageOptions.parse(name, options)
    for field, value, low in (("train", train, 100), ("test", test, 10)):
        if not is_int(value) or not low <= value <= 1_000_000:
            raise ValueError(f"dataset {name!r}: {field} must be an integer in {low}..1000000, got {value!r}")
    if not is_int(seed) or not 0 <= seed < 2**32:
        raise ValueError(f"dataset {name!r}: seed must be an integer in 0..2**32-1, got {seed!r}")
    side = opts.resize or SIDE
    return DatasetInfo((3 if opts.mode == "RGB" else 1, side, side), len(CLASSES))


def write_shapes(train: int, test: int, seed: int, directory: Path | None = None) -> Path:
    """The generated dataset's Parquet directory in the cache (``train-*.parquet``, ``test-*.parquet``), written
    once: under a temporary name, then renamed into place."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from kubenas.data.builtin import cache_dir

    root = (directory or cache_dir()) / f"shapes-g{GENERATOR}-{train}-{test}-{seed}"
    if (root / "done").exists():
        return root
    tmp = root.with_name(f"{root.name}.{os.getpid()}.tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    features = {"image": {"_type": "Image"}, "label": {"_type": "ClassLabel", "names": list(CLASSES)}}
    meta = {b"huggingface": json.dumps({"info": {"features": features}}).encode()}
    for split, count, offset in (("train", train, 0), ("test", test, 1)):
        rng = np.random.default_rng([seed, offset])
        labels = np.arange(count) % len(CLASSES)
        rng.shuffle(labels)
        images = [_png(_draw(int(label), rng)) for label in labels]
        image_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
        table = pa.table(
            {
                "image": pa.array([{"bytes": b, "path": None} for b in images], type=image_type),
                "label": pa.array(labels, type=pa.int64()),
            }
        ).replace_schema_metadata(meta)
        pq.write_table(table, tmp / f"{split}-00000-of-00001.parquet", row_group_size=1000)
    (tmp / "done").touch()
    try:
        os.replace(tmp, root)
    except OSError:  # another process got there first: keep theirs
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return root


def _png(img) -> bytes:
    out = io.BytesIO()
    img.save(out, format="PNG", compress_level=1)
    return out.getvalue()


def _colour(rng: np.random.Generator, away_from: tuple[int, ...] | None = None) -> tuple[int, int, int]:
    while True:
        c = tuple(int(v) for v in rng.integers(0, 256, 3))
        if away_from is None or sum(abs(a - b) for a, b in zip(c, away_from)) > 120:
            return c


def _draw(label: int, rng: np.random.Generator):
    from PIL import Image, ImageDraw, ImageFilter

    big = SIDE * _SCALE
    background = _colour(rng)
    img = Image.new("RGB", (big, big), background)
    draw = ImageDraw.Draw(img)
    if rng.random() < 0.5:  # a second colour in a random band: the background is not flat
        other = _colour(rng)
        x0, y0 = (int(v) for v in rng.integers(0, big, 2))
        draw.rectangle((x0, y0, x0 + int(rng.integers(big // 4, big)), y0 + int(rng.integers(big // 4, big))), other)
    for _ in range(int(rng.integers(1, 6))):  # clutter: strokes and blobs in other colours
        c = _colour(rng)
        x0, y0, x1, y1 = (int(v) for v in rng.integers(0, big, 4))
        if rng.random() < 0.5:
            draw.line((x0, y0, x1, y1), fill=c, width=int(rng.integers(2, 7)))
        else:
            r = int(rng.integers(3, 10))
            draw.ellipse((x0 - r, y0 - r, x0 + r, y0 + r), fill=c)
    colour = _colour(rng, away_from=background)
    size = rng.uniform(0.45, 0.85) * big / 2  # the object's radius
    cx, cy = (rng.uniform(size, big - size) for _ in range(2))
    turn = rng.uniform(-0.35, 0.35)
    _shape(img, draw, CLASSES[label], cx, cy, size, turn, colour)
    if rng.random() < 0.5:  # a thin stroke in front of the object too
        c = _colour(rng)
        x0, y0, x1, y1 = (int(v) for v in rng.integers(0, big, 4))
        draw.line((x0, y0, x1, y1), fill=c, width=int(rng.integers(2, 4)))
    img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0, 1.5)))
    img = img.resize((SIDE, SIDE), Image.Resampling.LANCZOS)
    noise = rng.normal(0, rng.uniform(3, 14), (SIDE, SIDE, 3))
    return Image.fromarray(np.clip(np.asarray(img, dtype=np.float64) + noise, 0, 255).astype(np.uint8))


def _poly(cx: float, cy: float, radii: list[float], turn: float) -> list[tuple[float, float]]:
    n = len(radii)
    return [
        (
            cx + r * math.cos(turn + 2 * math.pi * k / n - math.pi / 2),
            cy + r * math.sin(turn + 2 * math.pi * k / n - math.pi / 2),
        )
        for k, r in enumerate(radii)
    ]


def _shape(img, draw, kind: str, cx: float, cy: float, r: float, turn: float, colour) -> None:
    width = max(3, int(r / 2.5))
    if kind == "disk":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=colour)
    elif kind == "ring":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), outline=colour, width=width)
    elif kind == "square":
        draw.polygon(_poly(cx, cy, [r * 1.2] * 4, turn + math.pi / 4), fill=colour)
    elif kind == "frame":
        draw.polygon(_poly(cx, cy, [r * 1.2] * 4, turn + math.pi / 4), outline=colour, width=width)
    elif kind == "triangle":
        draw.polygon(_poly(cx, cy, [r * 1.15] * 3, turn * 3), fill=colour)
    elif kind == "diamond":
        draw.polygon(_poly(cx, cy, [r * 1.1, r * 0.7] * 2, turn), fill=colour)
    elif kind in ("plus", "cross"):
        base = turn + (math.pi / 4 if kind == "cross" else 0)
        for k in range(2):
            a = base + k * math.pi / 2
            dx, dy = r * math.cos(a), r * math.sin(a)
            draw.line((cx - dx, cy - dy, cx + dx, cy + dy), fill=colour, width=width + 2)
    elif kind == "star":
        draw.polygon(_poly(cx, cy, [r * 1.15, r * 0.45] * 5, turn), fill=colour)
    elif kind == "crescent":  # a disk less an offset disk, through a mask: whatever lies behind shows through
        from PIL import Image, ImageDraw

        mask = Image.new("L", img.size, 0)
        shape = ImageDraw.Draw(mask)
        shape.ellipse((cx - r, cy - r, cx + r, cy + r), fill=255)
        a, off = turn * 4, r * 0.55
        ox, oy = cx + off * math.cos(a), cy + off * math.sin(a)
        shape.ellipse((ox - r * 0.85, oy - r * 0.85, ox + r * 0.85, oy + r * 0.85), fill=0)
        img.paste(colour, (0, 0), mask)
