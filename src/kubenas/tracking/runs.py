"""MLflow runs for kubenas: one parent run per pipeline run, one nested run per candidate, with their metrics,
curves, datasets and reports. Only configuration and results are logged: credentials stay in the environment and
never become params, tags or log lines."""

from __future__ import annotations

import json
import logging
import os
import time
import urllib.parse
from typing import Any, Protocol

from kubenas.core import is_finite
from kubenas.tracking.api import MlflowApi, TrackingError, now_ms

# A "View run at ..." line per run would drown the search's own progress output.
os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
# The component image has no git: MLflow's three warnings per logged model that it cannot read a git SHA (of the
# task's working directory, which is not the search's source anyway) are noise.
logging.getLogger("mlflow.utils.git_utils").setLevel(logging.ERROR)

PARAM_LIMIT = 6000  # MLflow's maximum param value length


# Scalar result metrics worth a column in MLflow and in the Kubeflow UI: what training, a proxy, early
# termination and inheritance report (curves are logged per epoch).
SCALAR_METRICS = (
    "val_acc",
    "val_loss",
    "params",
    "macs",
    "train_seconds",
    "latency_ms",
    "zc_score",
    "epochs_trained",
    "lc_predicted_val_acc",
    "lc_epochs_saved",
    "inherited_share",
)


KIND_TAG = {"key": "mlflow.experimentKind", "value": "custom_model_development"}  # what MLflow's UI opens it on


class RoundTracking(Protocol):
    """What a strategy's rounds tell the tracking server: :class:`Tracker` implements it on MLflow; tests may
    implement it in memory (their stand-in is checked against this)."""

    def start_candidate(
        self,
        parent_id: str,
        candidate: dict[str, Any],
        round_index: int,
        config,
        genotype: str,
        run_id: str | None = None,
    ) -> str: ...

    def candidate_runs(self, search: str, round_index: int, parent_id: str) -> dict[str, dict[str, str]]: ...

    def finish_candidate(self, run_id: str, row: dict[str, Any]) -> None: ...

    def log_round(self, parent_id: str, round_index: int, values: dict[str, float]) -> None: ...

    def log_epoch(self, run_id: str, epoch: int, values: dict[str, float]) -> None: ...

    def log_dataset(self, run_id: str, data, config, context: str) -> None: ...

    def log_report(self, run_id: str, report, folder: str = "report") -> None: ...


