"""The search-space interface, written once over declarative categorical decisions.

A space is an ordered list of :class:`Decision` objects. A decision may be conditional: it is active only when
an earlier decision (its parent) takes one of the listed values, as a layer beyond the chosen depth has no
operation. An architecture is the dict of the active decisions' values, nothing more.

From that list alone this module derives sampling, mutation, neighbours, one-hot encoding, validation,
counting and enumeration, so every discrete strategy works on every space, including a user's ``choice``
space. A subclass adds what only it knows: constraints beyond the decisions (a cell must connect its input to
its output), a genotype string, path encodings and ``build``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from kubenas.arch import Arch

# Rejection sampling retries. Constraints in the built-in spaces reject a tiny fraction of draws, so hitting
# this bound means the space is (almost) empty, which is reported rather than looped on forever.
_MAX_TRIES = 1000


class InvalidArchitecture(ValueError):
    """An architecture that the space does not contain. The message names every bad decision."""


@dataclass(frozen=True)
class Decision:
    """One categorical decision.

    Attributes:
        name: the key in the architecture dict.
        choices: the allowed JSON values, in a fixed order (the order defines encodings).
        parent: the decision this one depends on, or None when always active.
        when: the parent's values for which this decision is active.
    """

    name: str
    choices: tuple
    parent: str | None = None
    when: tuple = ()

    def is_active(self, arch: Arch) -> bool:
        if self.parent is None:
            return True
        if self.parent not in arch:
            return False
        key = _key(arch[self.parent])
        return any(_key(v) == key for v in self.when)


@dataclass
class Panel:
    """One graph of an architecture's diagram (:mod:`kubenas.diagram` draws it): nodes left to right, and edges
    ``(from, to, label, style)`` with style ``solid``, ``dashed`` or ``dotted``."""

    title: str
    nodes: list[str]
    edges: list[tuple[int, int, str, str]] = field(default_factory=list)

    @classmethod
    def chain(cls, title: str, nodes: list[str]) -> Panel:
        """Nodes in a row, each feeding the next."""
        return cls(title, nodes, [(i, i + 1, "", "solid") for i in range(len(nodes) - 1)])

    @classmethod
    def layers(cls, arch: Arch, first: str, op_label, merge: str) -> Panel:
        """The layers of a macro architecture (decisions ``op_i`` and ``skip_i_j``) after ``first``, each fed by
        the one before (solid) and by its skip inputs (dashed), labelled ``op_label(arch["op_i"])``."""
        layers = sorted(int(m.group(1)) for k in arch if (m := re.fullmatch(r"op_(\d+)", k)))
        labels = [first] + [f"{i}\n{op_label(arch[f'op_{i}'])}" for i in layers]
        edges = [(i - 1, i, "", "solid") for i in layers]
        for key, on in arch.items():
            m = re.fullmatch(r"skip_(\d+)_(\d+)", key)
            if m and on:
                edges.append((int(m.group(2)), int(m.group(1)), "", "dashed"))
        return cls(f"{len(layers)} layers; dashed: skip connections, {merge}", labels, sorted(edges))


def _key(value: Any) -> str:
    """Type-strict identity of a JSON value: True, 1 and 1.0 are three different choices."""
    return json.dumps(value, sort_keys=True)


def as_rng(rng: np.random.Generator | int | None) -> np.random.Generator:
    """Accept a numpy Generator or an int seed."""
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(rng)


class SearchSpace:
    """Base class of every search space. Subclasses set ``name`` and ``self.decisions`` in ``__init__``."""

    name: ClassVar[str] = "base"
    decisions: list[Decision]

    # ----------------------------------------------------------------- description
    def options(self) -> dict[str, Any]:
        """The constructor keyword arguments, as JSON, so that ``make_space(**spec())`` rebuilds the space."""
        raise NotImplementedError

    def spec(self) -> dict[str, Any]:
        return {"name": self.name, "options": self.options()}

    def genotype(self, arch: Arch) -> str:
        """A one-line human-readable description of an architecture."""
        return " ".join(f"{k}={_fmt(arch[k])}" for k in self._active_names(arch))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.options().items())})"

    # ----------------------------------------------------------------- helpers for subclasses
    def _init_decisions(self, decisions: Sequence[Decision]) -> None:
        names = [d.name for d in decisions]
        if len(set(names)) != len(names):
            raise ValueError(f"{self.name}: duplicate decision names in {names}")
        seen: set[str] = set()
        for d in decisions:
            if not d.choices:
                raise ValueError(f"{self.name}: decision {d.name!r} has no choices")
            if d.parent is not None and d.parent not in seen:
                raise ValueError(f"{self.name}: decision {d.name!r} depends on {d.parent!r}, which must come earlier")
            seen.add(d.name)
        self.decisions = list(decisions)
        self._by_name = {d.name: d for d in decisions}
        self._index = {d.name: {_key(c): i for i, c in enumerate(d.choices)} for d in decisions}

    def _check(self, arch: Arch) -> str | None:
        """Constraints beyond the decisions (a subclass's hook; callers use :meth:`violation`). Return a message when
        violated. Called only on complete archs."""
        return None

    def violation(self, arch: Arch) -> str | None:
        """What a complete architecture breaks beyond its decisions (a cell whose input cannot reach its output),
        or None."""
        return self._check(arch)

    def is_valid(self, arch: Arch) -> bool:
        """Whether the space contains ``arch``: every active decision set to one of its choices, nothing else, and
        no :meth:`violation`."""
        try:
            self.validate(arch)
        except InvalidArchitecture:
            return False
        return True

    def index(self, name: str, value: Any) -> int:
        """The position of ``value`` among decision ``name``'s choices: the order of encodings and policies."""
        return self._index[name][_key(value)]

    def active(self, arch: Arch) -> list[Decision]:
        """The decisions active in ``arch``, in decision order."""
        return [d for d in self.decisions if d.is_active(arch)]

    def _active_names(self, arch: Arch) -> list[str]:
        return [d.name for d in self.active(arch)]

    def complete(self, arch: Arch, rng: np.random.Generator | None = None) -> Arch:
        """Drop inactive keys and fill newly active decisions, in decision order.

        With an rng the new values are random; without one they are the first choice, which keeps
        ``neighbors`` deterministic.
        """
        out: Arch = {}
        for d in self.decisions:
            if not d.is_active(out):
                continue
            if d.name in arch:
                out[d.name] = arch[d.name]
            elif rng is None:
                out[d.name] = d.choices[0]
            else:
                out[d.name] = d.choices[int(rng.integers(len(d.choices)))]
        return out

    # ----------------------------------------------------------------- the interface
    def sample(self, rng: np.random.Generator | int | None) -> Arch:
        """A uniformly random valid architecture (uniform over each active decision's choices)."""
        rng = as_rng(rng)
        for _ in range(_MAX_TRIES):
            arch = self.complete({}, rng)
            if self._check(arch) is None:
                return arch
        raise RuntimeError(f"{self.name}: no valid architecture found in {_MAX_TRIES} draws; is the space empty?")

    def mutate(self, arch: Arch, rng: np.random.Generator | int | None) -> Arch:
        """Change one active decision to another of its values; decisions it activates are drawn at random."""
        self.validate(arch)
        rng = as_rng(rng)
        mutable = [d for d in self.active(arch) if len(d.choices) > 1]
        if not mutable:
            raise ValueError(f"{self.name}: the space has a single architecture; nothing can be mutated")
        for _ in range(_MAX_TRIES):
            d = mutable[int(rng.integers(len(mutable)))]
            current = self._index[d.name][_key(arch[d.name])]
            j = int(rng.integers(len(d.choices) - 1))
            new = d.choices[j + (j >= current)]
            child = self.complete({**arch, d.name: new}, rng)
            if self._check(child) is None:
                return child
        raise RuntimeError(f"{self.name}: no valid mutation of {self.genotype(arch)} found in {_MAX_TRIES} tries")

    def neighbors(self, arch: Arch) -> list[Arch]:
        """Every valid architecture one decision away, in decision and choice order."""
        self.validate(arch)
        out = []
        for d in self.active(arch):
            current = _key(arch[d.name])
            for value in d.choices:
                if _key(value) == current:
                    continue
                child = self.complete({**arch, d.name: value}, None)
                if self._check(child) is None:
                    out.append(child)
        return out

    def encode(self, arch: Arch, kind: str = "onehot") -> np.ndarray:
        """A numeric vector for predictors.

        ``onehot``: one block per decision, all zeros where the decision is inactive. ``path``: the
        set of input-to-output operation paths, for cell spaces (BANANAS' path encoding).
        """
        return self.encode_many([arch], kind)[0]

    def encode_many(self, archs: Sequence[Arch], kind: str = "onehot", *, validate: bool = True) -> np.ndarray:
        """:meth:`encode` of many architectures at once, one row each (float32). ``validate=False`` skips the
        check for architectures known to be valid (enumerated, or validated before), which is most of the cost."""
        if kind not in ("onehot", "path"):
            raise ValueError(f"encoding kind must be 'onehot' or 'path', got {kind!r}")
        if validate:
            for arch in archs:
                self.validate(arch)
        if kind == "path":
            size = self.encoding_size("path")
            return (
                np.stack([self._path_encode(a) for a in archs]).astype(np.float32)
                if archs
                else np.zeros((0, size), dtype=np.float32)
            )
        out = np.zeros((len(archs), self.encoding_size("onehot")), dtype=np.float32)
        offset = 0
        for d in self.decisions:
            index = self._index[d.name]
            for row, arch in enumerate(archs):
                if d.name in arch:
                    out[row, offset + index[_key(arch[d.name])]] = 1.0
            offset += len(d.choices)
        return out

    def encoding_size(self, kind: str = "onehot") -> int:
        if kind == "onehot":
            return sum(len(d.choices) for d in self.decisions)
        if kind == "path":
            return self._path_encoding_size()
        raise ValueError(f"encoding kind must be 'onehot' or 'path', got {kind!r}")

    def _path_encode(self, arch: Arch) -> np.ndarray:
        raise ValueError(f"the {self.name!r} space has no path encoding; use kind='onehot'")

    def _path_encoding_size(self) -> int:
        raise ValueError(f"the {self.name!r} space has no path encoding; use kind='onehot'")

    def validate(self, arch: Arch) -> Arch:
        """Raise :class:`InvalidArchitecture` naming every bad decision; return the arch when valid."""
        if not isinstance(arch, dict):
            raise InvalidArchitecture(f"{self.name}: an architecture is a dict of decisions, got {type(arch).__name__}")
        problems = []
        active = self.active(arch)
        active_names = {d.name for d in active}
        for d in active:
            allowed = ", ".join(_fmt(c) for c in d.choices)
            if d.name not in arch:
                problems.append(f"missing decision {d.name!r} (allowed: {allowed})")
            elif _key(arch[d.name]) not in self._index[d.name]:
                problems.append(f"decision {d.name!r} has value {_fmt(arch[d.name])}; allowed: {allowed}")
        for k in arch:
            if k in active_names:
                continue
            d = self._by_name.get(k)
            if d is None:
                problems.append(f"unknown decision {k!r} (known: {', '.join(self._by_name)})")
            else:
                problems.append(f"extra decision {k!r}: inactive unless {d.parent!r} is one of {list(d.when)}")
        if not problems:
            message = self._check(arch)
            if message:
                problems.append(message)
        if problems:
            raise InvalidArchitecture(f"invalid {self.name} architecture: " + "; ".join(problems))
        return arch

    def size(self) -> int | None:
        """The number of architectures, or None when unbounded.

        Exact for the decision tree; subclasses with constraints (``_check``) override it.
        """
        children: dict[str | None, list[Decision]] = {}
        for d in self.decisions:
            children.setdefault(d.parent, []).append(d)

        def count(d: Decision) -> int:
            total = 0
            for value in d.choices:
                n = 1
                for c in children.get(d.name, []):
                    if any(_key(value) == _key(w) for w in c.when):
                        n *= count(c)
                total += n
            return total

        n = 1
        for root in children.get(None, []):
            n *= count(root)
        return n

    def enumerate(self) -> Iterator[Arch]:
        """Every valid architecture, in a fixed order. Only for finite spaces; lazy, so take what you need."""
        if self.size() is None:
            raise ValueError(f"the {self.name!r} space is unbounded and cannot be enumerated")

        def walk(i: int, arch: Arch) -> Iterator[Arch]:
            if i == len(self.decisions):
                if self._check(arch) is None:
                    yield dict(arch)
                return
            d = self.decisions[i]
            if not d.is_active(arch):
                yield from walk(i + 1, arch)
                return
            for value in d.choices:
                arch[d.name] = value
                yield from walk(i + 1, arch)
            del arch[d.name]

        yield from walk(0, {})

    def build(self, arch: Arch, input_shape: Sequence[int], num_classes: int, *, width_mult: float = 1.0):
        """Return a ``torch.nn.Module`` mapping a batch of ``input_shape`` inputs to ``num_classes`` logits."""
        raise NotImplementedError(f"the {self.name!r} space has no build")

    def check_data(self, input_shape: Sequence[int] | None, num_classes: int | None) -> None:
        """Raise ValueError when the space cannot fit a dataset of this input shape (without the batch dim) and
        number of classes (None: not known before the data is read). Here: any fits."""

    def diagram(self, arch: Arch) -> list[Panel]:
        """The architecture as the graph(s) it builds, for the winner's report. Here: its decisions in order, one
        node each; a space whose networks have another shape draws that."""
        names = self._active_names(arch)
        labels = ["input"] + [f"{k}\n{_fmt(arch[k])}" for k in names] + ["output"]
        return [Panel.chain(f"{len(names)} decision(s)", labels)]

    def inherit(
        self,
        model,
        arch: Arch,
        parent_arch: Arch,
        parent_state: dict,
        input_shape: Sequence[int],
        num_classes: int,
        width_mult: float = 1.0,
        rng=None,
    ) -> float:
        """Start ``model`` (built from ``arch``) from a parent's trained ``state_dict``: here every tensor whose
        name and shape match; ``chain`` maps layers and keeps network morphisms function-preserving. Returns
        the share of the model's parameters inherited."""
        from kubenas.spaces.morphisms import copy_matching

        return copy_matching(model, parent_state)

    def morph(self, arch: Arch, rng) -> Arch | None:
        """A random function-preserving child of ``arch``, or None: only spaces with network morphisms
        (``chain``) have any."""
        return None


def _fmt(value: Any) -> str:
    return json.dumps(value) if not isinstance(value, str) else value
