"""Successive halving and Hyperband as a scheduler that wraps any single-objective strategy.

The wrapped (``base``) strategy proposes architectures; the scheduler decides at which fidelity each one is
trained, and which ones earn more. Fidelity levels ("rungs") are ``min_resource * eta**k`` up to
``max_resource`` (always included), over one fidelity field, ``epochs`` by default.

Promotions are asynchronous, as in ASHA (Li et al., 2020) and Syne Tune's promotion scheduler: whenever a
slot is free, the scheduler first looks, from the highest rung down, for a result in the top ``1/eta`` of its
rung that has not been promoted yet, and asks for it again at the next rung (a new candidate, same
architecture, ``parent_id`` the lower-rung candidate). Only when nothing can be promoted does it ask the
base strategy for a new architecture. Nothing ever waits for a rung to fill, so the pipeline's rounds stay
full: a round's candidates are promoted in later rounds.

``brackets`` > 1 gives asynchronous Hyperband: a new architecture starts at rung ``s`` of bracket ``s`` (drawn
with probability proportional to the number of configurations synchronous Hyperband starts in that bracket),
and promotions compare results within a bracket only. ``successive_halving`` is the one-bracket case.

The base strategy is told each architecture's result at the rung where it started, so a model-based base
(``bananas``: BOHB-like) learns from cheap evaluations and the scheduler spends the rest where they count.
``best()`` is the best result at the highest rung reached by any architecture.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from kubenas.core import is_int, is_number
from kubenas.strategies.base import Result, Strategy

RESOURCES = ("epochs", "data_fraction", "width_mult", "resolution")
_INTEGER_RESOURCES = ("epochs", "resolution")


def rungs(min_resource: float, max_resource: float, eta: float, resource: str) -> list[float]:
    """The fidelity levels: ``min_resource * eta**k`` below ``max_resource``, then ``max_resource``."""
    levels, value = [], float(min_resource)
    while value < max_resource - 1e-9:
        level = int(round(value)) if resource in _INTEGER_RESOURCES else round(value, 6)
        if not levels or level > levels[-1]:
            levels.append(level)
        value *= eta
    top = int(max_resource) if resource in _INTEGER_RESOURCES else float(max_resource)
    if not levels or top > levels[-1]:
        levels.append(top)
    return levels


class Hyperband(Strategy):
    """Asynchronous Hyperband around a base strategy: brackets of successive halving (by default one per rung)."""

    name = "hyperband"
    _one_bracket = False

    def __init__(
        self,
        space,
        *,
        base: str = "random",
        base_options: Mapping[str, Any] | None = None,
        resource: str = "epochs",
        min_resource: float = 1,
        max_resource: float = 9,
        eta: float = 3,
        brackets: int | None = None,
        **kwargs: Any,
    ):
        super().__init__(space, **kwargs)
        who = self.name
        if resource not in RESOURCES:
            raise ValueError(f"{who}: resource must be one of {', '.join(RESOURCES)}, got {resource!r}")
        for label, value in (("min_resource", min_resource), ("max_resource", max_resource)):
            if not is_number(value) or value <= 0:
                raise ValueError(f"{who}: {label} must be a positive number, got {value!r}")
            if resource in _INTEGER_RESOURCES and value != int(value):
                raise ValueError(f"{who}: {label} must be a whole number of {resource}, got {value!r}")
        if resource == "data_fraction" and max_resource > 1:
            raise ValueError(f"{who}: max_resource is a data fraction, at most 1, got {max_resource!r}")
        if min_resource > max_resource:
            raise ValueError(f"{who}: min_resource ({min_resource}) must not exceed max_resource ({max_resource})")
        if not is_number(eta) or eta <= 1:
            raise ValueError(f"{who}: eta must be a number > 1 (keep the top 1/eta of each rung), got {eta!r}")
        self.resource, self.eta = resource, float(eta)
        self.min_resource, self.max_resource = min_resource, max_resource
        self.rungs = rungs(min_resource, max_resource, eta, resource)
        if self._one_bracket:
            if brackets not in (None, 1):
                raise ValueError(f"{who}: successive halving has one bracket; use 'hyperband' for more")
            brackets = 1
        elif brackets is None:
            brackets = len(self.rungs)
        if not is_int(brackets) or not 1 <= brackets <= len(self.rungs):
            raise ValueError(
                f"{who}: brackets must be an integer in 1..{len(self.rungs)} (the number of rungs "
                f"{self.rungs}), got {brackets!r}"
            )
        self.brackets = brackets
        self.base_name, self.base_options = base, dict(base_options or {})
        self.inner = self._make_inner(space)
        self._inner_state: dict[str, Any] | None = None  # a loaded base state, waiting for the history
        self._told: dict[str, tuple[str, int]] = {}
        # trial (the base strategy's candidate id) -> arch, bracket, {rung: value or None}, rungs promoted from
        self._trials: dict[str, dict[str, Any]] = {}

    def _make_inner(self, space) -> Strategy:
        from kubenas.strategies import make_strategy  # the registry imports this module

        if self.base_name in ("hyperband", "successive_halving"):
            raise ValueError(f"{self.name}: base must be a search strategy, not another scheduler")
        if not isinstance(self.base_name, str):
            raise ValueError(f"{self.name}: base must be a strategy name, got {self.base_name!r}")
        reserved = {"seed", "metric", "mode"} & set(self.base_options)
        if reserved:
            raise ValueError(f"{self.name}: set {sorted(reserved)} on the scheduler, not in base_options")
        try:
            inner = make_strategy(
                self.base_name, space, seed=self.seed, metric=self.metric, mode=self.mode, **self.base_options
            )
        except ValueError as exc:
            raise ValueError(f"{self.name}: base: {exc}") from None
        if inner.multi_objective:
            raise ValueError(
                f"{self.name}: base {self.base_name!r} is multi-objective; the scheduler ranks by one "
                f"metric ({self.metric!r}), so wrap a single-objective strategy"
            )
        return inner

    # ----------------------------------------------------------------- fidelity
    def fidelity(self, rung: int) -> dict[str, Any]:
        """The fidelity override of a rung, e.g. ``{"epochs": 3}``."""
        return {self.resource: self.rungs[rung]}

    @property
    def max_fidelity(self) -> dict[str, Any]:
        return self.fidelity(len(self.rungs) - 1)

    # ----------------------------------------------------------------- asking
    def _propose(self):
        proposal = self._promotion() or self._new_trial()
        if proposal is None:
            return None
        trial, rung, parent_id = proposal
        tag = "promote" if rung > self._trials[trial]["bracket"] else "new"
        return (
            self._trials[trial]["arch"],
            tag,
            parent_id,
            {"fidelity": self.fidelity(rung), "trial": trial, "rung": rung},
        )

    def _promotion(self) -> tuple[str, int, str] | None:
        """The best unpromoted result in the top 1/eta of its rung and bracket, from the highest rung down."""
        for rung in range(len(self.rungs) - 2, -1, -1):
            for bracket in range(min(rung, self.brackets - 1) + 1):
                done = [
                    (self.utility(t["results"][str(rung)]), trial)
                    for trial, t in self._trials.items()
                    if t["bracket"] == bracket and t["results"].get(str(rung)) is not None
                ]
                done.sort(key=lambda d: (-d[0], d[1]))
                for _, trial in done[: int(len(done) // self.eta)]:
                    if rung not in self._trials[trial]["promoted"]:
                        self._trials[trial]["promoted"].append(rung)
                        return trial, rung + 1, self._trials[trial]["ids"][str(rung)]
        return None

    def _new_trial(self) -> tuple[str, int, str | None] | None:
        cands = self.inner.ask(1)
        if not cands:
            return None
        cand = cands[0]
        bracket = self._draw_bracket()
        parent = self._trials.get(cand.parent_id or "")
        parent_id = next(iter(parent["ids"].values()), None) if parent else None
        self._trials[cand.id] = {"arch": cand.arch, "bracket": bracket, "results": {}, "promoted": [], "ids": {}}
        return cand.id, bracket, parent_id

    def _draw_bracket(self) -> int:
        if self.brackets == 1:
            return 0
        top = len(self.rungs) - 1
        # synchronous Hyperband starts about eta**(top - s) / (top - s + 1) configurations in bracket s
        weights = [self.eta ** (top - s) / (top - s + 1) for s in range(self.brackets)]
        return int(self.rng.choice(self.brackets, p=[w / sum(weights) for w in weights]))

    # ----------------------------------------------------------------- telling
    def tell(self, results: Iterable[Result | Mapping[str, Any]]) -> None:
        results = [r if isinstance(r, Result) else Result.from_dict(r) for r in results]
        first_rung = []
        for res in results:
            info = self._pending.get(res.candidate_id)
            if info is not None:
                self._trials[info["trial"]]["ids"][str(info["rung"])] = res.candidate_id
                if info["tag"] == "new":
                    first_rung.append(Result(info["trial"], res.status, res.metrics, res.cost, res.error))
            super().tell([res])
        if first_rung:
            self.inner.tell(first_rung)

    def _annotate(self, res, record, info):
        return {"trial": info["trial"], "rung": info["rung"], "fidelity": info["fidelity"]}

    def _told_info(self, row):
        if row["id"] not in self._told:  # built from the trials when a state is loaded
            raise ValueError(f"{self.name}: candidate {row['id']!r} belongs to no trial of this state")
        trial, rung = self._told[row["id"]]
        return {"trial": trial, "rung": rung, "fidelity": self.fidelity(rung)}

    def _observe(self, record, tag):
        self._trials[record["trial"]]["results"][str(record["rung"])] = record["value"]

    def best(self) -> dict[str, Any] | None:
        ok = [h for h in self._history if h["value"] is not None]
        if not ok:
            return None
        highest = max(h["rung"] for h in ok)
        top = max((h for h in ok if h["rung"] == highest), key=lambda h: self.utility(h["value"]))
        return {"id": top["id"], "arch": top["arch"], "value": top["value"], "fidelity": top["fidelity"]}

    # ----------------------------------------------------------------- state
    def _extra_state(self):
        return {
            "base": self.base_name,
            "base_options": self.base_options,
            "resource": self.resource,
            "min_resource": self.min_resource,
            "max_resource": self.max_resource,
            "eta": self.eta,
            "brackets": self.brackets,
            "trials": self._trials,
            # the base strategy's told results are each trial's first evaluation: rebuilt from this history
            "inner": self.inner.state_dict(history=False),
        }

    def _load_extra_state(self, state):
        self.base_name, self.base_options = state["base"], dict(state["base_options"])
        self.resource, self.eta, self.brackets = state["resource"], state["eta"], state["brackets"]
        self.min_resource, self.max_resource = state["min_resource"], state["max_resource"]
        self.rungs = rungs(self.min_resource, self.max_resource, self.eta, self.resource)
        inner = self._make_inner(self.space)
        rewrap = getattr(self.inner, "around", None)  # a pre-filter in front of the base strategy stays there
        self.inner = rewrap(inner) if rewrap is not None else inner
        self._trials = {
            k: {**v, "results": dict(v["results"]), "promoted": list(v["promoted"]), "ids": dict(v["ids"])}
            for k, v in state["trials"].items()
        }
        # which trial and rung each told candidate was: the trials record the candidate of each rung's evaluation
        self._told = {cid: (trial, int(rung)) for trial, t in self._trials.items() for rung, cid in t["ids"].items()}
        self._inner_state = state["inner"]
        if "history" in self._inner_state:  # saved by kubenas 0.1, with its history
            self.inner.load_state_dict(self._inner_state)
            self._inner_state = None

    def load_state_dict(self, state, history=None) -> None:
        super().load_state_dict(state, history)
        if self._inner_state is not None:  # the base strategy, once this scheduler's history is back
            self.inner.load_state_dict(self._inner_state, history=self._inner_rows())
            self._inner_state = None

    def _inner_rows(self) -> list[dict[str, Any]]:
        """What the base strategy was told, in order: each trial's first evaluation, under the trial's id."""
        rows = []
        for h in self._history:
            if h["rung"] == min(int(r) for r in self._trials[h["trial"]]["ids"]):
                rows.append(
                    {
                        "id": h["trial"],
                        "arch": h["arch"],
                        "status": h["status"],
                        "cost": 0.0,
                        "error": None,
                        "metrics": {} if h["value"] is None else {self.metric: h["value"]},
                    }
                )
        return rows


class SuccessiveHalving(Hyperband):
    """Asynchronous successive halving (ASHA): Hyperband with a single bracket."""

    name = "successive_halving"
    _one_bracket = True
