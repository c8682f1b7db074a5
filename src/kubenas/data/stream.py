"""The streaming path: images read and decoded shard by shard in DataLoader workers, with prefetch, so that
memory stays bounded whatever the dataset's size (the resident path holds every decoded image instead).

Up front, :meth:`Streamed.open` checks the structure (every split has shards, the classes are known) and decodes a
sample of the training images: their size, and the mean and std that normalise every image. Later, an image that
fails to decode fails the candidate, or is skipped and counted (``on_bad_image: skip``: one line per shard).

Shards are split between ranks first (``rank``, ``world_size``: data-parallel training) and then between each
rank's DataLoader workers; within a worker, a shuffle buffer mixes the samples of its shards. Without a ``val``
split, an image belongs to validation when a seeded hash of its key falls below ``val_fraction``: the same for
every task and rank (not stratified: that would need a pass over every label first).
"""

from __future__ import annotations

import hashlib
import random
import sys
from dataclasses import dataclass, field, replace
from itertools import islice

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from kubenas.data.images import MODES, BadImage, Preprocess, Shard, Source, decode_item, stats
from kubenas.data.options import ImageOptions

SAMPLE = 256  # training images decoded up front: size, mode and normalisation statistics


def decoded_bytes(name: str, source: Source, opts: ImageOptions) -> int:
    """The resident path's memory for the training images, estimated without reading them all: their count (or
    the shards' bytes over the first image's bytes) times one decoded float32 image."""
    shards = source.splits["train"]
    first = next(iter(shards[0].items()), None)
    if first is None:
        raise ValueError(f"dataset {name!r}: train shard {shards[0].name} holds no image")
    try:
        pixels, _, encoded = decode_item(first, opts.decode)
    except BadImage as exc:
        raise ValueError(f"dataset {name!r}: {exc}") from None
    if all(s.count is not None for s in shards):
        count = sum(s.count for s in shards)
    else:
        count = sum(s.size for s in shards) // max(1, encoded)
    return int(count * pixels.size * 4)