class Tracker:
    def __init__(self, uri: str | None = None, experiment: str = "kubenas"):
        self.uri = uri or os.environ.get("MLFLOW_TRACKING_URI")
        if not self.uri:
            raise TrackingError("no MLflow server: set tracking.uri in the config or MLFLOW_TRACKING_URI")
        self.experiment = experiment
        self.api = MlflowApi(self.uri)
        self._runs: dict[str, dict[str, Any]] = {}  # run id -> its info (runs/get), see _run_info

    @property
    def client(self):
        """The MLflow client, for models and artifacts (imported on first use)."""
        return self.api.client

    @property
    def requests(self) -> int:
        """REST calls made so far."""
        return self.api.requests

    @property
    def seconds(self) -> float:
        """The time the REST calls took."""
        return self.api.seconds

    def check(self, timeout: float = 5.0) -> None:
        """Fail fast when the server does not answer (MLflow's own client retries for minutes)."""
        self.api.check(timeout)

    @classmethod
    def from_config(cls, config) -> Tracker:
        return cls(config.tracking.uri, config.tracking.experiment)

    def experiment_id(self) -> str:
        """The search's experiment, created when missing, and marked as model development: MLflow 3's UI then opens
        it on its runs, not on the GenAI overview."""
        try:
            found = self.api.call("GET", "experiments/get-by-name", {"experiment_name": self.experiment})["experiment"]
        except TrackingError as exc:
            if "RESOURCE_DOES_NOT_EXIST" not in str(exc):
                raise
            try:
                created = self.api.call("POST", "experiments/create", {"name": self.experiment, "tags": [KIND_TAG]})
                return created["experiment_id"]
            except TrackingError:  # created meanwhile by a parallel task
                found = self.api.call("GET", "experiments/get-by-name", {"experiment_name": self.experiment})[
                    "experiment"
                ]
        if not any(t.get("key") == KIND_TAG["key"] for t in found.get("tags", [])):
            self.api.call(
                "POST", "experiments/set-experiment-tag", {"experiment_id": found["experiment_id"], **KIND_TAG}
            )
        return found["experiment_id"]

    def create_run(self, experiment_id: str, name: str, tags: dict[str, str]) -> str:
        body = {
            "experiment_id": experiment_id,
            "run_name": name,
            "start_time": now_ms(),
            "tags": [{"key": k, "value": str(v)} for k, v in tags.items()],
        }
        return self.api.call("POST", "runs/create", body)["run"]["info"]["run_id"]

    def search_runs(self, filter_string: str, experiment_id: str | None = None) -> list[dict[str, Any]]:
        runs: list[dict[str, Any]] = []
        body: dict[str, Any] = {
            "experiment_ids": [experiment_id or self.experiment_id()],
            "filter": filter_string,
            "max_results": 1000,
        }
        while True:
            page = self.api.call("POST", "runs/search", body)
            runs += page.get("runs", [])
            if not page.get("next_page_token"):
                return runs
            body["page_token"] = page["next_page_token"]

    # ----------------------------------------------------------------- runs
    def close_running(
        self, search: str, status: str = "KILLED", where: str = "", experiment_id: str | None = None
    ) -> int:
        """End every run of ``search`` still RUNNING (left by a killed or failed run of it; ``where`` narrows the
        filter) with ``status``; returns how many. Search names are DNS labels, so the filter needs no escaping."""
        stale = self.search_runs(
            f"tags.\"kubenas.search\" = '{search}' and attributes.status = 'RUNNING'{where}", experiment_id
        )
        for run in stale:
            self.api.call(
                "POST", "runs/update", {"run_id": run["info"]["run_id"], "status": status, "end_time": now_ms()}
            )
        return len(stale)

    def candidate_runs(self, search: str, round_index: int, parent_id: str) -> dict[str, dict[str, str]]:
        """The runs already opened for the candidates of a round (by an attempt that was killed or retried):
        candidate id -> ``{"run_id", "status"}``, so that a candidate trained again is logged in the same run."""
        runs = self.search_runs(
            f"tags.\"kubenas.search\" = '{search}' and tags.\"kubenas.kind\" = 'candidate' "
            f"and tags.\"kubenas.round\" = '{round_index}'",
            self.parent_experiment(parent_id),
        )
        out: dict[str, dict[str, str]] = {}
        for run in runs:
            tags = {t["key"]: t["value"] for t in run.get("data", {}).get("tags", [])}
            if "kubenas.candidate" in tags:
                out.setdefault(
                    tags["kubenas.candidate"],
                    {"run_id": run["info"]["run_id"], "status": run["info"].get("status", "")},
                )
        return out

    def start_parent(self, config) -> str:
        experiment = self.experiment_id()
        closed = self.close_running(config.name, experiment_id=experiment)  # a killed run's, at the latest now
        if closed:
            print(
                f"[kubenas] ended {closed} MLflow run(s) of {config.name!r} that an earlier run left RUNNING, as "
                "KILLED",
                flush=True,
            )
        run_id = self.create_run(
            experiment,
            config.name,
            {
                "kubenas.search": config.name,
                "kubenas.strategy": config.search_method,
                "kubenas.space": config.space.name,
                "kubenas.kind": "search",
            },
        )
        params = {
            "search": config.name,
            "dataset": config.dataset.name,
            "space": config.space.name,
            "strategy": config.search_method,
            "objective": f"{config.objective.metric} ({config.objective.mode})",
            "fidelity": json.dumps(config.fidelity.model_dump()),
            "seed": config.seed,
            "space_options": json.dumps(config.space.options),
            "strategy_options": json.dumps(config.method_options),
            "rounds": config.budget.rounds,
            "candidates_per_round": config.budget.candidates_per_round,
            **config.estimator.to_recipe().params(),
        }
        self.log(run_id, params=params)
        return run_id

    def start_candidate(
        self,
        parent_id: str,
        candidate: dict[str, Any],
        round_index: int,
        config,
        genotype: str,
        run_id: str | None = None,
    ) -> str:
        """A nested run for one candidate, opened when its training starts (the UI shows it as running). With
        ``run_id`` (the candidate's run from an attempt that did not finish), that run is opened again: one run
        per candidate."""
        if run_id is not None:
            self.api.call("POST", "runs/update", {"run_id": run_id, "status": "RUNNING"})
            return run_id
        tags = {
            "mlflow.parentRunId": parent_id,
            "kubenas.kind": "candidate",
            "kubenas.search": config.name,
            "kubenas.candidate": candidate["id"],
            "kubenas.round": str(round_index),
        }
        run_id = self.create_run(self.parent_experiment(parent_id), candidate["id"], tags)
        params = {
            "candidate_id": candidate["id"],
            "genotype": genotype,
            "space": config.space.name,
            "strategy": config.search_method,
            "round": round_index,
            "fidelity": json.dumps(candidate.get("fidelity") or {}),
            "parent_candidate": candidate.get("parent_id") or "",
            **config.estimator.to_recipe().params(),
        }
        self.log(run_id, params=params)
        return run_id

    def finish_candidate(self, run_id: str, row: dict[str, Any]) -> None:
        """The candidate's params, per-epoch metrics, status and failure reason; the run ends FINISHED or FAILED."""
        m = row.get("metrics") or {}
        metrics = []
        streamed = row.get("streamed_epochs") or 0  # epochs logged while it trained (log_epoch)
        for name, curve in (
            ("val_acc", m.get("val_acc_curve")),
            ("val_loss", m.get("val_loss_curve")),
            ("train_loss", m.get("train_loss_curve")),
        ):
            metrics += [(name, v, epoch) for epoch, v in enumerate(curve or [], start=1) if epoch > streamed]
        metrics += [(k, m[k], 0) for k in SCALAR_METRICS if k in m and k not in ("val_acc", "val_loss")]
        metrics.append(("cost_seconds", row.get("cost") or 0.0, 0))
        tags = {"kubenas.status": row["status"]}
        if row.get("error"):
            tags["kubenas.error"] = row["error"][:5000]
        self.log(run_id, params={"arch_id": row["arch_id"]}, metrics=metrics, tags=tags)
        self.finish(run_id, ok=row["status"] == "ok")

    def log_candidate(self, parent_id: str, row: dict[str, Any], round_index: int, config) -> str:
        """A nested run for a candidate evaluated elsewhere (a one-shot ranking), opened and closed at once."""
        run_id = self.start_candidate(parent_id, row, round_index, config, row["genotype"])
        self.finish_candidate(run_id, row)
        return run_id

    def _run_info(self, run_id: str) -> dict[str, Any]:
        """A run's info (experiment, artifact root), asked once per run: neither changes."""
        if run_id not in self._runs:
            self._runs[run_id] = self.api.call("GET", "runs/get", {"run_id": run_id})["run"]["info"]
        return self._runs[run_id]

    def parent_experiment(self, parent_id: str) -> str:
        return self._run_info(parent_id)["experiment_id"]

    def artifact_root(self, run_id: str) -> str:
        return self._run_info(run_id).get("artifact_uri", "")

    def put_artifacts(self, run_id: str, files: dict[str, bytes]) -> None:
        """Write ``files`` (artifact path -> bytes) into the run's artifacts, replacing what is there. Through the
        server's artifact proxy (``mlflow-artifacts:/``, as the embedded stack and the manifests serve it) with a
        plain HTTP PUT each; elsewhere through the MLflow client."""
        root = self.artifact_root(run_id) if self.api.rest else ""
        if root.startswith("mlflow-artifacts:/"):
            base = f"{self.uri.rstrip('/')}/api/2.0/mlflow-artifacts/artifacts/{root.split(':', 1)[1].lstrip('/')}"
            for path, data in files.items():
                kind = {"png": "image/png", "html": "text/html", "json": "application/json"}.get(
                    path.rsplit(".", 1)[-1], "application/octet-stream"
                )
                self.api.send(f"{base}/{urllib.parse.quote(path)}", data, "PUT", kind, f"an upload of {path}")
            return
        import tempfile
        from pathlib import Path

        with tempfile.TemporaryDirectory() as tmp:
            for path, data in files.items():
                local = Path(tmp) / path
                local.parent.mkdir(parents=True, exist_ok=True)
                local.write_bytes(data)
                self.client.log_artifact(run_id, str(local), path.rpartition("/")[0] or None)

    def log_report(self, run_id: str, report, folder: str = "report") -> None:
        """A :class:`kubenas.report.Report` on a run: its figures, its page and its leaderboard (a table the MLflow
        UI lists), replaced on every call; its summary becomes the run's description."""
        files = {f"{folder}/{name}.png": png for name, png in report.figures.items()}
        files[f"{folder}/report.html"] = report.html.encode()
        files[f"{folder}/leaderboard.json"] = json.dumps(report.table).encode()
        self.put_artifacts(run_id, files)
        self.log(
            run_id,
            tags={
                "mlflow.note.content": report.summary,
                "mlflow.loggedArtifacts": json.dumps([{"path": f"{folder}/leaderboard.json", "type": "table"}]),
            },
        )

    def log_dataset(self, run_id: str, data, config, context: str) -> None:
        """The run's dataset as an MLflow input (the runs table's Dataset column): name, digest, source, split
        sizes; ``context`` says how the run used it (``training``, ``evaluation``)."""
        source = {"loader": config.dataset.name, "options": config.dataset.options}
        dataset = {
            "name": config.dataset.name,
            "digest": data.digest(),
            "source_type": "kubenas",
            "source": json.dumps(source, sort_keys=True)[:PARAM_LIMIT],
            "profile": json.dumps(
                {
                    "splits": data.splits(),
                    "input_shape": list(data.input_shape),
                    "num_classes": data.num_classes,
                    "class_counts": data.class_counts(),
                }
            )[:PARAM_LIMIT],
        }
        body = {
            "run_id": run_id,
            "datasets": [{"dataset": dataset, "tags": [{"key": "mlflow.data.context", "value": context}]}],
        }
        for attempt in range(3):
            try:
                self.api.call("POST", "runs/log-inputs", body)
                return
            except TrackingError as exc:
                # two workers logging a dataset the experiment does not hold yet: the server inserts it twice and
                # one insert fails on its unique key; the next attempt finds the row the other one made
                text = str(exc).lower()
                if not ("unique constraint" in text or "duplicate" in text) or attempt == 2:
                    raise
                time.sleep(0.2 * (attempt + 1))

    def log_epoch(self, run_id: str, epoch: int, values: dict[str, float]) -> None:
        """One epoch of a candidate's curves, while it trains (the MLflow UI's charts grow with it)."""
        self.log(run_id, metrics=[(k, v, epoch) for k, v in values.items()])

    def log_round(self, parent_id: str, round_index: int, values: dict[str, float]) -> None:
        self.log(parent_id, metrics=[(k, v, round_index) for k, v in values.items()])

    def finish(self, run_id: str, ok: bool = True) -> None:
        self.api.call(
            "POST", "runs/update", {"run_id": run_id, "status": "FINISHED" if ok else "FAILED", "end_time": now_ms()}
        )

    def log(
        self,
        run_id: str,
        params: dict[str, Any] | None = None,
        metrics: list[tuple[str, float, int]] | None = None,
        tags: dict[str, str] | None = None,
    ) -> None:
        now = now_ms()
        ps = [{"key": k, "value": str(v)[:PARAM_LIMIT]} for k, v in (params or {}).items()]
        ms = [
            {"key": k, "value": float(v), "timestamp": now, "step": int(step)}
            for k, v, step in (metrics or [])
            if is_finite(v)
        ]
        ts = [{"key": k, "value": str(v)} for k, v in (tags or {}).items()]
        for i in range(0, max(len(ms), 1), 1000):  # log-batch takes at most 1000 metrics
            self.api.call(
                "POST",
                "runs/log-batch",
                {
                    "run_id": run_id,
                    "metrics": ms[i : i + 1000],
                    "params": ps if i == 0 else [],
                    "tags": ts if i == 0 else [],
                },
            )


def ui_url(uri: str) -> str:
    """The MLflow UI's address for a tracking server, in its model-training view: MLflow 3 otherwise opens on its
    GenAI pages, whatever the experiment holds."""
    return f"{uri.rstrip('/')}/#/experiments?workflowType=machine_learning"
