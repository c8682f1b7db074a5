"""Every image format runs a search from a local path and from the embedded S3, on the resident path and forced
onto the streaming path, on generated images (tests/imagegen.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubenas import Fidelity, make_space, search
from kubenas.data import load_dataset
from kubenas.estimators.training import TrainingEstimator
from tests import imagegen

FORMATS = {
    "png-folder": ("imagefolder", lambda root: imagegen.imagefolder(root, per_class=16), {}),
    "jpeg-folder": ("imagefolder", lambda root: imagegen.imagefolder(root, per_class=16, fmt="JPEG"), {}),
    "hf-parquet": ("parquet", lambda root: imagegen.hf_parquet(root, per_class=16), {"image_column": "img"}),
    "webdataset": (
        "webdataset",
        lambda root: imagegen.webdataset(root, per_class=16, shards=3),
        {"classes": list(imagegen.CLASSES)},
    ),
    "cifar10": ("cifar10", lambda root: imagegen.cifar_archive(root / "cifar-10-python.tar.gz", per_batch=20), {}),
}


def _upload(local: Path, prefix: str) -> str:
    """``local`` (a file or a folder) into the embedded S3 under ``prefix``; returns its s3:// URI."""
    import boto3

    s3 = boto3.client("s3")
    files = [local] if local.is_file() else sorted(p for p in local.rglob("*") if p.is_file())
    for f in files:
        key = f"{prefix}/{f.name}" if local.is_file() else f"{prefix}/{f.relative_to(local)}"
        s3.upload_file(str(f), "kubenas", key)
    return f"s3://kubenas/{prefix}/{local.name}" if local.is_file() else f"s3://kubenas/{prefix}"


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_a_format_searches_from_a_local_path_and_from_s3_resident_and_streamed(fmt, stack_env, tmp_path):
    name, make, options = FORMATS[fmt]
    local = Path(make(tmp_path / fmt))
    remote = _upload(local, f"datasets/{fmt}")
    space = make_space("nb201", width=4)
    common = {"val_fraction": 0.25, "cache_dir": str(tmp_path / "cache"), "workers": 1, **options}
    results = {}
    for where, path in (("local", str(local)), ("s3", remote)):
        for data_path in ("resident", "streaming"):
            data = load_dataset(name, path=path, data_path=data_path, **common)
            assert getattr(data, "streamed", False) == (data_path == "streaming")
            assert data.num_classes == (10 if fmt == "cifar10" else 3) and data.input_shape[0] == 3
            result = search(
                space,
                "random",
                dataset=data.without_test(),
                fidelity=Fidelity(epochs=1),
                estimator=TrainingEstimator({"batch_size": 16, "augment": {"crop_padding": 2, "flip": True}}),
                max_evals=2,
                seed=0,
                progress=False,
            )
            statuses = [r["status"] for r in result.history]
            assert statuses == ["ok", "ok"], [r.get("error") for r in result.history]
            results[(where, data_path)] = data
    # the same images whether read here or from S3
    local_data, s3_data = results[("local", "resident")], results[("s3", "resident")]
    assert local_data.classes == s3_data.classes and local_data.x_train.shape == s3_data.x_train.shape
    assert (local_data.x_train - s3_data.x_train).abs().max() < 1e-5


def test_a_missing_s3_prefix_or_archive_is_named(stack_env):
    from kubenas.data import check_source

    for name, options in (
        ("imagefolder", {"path": "s3://kubenas/datasets/no-such-folder"}),
        ("webdataset", {"path": "s3://kubenas/datasets/no-such-shards", "classes": ["a", "b"]}),
        ("cifar10", {"path": "s3://kubenas/datasets/no-such/cifar-10-python.tar.gz"}),
    ):
        with pytest.raises(
            ValueError, match=r"(no archive at )?'s3://kubenas/datasets/no-such.*(does not exist|downloads)"
        ):
            load_dataset(name, **options)
        with pytest.raises(ValueError, match=r"s3://kubenas/datasets/no-such.* does not exist"):
            check_source(name, **options)  # the run's pre-flight, before any stack or task starts
