"""Answer evaluations from a tabular benchmark (``kubenas bench build``) instead of training.

A lookup returns what training with the table's protocol returned: the validation accuracy (at a lower epoch
budget, the value of the validation curve at that epoch), parameters, MACs, latency, and the training
seconds as the result's cost (scaled to the epochs asked for), so that simulated time is comparable with real
training. The test accuracy is kept out of the result: a search never sees it; :meth:`test_acc` serves
benchmarks that report regret.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from kubenas.arch import Arch, arch_id
from kubenas.core import Result
from kubenas.spaces import make_space
from kubenas.spaces.base import SearchSpace

DEFAULT_TABLE = "nb201-4op-mnist1d"
METADATA_KEY = b"kubenas.protocol"  # the Parquet schema metadata that holds a table's protocol


def table_path(name_or_path: str | Path) -> Path:
    """A path, or the name of a table shipped with kubenas (``kubenas/tables/<name>.parquet``)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    shipped_dir = Path(str(resources.files("kubenas").joinpath("tables")))
    shipped = shipped_dir / f"{name_or_path}.parquet"
    if path.suffix != ".parquet" and shipped.is_file():
        return shipped
    names = ", ".join(sorted(p.stem for p in shipped_dir.glob("*.parquet")))
    raise ValueError(
        f"no benchmark table {str(name_or_path)!r}: give the path of an existing .parquet file (relative "
        f"to {Path.cwd()}) or a shipped table name: {names}"
    )


class TabularEstimator:
    """Evaluations from a benchmark table. ``space`` is checked against the table's protocol on first use."""

    def __init__(self, table: str | Path = DEFAULT_TABLE):
        self.path = table_path(table)
        rows, meta = _load(self.path.resolve(), self.path.stat().st_mtime_ns)
        self.protocol: dict[str, Any] = meta["protocol"]
        self.meta = meta
        self.space = make_space(self.protocol["space"], **self.protocol["space_options"])  # the table's space
        self.space_spec = self.space.spec()
        self.rows: dict[str, dict[str, Any]] = rows
        ok = [r for r in self.rows.values() if r["status"] == "ok"]
        self.best_test_acc = max(r["test_acc"] for r in ok)
        self.best_val_acc = max(r["val_acc"] for r in ok)

    @property
    def training_seed(self) -> int:
        """The seed to train with to reproduce the table's networks: the protocol's, or for a table that averages
        several seeds (``bench mean``), the first of them."""
        seed = self.protocol.get("seed")
        return int(seed if seed is not None else self.meta["seeds"][0])

    @classmethod
    def load(cls, table: str | Path = DEFAULT_TABLE) -> TabularEstimator:
        """The estimator of a table, built once per process (it only answers look-ups, so it is shared: the
        config's checks and the search use the same one)."""
        path = table_path(table).resolve()
        return _shared(cls, path, path.stat().st_mtime_ns)

    @classmethod
    def from_config(cls, section: dict[str, Any], inner: Any = None, store: Any = None) -> TabularEstimator:
        return cls.load(section["table"])

    def search_data(self):
        """The table's dataset without its test split, as the protocol loaded it (for proxies scored for real)."""
        from kubenas.data import load_dataset

        return load_dataset(self.protocol["dataset"], **self.protocol.get("dataset_options", {})).without_test()

    def check_space(self, space: SearchSpace) -> None:
        if json.loads(json.dumps(space.spec())) != json.loads(json.dumps(self.space_spec)):
            raise ValueError(f"the table {self.path.name} holds the space {self.space_spec}, not {space.spec()}")

    def row(self, arch: Arch) -> dict[str, Any] | None:
        return self.rows.get(arch_id(arch))

    def test_acc(self, arch: Arch) -> float | None:
        row = self.row(arch)
        return None if row is None or row["status"] != "ok" else row["test_acc"]

    def evaluate(
        self,
        arch: Arch,
        space: SearchSpace | None = None,
        dataset: Any = None,
        fidelity: Any = None,
        seed: int = 0,
        candidate_id: str = "",
        on_epoch: Any = None,
    ) -> Result:
        """The table's answer at ``fidelity.epochs`` (default: the table's); ``on_epoch`` may stop the curve
        earlier, as it stops training (see :meth:`TrainingEstimator.fit`)."""
        if space is not None:
            self.check_space(space)
        row = self.row(arch)
        if row is None:
            return Result(candidate_id, "failed", error=f"architecture {arch_id(arch)} is not in {self.path.name}")
        if row["status"] != "ok":
            return Result(candidate_id, "failed", error=row.get("error") or "failed when the table was built")
        full = len(row["val_acc_curve"])
        epochs = full if fidelity is None else max(1, min(int(fidelity.epochs), full))
        if on_epoch is not None:
            epochs = next((e for e in range(1, epochs) if on_epoch(row["val_acc_curve"][:e])), epochs)
        seconds = row["train_seconds"] * epochs / full
        metrics = {
            "val_acc": row["val_acc_curve"][epochs - 1],
            "val_acc_curve": row["val_acc_curve"][:epochs],
            "params": row["params"],
            "macs": row["macs"],
            "latency_ms": row["latency_ms"],
            "train_seconds": seconds,
            "epochs": epochs,
        }
        return Result(candidate_id, "ok", metrics, cost=seconds)


@lru_cache(maxsize=4)
def _shared(cls: type, path: Path, mtime_ns: int) -> TabularEstimator:
    return cls(path)


@lru_cache(maxsize=4)
def _load(path: Path, mtime_ns: int) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """A table's rows by architecture id, and its metadata: read once per process (the config check and the
    estimator both open it). Keyed by the file's modification time, so a rebuilt table is read again."""
    data, meta = read_table(path)
    return {r["arch_id"]: r for r in data.to_pylist()}, meta


def read_table(path: str | Path) -> tuple[Any, dict[str, Any]]:
    """A table and its metadata (``protocol`` and the build's versions)."""
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    meta = json.loads((table.schema.metadata or {}).get(METADATA_KEY, b"{}"))
    if "protocol" not in meta:
        raise ValueError(f"{path} is not a kubenas benchmark table (no {METADATA_KEY.decode()} metadata)")
    return table, meta
