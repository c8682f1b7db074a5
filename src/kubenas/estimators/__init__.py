"""Performance estimators: how a candidate's quality is measured."""

from kubenas.estimators.training import Diverged, Fidelity, TrainingEstimator, count_macs, evaluate

__all__ = ["Diverged", "Fidelity", "TrainingEstimator", "count_macs", "evaluate"]
