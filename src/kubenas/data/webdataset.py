"""WebDataset shards: tar files of ``<key>.png`` (or ``.jpg``, ``.jpeg``) plus ``<key>.cls``, the class index as
text. ``path`` is a folder (local or ``s3://``) of shards named by split (``train-000000.tar``, ``val-...``,
``test-...``), or ``{"train": ..., "val": ..., "test": ...}`` with a folder or one shard per split. A sample's key
is its member name up to the first dot of the file name, as WebDataset writes it."""

from __future__ import annotations

import tarfile
from collections import defaultdict
from collections.abc import Mapping, Sequence
from functools import partial

from kubenas.data.base import DatasetInfo
from kubenas.data.images import IMAGE_SUFFIXES, Item, Shard, Source
from kubenas.data.imageset import image_dataset
from kubenas.data.options import ImageOptions, image_loader
from kubenas.data.s3 import filesystem, stamp

# a sample's bytes in a tar shard besides its image: two 512-byte headers, the .cls file's 512-byte block and, on
# average, half a block of padding after the image
TAR_OVERHEAD = 1792

_SPLITS = {"train": "train", "val": "val", "validation": "val", "valid": "val", "test": "test"}


@image_loader
def load_webdataset(
    path: str | Mapping[str, str], classes: Sequence[str] | None = None, name: str = "webdataset", **options
):
    """Load WebDataset shards; ``classes`` names the class indices (default: the indices themselves)."""
    opts = ImageOptions.parse(name, options)
    webdataset_info(path, classes, name, **options)
    splits = {
        split: [
            Shard(shown, version, size, partial(read_shard, (fs_, inner, shown), name), overhead=TAR_OVERHEAD)
            for fs_, inner, shown, version, size in files
        ]
        for split, files in shard_listing(path, name).items()
    }
    return image_dataset(name, Source(splits, list(classes) if classes is not None else None), opts)


@image_loader
def webdataset_info(
    path: str | Mapping[str, str], classes: Sequence[str] | None = None, name: str = "webdataset", **options
) -> DatasetInfo:
    opts = ImageOptions.parse(name, options)
    paths = list(path.values()) if isinstance(path, Mapping) else [path]
    if isinstance(path, Mapping):
        unknown = sorted(set(path) - set(_SPLITS))
        if unknown:
            raise ValueError(f"dataset {name!r}: unknown split name(s) {unknown} in path; use train, val and test")
    for p in paths:
        ImageOptions.check_path(name, p)
    if classes is not None and (
        not isinstance(classes, (list, tuple)) or len(classes) < 2 or not all(isinstance(c, str) for c in classes)
    ):
        raise ValueError(f"dataset {name!r}: classes must be a list of at least 2 names, got {classes!r}")
    return DatasetInfo(opts.shape(), len(classes) if classes else None, tuple(paths))


def shard_listing(path: str | Mapping[str, str], name: str) -> dict[str, list[tuple]]:
    """The shards of each split, as (filesystem, path in it, shown path, stamp, size), sorted by name."""
    from pyarrow import fs

    targets = {_SPLITS[k]: v for k, v in path.items()} if isinstance(path, Mapping) else {None: path}
    out: dict[str, list[tuple]] = defaultdict(list)
    for split, target in targets.items():
        filesys, inner = filesystem(target)
        try:
            info = filesys.get_file_info(inner)
            if info.type == fs.FileType.NotFound:
                raise ValueError(f"dataset {name!r}: {target!r} does not exist")
            infos = (
                [info]
                if info.type == fs.FileType.File
                else filesys.get_file_info(fs.FileSelector(inner, recursive=False))
            )
        except OSError as exc:
            raise ValueError(f"dataset {name!r}: cannot list {target!r}: {exc}") from None
        for i in sorted(infos, key=lambda i: i.path):
            if i.type != fs.FileType.File or not i.base_name.endswith(".tar"):
                continue
            shown = target if i.path == inner else f"{target.rstrip('/')}/{i.base_name}"
            s = split or _SPLITS.get(i.base_name.split("-")[0].split("_")[0].split(".")[0])
            if s is None:
                raise ValueError(
                    f"dataset {name!r}: shard {shown} does not say its split; name shards train-*.tar, val-*.tar "
                    "and test-*.tar, or give one path per split"
                )
            out[s].append((filesys, i.path, shown, stamp(i), i.size or 0))
    if "train" not in out:
        raise ValueError(f"dataset {name!r}: no train shards (train-*.tar) in {path!r}")
    return dict(out)


def read_shard(shard: tuple, name: str):
    """A shard's samples, read as a stream (one sample in memory at a time): one image and one ``.cls`` per key,
    else an error naming the shard and the key. WebDataset writes a sample's files one after the other."""
    filesys, inner, shown = shard
    key, parts = None, {}
    try:
        with filesys.open_input_stream(inner) as stream, tarfile.open(fileobj=stream, mode="r|") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                directory, _, base = member.name.rpartition("/")
                stem, dot, ext = base.partition(".")
                this = f"{directory}/{stem}" if directory else stem
                if this != key and key is not None:
                    yield _item(shown, key, parts, name)
                    parts = {}
                key = this
                parts["." + ext.lower() if dot else ""] = tar.extractfile(member).read()
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ValueError(f"dataset {name!r}: shard {shown} is not a readable tar file ({exc})") from None
    if key is not None:
        yield _item(shown, key, parts, name)


def _item(shown: str, key: str, parts: dict[str, bytes], name: str) -> Item:
    where = f"{shown}:{key}"
    images = [ext for ext in parts if ext in IMAGE_SUFFIXES]
    if ".cls" not in parts:
        raise ValueError(f"dataset {name!r}: sample {where} has no .cls label file ({sorted(parts)})")
    if len(images) != 1:
        raise ValueError(f"dataset {name!r}: sample {where} needs one .png or .jpg image, has {sorted(parts)}")
    text = parts[".cls"].decode(errors="replace").strip()
    if not text.lstrip("-").isdigit():
        raise ValueError(f"dataset {name!r}: sample {where} has label {text!r} in .cls; expected an integer")
    blob = parts[images[0]]
    return Item(where, int(text), read=lambda: blob)
