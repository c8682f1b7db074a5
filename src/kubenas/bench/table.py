"""Tabular benchmarks: train every architecture of a finite space (or a stated random sample) once, with a fixed
protocol, and keep the results in one Parquet table that strategies can then query in microseconds.

    kubenas bench build --preset nb201-4op-mnist1d --shard 0/2 &   # two processes share the work
    kubenas bench build --preset nb201-4op-mnist1d --shard 1/2 &
    wait; kubenas bench build --preset nb201-4op-mnist1d --merge   # one Parquet table with the protocol

Each shard appends one JSON line per trained architecture to ``<out>.shard-I-of-N.jsonl`` and flushes it, so
an interrupted build resumes where it stopped. ``--merge`` checks that every architecture is present once and
writes the table; the protocol (space, dataset and split, fidelity, optimiser, seed, versions) goes into the
Parquet file's metadata under ``kubenas.protocol``.
"""

from __future__ import annotations

import json
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from kubenas import __version__
from kubenas.arch import arch_id
from kubenas.estimators.tabular import METADATA_KEY, read_table  # noqa: F401 - the format lives with its reader
from kubenas.recipes import Recipe, resolve
from kubenas.spaces import make_space

SCHEMA = pa.schema(
    [
        ("arch_id", pa.string()),
        ("arch", pa.string()),
        ("genotype", pa.string()),
        ("status", pa.string()),
        ("val_acc", pa.float64()),
        ("test_acc", pa.float64()),
        ("val_loss", pa.float64()),
        ("val_acc_curve", pa.list_(pa.float64())),
        ("params", pa.int64()),
        ("macs", pa.int64()),
        ("train_seconds", pa.float64()),
        ("latency_ms", pa.float64()),
        ("seed", pa.int64()),
        ("error", pa.string()),
    ]
)


@dataclass(frozen=True)
class Protocol:
    """Everything that decides a table's numbers."""

    space: str
    space_options: dict[str, Any]
    dataset: str = "mnist1d"
    dataset_options: dict[str, Any] = field(default_factory=dict)
    epochs: int = 3
    # the training recipe (kubenas.recipes: a preset's name or {preset: NAME, FIELD: VALUE...}); the default is
    # the default preset at lr 0.01, as every table before recipes was built
    recipe: Any = field(default_factory=lambda: dict(LEGACY_RECIPE))
    seed: int = 0
    sample: int | None = None  # None: every architecture; else this many, drawn with `seed`
    threads: int = 1

    def to_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        return {**out, "recipe": protocol_recipe(out).to_dict()}  # every field, as trained


# The optimiser settings of the tables built before recipes, whose protocol held them as three fields
LEGACY_RECIPE = {"lr": 0.01, "weight_decay": 1e-4, "batch_size": 128}


def protocol_recipe(protocol: dict[str, Any]) -> Recipe:
    """The training recipe of a table's protocol: its ``recipe``, or a table built before recipes whose protocol
    held ``lr``, ``weight_decay`` and ``batch_size`` (with the default preset's other fields)."""
    if "recipe" in protocol:
        return resolve(protocol["recipe"])
    return resolve({k: protocol[k] for k in LEGACY_RECIPE if k in protocol})


PRESETS = {
    # NAS-Bench-201's cell with its four non-zero operations: 4^6 = 4,096 cells, all connected. Width 8 and
    # 3 epochs keep the build at about 1 s a cell on one CPU core (about 35 min on two cores).
    "nb201-4op-mnist1d": Protocol(
        space="nb201",
        space_options={
            "ops": ["skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"],
            "width": 8,
            "cells_per_stage": 1,
        },
    ),
    # Longer learning curves for learning-curve extrapolation: three operations (3^6 = 729 cells, all
    # connected) trained for 10 epochs: about 5.5 s a cell alone on one CPU core (the committed build shared
    # its two cores with other work: 8.6 s median, 45 minutes with two shards).
    "nb201-3op-mnist1d-10ep": Protocol(
        space="nb201",
        space_options={"ops": ["skip_connect", "nor_conv_1x1", "nor_conv_3x3"], "width": 8, "cells_per_stage": 1},
        epochs=10,
    ),
}


def architectures(protocol: Protocol) -> list[dict]:
    """The architectures of the table, in a fixed order."""
    space = make_space(protocol.space, **protocol.space_options)
    if protocol.sample is None:
        if space.size() is None:
            raise ValueError(f"the {protocol.space!r} space is unbounded: give a sample size")
        return list(space.enumerate())
    rng = np.random.default_rng(protocol.seed)
    seen: dict[str, dict] = {}
    for _ in range(protocol.sample * 50):
        arch = space.sample(rng)
        seen.setdefault(arch_id(arch), arch)
        if len(seen) == protocol.sample:
            break
    return list(seen.values())


