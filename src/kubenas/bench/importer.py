"""``kubenas bench import SRC --mapping MAPPING.yaml --out TABLE.parquet``: someone else's results (CSV or Parquet)
as a kubenas benchmark table, so that ``bench compare`` and the tabular estimator can use them.

The mapping says which registered space the architectures belong to, how to read the architecture column (an
NB-201 genotype string, or a JSON object of decisions) with renames of operations and decisions, which columns
hold the metrics (accuracies as fractions, or percentages with ``scale: 0.01``), and how the results were trained
(``protocol``: dataset, epochs, optimizer, schedule, ...; kept in the table's metadata). Rows that the space
rejects, repeats of an architecture and rows without accuracies are reported and left out; the rest become the
table. The format is the one ``bench build`` writes (``kubenas.bench.table.SCHEMA``)::

    space: nb201
    space_options: {ops: [nor_conv_3x3, nor_conv_1x1, skip_connect, avg_pool_3x3], width: 16}
    arch: {column: arch_str, format: genotype, ops: {conv3x3: nor_conv_3x3, conv1x1: nor_conv_1x1}}
    metrics: {val_acc: valid_acc, test_acc: test_acc, train_seconds: train_time, val_acc_curve: valid_curve}
    scale: 0.01
    protocol: {dataset: cifar10, epochs: 200, optimizer: sgd, lr: 0.1, schedule: cosine, batch_size: 256}
"""

from __future__ import annotations

import json
import math
import platform
import time
from collections import Counter
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.parquet as pq
import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from kubenas import __version__
from kubenas.arch import arch_id
from kubenas.bench.table import SCHEMA
from kubenas.estimators.tabular import METADATA_KEY
from kubenas.spaces import SPACES, make_space
from kubenas.spaces.base import InvalidArchitecture
from kubenas.spaces.nb201 import NB201Space


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ArchColumn(_Strict):
    column: str
    format: Literal["genotype", "json"] = "genotype"
    ops: dict[str, str] = {}  # the source's operation name -> the space's
    decisions: dict[str, str] = {}  # json format: the source's key -> the space's decision name


class Metrics(_Strict):
    val_acc: str
    test_acc: str
    val_acc_curve: str | None = None  # a list per row (or its JSON text); its length must be the same in every row
    train_seconds: str | None = None
    params: str | None = None
    macs: str | None = None
    latency_ms: str | None = None


class Protocol(BaseModel):
    """How the source's networks were trained: free-form, but these are required."""

    model_config = ConfigDict(extra="allow")
    dataset: str
    epochs: int
    optimizer: str
    schedule: str


class Mapping(_Strict):
    space: str
    space_options: dict[str, Any] = {}
    arch: ArchColumn
    metrics: Metrics
    scale: float = 1.0  # accuracies are multiplied by it: 0.01 for percentages
    protocol: Protocol

    @field_validator("space")
    @classmethod
    def _known(cls, v: str) -> str:
        if v not in SPACES:
            raise ValueError(f"unknown space {v!r}; registered: {sorted(SPACES)}")
        return v


def load_mapping(path: str | Path) -> Mapping:
    try:
        raw = yaml.safe_load(Path(path).read_text())
        return Mapping.model_validate(raw)
    except OSError as exc:
        raise ValueError(f"cannot read the mapping {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise ValueError(f"the mapping {path} is not YAML: {exc}") from None
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'mapping'}: {e['msg']}" for e in exc.errors())
        raise ValueError(f"the mapping {path}: {problems}") from None


def _read(source: Path) -> list[dict[str, Any]]:
    if not source.exists():
        raise ValueError(f"{source} does not exist")
    if source.suffix.lower() == ".parquet":
        return pq.read_table(source).to_pylist()
    if source.suffix.lower() == ".csv":
        from pyarrow import csv

        return csv.read_csv(source).to_pylist()
    raise ValueError(f"{source}: give a .csv or .parquet file")


