"""The ask/tell strategy interface, with state as plain JSON.

A pipeline runs each round in a fresh process: ``ask`` in one, training elsewhere, ``tell`` in another. So a
strategy keeps everything it needs in ``state_dict()``, which is plain JSON (RNG state included), and
``load_state_dict`` restores it exactly: the asks after a save and load are the asks it would have made.

A subclass writes one method, ``_propose``, which returns the next architecture to try, and optionally
``_observe`` (learn from one result) and ``_extra_state``/``_load_extra_state``. The base class handles ids,
pending candidates, duplicates, failures, ``best()`` and serialisation.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar

import numpy as np

from kubenas import history as hist  # (its name is also a parameter here)
from kubenas.arch import Arch, arch_id
from kubenas.core import Candidate, Result, is_int
from kubenas.spaces.base import SearchSpace

STATE_VERSION = 1
# Spaces up to this size are enumerated once to find unseen architectures when random proposals keep
# colliding with evaluated ones, so that a small space is searched to exhaustion instead of stalling.
_ENUMERATE_LIMIT = 200_000
_PROPOSAL_TRIES = 100


def rng_state(rng: np.random.Generator) -> dict[str, Any]:
    """A numpy Generator's state as JSON; 128-bit integers become strings so that any JSON reader keeps them."""
    return _ints_to_str(rng.bit_generator.state)


def rng_from_state(state: Mapping[str, Any]) -> np.random.Generator:
    state = _str_to_ints(state)
    bit_generator = getattr(np.random, state["bit_generator"])()
    bit_generator.state = state
    return np.random.Generator(bit_generator)


def _ints_to_str(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _ints_to_str(v) for k, v in obj.items()}
    if isinstance(obj, (int, np.integer)) and not isinstance(obj, bool):
        return str(int(obj))
    return obj


def _str_to_ints(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _str_to_ints(v) for k, v in obj.items()}
    if isinstance(obj, str) and obj.lstrip("-").isdigit():
        return int(obj)
    return obj


def check_ask(n: Any) -> None:
    if not is_int(n) or n < 1:
        raise ValueError(f"ask(n): n must be a positive integer, got {n!r}")


