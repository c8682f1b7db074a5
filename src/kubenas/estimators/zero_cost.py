"""Zero-cost proxies: score an untrained network from one or a few minibatches, in place of training it.

- ``synflow`` (Tanaka et al., 2020; Abdelfattah et al., 2021): the network with absolute weights, batch norm in
  eval mode and an all-ones input; the score is the sum over parameters of ``|theta * dR/dtheta|`` where R is
  the sum of the outputs. Data-free. Computed in float64, which keeps deep networks from overflowing.
- ``grad_norm``: the norm of the loss gradient over all weights, on real minibatches.
- ``nwot`` (Mellor et al., 2021, "NASWOT"): the binary codes of which activation units are on for each input
  of a minibatch; the score is the log-determinant of the kernel ``K[i, j]`` = number of units on which
  inputs i and j agree. Networks that tell inputs apart score higher.
- ``params`` and ``macs``: the baselines every proxy has to beat.

A proxy is deterministic for a seed on CPU: the weights are initialised and the minibatches drawn from it.
Higher is better for every proxy.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from kubenas.arch import Arch
from kubenas.core import Fidelity, Result, is_int
from kubenas.data.base import Dataset, require_resident
from kubenas.estimators import PROXIES as PROXY_NAMES
from kubenas.estimators.training import count_macs
from kubenas.spaces.base import SearchSpace

_ACTIVATIONS = (nn.ReLU, nn.GELU, nn.SiLU, nn.ELU, nn.Tanh)


def synflow(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model = model.double().eval()  # eval: batch norm uses its running statistics, so a constant input is fine
    with torch.no_grad():
        signs = {name: p.sign() for name, p in model.state_dict().items() if p.is_floating_point()}
        for p in model.state_dict().values():
            if p.is_floating_point():
                p.abs_()
    model.zero_grad()
    out = model(torch.ones((1, *x.shape[1:]), dtype=torch.float64))
    out.sum().backward()
    score = sum(float((p.detach() * p.grad).abs().sum()) for p in model.parameters() if p.grad is not None)
    with torch.no_grad():
        for name, p in model.state_dict().items():
            if name in signs:
                p.mul_(signs[name])
    return score


def grad_norm(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.train()
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    return math.sqrt(sum(float(p.grad.pow(2).sum()) for p in model.parameters() if p.grad is not None))


def nwot(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    codes: list[torch.Tensor] = []

    def hook(module, inputs, output):
        codes.append((inputs[0].detach().flatten(1) > 0).double())

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, _ACTIVATIONS)]
    try:
        model.train()  # batch statistics, as the paper does on an untrained network
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    if not codes:
        raise ValueError("nwot needs activation layers (ReLU, GELU, SiLU, ELU, Tanh); this network has none")
    c = torch.cat(codes, dim=1)
    kernel = c @ c.T + (1 - c) @ (1 - c).T  # agreements between every pair of inputs
    sign, logdet = torch.linalg.slogdet(kernel)
    return float(logdet) if sign > 0 else -math.inf


PROXIES: dict[str, Callable[[nn.Module, torch.Tensor, torch.Tensor], float] | None] = {
    "synflow": synflow,
    "grad_norm": grad_norm,
    "nwot": nwot,
    "params": None,
    "macs": None,
}
assert tuple(PROXIES) == PROXY_NAMES, "name a new proxy in kubenas.estimators.PROXIES too"


@dataclass
class ZeroCostEstimator:
    """Scores candidates with a zero-cost proxy instead of training them.

    The result's metrics are ``zc_score`` (the proxy, higher is better: set the objective to it), ``zc_proxy``,
    ``params`` and ``macs``; its cost is the seconds the scoring took.

    Args:
        proxy: one of ``synflow``, ``grad_norm``, ``nwot``, ``params``, ``macs``.
        batch_size: the minibatch the proxy sees.
        batches: minibatches averaged (data-dependent proxies only).
    """

    proxy: str = "nwot"
    batch_size: int = 64
    batches: int = 1

    def __post_init__(self) -> None:
        if self.proxy not in PROXIES:
            raise ValueError(f"zero-cost proxy must be one of {', '.join(PROXIES)}, got {self.proxy!r}")
        for label, value, low in (("batch_size", self.batch_size, 2), ("batches", self.batches, 1)):
            if not is_int(value) or value < low:
                raise ValueError(f"zero-cost {label} must be an integer >= {low}, got {value!r}")

    @classmethod
    def from_config(cls, section: dict[str, Any], inner: Any = None, store: Any = None) -> ZeroCostEstimator:
        return cls(section["proxy"], batch_size=section["proxy_batch_size"])

    def score(
        self, arch: Arch, space: SearchSpace, dataset: Dataset, seed: int = 0, width_mult: float = 1.0
    ) -> dict[str, Any]:
        """The proxy's score and the size baselines of ``arch``; raises when the network cannot be scored."""
        require_resident(dataset, "a zero-cost proxy")
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        model = space.build(arch, tuple(dataset.x_train.shape[1:]), dataset.num_classes, width_mult=width_mult)
        params = sum(p.numel() for p in model.parameters())
        macs = count_macs(model, dataset.x_train[:1])
        fn = PROXIES[self.proxy]
        if fn is None:
            value = float(params if self.proxy == "params" else macs)
        else:
            values = []
            for _ in range(self.batches):
                idx = torch.randperm(len(dataset.x_train), generator=gen)[: self.batch_size]
                values.append(fn(model, dataset.x_train[idx], dataset.y_train[idx]))
            value = sum(values) / len(values)
        if not math.isfinite(value):
            raise FloatingPointError(f"{self.proxy} score is not finite ({value})")
        return {"zc_score": value, "zc_proxy": self.proxy, "params": params, "macs": macs}

    def evaluate(
        self,
        arch: Arch,
        space: SearchSpace,
        dataset: Dataset,
        fidelity: Fidelity | None = None,
        seed: int = 0,
        candidate_id: str = "",
    ) -> Result:
        """Like :meth:`TrainingEstimator.evaluate`: a crash or a non-finite score is a failed result."""
        space.validate(arch)
        start = time.perf_counter()
        try:
            metrics = self.score(arch, space, dataset, seed, (fidelity or Fidelity()).width_mult)
        except Exception as exc:  # noqa: BLE001 - a candidate that cannot be scored is a failed result
            return Result(
                candidate_id, "failed", cost=time.perf_counter() - start, error=f"{type(exc).__name__}: {exc}"[:2000]
            )
        return Result(candidate_id, "ok", metrics, cost=time.perf_counter() - start)


def proxy_scorer(
    proxy: str, space: SearchSpace, dataset: Dataset, seed: int = 0, batch_size: int = 64
) -> Callable[[list[Arch]], list[float]]:
    """A scorer for :func:`kubenas.strategies.prefilter.prefilter`: the proxy's score per architecture (cached by
    arch id; an architecture that cannot be scored gets -inf, so it is never preferred)."""
    from kubenas.arch import arch_id

    est, cache = ZeroCostEstimator(proxy, batch_size=batch_size), {}

    def score(archs: list[Arch]) -> list[float]:
        out = []
        for arch in archs:
            aid = arch_id(arch)
            if aid not in cache:
                try:
                    cache[aid] = est.score(arch, space, dataset, seed)["zc_score"]
                except Exception:  # noqa: BLE001 - an unscorable proposal is ranked last, not a crash
                    cache[aid] = -math.inf
            out.append(cache[aid])
        return out

    return score
