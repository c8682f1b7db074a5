"""``choice``: a user's own space of named categorical decisions.

It is how users bring their own spaces. Every strategy works on it unchanged, because it is the same
decision list every built-in space is made of. It has no network of its own: pass ``builder`` (a callable or
a ``"module:function"`` path, which survives a trip through a pipeline), or use it as a black box with an
objective function.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from kubenas.arch import Arch
from kubenas.spaces.base import Decision, SearchSpace

Builder = Callable[..., Any]


class ChoiceSpace(SearchSpace):
    """Named categorical decisions, optionally conditional.

    Args:
        decisions: ``{"depth": [2, 3, 4], "op_1": ["conv3", "conv5", "skip"]}``; order is kept.
        conditions: ``{"op_4": {"parent": "depth", "values": [4]}}``: ``op_4`` exists only when depth is 4.
        builder: ``builder(arch, input_shape, num_classes, width_mult=...) -> nn.Module``, or its import path.
    """

    name = "choice"

    def __init__(
        self,
        decisions: Mapping[str, Sequence[Any]],
        conditions: Mapping[str, Mapping[str, Any]] | None = None,
        builder: Builder | str | None = None,
    ):
        if not isinstance(decisions, Mapping) or not decisions:
            raise ValueError("choice: decisions must be a non-empty mapping of name -> list of choices")
        conditions = dict(conditions or {})
        unknown = set(conditions) - set(decisions)
        if unknown:
            raise ValueError(f"choice: conditions name unknown decision(s) {sorted(unknown)}")
        built = []
        for name, choices in decisions.items():
            if not isinstance(name, str):
                raise ValueError(f"choice: decision names must be strings, got {name!r}")
            if isinstance(choices, (str, bytes)) or not isinstance(choices, Sequence) or len(choices) == 0:
                raise ValueError(f"choice: decision {name!r} needs a non-empty list of choices, got {choices!r}")
            cond = conditions.get(name)
            if cond is None:
                built.append(Decision(name, tuple(choices)))
                continue
            if set(cond) != {"parent", "values"}:
                raise ValueError(
                    f"choice: condition of {name!r} must have exactly 'parent' and 'values', got {sorted(cond)}"
                )
            built.append(Decision(name, tuple(choices), parent=cond["parent"], when=tuple(cond["values"])))
        self._decisions_arg = {k: list(v) for k, v in decisions.items()}
        self._conditions_arg = {k: {"parent": v["parent"], "values": list(v["values"])} for k, v in conditions.items()}
        self._init_decisions(built)
        self._builder_arg = builder
        if builder is not None and not (callable(builder) or isinstance(builder, str)):
            raise ValueError(f"choice: builder must be a callable or a 'module:function' string, got {builder!r}")

    def options(self) -> dict[str, Any]:
        opts: dict[str, Any] = {"decisions": self._decisions_arg}
        if self._conditions_arg:
            opts["conditions"] = self._conditions_arg
        if isinstance(self._builder_arg, str):
            opts["builder"] = self._builder_arg
        elif self._builder_arg is not None:
            opts["builder"] = f"{self._builder_arg.__module__}:{self._builder_arg.__qualname__}"
        return opts

    def build(self, arch: Arch, input_shape: Sequence[int], num_classes: int, *, width_mult: float = 1.0):
        self.validate(arch)
        if self._builder_arg is None:
            raise NotImplementedError(
                "the 'choice' space has no network of its own: pass builder= (a callable or 'module:function'), "
                "or search with an objective function instead of a dataset"
            )
        return _resolve(self._builder_arg)(arch, tuple(input_shape), num_classes, width_mult=width_mult)


def _resolve(builder: Builder | str) -> Builder:
    if callable(builder):
        return builder
    module, _, attr = builder.partition(":")
    if not module or not attr:
        raise ValueError(f"choice: builder path must look like 'package.module:function', got {builder!r}")
    obj: Any = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj
