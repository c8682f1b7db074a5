"""kubenas: Neural Architecture Search on Kubeflow Pipelines.

The core library (spaces, strategies, estimators, data and the in-process search loop) imports no KFP,
MLflow or boto3, so that it is fast to test and runs the same in every pipeline step. The names below are
loaded when first used: a pipeline step that only samples architectures never pays for torch.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> the module that defines it
_EXPORTS = {
    "Arch": "kubenas.arch",
    "arch_id": "kubenas.arch",
    "canonical_json": "kubenas.arch",
    "Candidate": "kubenas.core",
    "Result": "kubenas.core",
    "Fidelity": "kubenas.core",
    "DATASETS": "kubenas.data",
    "Dataset": "kubenas.data",
    "load_dataset": "kubenas.data",
    "TrainingEstimator": "kubenas.estimators.training",
    "evaluate": "kubenas.estimators.training",
    "SPACES": "kubenas.spaces",
    "InvalidArchitecture": "kubenas.spaces",
    "SearchSpace": "kubenas.spaces",
    "make_space": "kubenas.spaces",
    "space_from_spec": "kubenas.spaces",
    "STRATEGIES": "kubenas.strategies",
    "Strategy": "kubenas.strategies",
    "make_strategy": "kubenas.strategies",
    "connect": "kubenas.stack",
}

# ``search`` is both a module and its main function: import it now, so that the function wins the name.
from kubenas.search import SearchResult, search  # noqa: E402 - after __version__, which submodules read

__all__ = [*_EXPORTS, "SearchResult", "search", "__version__"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'kubenas' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
