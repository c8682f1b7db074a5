"""KFP components of the kubenas pipeline: one file per component, each a thin wrapper over one function of
``kubenas.steps``, and one line per component in ``STAGES``. All of them run in the one component image named in
``components.image``; ``pipelines/nas_search.py`` wires them."""

from dataclasses import dataclass
from typing import Any

from kubenas.components.export_winner import export_winner
from kubenas.components.init_search import init_search
from kubenas.components.sample_architectures import sample_architectures
from kubenas.components.train_candidates import train_candidates
from kubenas.components.update_strategy import update_strategy


@dataclass(frozen=True)
class Stage:
    """A registered pipeline stage: its component, and the report it writes as its ``report`` output (``search``:
    the search so far, ``winner``: the exported winner), which ``kubenas run`` copies out."""

    component: Any
    report: str | None = None

    @property
    def task(self) -> str:
        """The name KFP gives its tasks (and kfp.local their folders), before any ``-2``, ``-3`` suffix."""
        return self.component.name


STAGES = {
    "init_search": Stage(init_search),
    "sample_architectures": Stage(sample_architectures),
    "train_candidates": Stage(train_candidates),
    "update_strategy": Stage(update_strategy, report="search"),
    "export_winner": Stage(export_winner, report="winner"),
}

__all__ = [
    "STAGES",
    "Stage",
    "export_winner",
    "init_search",
    "sample_architectures",
    "train_candidates",
    "update_strategy",
]
