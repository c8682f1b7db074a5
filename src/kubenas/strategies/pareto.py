"""Shared pieces of the multi-objective strategies: objectives with directions, hard constraints, Deb's
constrained domination, non-dominated sorting and crowding distance (Deb et al., 2002). Not a strategy."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from kubenas import history
from kubenas.core import is_finite, is_number

DEFAULT_OBJECTIVES = ({"metric": "val_acc", "mode": "max"}, {"metric": "params", "mode": "min"})


def parse_objectives(objectives: Sequence[Mapping[str, Any]] | None, who: str) -> list[dict[str, str]]:
    objectives = list(objectives or DEFAULT_OBJECTIVES)
    if len(objectives) < 2:
        raise ValueError(
            f"{who}: objectives needs at least two entries, e.g. "
            "[{'metric': 'val_acc', 'mode': 'max'}, {'metric': 'params', 'mode': 'min'}]"
        )
    out = []
    for i, obj in enumerate(objectives):
        if not isinstance(obj, Mapping) or set(obj) - {"metric", "mode"} or "metric" not in obj:
            raise ValueError(f"{who}: objectives[{i}] must be {{'metric': NAME, 'mode': 'max'|'min'}}, got {obj!r}")
        mode = obj.get("mode", "max")
        if mode not in ("max", "min"):
            raise ValueError(f"{who}: objectives[{i}].mode must be 'max' or 'min', got {mode!r}")
        out.append({"metric": str(obj["metric"]), "mode": mode})
    return out


def parse_constraints(constraints: Mapping[str, Any] | None, who: str) -> dict[str, dict[str, float]]:
    out = {}
    for metric, bound in (constraints or {}).items():
        if not isinstance(bound, Mapping) or not bound or set(bound) - {"max", "min"}:
            raise ValueError(f"{who}: constraints.{metric} must be {{'max': X}} and/or {{'min': X}}, got {bound!r}")
        for k, v in bound.items():
            if not is_number(v):
                raise ValueError(f"{who}: constraints.{metric}.{k} must be a number, got {v!r}")
        out[str(metric)] = {k: float(v) for k, v in bound.items()}
    return out


def objective_values(metrics: Mapping[str, Any], objectives: list[dict[str, str]]) -> list[float] | None:
    """The objectives turned so that higher is better, or None when one is missing or not finite."""
    values = []
    for obj in objectives:
        v = metrics.get(obj["metric"])
        if not is_finite(v):
            return None
        values.append(history.sign(obj["mode"]) * float(v))
    return values


def violation(metrics: Mapping[str, Any], constraints: dict[str, dict[str, float]]) -> float:
    """How far the metrics are outside the constraints, relative to each bound; 0 when feasible. A constrained
    metric that is missing counts as infinitely violated."""
    total = 0.0
    for metric, bound in constraints.items():
        v = metrics.get(metric)
        if not is_finite(v):
            return math.inf
        if "max" in bound and v > bound["max"]:
            total += (v - bound["max"]) / max(abs(bound["max"]), 1e-12)
        if "min" in bound and v < bound["min"]:
            total += (bound["min"] - v) / max(abs(bound["min"]), 1e-12)
    return total


def dominates(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Deb's constrained domination over records with ``objectives`` (higher is better) and ``violation``."""
    if a["violation"] != b["violation"]:
        return a["violation"] < b["violation"]
    x, y = a["objectives"], b["objectives"]
    return all(p >= q for p, q in zip(x, y)) and any(p > q for p, q in zip(x, y))


def fronts(records: Sequence[Mapping[str, Any]]) -> list[list[int]]:
    """Indices of ``records`` by non-dominated front, best front first."""
    n = len(records)
    dominated_by = [[] for _ in range(n)]
    count = [0] * n
    for i in range(n):
        for j in range(i + 1, n):
            if dominates(records[i], records[j]):
                dominated_by[i].append(j)
                count[j] += 1
            elif dominates(records[j], records[i]):
                dominated_by[j].append(i)
                count[i] += 1
    out, current = [], [i for i in range(n) if count[i] == 0]
    while current:
        out.append(current)
        nxt = []
        for i in current:
            for j in dominated_by[i]:
                count[j] -= 1
                if count[j] == 0:
                    nxt.append(j)
        current = nxt
    return out


def crowding(records: Sequence[Mapping[str, Any]], front: Sequence[int]) -> dict[int, float]:
    """Crowding distance of each index of one front; the extremes of every objective get infinity."""
    dist = {i: 0.0 for i in front}
    if len(front) <= 2:
        return {i: math.inf for i in front}
    values = np.array([records[i]["objectives"] for i in front])
    for k in range(values.shape[1]):
        order = np.argsort(values[:, k], kind="stable")
        span = values[order[-1], k] - values[order[0], k]
        dist[front[order[0]]] = dist[front[order[-1]]] = math.inf
        if span <= 0:
            continue
        for pos in range(1, len(front) - 1):
            dist[front[order[pos]]] += (values[order[pos + 1], k] - values[order[pos - 1], k]) / span
    return dist


