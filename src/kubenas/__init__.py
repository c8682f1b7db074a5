"""kubenas: Neural Architecture Search on Kubeflow Pipelines.

The core library (spaces, strategies, estimators, data and the in-process search loop) imports no KFP,
MLflow or boto3, so that it is fast to test and runs the same in every pipeline step.
"""

from kubenas.arch import Arch, arch_id, canonical_json
from kubenas.data import DATASETS, Dataset, load_dataset
from kubenas.estimators import Fidelity, TrainingEstimator, evaluate
from kubenas.search import SearchResult, search
from kubenas.spaces import SPACES, InvalidArchitecture, SearchSpace, make_space, space_from_spec
from kubenas.strategies import STRATEGIES, Candidate, Result, Strategy, make_strategy

__version__ = "0.1.0"

__all__ = [
    "Arch", "arch_id", "canonical_json", "DATASETS", "Dataset", "load_dataset", "Fidelity", "TrainingEstimator",
    "evaluate", "SearchResult", "search", "SPACES", "InvalidArchitecture", "SearchSpace", "make_space",
    "space_from_spec", "STRATEGIES", "Candidate", "Result", "Strategy", "make_strategy", "__version__",
]