def shard_path(out: Path, shard: int, shards: int) -> Path:
    return out.with_name(f"{out.name}.shard-{shard}-of-{shards}.jsonl")


def _done(path: Path) -> set[str]:
    """The ids trained in a shard file. A line cut short by an interruption is dropped from the file (and
    trained again), so that the next appended line starts on a line of its own."""
    if not path.exists():
        return set()
    done, kept = set(), []
    for line in path.read_text().splitlines():
        try:
            done.add(json.loads(line)["arch_id"])
            kept.append(line)
        except (ValueError, KeyError):
            continue
    path.write_text("".join(line + "\n" for line in kept))
    return done


def build_shard(protocol: Protocol, out: Path, shard: int = 0, shards: int = 1, progress: bool = True) -> Path:
    """Train this shard's architectures that are not in its file yet; returns the shard file."""
    import torch

    from kubenas.core import Fidelity
    from kubenas.data import load_dataset
    from kubenas.estimators.training import TrainingEstimator

    if not 0 <= shard < shards:
        raise ValueError(f"shard {shard} of {shards}: expected 0 <= shard < shards")
    torch.set_num_threads(protocol.threads)
    space = make_space(protocol.space, **protocol.space_options)
    data = load_dataset(protocol.dataset, **protocol.dataset_options)
    if not data.has_test:
        raise ValueError(f"dataset {protocol.dataset!r} has no test split; a table records test accuracy")
    search_data = data.without_test()
    estimator = TrainingEstimator(protocol_recipe(protocol.to_dict()), device="cpu")
    fidelity = Fidelity(epochs=protocol.epochs)
    mine = [a for i, a in enumerate(architectures(protocol)) if i % shards == shard]
    path = shard_path(out, shard, shards)
    path.parent.mkdir(parents=True, exist_ok=True)
    done = _done(path)
    todo = [a for a in mine if arch_id(a) not in done]
    start = time.perf_counter()
    with path.open("a") as fh:
        for n, arch in enumerate(todo, start=1):
            fh.write(json.dumps(_row(arch, space, search_data, data, estimator, fidelity, protocol.seed)) + "\n")
            fh.flush()
            if progress and (n % 50 == 0 or n == len(todo)):
                rate = (time.perf_counter() - start) / n
                print(
                    f"shard {shard}/{shards}: {len(done) + n}/{len(mine)} trained, {rate:.2f} s each, "
                    f"about {rate * (len(todo) - n) / 60:.0f} min left",
                    flush=True,
                )
    return path


def _row(arch, space, search_data, data, estimator, fidelity, seed) -> dict[str, Any]:
    row = {
        "arch_id": arch_id(arch),
        "arch": json.dumps(arch, sort_keys=True),
        "genotype": space.genotype(arch),
        "seed": seed,
    }
    try:
        model, m = estimator.fit(arch, space, search_data, fidelity, seed)
        _, test_acc = estimator.score(model, data.x_test, data.y_test)
    except Exception as exc:  # noqa: BLE001 - a failed cell is a row with its reason, not a failed build
        return {**row, "status": "failed", "error": f"{type(exc).__name__}: {exc}"[:500]}
    return {
        **row,
        "status": "ok",
        "val_acc": m["val_acc"],
        "test_acc": test_acc,
        "val_loss": m["val_loss"],
        "val_acc_curve": m["val_acc_curve"],
        "params": m["params"],
        "macs": m["macs"],
        "train_seconds": m["train_seconds"],
        "latency_ms": m["latency_ms"],
    }


def merge(protocol: Protocol, out: Path, shards: int | None = None) -> Path:
    """Collect the shards into one Parquet table (every architecture exactly once) with the protocol. The
    number of shards is read from the shard files' names unless given."""
    if shards is None:
        counts = {
            int(p.name.rsplit("-of-", 1)[1].split(".")[0]) for p in out.parent.glob(f"{out.name}.shard-*-of-*.jsonl")
        }
        if len(counts) != 1:
            raise ValueError(
                f"expected the shard files of one build next to {out}, found shard counts {sorted(counts)}"
            )
        shards = counts.pop()
    expected = {arch_id(a) for a in architectures(protocol)}
    rows: dict[str, dict] = {}
    for shard in range(shards):
        path = shard_path(out, shard, shards)
        if not path.exists():
            raise ValueError(f"missing shard file {path}: build shard {shard}/{shards} first")
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue
            rows[row["arch_id"]] = row
    missing = expected - set(rows)
    if missing:
        raise ValueError(f"{len(missing)} of {len(expected)} architectures are not trained yet; resume the shards")
    ordered = [rows[i] for i in sorted(expected)]
    table = pa.Table.from_pylist([{name: r.get(name) for name in SCHEMA.names} for r in ordered], schema=SCHEMA)
    import torch

    meta = {
        "protocol": protocol.to_dict(),
        "rows": len(ordered),
        "kubenas": __version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "built": time.strftime("%Y-%m-%d"),
        "shards": shards,
        "splits": _splits(protocol),
    }
    table = table.replace_schema_metadata({METADATA_KEY: json.dumps(meta).encode()})
    pq.write_table(table, out, compression="zstd")
    return out


