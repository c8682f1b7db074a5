"""The winner in MLflow's model registry: each export registers a version of the search's model, the version that
beats the current ``champion`` takes that alias (else ``challenger``), and a version whose export did not complete
is deleted by the next export."""

from __future__ import annotations

from typing import Any

from kubenas import history
from kubenas.tracking.api import TrackingError
from kubenas.tracking.runs import Tracker

CHAMPION, CHALLENGER = "champion", "challenger"
COMPLETE_TAG = "kubenas.export_complete"  # on a model version whose export completed


class Registry:
    """The registry of the tracking server ``tracker`` talks to."""

    def __init__(self, tracker: Tracker):
        self.tracker, self.uri = tracker, tracker.uri

    @property
    def client(self):
        return self.tracker.api.client

    def register_model(
        self,
        parent_id: str,
        config,
        model,
        *,
        name: str,
        params: dict[str, Any],
        metrics: dict[str, float],
        files: dict[str, Any],
        served: dict[str, Any],
        input_example,
        pip_requirements: list[str],
    ) -> dict[str, Any]:
        """The export's nested run: params, metrics, JSON files, the ``state_dict`` and the model, registered as
        a new version of ``name``. The model is a pyfunc built from code (:mod:`kubenas.tracking.serving`, nothing
        pickled) out of ``served``: its ``arch``, ``space`` spec, ``input_shape``, ``num_classes`` and
        ``preprocess``. ``pip_requirements`` are given so that MLflow does not start a second interpreter to infer
        them. Returns the run id, the version and the ``state_dict`` bytes."""
        import io
        import tempfile
        from pathlib import Path

        import mlflow
        import torch

        from kubenas.tracking import serving

        buf = io.BytesIO()
        torch.save(model.state_dict(), buf)
        weights = buf.getvalue()  # the same bytes go to MLflow and to the store
        mlflow.set_tracking_uri(self.uri)
        run_id = self.tracker.create_run(
            self.tracker.parent_experiment(parent_id),
            f"{config.name}-export",
            {"mlflow.parentRunId": parent_id, "kubenas.kind": "export", "kubenas.search": config.name},
        )
        self.tracker.log(run_id, params=params, metrics=[(k, v, 0) for k, v in metrics.items()])
        with mlflow.start_run(run_id=run_id):
            for filename, obj in files.items():
                mlflow.log_dict(obj, filename)
            with tempfile.TemporaryDirectory() as tmp:
                (Path(tmp) / "state_dict.pt").write_bytes(weights)
                mlflow.log_artifact(str(Path(tmp) / "state_dict.pt"))
            info = serving.log_model(model, served, input_example, pip_requirements)
        # registered with the search's tags in the same call: a version whose export does not complete is known
        # by them and deleted by the next export (discard_incomplete)
        version = mlflow.register_model(
            info.model_uri, name, tags={"kubenas.search": config.name, "kubenas.parent_run": parent_id}
        )
        return {"run_id": run_id, "version": str(version.version), "weights": weights}

    def discard_incomplete(self, name: str, search: str, parent_id: str) -> list[str]:
        """Before an export registers: delete the versions of ``name`` that an export of ``search`` registered but
        did not complete (it was killed or failed before the end; a version holding an alias is kept), and end the
        export runs of this pipeline run left RUNNING by a failed attempt. So the registry holds one version per
        completed export, also when a step is retried. Returns the versions deleted."""
        from mlflow.exceptions import MlflowException

        self.tracker.close_running(
            search,
            "FAILED",
            f" and tags.\"kubenas.kind\" = 'export' and tags.\"mlflow.parentRunId\" = '{parent_id}'",
            self.tracker.parent_experiment(parent_id),
        )
        try:
            held = {str(v) for v in self.client.get_registered_model(name).aliases.values()}
            versions = self.client.search_model_versions(f"name='{name}'")  # (it leaves aliases out)
        except MlflowException:  # no such registered model yet
            return []
        gone = []
        for v in versions:
            if (
                v.tags.get("kubenas.search") == search
                and v.tags.get(COMPLETE_TAG) != "true"
                and str(v.version) not in held
            ):
                self.client.delete_model_version(name, v.version)
                gone.append(str(v.version))
        return gone

    def describe_version(self, name: str, version: str, description: str, tags: dict[str, str]) -> None:
        """A registered version's description (Markdown, shown on its page) and tags."""
        self.client.update_model_version(name, version, description=description)
        for key, value in tags.items():
            self.client.set_model_version_tag(name, version, key, str(value)[:5000])

    def mark_complete(self, name: str, version: str) -> None:
        """The export that registered ``version`` has completed."""
        self.client.set_model_version_tag(name, version, COMPLETE_TAG, "true")

    def promote(self, model_name: str, version: str, metric: str, value: float, mode: str) -> str:
        """Give ``version`` the alias ``champion`` if it beats the current champion on ``metric``, else
        ``challenger``. Returns the alias given."""
        from mlflow.exceptions import MlflowException

        try:
            current = self.client.get_model_version_by_alias(model_name, CHAMPION)
        except MlflowException:
            current = None
        better = True
        if current is not None and current.version != version:
            best = self.client.get_run(current.run_id).data.metrics.get(metric)
            if best is not None:
                better = history.better(value, best, mode)
        alias = CHAMPION if better else CHALLENGER
        self.client.set_registered_model_alias(model_name, alias, version)
        return alias

    def registered_version(self, name: str, alias: str) -> dict[str, Any]:
        """A registered model version by alias, with its export run's params and metrics and the artifacts that
        :mod:`kubenas.pull` needs, downloaded into memory (None for one the run lacks). Raises
        :class:`TrackingError` naming the registered models when there is no such version."""
        import tempfile
        from pathlib import Path

        from mlflow.exceptions import MlflowException

        client = self.client
        try:
            mv = client.get_model_version_by_alias(name, alias)
        except MlflowException as exc:
            known = [m.name for m in client.search_registered_models(max_results=20)]
            raise TrackingError(
                f"no model version {name}@{alias} in the registry at {self.uri} "
                f"({exc.error_code}); registered models: {', '.join(known) or 'none'}"
            ) from None
        run = client.get_run(mv.run_id)
        files = {}
        with tempfile.TemporaryDirectory() as tmp:
            for artifact in ("arch.json", "space.json", "config.json", "state_dict.pt"):
                try:
                    files[artifact] = Path(client.download_artifacts(mv.run_id, artifact, tmp)).read_bytes()
                except (MlflowException, OSError):
                    files[artifact] = None
        return {
            "version": str(mv.version),
            "run_id": mv.run_id,
            "params": dict(run.data.params),
            "metrics": dict(run.data.metrics),
            "files": files,
        }