def import_table(source: str | Path, mapping: Mapping, out: str | Path) -> dict[str, Any]:
    """Write the kubenas table ``out`` from ``source``; returns a report: rows read, kept, and left out by reason
    (with the first example of each)."""
    source, out = Path(source), Path(out)
    rows = _read(source)
    m = mapping.metrics
    columns = {mapping.arch.column, m.val_acc, m.test_acc} | {
        c for c in (m.val_acc_curve, m.train_seconds, m.params, m.macs, m.latency_ms) if c
    }
    missing = sorted(c for c in columns if rows and c not in rows[0])
    if missing:
        raise ValueError(f"{source} has no column(s) {missing}; it has {sorted(rows[0]) if rows else []}")
    space = make_space(mapping.space, **mapping.space_options)
    kept: dict[str, dict[str, Any]] = {}
    left_out: Counter = Counter()
    examples: dict[str, str] = {}

    def skip(reason: str, row_no: int, detail: str) -> None:
        left_out[reason] += 1
        examples.setdefault(reason, f"row {row_no}: {detail}")

    curve_len = None
    for n, row in enumerate(rows, start=1):
        raw = row[mapping.arch.column]
        try:
            arch = _arch(raw, mapping, space)
        except ValueError as exc:
            skip("not an architecture of the space", n, str(exc))
            continue
        val, test = _acc(row[m.val_acc], mapping.scale), _acc(row[m.test_acc], mapping.scale)
        if val is None or test is None:
            skip(
                "no validation or test accuracy", n, f"{m.val_acc}={row[m.val_acc]!r}, {m.test_acc}={row[m.test_acc]!r}"
            )
            continue
        curve = [val]
        if m.val_acc_curve:
            value = row[m.val_acc_curve]
            points = json.loads(value) if isinstance(value, str) else value
            curve = [_acc(x, mapping.scale) for x in points or []]
            if not curve or any(x is None for x in curve):
                skip("a missing or broken learning curve", n, repr(value)[:80])
                continue
            curve[-1] = val  # the curve ends at the row's validation accuracy
        if curve_len is None:
            curve_len = len(curve)
        elif len(curve) != curve_len:
            skip("a learning curve of another length", n, f"{len(curve)} points, not {curve_len}")
            continue
        key = arch_id(arch)
        if key in kept:
            skip("a repeat of an architecture", n, space.genotype(arch))
            continue
        kept[key] = {
            "arch_id": key,
            "arch": json.dumps(arch, sort_keys=True),
            "genotype": space.genotype(arch),
            "status": "ok",
            "val_acc": val,
            "test_acc": test,
            "val_loss": None,
            "val_acc_curve": curve,
            "params": int(row[m.params]) if m.params and row[m.params] is not None else None,
            "macs": int(row[m.macs]) if m.macs and row[m.macs] is not None else 0,
            "train_seconds": float(row[m.train_seconds])
            if m.train_seconds and row[m.train_seconds] is not None
            else 1.0,
            "latency_ms": float(row[m.latency_ms]) if m.latency_ms and row[m.latency_ms] is not None else None,
            "seed": None,
            "error": None,
        }
    if not kept:
        raise ValueError(
            f"no row of {source} could be imported: "
            + "; ".join(f"{k} ({v}, e.g. {examples[k]})" for k, v in left_out.items())
        )
    protocol = {
        "space": mapping.space,
        "space_options": mapping.space_options,
        **mapping.protocol.model_dump(),
        "epochs": curve_len,
        "trained_epochs": mapping.protocol.epochs,
    }
    meta = {
        "protocol": protocol,
        "rows": len(kept),
        "kubenas": __version__,
        "python": platform.python_version(),
        "imported": time.strftime("%Y-%m-%d"),
        "source": source.name,
        "mapping": json.loads(mapping.model_dump_json()),
    }
    ordered = [kept[k] for k in sorted(kept)]
    table = pa.Table.from_pylist(ordered, schema=SCHEMA)
    out.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table.replace_schema_metadata({METADATA_KEY: json.dumps(meta).encode()}), out, compression="zstd")
    return {"read": len(rows), "kept": len(kept), "left_out": dict(left_out), "examples": examples, "out": str(out)}


def _arch(raw: Any, mapping: Mapping, space) -> dict[str, Any]:
    if raw is None:
        raise ValueError("empty")
    if mapping.arch.format == "genotype":
        try:
            if not isinstance(raw, str) or "~" not in raw:
                raise ValueError
            arch = {k: mapping.arch.ops.get(v, v) for k, v in NB201Space.from_genotype(raw).items()}
        except ValueError:
            raise ValueError(f"not an NB-201 genotype: {raw!r}") from None
    else:
        try:
            data = json.loads(raw) if isinstance(raw, str) else raw
        except ValueError:
            raise ValueError(f"not JSON: {raw!r}") from None
        if not isinstance(data, dict):
            raise ValueError(f"not a JSON object: {raw!r}")
        arch = {
            mapping.arch.decisions.get(k, k): mapping.arch.ops.get(v, v) if isinstance(v, str) else v
            for k, v in data.items()
        }
    try:
        space.validate(arch)
    except InvalidArchitecture as exc:
        raise ValueError(f"{raw!r}: {exc}") from None
    return arch


def _acc(value: Any, scale: float) -> float | None:
    try:
        x = float(value) * scale
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) and 0.0 <= x <= 1.0 else None
