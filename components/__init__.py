"""KFP components of the kubenas pipeline: one file per component, each a thin wrapper over one function of
``kubenas.steps``. All of them run in the one component image named in ``components.image``."""

from kubenas.components.export_winner import export_winner
from kubenas.components.init_search import init_search
from kubenas.components.sample_architectures import sample_architectures
from kubenas.components.train_candidates import train_candidates
from kubenas.components.update_strategy import update_strategy

__all__ = ["init_search", "sample_architectures", "train_candidates", "update_strategy", "export_winner"]
