"""WebDataset shards: tar files of ``<key>.png`` (or ``.jpg``, ``.jpeg``) plus ``<key>.cls``, the class index as
text. ``path`` is a folder (local or ``s3://``) of shards named by split (``train-000000.tar``, ``val-...``,
``test-...``), or ``{"train": ..., "val": ..., "test": ...}`` with a folder or one shard per split. A sample's key
is its member name up to the first dot of the file name, as WebDataset writes it."""

from __future__ import annotations

import io
import tarfile
from collections import defaultdict
from collections.abc import Mapping, Sequence

from kubenas.data.base import DatasetInfo
from kubenas.data.images import IMAGE_SUFFIXES, Item
from kubenas.data.imageset import image_dataset
from kubenas.data.options import ImageOptions, image_loader
from kubenas.data.s3 import filesystem, stamp

_SPLITS = {"train": "train", "val": "val", "validation": "val", "valid": "val", "test": "test"}


@image_loader
def load_webdataset(
    path: str | Mapping[str, str], classes: Sequence[str] | None = None, name: str = "webdataset", **options
):
    """Load WebDataset shards; ``classes`` names the class indices (default: the indices themselves)."""
    opts = ImageOptions.parse(name, options)
    webdataset_info(path, classes, name, **options)
    shards = shard_listing(path, name)
    listing = {split: [item for shard in files for item in read_shard(shard, name)] for split, files in shards.items()}
    top = max(item.label for items in listing.values() for item in items)
    names = list(classes) if classes is not None else [str(i) for i in range(top + 1)]
    return image_dataset(name, listing, names, opts.decode, opts.val_fraction, opts.split_seed, opts.cache())


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
    """The shards of each split, as (filesystem, path in it, shown path, stamp), sorted by name."""
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
            out[s].append((filesys, i.path, shown, stamp(i)))
    if "train" not in out:
        raise ValueError(f"dataset {name!r}: no train shards (train-*.tar) in {path!r}")
    return dict(out)


def read_shard(shard: tuple, name: str) -> list[Item]:
    """A shard's samples: one image and one ``.cls`` per key, else an error naming the shard and the key."""
    filesys, inner, shown, version = shard
    try:
        with filesys.open_input_stream(inner) as f:
            data = f.read()
        tar = tarfile.open(fileobj=io.BytesIO(data), mode="r:")
        samples: dict[str, dict[str, bytes]] = defaultdict(dict)
        for member in tar:
            if not member.isfile():
                continue
            directory, _, base = member.name.rpartition("/")
            stem, dot, ext = base.partition(".")
            key = f"{directory}/{stem}" if directory else stem
            samples[key]["." + ext.lower() if dot else ""] = tar.extractfile(member).read()
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ValueError(f"dataset {name!r}: shard {shown} is not a readable tar file ({exc})") from None
    items = []
    for key, parts in samples.items():
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
        items.append(Item(where, int(text), read=lambda blob=blob: blob, stamp=version))
    return items
