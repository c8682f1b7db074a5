"""Small generated image datasets in every format kubenas reads, for tests: class ``k`` is a bright square at a
class-dependent place on noise, so that a network can learn it in an epoch or two."""

from __future__ import annotations

import io
import json
import pickle
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image

CLASSES = ("ant", "bee", "cat")


def pixels(label: int, rng: np.random.Generator, side: int = 16) -> np.ndarray:
    """(side, side, 3) uint8: noise with a bright square whose place says the class."""
    a = rng.integers(0, 90, (side, side, 3), dtype=np.uint8)
    q = side // 4
    top, left = [(0, 0), (q * 2, q * 2), (0, q * 2), (q * 2, 0)][label % 4]
    a[top : top + q + 1, left : left + q + 1] = 230
    return a


def encode(a: np.ndarray, fmt: str = "PNG", mode: str | None = None) -> bytes:
    img = Image.fromarray(a)
    if mode is not None:
        img = img.convert(mode)
    out = io.BytesIO()
    img.save(out, format=fmt)
    return out.getvalue()


def samples(n: int, seed: int, side: int = 16, classes: int = 3):
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % classes
    return [(int(y), pixels(int(y), rng, side)) for y in labels]


def imagefolder(root: Path, per_class: int = 12, fmt: str = "PNG", splits=("train", "test"), side: int = 16) -> Path:
    ext = {"PNG": "png", "JPEG": "jpg"}[fmt]
    for s, split in enumerate(splits):
        for i, (label, a) in enumerate(samples(per_class * len(CLASSES), seed=s, side=side)):
            folder = root / split / CLASSES[label]
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{i:04d}.{ext}").write_bytes(encode(a, fmt))
    return root


def hf_parquet(root: Path, per_class: int = 12, binary: bool = False) -> Path:
    """``train-*.parquet`` and ``test-*.parquet`` as Hugging Face ``datasets`` writes an Image and a ClassLabel."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    root.mkdir(parents=True, exist_ok=True)
    features = {"img": {"_type": "Image"}, "label": {"_type": "ClassLabel", "names": list(CLASSES)}}
    meta = {b"huggingface": json.dumps({"info": {"features": features}}).encode()}
    for s, split in enumerate(("train", "test")):
        rows = samples(per_class * len(CLASSES), seed=s)
        blobs = [encode(a) for _, a in rows]
        image = (
            pa.array(blobs, type=pa.binary())
            if binary
            else pa.array(
                [{"bytes": b, "path": f"{i}.png"} for i, b in enumerate(blobs)],
                type=pa.struct([("bytes", pa.binary()), ("path", pa.string())]),
            )
        )
        table = pa.table({"img": image, "label": pa.array([y for y, _ in rows], type=pa.int64())})
        pq.write_table(table.replace_schema_metadata(meta), root / f"{split}-00000-of-00001.parquet")
    return root


def webdataset(root: Path, per_class: int = 12, shards: int = 2, fmt: str = "PNG") -> Path:
    """``train-00000N.tar`` and ``test-000000.tar`` of ``<key>.png`` plus ``<key>.cls``."""
    root.mkdir(parents=True, exist_ok=True)
    ext = {"PNG": "png", "JPEG": "jpg"}[fmt]
    for s, (split, count) in enumerate((("train", shards), ("test", 1))):
        rows = samples(per_class * len(CLASSES), seed=s)
        for shard in range(count):
            with tarfile.open(root / f"{split}-{shard:06d}.tar", "w") as tar:
                for i, (label, a) in enumerate(rows[shard::count]):
                    key = f"{split}{shard}_{i:05d}"
                    for suffix, data in ((ext, encode(a, fmt)), ("cls", str(label).encode())):
                        member = tarfile.TarInfo(f"{key}.{suffix}")
                        member.size = len(data)
                        tar.addfile(member, io.BytesIO(data))
    return root


def cifar_archive(path: Path, kind: str = "cifar10", per_batch: int = 30, crafted: bytes | None = None) -> Path:
    """A small archive in the real CIFAR python format: pickled dicts of bytes keys, uint8 rows of 3072 values.
    ``crafted`` replaces the first training batch's pickle."""
    classes = 10 if kind == "cifar10" else 100
    rng = np.random.default_rng(0)

    def batch(n: int, offset: int) -> bytes:
        labels = [(i + offset) % classes for i in range(n)]
        data = np.stack([pixels(y, rng, 32).transpose(2, 0, 1).reshape(-1) for y in labels]).astype(np.uint8)
        if kind == "cifar10":
            return pickle.dumps({b"batch_label": b"batch", b"labels": labels, b"data": data, b"filenames": []}, 2)
        return pickle.dumps(
            {b"fine_labels": labels, b"coarse_labels": [y // 5 for y in labels], b"data": data, b"filenames": []}, 2
        )

    if kind == "cifar10":
        folder = "cifar-10-batches-py"
        members = {f"data_batch_{i}": batch(per_batch, i) for i in range(1, 6)}
        members["test_batch"] = batch(per_batch, 7)
        members["batches.meta"] = pickle.dumps({b"label_names": [f"c{i}".encode() for i in range(10)]}, 2)
    else:
        folder = "cifar-100-python"
        members = {"train": batch(per_batch * 5, 1), "test": batch(per_batch, 7)}
        members["meta"] = pickle.dumps(
            {
                b"fine_label_names": [f"f{i}".encode() for i in range(100)],
                b"coarse_label_names": [f"g{i}".encode() for i in range(20)],
            },
            2,
        )
    if crafted is not None:
        members["data_batch_1" if kind == "cifar10" else "train"] = crafted
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            member = tarfile.TarInfo(f"{folder}/{name}")
            member.size = len(data)
            tar.addfile(member, io.BytesIO(data))
    return path
