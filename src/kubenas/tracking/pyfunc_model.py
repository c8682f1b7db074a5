"""The code of a registered kubenas model, which MLflow copies into the model and runs to load it (models from
code: nothing is pickled). See :mod:`kubenas.tracking.serving`."""

import mlflow.models

from kubenas.tracking.serving import Classifier

mlflow.models.set_model(Classifier())
