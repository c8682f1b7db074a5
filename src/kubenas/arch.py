"""Architectures: plain JSON dicts of named decisions, identified by a content hash."""

from __future__ import annotations

import hashlib
import json
from typing import Any

Arch = dict[str, Any]


def canonical_json(arch: Arch) -> str:
    """Serialise an architecture to JSON with sorted keys and no whitespace.

    Two dicts with the same decisions give the same string whatever their key order, in every process
    and version, because only JSON's own rules are involved.
    """
    try:
        return json.dumps(arch, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"architecture is not plain JSON (str keys; str, int, float, bool, list values): {exc}"
        ) from exc


def arch_id(arch: Arch) -> str:
    """A stable 16-hex-digit id: the first 64 bits of the SHA-256 of the canonical JSON."""
    return hashlib.sha256(canonical_json(arch).encode()).hexdigest()[:16]
