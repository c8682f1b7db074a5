"""The MLflow adapter, every MLflow call of kubenas: the tracking API (:mod:`.api`: REST, or the MLflow client for
a local store), the search's runs (:mod:`.runs`) and the winner in the model registry (:mod:`.registry`)."""

from kubenas.tracking.api import TrackingError
from kubenas.tracking.registry import CHALLENGER, CHAMPION, COMPLETE_TAG, Registry
from kubenas.tracking.runs import SCALAR_METRICS, RoundTracking, Tracker, ui_url

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "COMPLETE_TAG",
    "SCALAR_METRICS",
    "Registry",
    "RoundTracking",
    "Tracker",
    "TrackingError",
    "ui_url",
]
