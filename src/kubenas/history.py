"""The search history: one row per evaluated candidate, in two shapes with one name each.

- a *row* is a dict: ``id``, ``arch_id``, ``arch`` (dict), ``genotype``, ``parent_id``, ``round`` (None until
  committed), ``status``, ``error``, ``metrics`` (dict), ``cost`` (seconds), ``fidelity`` (dict or None) and
  ``epochs``; the search loop, the strategies, the reports and the pipeline steps all pass rows;
- a *table* is the pyarrow table the store commits (:func:`to_table`, :func:`rows`).

In a table every metric is stored once: the common ones (:data:`METRIC_COLUMNS`) in typed columns that pandas or
DuckDB read directly, every other one in the ``metrics`` JSON column. This module also owns what a row's metric
is worth (:func:`value`), the mode's sign and the ranking. It imports pyarrow only when a table is made or read.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from kubenas.arch import arch_id
from kubenas.core import Candidate, Fidelity, Result, is_finite

# The metrics with a column of their own, and their Arrow types (by name: pyarrow is imported on first use).
METRIC_COLUMNS = {
    "val_acc": "float64",
    "val_loss": "float64",
    "params": "int64",
    "macs": "int64",
    "train_seconds": "float64",
    "latency_ms": "float64",
    "val_acc_curve": "list<float64>",
}


def schema():
    """The history's Parquet schema."""
    import pyarrow as pa

    def arrow(kind: str):
        return pa.list_(pa.float64()) if kind == "list<float64>" else getattr(pa, kind)()

    return pa.schema(
        [
            ("id", pa.string()),
            ("arch_id", pa.string()),
            ("arch", pa.string()),  # arch: JSON
            ("genotype", pa.string()),
            ("parent_id", pa.string()),
            ("round", pa.int32()),
            ("status", pa.string()),
            ("error", pa.string()),
            *[(name, arrow(kind)) for name, kind in METRIC_COLUMNS.items()],
            ("metrics", pa.string()),  # JSON: the metrics without a column of their own
            ("cost", pa.float64()),
            ("fidelity", pa.string()),  # fidelity: JSON
            ("epochs", pa.int32()),
        ]
    )


# ---------------------------------------------------------------------- rows
def row(
    space: Any,
    cand: Candidate,
    res: Result,
    fidelity: Fidelity | Mapping[str, Any] | None,
    round_index: int | None = None,
) -> dict[str, Any]:
    """The row of one evaluation: the candidate, its result and the fidelity it ran at (``space`` names the
    architecture's genotype)."""
    fid = fidelity.to_dict() if isinstance(fidelity, Fidelity) else (dict(fidelity) if fidelity else None)
    return {
        "id": cand.id,
        "arch_id": arch_id(cand.arch),
        "arch": cand.arch,
        "genotype": space.genotype(cand.arch),
        "parent_id": cand.parent_id,
        "round": round_index,
        "status": res.status,
        "error": res.error,
        "metrics": res.metrics,
        "cost": res.cost,
        "fidelity": fid,
        "epochs": (fid or {}).get("epochs"),
    }


def failed(space: Any, cand: Candidate, error: str, fidelity: Fidelity | None) -> dict[str, Any]:
    """The row of a candidate that left no result (its training task died)."""
    return row(space, cand, Result(cand.id, "failed", error=error), fidelity)


def result(r: Mapping[str, Any]) -> Result:
    """The :class:`Result` a row records."""
    return Result(r["id"], r["status"], dict(r.get("metrics") or {}), float(r.get("cost") or 0.0), r.get("error"))


def since(rows_: Iterable[Mapping[str, Any]], round_index: int) -> int:
    """How many rows were committed in ``round_index`` or later (a run's own evaluations)."""
    return sum(1 for r in rows_ if r["round"] >= round_index)


def committed(rows_: Iterable[Mapping[str, Any]], round_index: int) -> list[dict[str, Any]]:
    """Rows as a committed history holds them: with their round."""
    return [{**r, "round": round_index} for r in rows_]


# ---------------------------------------------------------------------- tables
def to_table(rows_: Iterable[Mapping[str, Any]], round_index: int | None = None):
    """Rows as a history table (``round_index`` for rows without a round of their own)."""
    import pyarrow as pa

    cols: dict[str, list] = {f.name: [] for f in schema()}
    for r in rows_:
        metrics = dict(r.get("metrics") or {})
        fidelity = r.get("fidelity") or {}
        values = {
            "id": r["id"],
            "arch_id": r["arch_id"],
            "arch": json.dumps(r["arch"], sort_keys=True),
            "genotype": r["genotype"],
            "parent_id": r.get("parent_id"),
            "round": r["round"] if r.get("round") is not None else round_index,
            "status": r["status"],
            "error": r.get("error"),
            "cost": r.get("cost"),
            "fidelity": json.dumps(fidelity, sort_keys=True),
            "epochs": fidelity.get("epochs"),
        }
        for name in METRIC_COLUMNS:
            values[name] = metrics.pop(name, None)
        values["metrics"] = json.dumps(metrics, sort_keys=True)
        for name, col in cols.items():
            col.append(values[name])
    return pa.table(cols, schema=schema())


def rows(table) -> list[dict[str, Any]]:
    """A history table as rows: the metric columns and the ``metrics`` JSON folded into one ``metrics`` dict."""
    out = []
    for r in table.to_pylist():
        metrics = json.loads(r.pop("metrics") or "{}")
        for name in METRIC_COLUMNS:
            v = r.pop(name, None)
            if v is not None:
                metrics[name] = v
        out.append(
            {
                **r,
                "arch": json.loads(r["arch"]),
                "metrics": metrics,
                "fidelity": json.loads(r["fidelity"]) if r["fidelity"] else None,
            }
        )
    return out


# ---------------------------------------------------------------------- metric values and ranking
def value(r: Mapping[str, Any], metric: str) -> float | None:
    """The finite value of ``metric`` that a successful row (or result) reports, else None: a success without a
    usable objective counts as failed for the search."""
    status = r.status if isinstance(r, Result) else r.get("status")
    metrics = r.metrics if isinstance(r, Result) else (r.get("metrics") or {})
    v = metrics.get(metric)
    return float(v) if status == "ok" and is_finite(v) else None


def sign(mode: str) -> int:
    """+1 where higher is better (``max``), -1 where lower is (``min``)."""
    if mode not in ("max", "min"):
        raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
    return 1 if mode == "max" else -1


def better(a: float, b: float | None, mode: str) -> bool:
    """Whether ``a`` beats ``b`` (None: nothing yet) under ``mode``."""
    return b is None or sign(mode) * a > sign(mode) * b


def ranked(rows_: Sequence[Mapping[str, Any]], metric: str, mode: str) -> list[Mapping[str, Any]]:
    """Successful rows with a value for ``metric``: the most epochs first (a multi-fidelity scheduler's top
    rung), then the best on the metric."""
    s = sign(mode)
    scored = [r for r in rows_ if value(r, metric) is not None]
    return sorted(scored, key=lambda r: (r.get("epochs") or 0, s * r["metrics"][metric]), reverse=True)


def best_so_far(values: Sequence[float | None], mode: str) -> list[float | None]:
    """The incumbent after each value (None until the first)."""
    out, best = [], None
    for v in values:
        if v is not None and better(v, best, mode):
            best = v
        out.append(best)
    return out
