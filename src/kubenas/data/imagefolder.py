"""Image folders: ``PATH/<split>/<class>/<image>``, local or ``s3://``, with split ``train`` and optionally ``val``
and ``test``; PNG and JPEG files. Files whose names start with a dot are ignored (``.DS_Store``); any other file
that is not a PNG or JPEG, or one outside a class folder, is an error that names it."""

from __future__ import annotations

from collections import defaultdict
from functools import partial

from kubenas.data.base import DatasetInfo
from kubenas.data.images import IMAGE_SUFFIXES, Item, Shard, Source
from kubenas.data.imageset import image_dataset
from kubenas.data.options import ImageOptions, image_loader
from kubenas.data.s3 import list_tree, stamp

SPLITS = ("train", "val", "test")


FILES_PER_SHARD = 64


@image_loader
def load_imagefolder(path: str, name: str = "imagefolder", **options):
    """Load ``PATH/<split>/<class>/<image>``: classes are train's folder names, in sorted order."""
    opts = ImageOptions.parse(name, options)
    imagefolder_info(path, name, **options)
    return image_dataset(name, _source(path, name), opts)


@image_loader
def imagefolder_info(path: str, name: str = "imagefolder", **options) -> DatasetInfo:
    opts = ImageOptions.parse(name, options)
    ImageOptions.check_path(name, path)
    return DatasetInfo(opts.shape(), None, (path,))


def _source(path: str, name: str) -> Source:
    from pyarrow import fs

    filesys, root, infos = list_tree(path, name)
    folders: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for info in infos:
        rel = info.path[len(root) :].lstrip("/").split("/")
        if rel[-1].startswith("."):
            continue
        where = f"{path.rstrip('/')}/{'/'.join(rel)}"
        if rel[0] not in SPLITS:
            raise ValueError(
                f"dataset {name!r}: {where} is not in a split folder; expected {path}/<split>/<class>/<image> "
                f"with split one of {', '.join(SPLITS)}"
            )
        if info.type == fs.FileType.Directory:
            if len(rel) == 2:
                folders[rel[0]][rel[1]]  # noqa: B018 - an empty class folder is listed, and refused below
            elif len(rel) > 2:
                raise ValueError(f"dataset {name!r}: {where} is a folder inside a class folder; images only there")
            continue
        if len(rel) != 3:
            raise ValueError(f"dataset {name!r}: {where} must be in a class folder: {path}/<split>/<class>/<image>")
        if not rel[2].lower().endswith(IMAGE_SUFFIXES):
            raise ValueError(f"dataset {name!r}: {where} is not a PNG or JPEG file (by its name); remove it")
        folders[rel[0]][rel[1]].append(info)
    if "train" not in folders:
        raise ValueError(f"dataset {name!r}: no {path.rstrip('/')}/train folder (found: {sorted(folders) or 'none'})")
    for split, classes in folders.items():
        for cls, files in classes.items():
            if not files:
                raise ValueError(f"dataset {name!r}: class folder {path.rstrip('/')}/{split}/{cls} has no images")
    classes = sorted(folders["train"])
    for split in ("val", "test"):
        extra = sorted(set(folders.get(split, {})) - set(classes))
        if extra:
            raise ValueError(
                f"dataset {name!r}: split {split!r} has class folder(s) {extra} that train does not have; val and "
                "test classes must be a subset of train's"
            )
    index = {c: i for i, c in enumerate(classes)}
    splits = {}
    for split, by_class in folders.items():
        files = [(cls, info) for cls in sorted(by_class) for info in sorted(by_class[cls], key=lambda i: i.path)]
        n = max(1, -(-len(files) // FILES_PER_SHARD))
        # shard k holds files k, k + n, k + 2n...: every shard holds every class
        splits[split] = [_shard(path, split, files[k::n], index, filesys, k) for k in range(n)]
    return Source(splits, classes)


def _shard(path: str, split: str, files: list, index: dict[str, int], filesys, k: int) -> Shard:
    root = path.rstrip("/")
    items = [
        Item(
            f"{root}/{split}/{cls}/{info.base_name}", index[cls], partial(_read, filesys, info.path), stamp=stamp(info)
        )
        for cls, info in files
    ]
    version = ",".join(f"{i.key}={i.stamp}" for i in items)
    return Shard(
        f"{root}/{split} part {k}", version, sum(info.size or 0 for _, info in files), lambda: items, len(items)
    )


def _read(filesys, path: str) -> bytes:
    with filesys.open_input_stream(path) as f:
        return f.read()
