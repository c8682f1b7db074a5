"""A toy estimator: judges an architecture by its size (a made-up accuracy that grows with the parameters), with a
seeded jitter, and fails on data that is not finite."""

from __future__ import annotations

import time

import torch

from kubenas.core import Result


class SizeEstimator:
    def __init__(self, scale: float = 1e-4):
        self.scale = scale

    @classmethod
    def from_config(cls, section, inner=None, store=None) -> SizeEstimator:
        return cls(**(section.get("size") or {}))

    def evaluate(self, arch, space, dataset, fidelity=None, seed: int = 0, candidate_id: str = "", **context):
        start = time.perf_counter()
        if not torch.isfinite(dataset.x_train).all():
            return Result(candidate_id, "failed", cost=time.perf_counter() - start, error="the data is not finite")
        model = space.build(arch, dataset.input_shape, dataset.num_classes)
        params = sum(p.numel() for p in model.parameters())
        jitter = torch.rand(1, generator=torch.Generator().manual_seed(seed)).item() * 1e-3
        return Result(
            candidate_id,
            "ok",
            {"val_acc": min(1.0, params * self.scale) + jitter, "params": params},
            cost=time.perf_counter() - start,
        )
