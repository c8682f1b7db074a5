"""Built-in datasets and the Parquet loader."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from kubenas.data import load_dataset


def test_mnist1d_splits():
    d = load_dataset("mnist1d")
    assert d.input_shape == (1, 40) and d.num_classes == 10
    assert (len(d.x_train), len(d.x_val), len(d.x_test)) == (3200, 800, 1000)
    assert d.x_train.dtype == torch.float32 and d.y_train.dtype == torch.int64
    # stratified: every class is in the validation split in about the same share
    counts = torch.bincount(d.y_val, minlength=10)
    assert counts.min() >= 70
    again = load_dataset("mnist1d")
    assert torch.equal(d.x_val, again.x_val)
    # train and val are disjoint rows of the generated training set
    rows = {tuple(r.tolist()) for r in d.x_train[:, 0]}
    assert not any(tuple(r.tolist()) in rows for r in d.x_val[:, 0])
    assert not d.without_test().has_test and d.has_test


def test_digits_splits():
    d = load_dataset("digits")
    assert d.input_shape == (1, 8, 8) and d.num_classes == 10
    assert len(d.x_train) + len(d.x_val) + len(d.x_test) == 1797
    assert 0 <= float(d.x_train.min()) and float(d.x_train.max()) <= 1


def test_unknown_dataset_and_options_are_named():
    with pytest.raises(ValueError, match="unknown dataset 'cifar'; registered: mnist1d, digits, parquet"):
        load_dataset("cifar")
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['val_frac'\]"):
        load_dataset("mnist1d", val_frac=0.1)
    with pytest.raises(ValueError, match="val_fraction must be a number strictly between 0 and 1"):
        load_dataset("mnist1d", val_fraction=1.5)


def _rows(n, shape, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, *shape)).astype(np.float32), rng.integers(0, 4, size=n)


def test_parquet_fixed_shape_tensor_with_split_column(tmp_path):
    x, y = _rows(30, (1, 6, 6))
    tensor_type = pa.fixed_shape_tensor(pa.float32(), (1, 6, 6))
    table = pa.table(
        {
            "x": pa.FixedShapeTensorArray.from_numpy_ndarray(x),
            "label": pa.array(y),
            "split": ["train"] * 20 + ["validation"] * 5 + ["test"] * 5,
        }
    )
    assert table.schema.field("x").type == tensor_type
    pq.write_table(table, tmp_path / "data.parquet")
    d = load_dataset("parquet", path=str(tmp_path / "data.parquet"))
    assert d.input_shape == (1, 6, 6) and (len(d.x_train), len(d.x_val), len(d.x_test)) == (20, 5, 5)
    assert np.allclose(d.x_train.numpy(), x[:20]) and d.num_classes == int(y.max()) + 1


def test_parquet_list_column_with_declared_shape_and_paths_per_split(tmp_path):
    paths = {}
    for split, n in (("train", 12), ("val", 4)):
        x, y = _rows(n, (2, 5), seed=n)
        paths[split] = str(tmp_path / f"{split}.parquet")
        pq.write_table(pa.table({"signal": [r.ravel().tolist() for r in x], "y": y}), paths[split])
    d = load_dataset("parquet", path=paths, feature_column="signal", label_column="y", shape=[2, 5], num_classes=4)
    assert d.input_shape == (2, 5) and not d.has_test and d.num_classes == 4


def test_parquet_errors_name_the_column_and_what_is_expected(tmp_path):
    x, y = _rows(8, (4,))
    path = str(tmp_path / "d.parquet")
    pq.write_table(pa.table({"x": [r.tolist() for r in x], "label": y, "split": ["train"] * 4 + ["val"] * 4}), path)
    with pytest.raises(ValueError, match="column 'x' is a list column; declare the per-row shape"):
        load_dataset("parquet", path=path)
    with pytest.raises(ValueError, match=r"row 0 of 'x' in split 'train' has 4 values; shape \[5\] needs 5"):
        load_dataset("parquet", path=path, shape=[5])
    with pytest.raises(ValueError, match="no label column 'target'"):
        load_dataset("parquet", path=path, shape=[4], label_column="target")
    with pytest.raises(ValueError, match="no split column 'fold'"):
        load_dataset("parquet", path=path, shape=[4], split_column="fold")
    with pytest.raises(ValueError, match="cannot read Parquet"):
        load_dataset("parquet", path=str(tmp_path / "missing.parquet"))
    only_train = str(tmp_path / "t.parquet")
    pq.write_table(pa.table({"x": [r.tolist() for r in x], "label": y, "split": ["train"] * 8}), only_train)
    with pytest.raises(ValueError, match=r"split\(s\) \['val'\] are missing"):
        load_dataset("parquet", path=only_train, shape=[4])


def test_mnist1d_is_cached_on_disk_and_identical(tmp_path, monkeypatch):
    from kubenas.data import builtin

    monkeypatch.setenv("KUBENAS_CACHE", str(tmp_path))
    builtin._mnist1d_arrays.cache_clear()
    first = load_dataset("mnist1d", num_samples=500, seed=7)
    assert (tmp_path / "mnist1d-500-7.npz").exists()
    builtin._mnist1d_arrays.cache_clear()
    second = load_dataset("mnist1d", num_samples=500, seed=7)
    assert torch.equal(first.x_train, second.x_train) and torch.equal(first.y_test, second.y_test)
    builtin._mnist1d_arrays.cache_clear()


def test_dataset_tensors_are_aligned_copies():
    # a numpy view 16 bytes into its buffer: results of CPU kernels depend on input alignment, so a dataset
    # must not share numpy's memory (a shared, misaligned buffer made searches irreproducible)
    from kubenas.data.base import tensors

    buf = np.arange(4 + 8 * 40, dtype=np.float32)
    view = buf[4:].reshape(8, 1, 40)
    assert view.ctypes.data % 64 != 0 or buf.ctypes.data % 64 != 0
    x, y = tensors(view, np.zeros(8, dtype=np.int64))
    assert x.data_ptr() % 64 == 0 and not np.shares_memory(x.numpy(), buf)
    assert np.array_equal(x.numpy(), view)
    # an inserted axis may carry any stride in numpy; the tensor gets the standard one
    odd = np.arange(8 * 40, dtype=np.float32).reshape(8, 40)[:, None, :]
    assert tensors(odd, np.zeros(8, dtype=np.int64))[0].stride() == (40, 40, 1)
