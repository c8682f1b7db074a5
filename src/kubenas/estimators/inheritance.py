"""Weight inheritance: a child produced by mutation starts from its parent's trained weights and trains for
fewer epochs (the survey's "network morphisms and weight inheritance"; Real et al. 2017, Elsken et al. 2017).

:class:`InheritingEstimator` wraps a :class:`TrainingEstimator`. It keeps every trained candidate's weights in
a weight store (in memory here, in S3 in the pipeline, so children inherit across rounds and pods), and
trains a candidate whose parent's weights are there for ``epochs`` epochs from them. The space decides how
weights map (:meth:`SearchSpace.inherit`): matching tensors in the cell spaces, layer by layer and
function-preserving for ``chain``'s network morphisms. A candidate without a parent, or whose parent's weights
are missing, trains from scratch for the full fidelity.

Results record ``inherited_from``, ``inherited_share`` (the share of the child's parameters that came from the
parent) and ``epochs_trained``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from kubenas.arch import Arch
from kubenas.core import Fidelity, Result, is_int
from kubenas.estimators.training import TrainingEstimator


class WeightStore(Protocol):
    """Where trained weights are kept: ``state_dict`` plus architecture, by candidate id."""

    def load_weights(self, candidate_id: str) -> tuple[dict[str, Any], Arch] | None: ...

    def save_weights(self, candidate_id: str, state: dict[str, Any], arch: Arch) -> None: ...


@dataclass
class MemoryWeights:
    """A weight store in this process (for in-process searches and benchmarks)."""

    weights: dict[str, tuple[dict[str, Any], Arch]] = field(default_factory=dict)

    def load_weights(self, candidate_id: str):
        return self.weights.get(candidate_id)

    def save_weights(self, candidate_id: str, state: dict[str, Any], arch: Arch) -> None:
        self.weights[candidate_id] = ({k: v.detach().cpu().clone() for k, v in state.items()}, dict(arch))


class InheritingEstimator:
    """Trains children from their parents' weights for ``epochs`` epochs (fewer than the fidelity's)."""

    inherits = True  # search loops pass each candidate's parent id

    def __init__(self, inner: TrainingEstimator | None = None, weights: WeightStore | None = None, epochs: int = 1):
        if not is_int(epochs) or epochs < 1:
            raise ValueError(f"inheritance epochs must be a positive integer, got {epochs!r}")
        self.inner = inner or TrainingEstimator()
        self.weights = weights if weights is not None else MemoryWeights()
        self.epochs = epochs

    @classmethod
    def from_config(cls, section: dict[str, Any], inner: Any = None, store: Any = None) -> InheritingEstimator:
        """Weights go to ``store`` (the search's S3 store in a pipeline), so children train in any pod."""
        return cls(inner, store, section["inherit"]["epochs"])

    def evaluate(
        self,
        arch: Arch,
        space,
        dataset,
        fidelity: Fidelity | None = None,
        seed: int = 0,
        candidate_id: str = "",
        parent_id: str | None = None,
        on_epoch=None,
    ) -> Result:
        fidelity = fidelity or Fidelity()
        start = time.perf_counter()
        parent = self.weights.load_weights(parent_id) if parent_id else None
        info: dict[str, Any] = {}
        init = None
        if parent is not None:
            parent_state, parent_arch = parent
            fidelity = fidelity.override({"epochs": min(self.epochs, fidelity.epochs)})

            def init(model, input_shape):
                info["inherited_share"] = space.inherit(
                    model,
                    arch,
                    parent_arch,
                    parent_state,
                    input_shape,
                    dataset.num_classes,
                    fidelity.width_mult,
                    rng=seed,
                )

        res = self.inner.evaluate(
            arch,
            space,
            dataset,
            fidelity,
            seed,
            candidate_id,
            on_epoch=on_epoch,
            init=init,
            keep=lambda model: self.weights.save_weights(candidate_id, model.state_dict(), arch),
        )
        if not res.ok:
            return res
        metrics = {**res.metrics, "epochs_trained": len(res.metrics["val_acc_curve"])}
        if parent is not None:
            metrics.update(inherited_from=parent_id, **info)
        return Result(res.candidate_id, "ok", metrics, cost=time.perf_counter() - start)
