"""The MLflow adapter: one parent run per pipeline run, one nested run per candidate, and the winner in the
model registry with ``champion`` / ``challenger`` aliases.

Only configuration and results are logged: credentials stay in the environment and never become params,
tags or log lines.
"""

from __future__ import annotations

import json
import math
import os
import urllib.error
import urllib.request
from typing import Any

from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

# A "View run at ..." line per run would drown the search's own progress output.
os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")

PARAM_LIMIT = 6000  # MLflow's maximum param value length
CHAMPION, CHALLENGER = "champion", "challenger"


# Scalar result metrics worth a column in MLflow and in the Kubeflow UI: what training, a proxy, early
# termination and inheritance report (curves are logged per epoch).
SCALAR_METRICS = ("val_acc", "val_loss", "params", "macs", "train_seconds", "latency_ms", "zc_score",
                  "epochs_trained", "lc_predicted_val_acc", "lc_epochs_saved", "inherited_share")


class TrackingError(RuntimeError):
    """The MLflow server cannot be used; the message says why."""


class Tracker:
    def __init__(self, uri: str | None = None, experiment: str = "kubenas"):
        self.uri = uri or os.environ.get("MLFLOW_TRACKING_URI")
        if not self.uri:
            raise TrackingError("no MLflow server: set tracking.uri in the config or MLFLOW_TRACKING_URI")
        self.experiment = experiment
        self.client = MlflowClient(tracking_uri=self.uri)

    @classmethod
    def from_config(cls, config) -> "Tracker":
        return cls(config.tracking.uri, config.tracking.experiment)

    def check(self, timeout: float = 5.0) -> None:
        """Fail fast when the server does not answer (MLflow's own client retries for minutes)."""
        if not self.uri.startswith(("http://", "https://")):
            return
        url = self.uri.rstrip("/") + "/health"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp:
                if resp.status == 200:
                    return
                raise TrackingError(f"MLflow at {self.uri} answered HTTP {resp.status} on /health")
        except urllib.error.HTTPError as exc:
            raise TrackingError(f"MLflow at {self.uri} answered HTTP {exc.code} on /health") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise TrackingError(f"cannot reach the MLflow server at {self.uri}: {reason}. Check tracking.uri or "
                                f"MLFLOW_TRACKING_URI") from None

    def experiment_id(self) -> str:
        exp = self.client.get_experiment_by_name(self.experiment)
        if exp is not None:
            return exp.experiment_id
        try:
            return self.client.create_experiment(self.experiment)
        except MlflowException:  # created meanwhile by a parallel task
            return self.client.get_experiment_by_name(self.experiment).experiment_id

    # ----------------------------------------------------------------- runs
    def start_parent(self, config) -> str:
        run = self.client.create_run(
            self.experiment_id(), run_name=config.name,
            tags={"kubenas.search": config.name, "kubenas.strategy": config.search_method,
                  "kubenas.space": config.space.name, "kubenas.kind": "search"},
        )
        params = {"search": config.name, "dataset": config.dataset.name, "space": config.space.name,
                  "strategy": config.search_method, "objective": f"{config.objective.metric} ({config.objective.mode})",
                  "fidelity": json.dumps(config.fidelity.model_dump()), "seed": config.seed,
                  "space_options": json.dumps(config.space.options),
                  "strategy_options": json.dumps(config.oneshot.model_dump() if config.oneshot else config.strategy.options),
                  "rounds": config.budget.rounds, "candidates_per_round": config.budget.candidates_per_round}
        self._log(run.info.run_id, params=params)
        return run.info.run_id

    def log_candidate(self, parent_id: str, row: dict[str, Any], round_index: int, config) -> str:
        """A nested run for one evaluated candidate: params, per-epoch metrics, status and failure reason."""
        tags = {"mlflow.parentRunId": parent_id, "kubenas.status": row["status"], "kubenas.kind": "candidate",
                "kubenas.search": config.name}
        if row.get("error"):
            tags["kubenas.error"] = row["error"][:5000]
        run = self.client.create_run(self.parent_experiment(parent_id), run_name=row["id"], tags=tags)
        m = row.get("metrics") or {}
        params = {"candidate_id": row["id"], "arch_id": row["arch_id"], "genotype": row["genotype"],
                  "space": config.space.name, "strategy": config.search_method, "round": round_index,
                  "fidelity": json.dumps(row.get("fidelity") or {}), "parent_candidate": row.get("parent_id") or ""}
        metrics = []
        for name, curve in (("val_acc", m.get("val_acc_curve")), ("val_loss", m.get("val_loss_curve")),
                            ("train_loss", m.get("train_loss_curve"))):
            metrics += [(name, v, epoch) for epoch, v in enumerate(curve or [], start=1)]
        metrics += [(k, m[k], 0) for k in SCALAR_METRICS if k in m and k not in ("val_acc", "val_loss")]
        metrics.append(("cost_seconds", row.get("cost") or 0.0, 0))
        self._log(run.info.run_id, params=params, metrics=metrics)
        self.client.set_terminated(run.info.run_id, "FINISHED" if row["status"] == "ok" else "FAILED")
        return run.info.run_id

    def parent_experiment(self, parent_id: str) -> str:
        return self.client.get_run(parent_id).info.experiment_id

    def log_round(self, parent_id: str, round_index: int, values: dict[str, float]) -> None:
        self._log(parent_id, metrics=[(k, v, round_index) for k, v in values.items()])

    def finish(self, run_id: str, ok: bool = True) -> None:
        self.client.set_terminated(run_id, "FINISHED" if ok else "FAILED")

    def _log(self, run_id: str, params: dict[str, Any] | None = None,
             metrics: list[tuple[str, float, int]] | None = None, tags: dict[str, str] | None = None) -> None:
        ps = [Param(k, str(v)[:PARAM_LIMIT]) for k, v in (params or {}).items()]
        ms = [Metric(k, float(v), 0, step) for k, v, step in (metrics or [])
              if isinstance(v, (int, float)) and math.isfinite(v)]
        ts = [RunTag(k, str(v)) for k, v in (tags or {}).items()]
        for i in range(0, max(len(ms), 1), 1000):  # log_batch takes at most 1000 metrics
            self.client.log_batch(run_id, metrics=ms[i:i + 1000], params=ps if i == 0 else [],
                                  tags=ts if i == 0 else [])

    # ----------------------------------------------------------------- registry
    def promote(self, model_name: str, version: str, metric: str, value: float, mode: str) -> str:
        """Give ``version`` the alias ``champion`` if it beats the current champion on ``metric``, else
        ``challenger``. Returns the alias given."""
        try:
            current = self.client.get_model_version_by_alias(model_name, CHAMPION)
        except MlflowException:
            current = None
        better = True
        if current is not None and current.version != version:
            best = self.client.get_run(current.run_id).data.metrics.get(metric)
            if best is not None:
                better = value > best if mode == "max" else value < best
        alias = CHAMPION if better else CHALLENGER
        self.client.set_registered_model_alias(model_name, alias, version)
        return alias