def _splits(protocol: Protocol) -> dict[str, int]:
    from kubenas.data import load_dataset

    data = load_dataset(protocol.dataset, **protocol.dataset_options)
    return {"train": len(data.y_train), "val": len(data.y_val), "test": len(data.y_test)}


# Per-seed values of a table averaged over training seeds: the mean goes in the usual columns, each seed's value
# in these (in the order of the metadata's "seeds").
MEAN_SCHEMA = (
    SCHEMA.append(pa.field("val_acc_by_seed", pa.list_(pa.float64())))
    .append(pa.field("test_acc_by_seed", pa.list_(pa.float64())))
    .append(pa.field("val_acc_curve_by_seed", pa.list_(pa.list_(pa.float64()))))
)


def mean(tables: list[str | Path], out: str | Path) -> Path:
    """One table whose accuracies, curves and times are the means over ``tables``: builds of one protocol that
    differ only in the training seed, over the same architectures. An architecture that failed under any seed
    is failed. Each seed's values are kept beside the mean (``MEAN_SCHEMA``)."""
    if len(tables) < 2:
        raise ValueError("give two or more tables of the same protocol, built with different seeds")
    loaded = [read_table(p) for p in tables]
    protocols = [dict(meta["protocol"]) for _, meta in loaded]
    seeds = [p.pop("seed") for p in protocols]
    if any(p != protocols[0] for p in protocols[1:]):
        raise ValueError(
            "the tables' protocols differ beyond the seed: "
            + "; ".join(f"{t}: {json.dumps(p, sort_keys=True)}" for t, p in zip(tables, protocols))
        )
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"the tables repeat a seed: {seeds}")
    by_id = [{r["arch_id"]: r for r in data.to_pylist()} for data, _ in loaded]
    ids = set(by_id[0])
    if any(set(rows) != ids for rows in by_id[1:]):
        raise ValueError("the tables hold different architectures: build each from the same protocol")
    rows = []
    for key in sorted(ids):
        same = [rows_[key] for rows_ in by_id]
        first = same[0]
        if any(r["status"] != "ok" for r in same):
            errors = "; ".join(f"seed {s}: {r.get('error')}" for s, r in zip(seeds, same) if r["status"] != "ok")
            rows.append(
                {
                    **{k: first.get(k) for k in ("arch_id", "arch", "genotype")},
                    "status": "failed",
                    "error": errors[:500],
                }
            )
            continue
        curves = np.array([r["val_acc_curve"] for r in same], dtype=float)
        avg = lambda name, same=same: float(np.mean([r[name] for r in same]))  # noqa: E731
        rows.append(
            {
                **{k: first.get(k) for k in ("arch_id", "arch", "genotype", "params", "macs")},
                "status": "ok",
                "val_acc": avg("val_acc"),
                "test_acc": avg("test_acc"),
                "val_loss": avg("val_loss"),
                "val_acc_curve": [float(x) for x in curves.mean(0)],
                "train_seconds": avg("train_seconds"),
                "latency_ms": avg("latency_ms"),
                "seed": None,
                "error": None,
                "val_acc_by_seed": [r["val_acc"] for r in same],
                "test_acc_by_seed": [r["test_acc"] for r in same],
                "val_acc_curve_by_seed": [r["val_acc_curve"] for r in same],
            }
        )
    table = pa.Table.from_pylist([{n: r.get(n) for n in MEAN_SCHEMA.names} for r in rows], schema=MEAN_SCHEMA)
    meta = {
        **loaded[0][1],
        "protocol": {**protocols[0], "seed": None},
        "seeds": seeds,
        "rows": len(rows),
        "mean_of": [Path(t).name for t in tables],
        "kubenas": __version__,
        "built": time.strftime("%Y-%m-%d"),
    }
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table.replace_schema_metadata({METADATA_KEY: json.dumps(meta).encode()}), out, compression="zstd")
    return out
