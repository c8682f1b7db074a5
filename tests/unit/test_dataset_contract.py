"""The contract every registered dataset keeps, run over all of them: its ``info`` (checked without loading) agrees
with what it loads, the splits are whole and labelled within the classes, its sources exist, and it loads the same
twice."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from kubenas.data import DATASETS, check_source, dataset_info, load_dataset
from tests import imagegen


def _parquet(tmp_path) -> dict:
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 1, 6, 6)).astype(np.float32), np.arange(40) % 3
    table = pa.table(
        {
            "x": pa.FixedShapeTensorArray.from_numpy_ndarray(x),
            "label": pa.array(y),
            "split": ["train"] * 24 + ["validation"] * 8 + ["test"] * 8,
        }
    )
    pq.write_table(table, tmp_path / "data.parquet")
    return {"path": str(tmp_path / "data.parquet")}


def _images(tmp) -> dict:
    return {"cache_dir": str(tmp / "cache"), "val_fraction": 0.25}


# Options of the registered datasets that need some (a function of a temporary folder where data must be written).
DATASET_OPTIONS = {
    "mnist1d": lambda tmp: {"num_samples": 400},
    "parquet": _parquet,
    "shapes": lambda tmp: {"train": 200, "test": 50, **_images(tmp)},
    "imagefolder": lambda tmp: {"path": str(imagegen.imagefolder(tmp / "folder")), **_images(tmp)},
    "webdataset": lambda tmp: {"path": str(imagegen.webdataset(tmp / "wds")), **_images(tmp)},
    "cifar10": lambda tmp: {"path": str(imagegen.cifar_archive(tmp / "c10.tar.gz")), **_images(tmp)},
    "cifar100": lambda tmp: {
        "path": str(imagegen.cifar_archive(tmp / "c100.tar.gz", "cifar100", per_batch=80)),
        **_images(tmp),
    },
}


def check_dataset(name: str, options: dict) -> None:
    """The contract, for one dataset and its options."""
    info = dataset_info(name, **options)
    data = load_dataset(name, **options)
    for x, y in ((data.x_train, data.y_train), (data.x_val, data.y_val)):
        assert len(x) == len(y) > 0 and torch.isfinite(x).all()
        assert int(y.min()) >= 0 and int(y.max()) < data.num_classes
    assert info.input_shape is None or tuple(data.input_shape) == tuple(info.input_shape)
    assert info.num_classes is None or data.num_classes == info.num_classes
    check_source(name, **options)  # what it reads exists
    again = load_dataset(name, **options)
    assert torch.equal(again.x_train, data.x_train) and torch.equal(again.y_val, data.y_val)


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_a_registered_dataset_keeps_the_contract(name, tmp_path):
    check_dataset(name, DATASET_OPTIONS.get(name, lambda tmp: {})(tmp_path))
