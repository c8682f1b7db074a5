"""Kubeflow pipeline definitions (wiring only) and example search configs in ``configs/``."""

from kubenas.pipelines.nas_search import build_pipeline, compile_pipeline

__all__ = ["build_pipeline", "compile_pipeline"]