def _in_val(key: str, seed: int, fraction: float) -> bool:
    digest = hashlib.sha1(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


class StreamSplit(IterableDataset):
    """One split's images as (float C x H x W, label) samples, read by shard in each worker."""

    def __init__(
        self,
        streamed: Streamed,
        split: str,
        shuffle: bool,
        seed: int,
        epoch: int = 0,
        buffer: int = 1024,
    ) -> None:
        super().__init__()
        self.streamed, self.split, self.shuffle, self.seed, self.epoch, self.buffer = (
            streamed,
            split,
            shuffle,
            seed,
            epoch,
            buffer,
        )
        source_split = split if split in streamed.source.splits else "train"  # val drawn from train by hash
        self.shards = streamed.source.splits[source_split]
        self.select = None
        if "val" not in streamed.source.splits and split in ("train", "val"):
            want = split == "val"
            fraction, split_seed = streamed.opts.val_fraction, streamed.opts.split_seed
            self.select = lambda key: _in_val(key, split_seed, fraction) == want

    def shards_of(self, worker: int, workers: int) -> list[Shard]:
        """The shards this rank's ``worker`` of ``workers`` reads this epoch."""
        order = list(range(len(self.shards)))
        if self.shuffle:
            random.Random(f"{self.seed}:{self.epoch}").shuffle(order)
        mine = order[self.streamed.rank :: self.streamed.world_size]
        return [self.shards[i] for i in mine[worker::workers]]

    def keys(self):
        """(key, label) of every item this rank reads, in its shards' order, without decoding (for checks)."""
        for shard in self.shards_of(0, 1):
            for item in shard.items():
                if self.select is None or self.select(item.key):
                    yield item.key, item.label

    def __iter__(self):
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        s = self.streamed
        rng = random.Random(f"{self.seed}:{self.epoch}:{s.rank}:{worker}")
        buffer: list = []
        for shard in self.shards_of(worker, workers):
            skipped = 0
            for item in shard.items():
                if self.select is not None and not self.select(item.key):
                    continue
                sample = s.sample(item)
                if sample is None:
                    skipped += 1
                    continue
                if not self.shuffle:
                    yield sample
                    continue
                buffer.append(sample)
                if len(buffer) >= self.buffer:
                    yield buffer.pop(rng.randrange(len(buffer)))
            if skipped:
                print(
                    f"[kubenas] {s.name}: skipped {skipped} bad image(s) in {shard.name} (on_bad_image: skip)",
                    file=sys.stderr,
                    flush=True,
                )
        rng.shuffle(buffer)
        yield from buffer


@dataclass
class Streamed:
    """A dataset on the streaming path: what the trainer needs of a :class:`~kubenas.data.base.Dataset` (name,
    classes, input shape, preprocessing), with its splits read as batches by :meth:`loader`."""

    name: str
    source: Source
    opts: ImageOptions
    preprocess: Preprocess
    rank: int = 0
    world_size: int = 1
    notes: tuple[str, ...] = ()
    counts: dict[str, int] = field(default_factory=dict)
    streamed = True

    @classmethod
    def open(cls, name: str, source: Source, opts: ImageOptions) -> Streamed:
        if source.classes is None:
            raise ValueError(
                f"dataset {name!r}: the streaming path needs the class names before reading the data: give the "
                "dataset option classes (a list of names), or use data_path: resident"
            )
        for split, shards in source.splits.items():
            if not shards:
                raise ValueError(f"dataset {name!r}: split {split!r} has no shards")
        decode_opts = opts.decode
        sample, bad, encoded = [], [], []
        for item in islice((i for shard in source.splits["train"] for i in shard.items()), SAMPLE):
            try:
                pixels, _, size = decode_item(item, decode_opts)
                sample.append(pixels)
                if size:
                    encoded.append(size)
            except BadImage as exc:
                bad.append(str(exc))
        if bad and opts.on_bad_image == "fail":
            raise ValueError(f"dataset {name!r}: bad image(s) in the first {SAMPLE} of train: " + "; ".join(bad[:5]))
        if not sample:
            raise ValueError(f"dataset {name!r}: no readable image in the first {SAMPLE} of train")
        sizes = {p.shape[1:] for p in sample}
        if len(sizes) > 1:
            raise ValueError(
                f"dataset {name!r}: the first {SAMPLE} train images mix sizes {sorted(sizes)}; set resize: N"
            )
        mean, std = stats(np.stack(sample))
        size = tuple(int(v) for v in sample[0].shape[1:])
        pre = Preprocess(decode_opts.mode, size, decode_opts.resize, mean, std, tuple(source.classes))
        # images per split: as listed, or for shards that do not say (tar files), their bytes over the sample's mean
        per_image = max(1.0, sum(encoded) / len(encoded)) if encoded else 1.0
        counts = {
            s: sum(sh.count if sh.count is not None else int(sh.size / (per_image + sh.overhead)) for sh in shards)
            for s, shards in source.splits.items()
        }
        note = (
            f"{name}: streaming {len(source.splits['train'])} train shard(s) with {opts.workers} worker(s); "
            f"normalised with the statistics of {len(sample)} train images"
        )
        return cls(name, source, opts, pre, notes=(note,), counts=counts)

    @property
    def num_classes(self) -> int:
        return len(self.preprocess.classes)

    @property
    def classes(self) -> tuple[str, ...]:
        return self.preprocess.classes

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (MODES[self.preprocess.mode], *self.preprocess.size)

    @property
    def has_test(self) -> bool:
        return "test" in self.source.splits

    def without_test(self) -> Streamed:
        return replace(
            self, source=Source({k: v for k, v in self.source.splits.items() if k != "test"}, self.source.classes)
        )

    def shard(self, rank: int, world_size: int) -> Streamed:
        """This dataset as rank ``rank`` of ``world_size`` reads it: every ``world_size``-th shard from ``rank``."""
        if not 0 <= rank < world_size:
            raise ValueError(f"dataset {self.name!r}: rank must be in 0..world_size-1, got {rank} of {world_size}")
        return replace(self, rank=rank, world_size=world_size)

    def class_names(self) -> list[str]:
        return list(self.classes)

    def class_counts(self) -> dict[str, dict[str, int]]:
        """Not known without a pass over the data: the streaming path reports none."""
        return {}

    def digest(self) -> str:
        h = hashlib.sha256(
            repr(sorted((s, [(x.name, x.stamp) for x in v]) for s, v in self.source.splits.items())).encode()
        )
        return h.hexdigest()[:8]

    def splits(self) -> dict[str, int]:
        return dict(self.counts)

    def describe(self) -> str:
        return f"{self.name}: input {self.input_shape}, {self.num_classes} classes, streamed"

    def sample(self, item) -> tuple[torch.Tensor, int] | None:
        """One item as a normalised sample; None when it is bad and ``on_bad_image`` is ``skip``."""
        opts = self.opts.decode
        try:
            pixels = decode_item(item, opts)[0]
            if pixels.shape[1:] != self.preprocess.size:
                raise BadImage(
                    f"{item.key}: {pixels.shape[2]}x{pixels.shape[1]}, the dataset's images are "
                    f"{self.preprocess.size[1]}x{self.preprocess.size[0]} (set resize: N)"
                )
        except BadImage as exc:
            if opts.on_bad_image == "skip":
                return None
            raise ValueError(f"dataset {self.name!r}: {exc}") from None
        if not 0 <= item.label < self.num_classes:
            raise ValueError(
                f"dataset {self.name!r}: {item.key} has label {item.label}, outside 0..{self.num_classes - 1}"
            )
        return self.preprocess.normalise(pixels[None])[0], item.label

    def count(self, split: str) -> int:
        """The split's images, as listed or estimated up front (the learning-rate schedule's length)."""
        if split in self.counts and ("val" in self.source.splits or split == "test"):
            return self.counts[split]
        total = self.counts.get("train", 0)
        fraction = self.opts.val_fraction
        return int(total * (fraction if split == "val" else 1 - fraction))

    def loader(self, split: str, batch_size: int, seed: int = 0, epoch: int = 0, shuffle: bool | None = None):
        """Batches of (inputs, labels) of ``split``, read by ``opts.workers`` processes with prefetch."""
        shuffle = split == "train" if shuffle is None else shuffle
        data = StreamSplit(self, split, shuffle, seed, epoch)
        workers = self.opts.workers
        return DataLoader(
            data,
            batch_size=batch_size,
            num_workers=workers,
            prefetch_factor=2 if workers else None,
            persistent_workers=False,
        )