def rank_and_crowding(records: Sequence[Mapping[str, Any]]) -> tuple[list[int], list[float]]:
    rank, crowd = [0] * len(records), [0.0] * len(records)
    for r, front in enumerate(fronts(records)):
        for i, d in crowding(records, front).items():
            rank[i], crowd[i] = r, d
    return rank, crowd


def pareto_front(records: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The feasible non-dominated records (all of the first front when nothing is feasible)."""
    if not records:
        return []
    first = [records[i] for i in fronts(records)[0]]
    feasible = [r for r in first if r["violation"] == 0]
    return feasible or first


def hypervolume_2d(points: Sequence[Sequence[float]], reference: Sequence[float]) -> float:
    """Area dominated by ``points`` (higher is better in both coordinates) above ``reference``."""
    pts = sorted((p for p in points if p[0] > reference[0] and p[1] > reference[1]), key=lambda p: -p[0])
    area, best_y = 0.0, reference[1]
    for x, y in pts:
        if y > best_y:
            area += (x - reference[0]) * (y - best_y)
            best_y = y
    return area


def knee_index(points: Sequence[Sequence[float]]) -> int:
    """The knee of a front (higher is better in every column): with two objectives, the point farthest beyond
    the line joining the two extremes, towards the ideal corner (where a small loss in one objective buys the
    most of the other); with more, the point nearest the ideal one. Objectives are scaled to [0, 1] first."""
    pts = np.asarray(points, dtype=float)
    if len(pts) <= 2:
        return int(np.argmax(pts[:, 0]))
    lo, hi = pts.min(0), pts.max(0)
    norm = (pts - lo) / np.where(hi > lo, hi - lo, 1.0)
    if pts.shape[1] == 2:
        a, b = norm[int(np.argmax(norm[:, 0]))], norm[int(np.argmax(norm[:, 1]))]
        direction = b - a
        if np.linalg.norm(direction) > 0:
            normal = np.array([-direction[1], direction[0]])
            if normal @ (np.ones(2) - a) < 0:  # point the normal at the ideal corner
                normal = -normal
            return int(np.argmax((norm - a) @ normal))
    return int(np.argmin(np.linalg.norm(1.0 - norm, axis=1)))


PICK_RULES = ("best", "knee")


class MultiObjective:
    """Mixin for multi-objective strategies (put it before ``Strategy`` in the bases).

    Every history record keeps its ``objectives`` (turned so that higher is better) and its constraint
    ``violation``. ``best()`` returns the Pareto front of feasible results, best first on the first objective:
    a result that violates a hard constraint is never returned while a feasible one exists, and never as the
    only answer when it is infeasible (then the front is empty).
    """

    multi_objective = True
    objectives: list[dict[str, str]]
    constraints: dict[str, dict[str, float]]

    def _init_objectives(self, objectives, constraints) -> None:
        self.objectives = parse_objectives(objectives, self.name)
        self.constraints = parse_constraints(constraints, self.name)
        self.metric, self.mode = self.objectives[0]["metric"], self.objectives[0]["mode"]

    def _annotate(self, res, record, info):
        values = objective_values(res.metrics, self.objectives) if res.ok else None
        if values is None:
            return {"status": "failed", "value": None, "objectives": None, "violation": None}
        return {"objectives": values, "violation": violation(res.metrics, self.constraints)}

    def _scored(self) -> list[dict[str, Any]]:
        return [h for h in self._history if h.get("objectives") is not None]

    def best(self):
        front = [r for r in pareto_front(self._scored()) if r["violation"] == 0]
        front = sorted(front, key=lambda r: r["objectives"][0], reverse=True)
        return [
            {"id": r["id"], "arch": r["arch"], "value": r["value"], "objectives": self._raw(r["objectives"])}
            for r in front
        ]

    def pick(self, rule: str = "best") -> dict[str, Any] | None:
        """One member of ``best()``'s front: ``best`` on the first objective (under the constraints), or the
        ``knee``; None when no feasible result exists."""
        if rule not in PICK_RULES:
            raise ValueError(f"pick: rule must be one of {', '.join(PICK_RULES)}, got {rule!r}")
        front = self.best()
        if not front or rule == "best":
            return front[0] if front else None
        utility = [[m["objectives"][o["metric"]] * history.sign(o["mode"]) for o in self.objectives] for m in front]
        return front[knee_index(utility)]

    def _raw(self, values: list[float]) -> dict[str, float]:
        return {o["metric"]: history.sign(o["mode"]) * v for o, v in zip(self.objectives, values)}

    def _objective_state(self) -> dict[str, Any]:
        return {"objectives": self.objectives, "constraints": self.constraints}

    def _load_objective_state(self, state: dict[str, Any]) -> None:
        self._init_objectives(state["objectives"], state["constraints"])
