"""``kubenas import katib``: a Katib NAS Experiment (``kubeflow.org/v1beta1``) as a kubenas search config, and a
finished Katib result (an ENAS architecture or a DARTS genotype) as a config that retrains and registers it.

Each translation keeps a :class:`Report` of what mapped to what, what kubenas replaces by design (the trial image,
its command, the metrics collector) and what it could not map, with the reason; the report is printed and written
as comments at the top of the config. Settings an experiment leaves out take Katib's documented defaults.
"""

from kubenas.katib.base import API_VERSION, CIFAR_PATH, Imported, KatibError, Report
from kubenas.katib.experiment import read_experiments, translate
from kubenas.katib.result import from_result

__all__ = ["API_VERSION", "CIFAR_PATH", "Imported", "KatibError", "Report"]
__all__ += ["from_result", "read_experiments", "translate"]