class Strategy:
    """Base of every ask/tell strategy.

    Args:
        space: the search space.
        seed: seeds the strategy's RNG; the same seed and the same results always give the same asks.
        metric: the result metric to optimise.
        mode: ``"max"`` or ``"min"``.
    """

    name: ClassVar[str] = "base"
    multi_objective: ClassVar[bool] = False  # best() is a Pareto front, and pick() chooses from it

    def __init__(self, space: SearchSpace, *, seed: int = 0, metric: str = "val_acc", mode: str = "max"):
        hist.sign(mode)  # checks it
        if not is_int(seed):
            raise ValueError(f"seed must be an integer, got {seed!r}")
        self.space, self.metric, self.mode, self.seed = space, metric, mode, seed
        self.rng = np.random.default_rng(seed)
        self._counter = 0
        self._pending: dict[str, dict[str, Any]] = {}
        self._history: list[dict[str, Any]] = []
        self._seen: set[str] = set()
        self._all_archs: list[Arch] | None = None

    # ----------------------------------------------------------------- for subclasses
    def _propose(self) -> tuple[Arch, str, str | None] | tuple[Arch, str, str | None, dict] | None:
        """The next (architecture, tag, parent candidate id), or None when nothing new is left. A fourth item,
        a dict, is kept with the pending candidate (``fidelity`` there becomes the candidate's fidelity)."""
        raise NotImplementedError

    def _observe(self, record: dict[str, Any], tag: str) -> None:
        """Learn from one told result. ``record`` has id, arch, status and value (None when failed)."""

    def _annotate(self, res: Result, record: dict[str, Any], info: dict[str, Any]) -> dict[str, Any]:
        """Extra fields for a history record, from the result and the pending entry ``info`` it answers
        (multi-objective strategies keep every objective; schedulers the fidelity)."""
        return {}

    def _extra_state(self) -> dict[str, Any]:
        return {}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        pass

    def utility(self, value: float) -> float:
        """The metric turned so that higher is better."""
        return hist.sign(self.mode) * value

    def _unique(self, propose: Callable[[], Arch]) -> Arch | None:
        """An architecture not evaluated or pending yet: from ``propose`` if it finds one, else uniformly among
        the unseen of a small space; None when every architecture has been seen."""
        for _ in range(_PROPOSAL_TRIES):
            arch = propose()
            if arch_id(arch) not in self._seen:
                return arch
        return self._random_unseen()

    def _random_unseen(self) -> Arch | None:
        size = self.space.size()
        if size is not None and len(self._seen) >= size:
            return None
        if size is not None and size <= _ENUMERATE_LIMIT:
            if self._all_archs is None:
                self._all_archs = list(self.space.enumerate())
            unseen = [a for a in self._all_archs if arch_id(a) not in self._seen]
            return unseen[int(self.rng.integers(len(unseen)))] if unseen else None
        for _ in range(_PROPOSAL_TRIES):
            arch = self.space.sample(self.rng)
            if arch_id(arch) not in self._seen:
                return arch
        return None

    def _pending_tags(self) -> list[str]:
        return [info["tag"] for info in self._pending.values()]

    # ----------------------------------------------------------------- the interface
    def ask(self, n: int = 1) -> list[Candidate]:
        """Up to ``n`` new candidates; fewer only when the space has no unseen architecture left."""
        check_ask(n)
        out = []
        for _ in range(n):
            proposal = self._propose()
            if proposal is None:
                break
            out.append(self.accept(proposal))
        return out

    # ----------------------------------------------------------------- for wrappers (the zero-cost pre-filter)
    def proposals(self, k: int) -> list[tuple]:
        """Up to ``k`` different proposals this strategy would make next, none of them accepted: a wrapper picks
        one and passes it to :meth:`accept` instead of calling :meth:`ask`."""
        if k == 1:
            proposal = self._propose()
            return [] if proposal is None else [proposal]
        pool: dict[str, tuple] = {}
        for _ in range(k):
            proposal = self._propose()
            if proposal is None:
                break
            pool.setdefault(arch_id(proposal[0]), proposal)
            self._seen.add(arch_id(proposal[0]))  # so the next draw of this pool is a different architecture
        self._seen.difference_update(pool)
        return list(pool.values())

    def accept(self, proposal: tuple) -> Candidate:
        """Make one of :meth:`proposals` a pending candidate with the next id."""
        arch, tag, parent_id, *extra = proposal
        aid = arch_id(arch)
        cid = f"{self._counter:05d}-{aid[:8]}"
        self._counter += 1
        self._pending[cid] = {"arch": arch, "tag": tag, "parent_id": parent_id, **(extra[0] if extra else {})}
        self._seen.add(aid)
        return Candidate(cid, arch, parent_id, self._pending[cid].get("fidelity"))

    def tell(self, results: Iterable[Result | Mapping[str, Any]]) -> None:
        """Record results of asked candidates. Failed results are recorded and never raise."""
        for res in results:
            res = res if isinstance(res, Result) else Result.from_dict(res)
            info = self._pending.pop(res.candidate_id, None)
            if info is None:
                told = any(h["id"] == res.candidate_id for h in self._history)
                why = "was already told" if told else "was never asked (or belongs to another search)"
                raise ValueError(f"tell: candidate {res.candidate_id!r} {why}")
            value = self._value(res)
            record = {
                "id": res.candidate_id,
                "arch": info["arch"],
                "status": "ok" if value is not None else "failed",
                "value": value,
            }
            record.update(self._annotate(res, record, info))
            self._history.append(record)
            self._observe(record, info["tag"])

    def _value(self, res: Result) -> float | None:
        return hist.value(res, self.metric)

    def best(self) -> dict[str, Any] | None:
        """The best told result so far: ``{"id", "arch", "value"}``, or None before any success."""
        ok = [h for h in self._history if h["value"] is not None]
        if not ok:
            return None
        top = max(ok, key=lambda h: self.utility(h["value"]))
        return {"id": top["id"], "arch": top["arch"], "value": top["value"]}

    def pick(self, rule: str = "best") -> dict[str, Any] | None:
        """The one result to export: :meth:`best` (a multi-objective strategy picks from its front by ``rule``)."""
        if rule != "best":
            raise ValueError(f"pick: {self.name} has one objective; the rule must be 'best', got {rule!r}")
        return self.best()

    @property
    def history(self) -> list[dict[str, Any]]:
        return list(self._history)

    @property
    def pending(self) -> list[Candidate]:
        return [
            Candidate(cid, info["arch"], info["parent_id"], info.get("fidelity")) for cid, info in self._pending.items()
        ]

    def state_dict(self, history: bool = True) -> dict[str, Any]:
        """The strategy's state as plain JSON. With ``history=False`` the told results are left out, for a caller
        that keeps them anyway (the pipeline's Parquet history) and passes them back to :meth:`load_state_dict`:
        the state then holds only what the algorithm itself carries (its RNG, population, policy, ...)."""
        state = {
            "strategy": self.name,
            "version": STATE_VERSION,
            "space": self.space.spec(),
            "metric": self.metric,
            "mode": self.mode,
            "seed": self.seed,
            "rng": rng_state(self.rng),
            "counter": self._counter,
            "pending": self._pending,
            "extra": self._extra_state(),
        }
        if history:
            state["history"] = self._history
        return state

    def load_state_dict(self, state: Mapping[str, Any], history: Iterable[Mapping[str, Any]] | None = None) -> None:
        """Restore a state. A state saved with ``history=False`` needs ``history``: the told results, in the
        order they were told, as result rows (``id``, ``arch``, ``parent_id``, ``status``, ``metrics``, ``cost``,
        ``error``, ``fidelity``), as the search loop and the pipeline's history keep them."""
        if state.get("strategy") != self.name:
            raise ValueError(f"state belongs to strategy {state.get('strategy')!r}, not {self.name!r}")
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"state version {state.get('version')!r} is not supported (expected {STATE_VERSION})")
        if state["space"] != json.loads(json.dumps(self.space.spec())):
            raise ValueError(
                f"state was saved for space {state['space']}, but this strategy searches {self.space.spec()}"
            )
        self.metric, self.mode, self.seed = state["metric"], state["mode"], state["seed"]
        self.rng = rng_from_state(state["rng"])
        self._counter = int(state["counter"])
        self._pending = {k: dict(v) for k, v in state["pending"].items()}
        self._load_extra_state(dict(state.get("extra") or {}))
        if "history" in state:
            self._history = [dict(h) for h in state["history"]]
        elif history is None:
            raise ValueError(
                "this state was saved without its history (state_dict(history=False)): pass the told "
                "results to load_state_dict(state, history=...)"
            )
        else:
            self._history = [self._record(row) for row in history]
        self._seen = {arch_id(h["arch"]) for h in self._history} | {arch_id(p["arch"]) for p in self._pending.values()}

    def _record(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """The history record :meth:`tell` made of a result, rebuilt from its result row."""
        res = hist.result(row)
        value = self._value(res)
        record = {
            "id": res.candidate_id,
            "arch": dict(row["arch"]),
            "status": "ok" if value is not None else "failed",
            "value": value,
        }
        record.update(self._annotate(res, record, self._told_info(row)))
        return record

    def _told_info(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """The pending entry a told result answered, as far as :meth:`_annotate` needs it, from its result row."""
        return {"arch": row["arch"], "tag": None, "parent_id": row.get("parent_id"), "fidelity": row.get("fidelity")}
