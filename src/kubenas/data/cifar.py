"""CIFAR-10 and CIFAR-100 from the standard python archive (``cifar-10-python.tar.gz``,
``cifar-100-python.tar.gz``) at a local path or ``s3://`` URI. Nothing is downloaded: a missing archive is an
error that says where to put it.

The archive's batches are pickles. They are read by an unpickler that admits only what the format holds (dicts,
lists, strings, bytes, numbers and the numpy arrays of the pixels), so a crafted archive cannot run code.
"""

from __future__ import annotations

import io
import pickle
import tarfile

import numpy as np

from kubenas.data.base import DatasetInfo
from kubenas.data.images import Item, Shard, Source
from kubenas.data.imageset import image_dataset
from kubenas.data.options import ImageOptions, image_loader
from kubenas.data.s3 import filesystem, stamp

ARCHIVES = {"cifar10": "cifar-10-python.tar.gz", "cifar100": "cifar-100-python.tar.gz"}
# the numpy globals a pickled array needs (numpy 1 and numpy 2 spell the first differently), and the codec call by
# which Python 3's pickle protocol 2 spells bytes (the original archives, written by Python 2, do not need it; a
# re-pickled one does); nothing else
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}


class CraftedPickle(ValueError):
    """A batch of the archive asks for a Python object the CIFAR format never holds."""


class _Restricted(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise CraftedPickle(f"it asks for {module}.{name}, which the CIFAR format never holds")


def safe_load(data: bytes, where: str) -> dict:
    """One CIFAR batch, unpickled with only the format's types admitted; keys as strings."""
    try:
        obj = _Restricted(io.BytesIO(data), encoding="bytes").load()
    except CraftedPickle as exc:
        raise ValueError(f"{where}: refused to unpickle: {exc} (a crafted or corrupt archive)") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as exc:
        raise ValueError(f"{where}: not a CIFAR batch ({type(exc).__name__}: {exc})") from None
    if not isinstance(obj, dict):
        raise ValueError(f"{where}: not a CIFAR batch (a {type(obj).__name__}, not a dict)")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in obj.items()}


def _loader(kind: str):
    @image_loader
    def load(path: str, labels: str = "fine", name: str = kind, **options):
        opts = ImageOptions.parse(name, options)
        _info(kind, path, labels, name, opts)
        return image_dataset(name, _source(kind, path, labels, name), opts)

    @image_loader
    def info(path: str, labels: str = "fine", name: str = kind, **options) -> DatasetInfo:
        return _info(kind, path, labels, name, ImageOptions.parse(name, options))

    load.__name__, info.__name__ = f"load_{kind}", f"{kind}_info"
    load.__doc__ = f"{kind.upper()} from the python archive ``{ARCHIVES[kind]}`` at ``path`` (local or s3://); " + (
        "``labels``: ``fine`` (100 classes) or ``coarse`` (20)." if kind == "cifar100" else ""
    )
    return load, info


def _info(kind: str, path: str, labels: str, name: str, opts: ImageOptions) -> DatasetInfo:
    ImageOptions.check_path(name, path)
    if kind == "cifar10" and labels != "fine":
        raise ValueError(f"dataset {name!r}: labels applies to cifar100 (fine or coarse); cifar10 has one set")
    if labels not in ("fine", "coarse"):
        raise ValueError(f"dataset {name!r}: labels must be 'fine' or 'coarse', got {labels!r}")
    classes = 10 if kind == "cifar10" else (100 if labels == "fine" else 20)
    side = opts.resize or 32
    return DatasetInfo((3 if opts.mode == "RGB" else 1, side, side), classes, (path,))


def _source(kind: str, path: str, labels: str, name: str) -> Source:
    from pyarrow import fs

    filesys, inner = filesystem(path)
    try:
        info = filesys.get_file_info(inner)
        if info.type == fs.FileType.NotFound:
            raise ValueError(
                f"dataset {name!r}: no archive at {path!r}. kubenas downloads nothing at run time: put the "
                f"python version of the archive ({ARCHIVES[kind]}, from the CIFAR page of the University of "
                "Toronto) there, or copy it to S3 (the README's 'Your own data' shows how) and give its s3:// URI"
            )
        with filesys.open_input_stream(inner) as f:
            data = f.read()
    except OSError as exc:
        raise ValueError(f"dataset {name!r}: cannot read {path!r}: {exc}") from None
    try:
        tar = tarfile.open(fileobj=io.BytesIO(data), mode="r:*")
        members = {m.name.rsplit("/", 1)[-1]: m for m in tar.getmembers() if m.isfile()}
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise ValueError(f"dataset {name!r}: {path!r} is not a readable tar archive ({exc})") from None

    def batch(member: str) -> dict:
        if member not in members:
            raise ValueError(f"dataset {name!r}: {path!r} has no {member!r}; is it {ARCHIVES[kind]}?")
        return safe_load(tar.extractfile(members[member]).read(), f"{path}:{member}")

    if kind == "cifar10":
        meta, key = batch("batches.meta"), "labels"
        classes = [_text(c) for c in meta.get("label_names", [])]
        parts = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
    else:
        meta, key = batch("meta"), f"{labels}_labels"
        classes = [_text(c) for c in meta.get(f"{labels}_label_names", [])]
        parts = {"train": ["train"], "test": ["test"]}
    splits = {}
    for split, names in parts.items():
        splits[split] = []
        for member in names:
            items = _items(batch(member), key, f"{path}:{member}", name)
            splits[split].append(
                Shard(
                    f"{path}:{member}",
                    f"{stamp(info)}:{labels}",
                    members[member].size,
                    lambda items=items: items,
                    len(items),
                )
            )
    return Source(splits, classes or None)


def _items(b: dict, key: str, where: str, name: str) -> list[Item]:
    pixels, ys = b.get("data"), b.get(key)
    if not isinstance(pixels, np.ndarray) or pixels.dtype != np.uint8 or pixels.ndim != 2 or ys is None:
        raise ValueError(f"dataset {name!r}: {where} lacks the uint8 'data' rows or {key!r}")
    if pixels.shape[1] != 3072 or len(pixels) != len(ys):
        raise ValueError(
            f"dataset {name!r}: {where} has data {pixels.shape} and {len(ys)} labels; expected (N, 3072) and N"
        )
    images = pixels.reshape(-1, 3, 32, 32)
    return [Item(f"{where}[{i}]", int(y), pixels=images[i]) for i, y in enumerate(ys)]


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


load_cifar10, cifar10_info = _loader("cifar10")
load_cifar100, cifar100_info = _loader("cifar100")
