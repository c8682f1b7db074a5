"""Name-to-implementation lookup shared by the space, strategy and dataset registries."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any


def accepted_options(target: Callable[..., Any]) -> list[str]:
    """Keyword options a class or function takes; a class's ``**kwargs`` forwarded to its bases count too."""
    functions = [c.__init__ for c in target.__mro__ if c is not object] if inspect.isclass(target) else [target]
    names: list[str] = []
    for fn in functions:
        params = inspect.signature(fn).parameters.values()
        names += [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in names]
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            break
    return [n for n in names if n != "self"]


def check(
    registry: Mapping[str, Callable[..., Any]], kind: str, name: str, options: Mapping[str, Any], positional: int = 0
) -> Callable[..., Any]:
    """Return ``registry[name]`` after checking that it exists and takes ``options`` (beyond its first
    ``positional`` arguments), naming the registered names or the accepted options on a typo."""
    if name not in registry:
        raise ValueError(f"unknown {kind} {name!r}; registered: {', '.join(registry)}")
    target = registry[name]
    accepted = accepted_options(target)[positional:]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValueError(f"{kind} {name!r}: unknown option(s) {unknown}; accepted: {', '.join(accepted)}")
    return target


def create(registry: Mapping[str, Callable[..., Any]], kind: str, name: str, *args: Any, **options: Any) -> Any:
    """Call ``registry[name](*args, **options)`` after :func:`check`."""
    return check(registry, kind, name, options, positional=len(args))(*args, **options)
