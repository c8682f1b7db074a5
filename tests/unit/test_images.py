"""Image datasets: every format reads the same pictures into the same tensors, images are normalised to one shape
and mode, the resident cache is reused and invalidated, and every bad input is named before training."""

from __future__ import annotations

import io
import os
import pickle
import tarfile

import numpy as np
import pytest
import torch
from PIL import Image

from kubenas.data import dataset_info, load_dataset
from tests import imagegen


def _opts(tmp_path, **more):
    return {"cache_dir": str(tmp_path / "cache"), "val_fraction": 0.25, **more}


def test_an_image_folder_loads_with_classes_counts_and_a_seeded_val_split(tmp_path):
    root = imagegen.imagefolder(tmp_path / "data")
    data = load_dataset("imagefolder", path=str(root), **_opts(tmp_path))
    assert data.classes == imagegen.CLASSES and data.input_shape == (3, 16, 16)
    counts = data.class_counts()
    assert counts["train"] == {"ant": 9, "bee": 9, "cat": 9} and counts["val"] == {"ant": 3, "bee": 3, "cat": 3}
    assert counts["test"] == {"ant": 12, "bee": 12, "cat": 12}
    # normalised with the train split's statistics, which travel with the data
    assert abs(float(data.x_train.mean())) < 0.05 and abs(float(data.x_train.std()) - 1) < 0.05
    assert data.preprocess.mean == pytest.approx(tuple(data.preprocess.mean)) and data.preprocess.size == (16, 16)
    again = load_dataset("imagefolder", path=str(root), **_opts(tmp_path, cache_dir=str(tmp_path / "other")))
    assert torch.equal(again.x_val, data.x_val)  # the same split whether decoded or read from the cache
    other = load_dataset("imagefolder", path=str(root), split_seed=1, **_opts(tmp_path))
    assert not torch.equal(other.x_val, data.x_val)


def test_every_format_reads_the_same_pictures_into_the_same_tensors(tmp_path):
    loaded = {
        "imagefolder": load_dataset("imagefolder", path=str(imagegen.imagefolder(tmp_path / "f")), **_opts(tmp_path)),
        "parquet": load_dataset(
            "parquet", path=str(imagegen.hf_parquet(tmp_path / "p")), image_column="img", **_opts(tmp_path)
        ),
        "binary": load_dataset(
            "parquet", path=str(imagegen.hf_parquet(tmp_path / "b", binary=True)), image_column="img", **_opts(tmp_path)
        ),
        "webdataset": load_dataset(
            "webdataset",
            path=str(imagegen.webdataset(tmp_path / "w", shards=1)),
            classes=list(imagegen.CLASSES),
            **_opts(tmp_path),
        ),
    }
    ref = loaded["imagefolder"]
    for name, data in loaded.items():
        assert data.classes == imagegen.CLASSES, name
        # the same test images (in each format's order): sort rows to compare the sets
        got = sorted(map(tuple, data.x_test.flatten(1)[:, :64].tolist()))
        want = sorted(map(tuple, ref.x_test.flatten(1)[:, :64].tolist()))
        assert np.allclose(got, want, atol=1e-4), name
        assert sorted(data.y_test.tolist()) == sorted(ref.y_test.tolist()), name


def test_modes_are_converted_and_counted_and_exif_rotation_is_applied(tmp_path):
    root = imagegen.imagefolder(tmp_path / "data", per_class=4)
    a = imagegen.pixels(0, np.random.default_rng(5))
    folder = root / "train" / "ant"
    (folder / "rgba.png").write_bytes(imagegen.encode(np.dstack([a, np.full(a.shape[:2], 255, np.uint8)])))
    (folder / "gray.png").write_bytes(imagegen.encode(a, mode="L"))
    (folder / "palette.png").write_bytes(imagegen.encode(a, mode="P"))
    cmyk = io.BytesIO()
    Image.fromarray(a).convert("CMYK").save(cmyk, format="JPEG")
    (folder / "cmyk.jpg").write_bytes(cmyk.getvalue())
    # a picture whose left half is white, stored turned a quarter counter-clockwise (its top row holds the white)
    # with EXIF orientation 6: a viewer turns it a quarter clockwise, and so must kubenas
    upright = np.zeros((16, 16, 3), np.uint8)
    upright[:, :8] = 255
    exif = Image.Exif()
    exif[0x0112] = 6
    out = io.BytesIO()
    Image.fromarray(np.rot90(upright).copy()).save(out, format="JPEG", exif=exif, quality=100)
    (folder / "rotated.jpg").write_bytes(out.getvalue())
    data = load_dataset("imagefolder", path=str(root), **_opts(tmp_path))
    assert "converted 1 CMYK, 1 L, 1 P, 1 RGBA image(s) to RGB" in " ".join(data.notes)
    gray = load_dataset("imagefolder", path=str(root), mode="L", **_opts(tmp_path))
    assert gray.input_shape == (1, 16, 16)
    from kubenas.data.images import DecodeOptions, decode

    seen, mode = decode(out.getvalue(), "rotated.jpg", DecodeOptions())
    assert mode == "RGB" and seen[:, :, :6].mean() > 200 and seen[:, :, 10:].mean() < 60


def test_mixed_sizes_are_refused_naming_two_examples_or_resized(tmp_path):
    root = imagegen.imagefolder(tmp_path / "data", per_class=4)
    rng = np.random.default_rng(1)
    (root / "train" / "bee" / "big1.png").write_bytes(imagegen.encode(imagegen.pixels(1, rng, 24)))
    (root / "train" / "cat" / "big2.png").write_bytes(imagegen.encode(imagegen.pixels(2, rng, 24)))
    with pytest.raises(
        ValueError, match=r"mixes image sizes \(2 of 14.*big1.png is 24x24; .*big2.png is 24x24.*resize"
    ):
        load_dataset("imagefolder", path=str(root), **_opts(tmp_path))
    data = load_dataset("imagefolder", path=str(root), resize=12, **_opts(tmp_path))
    assert data.input_shape == (3, 12, 12) and dataset_info("imagefolder", path=str(root), resize=12).input_shape == (
        3,
        12,
        12,
    )


def test_bad_images_are_all_named_before_training_and_leave_no_cache(tmp_path):
    root = imagegen.imagefolder(tmp_path / "data", per_class=4)
    good = (root / "train" / "ant" / "0000.png").read_bytes()
    (root / "train" / "ant" / "truncated.png").write_bytes(good[: len(good) // 2])
    (root / "train" / "bee" / "corrupt.jpg").write_bytes(b"not an image at all")
    with pytest.raises(ValueError) as err:
        load_dataset("imagefolder", path=str(root), **_opts(tmp_path))
    assert "2 bad image(s) in split 'train'" in str(err.value)
    assert "truncated.png" in str(err.value) and "corrupt.jpg" in str(err.value)
    assert not any(p.suffix == ".npz" or ".tmp" in p.name for p in (tmp_path / "cache").iterdir())
    data = load_dataset("imagefolder", path=str(root), on_bad_image="skip", **_opts(tmp_path))
    assert len(data.x_train) + len(data.x_val) == 12 and "skipped 2 bad image(s)" in " ".join(data.notes)


def _declared(png: bytes, width: int, height: int) -> bytes:
    """The PNG with its header declaring another size (its CRC recomputed): a decompression bomb's shape."""
    import struct
    import zlib

    ihdr = png[12:16] + struct.pack(">II", width, height) + png[24:29]
    return png[:8] + png[8:12] + ihdr + struct.pack(">I", zlib.crc32(ihdr)) + png[33:]


def test_an_image_over_the_pixel_limit_is_refused_before_it_is_decoded(tmp_path):
    root = imagegen.imagefolder(tmp_path / "data", per_class=4)
    good = (root / "train" / "ant" / "0000.png").read_bytes()
    (root / "train" / "ant" / "bomb.png").write_bytes(_declared(good, 20000, 20000))  # 400 Mpx, a few bytes
    with pytest.raises(ValueError, match=r"bomb.png: above the limit of 16777216 pixels"):
        load_dataset("imagefolder", path=str(root), **_opts(tmp_path))
    (root / "train" / "ant" / "bomb.png").write_bytes(_declared(good, 5000, 5000))  # under Pillow's own guard
    with pytest.raises(ValueError, match=r"bomb.png: 5000x5000 pixels is above the limit of 16777216"):
        load_dataset("imagefolder", path=str(root), **_opts(tmp_path))
    (root / "train" / "ant" / "bomb.png").unlink()
    with pytest.raises(ValueError, match=r"0000.png: 16x16 pixels is above the limit of 100 \(max_pixels\)"):
        load_dataset("imagefolder", path=str(root), max_pixels=100, **_opts(tmp_path))


@pytest.mark.parametrize(
    "damage,words",
    [
        (lambda r: (r / "train" / "ant" / "notes.txt").write_text("x"), ["notes.txt", "not a PNG or JPEG"]),
        (lambda r: (r / "train" / "dog").mkdir(), ["class folder", "train/dog has no images"]),
        (
            lambda r: (
                (r / "test" / "eel").mkdir()
                or (r / "test" / "eel" / "1.png").write_bytes((r / "test" / "ant" / "0000.png").read_bytes())
            ),
            ["split 'test'", "['eel']", "subset of train"],
        ),
        (lambda r: (r / "train" / "loose.png").write_bytes(b""), ["loose.png", "must be in a class folder"]),
        (lambda r: (r / "extra").mkdir(), ["extra is not in a split folder"]),
    ],
    ids=["non-image", "empty-class", "test-class-not-in-train", "loose-file", "unknown-split"],
)
def test_a_bad_folder_is_named(tmp_path, damage, words):
    root = imagegen.imagefolder(tmp_path / "data", per_class=4)
    damage(root)
    with pytest.raises(ValueError) as err:
        load_dataset("imagefolder", path=str(root), **_opts(tmp_path))
    for w in words:
        assert w in str(err.value)


def test_a_split_with_one_class_is_refused(tmp_path):
    root = imagegen.imagefolder(tmp_path / "data", per_class=4)
    for cls in ("bee", "cat"):
        for f in (root / "test" / cls).iterdir():
            f.unlink()
        (root / "test" / cls).rmdir()
    with pytest.raises(ValueError, match=r"split 'test' holds one class \('ant'\)"):
        load_dataset("imagefolder", path=str(root), **_opts(tmp_path))


def test_the_cache_is_reused_and_a_changed_file_invalidates_it(tmp_path):
    root = imagegen.imagefolder(tmp_path / "data", per_class=4)
    first = load_dataset("imagefolder", path=str(root), **_opts(tmp_path))
    assert not any("cache" in n for n in first.notes)
    second = load_dataset("imagefolder", path=str(root), **_opts(tmp_path))
    assert any("read from the cache" in n for n in second.notes) and torch.equal(first.x_train, second.x_train)
    target = root / "train" / "ant" / "0000.png"
    target.write_bytes(imagegen.encode(np.zeros((16, 16, 3), np.uint8)))
    os.utime(target, ns=(1, 1))
    third = load_dataset("imagefolder", path=str(root), **_opts(tmp_path))
    assert not any("cache" in n for n in third.notes)
    assert len(list((tmp_path / "cache").glob("images-*.npz"))) == 2


def test_a_parquet_label_outside_the_classes_is_named(tmp_path):
    import pyarrow.parquet as pq

    root = imagegen.hf_parquet(tmp_path / "p")
    path = root / "train-00000-of-00001.parquet"
    table = pq.read_table(path)
    labels = table.column("label").to_pylist()
    labels[5] = 7
    import pyarrow as pa

    pq.write_table(table.set_column(1, "label", pa.array(labels, pa.int64())), path)
    with pytest.raises(ValueError, match=r"train-00000-of-00001.parquet row 5 has label 7, outside the 3 classes"):
        load_dataset("parquet", path=str(root), image_column="img", **_opts(tmp_path))


def test_a_webdataset_sample_without_a_label_is_named(tmp_path):
    root = tmp_path / "w"
    root.mkdir()
    with tarfile.open(root / "train-000000.tar", "w") as tar:
        data = imagegen.encode(imagegen.pixels(0, np.random.default_rng(0)))
        member = tarfile.TarInfo("sample7.png")
        member.size = len(data)
        tar.addfile(member, io.BytesIO(data))
    with pytest.raises(ValueError, match=r"sample .*train-000000.tar:sample7 has no .cls label file"):
        load_dataset("webdataset", path=str(root), **_opts(tmp_path))


@pytest.mark.parametrize("kind,classes", [("cifar10", 10), ("cifar100", 100)])
def test_a_cifar_archive_in_the_real_format_loads(tmp_path, kind, classes):
    per_batch = 30 if kind == "cifar10" else 80  # CIFAR-100's train is one batch of 5 x per_batch
    path = imagegen.cifar_archive(tmp_path / f"{kind}.tar.gz", kind, per_batch=per_batch)
    data = load_dataset(kind, path=str(path), **_opts(tmp_path))
    assert data.num_classes == classes and data.input_shape == (3, 32, 32) and len(data.classes) == classes
    assert len(data.x_train) + len(data.x_val) == 5 * per_batch and len(data.x_test) == per_batch
    if kind == "cifar100":
        coarse = load_dataset(kind, path=str(path), labels="coarse", **_opts(tmp_path))
        assert coarse.num_classes == 20 and coarse.classes[0] == "g0"


def test_a_crafted_pickle_in_a_cifar_archive_cannot_run_code(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = imagegen.cifar_archive(tmp_path / "evil.tar.gz", crafted=pickle.dumps({b"data": Evil()}, 2))
    with pytest.raises(ValueError, match=r"data_batch_1: refused to unpickle: it asks for (posix|os)\.system"):
        load_dataset("cifar10", path=str(path), **_opts(tmp_path))
    assert not marker.exists()


def test_a_missing_cifar_archive_says_where_to_put_it(tmp_path):
    with pytest.raises(ValueError, match=r"no archive at .*cifar-10-python.tar.gz.*downloads nothing"):
        load_dataset("cifar10", path=str(tmp_path / "cifar-10-python.tar.gz"))


def test_image_options_are_checked_without_loading(tmp_path):
    with pytest.raises(ValueError, match="mode must be one of RGB, L, got 'CMYK'"):
        dataset_info("imagefolder", path=str(tmp_path), mode="CMYK")
    with pytest.raises(ValueError, match="on_bad_image must be 'fail' or 'skip'"):
        dataset_info("webdataset", path=str(tmp_path), on_bad_image="ignore")
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['colour'\]"):
        load_dataset("imagefolder", path=str(tmp_path), colour="RGB")
    with pytest.raises(ValueError, match="apply to images; set image_column"):
        dataset_info("parquet", path=str(tmp_path), resize=32)


def test_the_preprocess_serves_raw_images_of_any_size_and_mode(tmp_path):
    data = load_dataset("imagefolder", path=str(imagegen.imagefolder(tmp_path / "d", per_class=4)), **_opts(tmp_path))
    rng = np.random.default_rng(3)
    images = [
        imagegen.encode(imagegen.pixels(0, rng, 16)),
        imagegen.encode(np.dstack([imagegen.pixels(1, rng, 40), np.full((40, 40), 255, np.uint8)])),
        imagegen.encode(imagegen.pixels(2, rng, 30), "JPEG", mode="L"),
    ]
    x = data.preprocess.images(images)
    assert x.shape == (3, 3, 16, 16) and x.dtype == torch.float32
    # a 16x16 RGB image is exactly what training saw
    first = load_dataset("imagefolder", path=str(tmp_path / "d"), **_opts(tmp_path))
    assert torch.isfinite(x).all() and first.preprocess == data.preprocess


# ------------------------------------------------------------------------------------------------ the streaming path
def _streamed(tmp_path, fmt="imagefolder", **more):
    if fmt == "imagefolder":
        path = str(imagegen.imagefolder(tmp_path / "f", per_class=24))
        extra = {}
    else:
        path = str(imagegen.webdataset(tmp_path / "w", per_class=24, shards=4))
        extra = {"classes": list(imagegen.CLASSES)}
    return load_dataset(fmt, path=path, data_path="streaming", workers=0, **extra, **_opts(tmp_path), **more)


def _keys(data, split, **loader):
    from kubenas.data.stream import StreamSplit

    return [key for key, _ in StreamSplit(data, split, shuffle=True, seed=0, **loader).keys()]


@pytest.mark.parametrize("fmt", ["imagefolder", "webdataset"])
def test_two_ranks_read_disjoint_shards_that_cover_the_data(tmp_path, fmt):
    data = _streamed(tmp_path, fmt)
    assert data.streamed and data.input_shape == (3, 16, 16) and data.classes == imagegen.CLASSES
    whole = _keys(data, "train") + _keys(data, "val")
    ranks = [_keys(data.shard(r, 2), "train") + _keys(data.shard(r, 2), "val") for r in range(2)]
    assert ranks[0] and ranks[1] and not set(ranks[0]) & set(ranks[1])
    assert sorted(ranks[0] + ranks[1]) == sorted(whole) and len(set(whole)) == len(whole) == 72
    # and within a rank, its DataLoader workers split its shards again
    split = __import__("kubenas.data.stream", fromlist=["StreamSplit"]).StreamSplit(data.shard(0, 2), "train", True, 0)
    a, b = split.shards_of(0, 2), split.shards_of(1, 2)
    assert not {s.name for s in a} & {s.name for s in b} and len(a) + len(b) == len(split.shards_of(0, 1))
    # the resident path shards by index: disjoint, and together the whole training split
    resident = load_dataset("imagefolder", path=str(imagegen.imagefolder(tmp_path / "r")), **_opts(tmp_path))
    parts = [resident.shard(r, 2) for r in range(2)]
    assert len(parts[0].x_train) + len(parts[1].x_train) == len(resident.x_train)
    assert torch.equal(torch.cat([parts[0].x_train, parts[1].x_train]).sort(0).values, resident.x_train.sort(0).values)


def test_a_streamed_dataset_trains_through_dataloader_workers_like_the_resident_one(tmp_path):
    from kubenas.core import Fidelity
    from kubenas.estimators.training import TrainingEstimator
    from kubenas.spaces import make_space

    path = str(imagegen.imagefolder(tmp_path / "f", per_class=24))
    streamed = load_dataset("imagefolder", path=path, data_path="streaming", workers=2, **_opts(tmp_path))
    space = make_space("chain")
    arch = space.sample(3)
    est = TrainingEstimator({"batch_size": 16, "augment": {"crop_padding": 2, "flip": True}}, device="cpu")
    res = est.evaluate(arch, space, streamed, Fidelity(epochs=2))
    assert res.status == "ok", res.error
    assert len(res.metrics["val_acc_curve"]) == 2 and 0 <= res.metrics["val_acc"] <= 1
    # the validation split is drawn from train by a seeded hash of the keys: the same in every task
    assert _keys(streamed, "val") == _keys(streamed, "val") and 0 < len(_keys(streamed, "val")) < 30


def test_a_bad_image_met_while_streaming_is_skipped_and_counted_or_fails_the_candidate(tmp_path, capfd, monkeypatch):
    from kubenas.core import Fidelity
    from kubenas.estimators.training import TrainingEstimator
    from kubenas.spaces import make_space

    root = imagegen.imagefolder(tmp_path / "f", per_class=24)
    broken = sorted((root / "train" / "cat").iterdir())[-1]
    broken.write_bytes(broken.read_bytes()[:40])
    space = make_space("chain")
    est = TrainingEstimator({"batch_size": 16}, device="cpu")
    skip = load_dataset(
        "imagefolder", path=str(root), data_path="streaming", workers=0, on_bad_image="skip", **_opts(tmp_path)
    )
    assert est.evaluate(space.sample(0), space, skip, Fidelity(epochs=1)).status == "ok"
    assert "skipped 1 bad image(s)" in capfd.readouterr().err
    # in the sample decoded up front (here every image): named before any training
    with pytest.raises(ValueError, match=rf"bad image\(s\) in the first 256 of train: .*{broken.name}: not a readable"):
        load_dataset("imagefolder", path=str(root), data_path="streaming", workers=0, **_opts(tmp_path))
    # met later: the candidate fails, naming it
    monkeypatch.setattr("kubenas.data.stream.SAMPLE", 4)
    fail = load_dataset("imagefolder", path=str(root), data_path="streaming", workers=0, **_opts(tmp_path))
    res = est.evaluate(space.sample(0), space, fail, Fidelity(epochs=1))
    assert res.status == "failed" and broken.name in res.error and "not a readable PNG" in res.error


def test_auto_picks_the_path_by_the_memory_budget(tmp_path):
    path = str(imagegen.imagefolder(tmp_path / "f", per_class=24))
    assert not getattr(load_dataset("imagefolder", path=path, **_opts(tmp_path)), "streamed", False)
    small = load_dataset("imagefolder", path=path, memory_budget="1Mi", **_opts(tmp_path, val_fraction=0.25))
    assert not getattr(small, "streamed", False)  # 72 images of 16x16 fit 1 MiB
    big = load_dataset("imagefolder", path=path, memory_budget="1Mi", resize=128, **_opts(tmp_path))
    assert big.streamed  # at 128x128 they do not
    with pytest.raises(ValueError, match="memory_budget must be bytes"):
        load_dataset("imagefolder", path=path, memory_budget="lots")


def test_streaming_webdataset_shards_need_the_class_names_up_front(tmp_path):
    path = str(imagegen.webdataset(tmp_path / "w"))
    with pytest.raises(ValueError, match="streaming path needs the class names .* option classes"):
        load_dataset("webdataset", path=path, data_path="streaming", **_opts(tmp_path))


def test_streamed_tar_shards_estimate_their_size_for_the_schedule(tmp_path):
    data = _streamed(tmp_path, "webdataset")  # tar shards do not say how many images they hold
    train = len(_keys(data, "train"))
    assert 0.7 * train <= data.count("train") <= 1.5 * train
