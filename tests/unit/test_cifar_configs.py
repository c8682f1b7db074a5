"""The CIFAR-10 configs for a GPU cluster, run for one step on CPU against a small archive in the real format:
they validate, read the archive, and train with their recipes (NB-201 cells with `nb201`, DARTS with `darts`)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from kubenas.config import parse_config
from kubenas.core import Fidelity
from kubenas.data import load_dataset
from kubenas.estimators import make_estimator
from tests import imagegen

CONFIGS = Path(__file__).resolve().parents[2] / "pipelines" / "configs"


def _local(name: str, tmp_path) -> dict:
    cfg = yaml.safe_load((CONFIGS / name).read_text())
    archive = imagegen.cifar_archive(tmp_path / "cifar-10-python.tar.gz", per_batch=40)
    cfg["dataset"]["options"].update(path=str(archive), cache_dir=str(tmp_path / "cache"))
    return cfg


def test_the_nb201_cifar_config_trains_a_candidate_with_the_nb201_recipe(tmp_path):
    cfg = parse_config(_local("cifar10-nb201-gpu.yaml", tmp_path))
    recipe = cfg.estimator.to_recipe()
    assert recipe.preset == "nb201" and recipe.batch_size == 256 and recipe.augment.crop_padding == 4
    assert cfg.export_recipe().augment.cutout == 16 and cfg.export_recipe().lr == 0.1
    data = load_dataset(cfg.dataset.name, **cfg.dataset.options).without_test()
    assert data.input_shape == (3, 32, 32) and len(data.x_train) == len(data.x_val) == 100  # halved
    space = cfg.space.build()
    estimator = make_estimator(cfg.estimator.model_dump())
    res = estimator.evaluate(space.sample(0), space, data, Fidelity(epochs=1))
    assert res.status == "ok", res.error


def test_the_darts_cifar_config_trains_a_supernet_epoch_with_the_darts_recipe(tmp_path):
    from kubenas.oneshot import make_oneshot

    local = _local("cifar10-darts-gpu.yaml", tmp_path)
    local["dataset"]["options"]["resize"] = 8  # a DARTS supernet step at 32x32 costs some 10 CPU-s: one at 8x8
    cfg = parse_config(local)
    recipe = cfg.estimator.to_recipe()
    data = load_dataset(cfg.dataset.name, **cfg.dataset.options).without_test().shard(0, 2)  # one step of 50
    method = make_oneshot(cfg.oneshot.method, cfg.space.build(), seed=0, device="cpu", recipe=recipe)
    assert (method.lr, method.batch_size, method.arch_lr, method.arch_betas) == (0.025, 64, 3e-4, (0.5, 0.999))
    method.setup(data.input_shape, data.num_classes, total_epochs=1, width_mult=0.25)
    record = method.train_epoch(data)
    assert record["epoch"] == 1 and record["train_loss"] > 0
    assert record["derived"].startswith("normal=") and method.propose(1)


@pytest.mark.parametrize("name", ["cifar10-nb201-gpu.yaml", "cifar10-darts-gpu.yaml"])
def test_a_cifar_config_without_its_archive_says_where_to_put_it(name, tmp_path):
    from kubenas.config import ConfigError

    cfg = parse_config(yaml.safe_load((CONFIGS / name).read_text()))
    cfg2 = parse_config(
        {
            **cfg.model_dump(mode="json"),
            "dataset": {"name": "cifar10", "options": {"path": str(tmp_path / "missing.tar.gz")}},
        }
    )
    with pytest.raises(ConfigError, match="dataset.options.path: .*does not exist"):
        cfg2.check_data_source()
