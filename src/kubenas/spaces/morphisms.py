"""Weight inheritance between architectures, and function-preserving network morphisms (Net2Net) for ``chain``.

A child architecture can start from its parent's trained weights instead of from scratch:

- :func:`copy_matching`, for any space: every tensor whose name and shape are the same in parent and child is
  copied. In the cell spaces an unchanged edge keeps its module name, so a one-edge mutation inherits all but
  that edge.
- :func:`transfer`, for ``chain``: layers are matched by their layer number, not by module position, and two
  morphisms after Chen, Goodfellow and Shlens (2016, "Net2Net") keep the parent's function exactly:

  - *widen* layer i from w to w' > w units: the new units copy randomly chosen old ones (incoming weights,
    bias, batch-norm parameters and statistics), and each copied unit's outgoing weights in the next layer
    are split among its copies by random positive fractions that sum to one. The fractions differ between
    copies, so the copies get different gradients and do not stay twins.
  - *deepen*: insert a conv (or dense) layer with identity weights and a ReLU after a layer whose output is
    already non-negative (it ends in a ReLU, possibly followed by pooling). A batch norm there, if the space
    requires one, starts as the identity in eval mode.

  :func:`random_morphism` proposes such a child. Which morphism relates a parent and a child is read off the
  two architectures, so a child trained in another process or pod needs nothing but both architectures and
  the parent's ``state_dict``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from kubenas.arch import Arch

_PER_LAYER = ("op", "kernel", "width", "act", "bn")


def copy_matching(model: nn.Module, parent_state: dict[str, torch.Tensor]) -> float:
    """Copy every parent tensor whose name and shape match into ``model``; return the share of the model's
    parameters (by count) that were inherited."""
    state = model.state_dict()
    copied = {k: v for k, v in parent_state.items() if k in state and tuple(v.shape) == tuple(state[k].shape)}
    model.load_state_dict({**state, **copied})
    return _share(model, copied)


def _share(model: nn.Module, inherited: dict[str, Any]) -> float:
    names = dict(model.named_parameters())
    total = sum(p.numel() for p in names.values())
    return sum(names[k].numel() for k in inherited if k in names) / total if total else 0.0


# ---------------------------------------------------------------------------------------------------- chain
def _layer(arch: Arch, i: int) -> dict[str, Any]:
    return {key: arch[f"{key}_{i}"] for key in _PER_LAYER if f"{key}_{i}" in arch}


def _relation(parent: Arch, child: Arch) -> tuple[str, int | None]:
    """("same" | "widen" | "deepen" | "other", the layer concerned)."""
    if parent == child:
        return "same", None
    dp, dc = parent["depth"], child["depth"]
    if dp == dc:
        diff = [i for i in range(1, dp + 1) if _layer(parent, i) != _layer(child, i)]
        if len(diff) == 1:
            i = diff[0]
            p, c = _layer(parent, i), _layer(child, i)
            if (
                "width" in p
                and {k: v for k, v in p.items() if k != "width"} == {k: v for k, v in c.items() if k != "width"}
                and c["width"] > p["width"]
            ):
                return "widen", i
        return "other", None
    if dc == dp + 1:
        # the child's layer `pos` is new and the others shift by one; where an inserted layer repeats its
        # neighbour, several positions fit: the first that reads a non-negative input can be the identity
        fits = [
            pos
            for pos in range(1, dc + 1)
            if all(_layer(child, i + (i >= pos)) == _layer(parent, i) for i in range(1, dp + 1))
        ]
        for pos in fits:
            before = [i for i in range(1, pos) if f"act_{i}" in child]
            if before and child[f"act_{before[-1]}"] == "relu":
                return "deepen", pos
        if fits:
            return "deepen", fits[0]
    return "other", None


def transfer(
    space,
    model: nn.Module,
    arch: Arch,
    parent_arch: Arch,
    parent_state: dict[str, torch.Tensor],
    input_shape: Sequence[int],
    num_classes: int,
    width_mult: float = 1.0,
    rng=None,
) -> float:
    """Load ``parent_state`` into the chain ``model`` of ``arch``; function-preserving when ``arch`` is a
    morphism of ``parent_arch``. Returns the share of the model's parameters inherited."""
    rng = np.random.default_rng(rng if rng is not None else 0)  # a Generator is returned as it is
    _, prec = space.plan(parent_arch, input_shape, num_classes, width_mult)
    _, crec = space.plan(arch, input_shape, num_classes, width_mult)
    kind, where = _relation(parent_arch, arch)
    by_layer_p = {r["layer"]: r for r in prec}
    state = model.state_dict()
    new: dict[str, torch.Tensor] = {}
    pairs = []  # (child record, parent record) for layers kept as they were
    for r in crec:
        if r["layer"] is None:
            pairs.append((r, prec[-1]))
            continue
        i = r["layer"]
        if kind == "deepen":
            if i == where:
                _identity(r, state, new)
                continue
            i = i - (i > where)
        p = by_layer_p.get(i)
        if p is not None and p["op"] == r["op"]:
            pairs.append((r, p))
    if kind == "widen":
        _widen(
            by_layer_p[where], next(r for r in crec if r["layer"] == where), prec, crec, parent_state, state, new, rng
        )
    for r, p in pairs:
        for part in ("dw", "conv", "bn", "linear"):
            if r.get(part) is None or p.get(part) is None:
                continue
            prefix_c, prefix_p = f"{r[part]}.", f"{p[part]}."
            for key in [k for k in state if k.startswith(prefix_c)]:
                if key in new:
                    continue
                src = parent_state.get(prefix_p + key[len(prefix_c) :])
                if src is not None and tuple(src.shape) == tuple(state[key].shape):
                    new[key] = src.clone()
    model.load_state_dict({**state, **new})
    return _share(model, new)


def _identity(rec: dict[str, Any], state: dict[str, torch.Tensor], new: dict[str, torch.Tensor]) -> None:
    """Identity weights for an inserted layer: a centre tap of one from each channel to itself."""
    if rec["op"] == "sepconv" and rec["dw"] is not None:
        dw = torch.zeros_like(state[f"{rec['dw']}.weight"])
        dw[(slice(None), 0) + (dw.shape[2] // 2,) * (dw.dim() - 2)] = 1.0
        new[f"{rec['dw']}.weight"] = dw
    w = torch.zeros_like(state[f"{rec['conv']}.weight"])
    if w.shape[0] != w.shape[1]:
        return  # channels change: no identity exists, the layer keeps its fresh initialisation
    centre = tuple(s // 2 for s in w.shape[2:])
    for c in range(w.shape[0]):
        w[(c, c) + centre] = 1.0
    new[f"{rec['conv']}.weight"] = w
    new[f"{rec['conv']}.bias"] = torch.zeros_like(state[f"{rec['conv']}.bias"])
    if rec["bn"] is not None:
        bn = rec["bn"]
        eps = 1e-5
        new[f"{bn}.weight"] = torch.ones_like(state[f"{bn}.weight"])
        new[f"{bn}.bias"] = torch.zeros_like(state[f"{bn}.bias"])
        new[f"{bn}.running_mean"] = torch.zeros_like(state[f"{bn}.running_mean"])
        new[f"{bn}.running_var"] = torch.full_like(state[f"{bn}.running_var"], 1.0 - eps)


def _widen(p: dict, c: dict, prec: list, crec: list, parent_state: dict, state: dict, new: dict, rng) -> None:
    old, wide = p["c_out"], c["c_out"]
    mapping = np.concatenate([np.arange(old), rng.integers(0, old, size=wide - old)])
    # each copy of unit u takes a random share of u's outgoing weights; the shares of u's copies sum to one
    shares = rng.uniform(0.5, 1.5, size=wide)
    totals = np.bincount(mapping, weights=shares, minlength=old)
    fraction = torch.tensor(shares / totals[mapping], dtype=torch.float32)
    index = torch.as_tensor(mapping)
    for part in ("conv", "bn"):  # outgoing units of the widened layer: rows copied
        if p.get(part) is None:
            continue
        for key in [k for k in state if k.startswith(f"{c[part]}.")]:
            src = parent_state[f"{p[part]}.{key.split('.', 1)[1]}"]
            new[key] = src[index].clone() if src.dim() > 0 else src.clone()
    nxt_c = crec[crec.index(c) + 1]
    nxt_p = prec[prec.index(p) + 1]
    if nxt_c.get("dw") is not None:  # a separable conv reads the widened layer: depthwise rows copied
        new[f"{nxt_c['dw']}.weight"] = parent_state[f"{nxt_p['dw']}.weight"][index].clone()
    reader = "linear" if nxt_c["op"] == "head" else "conv"
    # the reader's input columns (for a separable conv, its pointwise part's) copied and scaled by the shares
    w = parent_state[f"{nxt_p[reader]}.weight"]
    new[f"{nxt_c[reader]}.weight"] = w[:, index] * fraction.view((1, -1) + (1,) * (w.dim() - 2)).to(w.dtype)
    bias = parent_state.get(f"{nxt_p[reader]}.bias")
    if bias is not None:
        new[f"{nxt_c[reader]}.bias"] = bias.clone()


def morphisms(space, arch: Arch) -> list[Arch]:
    """Every function-preserving child of ``arch`` in the chain ``space``: each wider width of each layer, and
    each identity layer that can be inserted after a non-negative output."""
    space.validate(arch)
    out = []
    depth = arch["depth"]
    for i in range(1, depth + 1):
        if f"width_{i}" in arch:
            out += [{**arch, f"width_{i}": w} for w in space.widths if w > arch[f"width_{i}"]]
    if depth >= space.max_depth or "relu" not in space.activations:
        return out
    bn = False if False in space.batch_norm else True
    weighted = [i for i in range(1, depth + 1) if f"width_{i}" in arch]
    for pos in range(2, depth + 2):  # the new layer becomes layer `pos`
        before = [i for i in weighted if i < pos]
        if not before or arch[f"act_{before[-1]}"] != "relu":
            continue  # the layer's input must be non-negative, so that ReLU(identity(x)) == x
        last = before[-1]
        # a conv is the identity anywhere (on a flat input it is 1x1); a dense layer only where the input is
        # already flat, after another dense layer (elsewhere it would pool globally)
        op = "conv" if "conv" in space.ops else ("dense" if arch[f"op_{last}"] == "dense" else None)
        if op is None:
            continue
        child = {"depth": depth + 1}
        for i in range(1, depth + 2):
            if i == pos:
                layer = {"op": op, "width": arch[f"width_{last}"], "act": "relu", "bn": bn}
                if op == "conv":
                    layer["kernel"] = space.kernels[0]
            else:
                layer = _layer(arch, i - (i > pos))
            child.update({f"{k}_{i}": v for k, v in layer.items()})
        out.append(space.complete(child))
    return [c for c in out if space.violation(c) is None]


def random_morphism(space, arch: Arch, rng) -> Arch | None:
    children = morphisms(space, arch)
    return children[int(np.random.default_rng(rng).integers(len(children)))] if children else None
