"""The MLflow adapter: one parent run per pipeline run, one nested run per candidate, and the winner in the
model registry with ``champion`` / ``challenger`` aliases. Every MLflow call of kubenas goes through here.

Runs and metrics go over MLflow's REST API (``/api/2.0/mlflow``) with the standard library: importing the MLflow
client costs 1.5 CPU-s, which every training task would pay for a handful of requests. The registry, models and
artifacts (the export and ``kubenas pull``) use the MLflow client, imported when first needed. The REST calls honour
MLflow's own environment: ``MLFLOW_TRACKING_USERNAME`` / ``PASSWORD``, ``MLFLOW_TRACKING_TOKEN``,
``MLFLOW_TRACKING_INSECURE_TLS`` and ``MLFLOW_TRACKING_SERVER_CERT_PATH``.

Only configuration and results are logged: credentials stay in the environment and never become params,
tags or log lines.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import os
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from functools import cached_property
from typing import Any

# A "View run at ..." line per run would drown the search's own progress output.
os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
# The component image has no git: MLflow's three warnings per logged model that it cannot read a git SHA (of the
# task's working directory, which is not the search's source anyway) are noise.
logging.getLogger("mlflow.utils.git_utils").setLevel(logging.ERROR)

PARAM_LIMIT = 6000  # MLflow's maximum param value length
CHAMPION, CHALLENGER = "champion", "challenger"


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


COMPLETE_TAG = "kubenas.export_complete"  # on a model version whose export completed
KIND_TAG = {"key": "mlflow.experimentKind", "value": "custom_model_development"}  # what MLflow's UI opens it on


class TrackingError(RuntimeError):
    """The MLflow server cannot be used; the message says why."""


class Tracker:
    def __init__(self, uri: str | None = None, experiment: str = "kubenas"):
        self.uri = uri or os.environ.get("MLFLOW_TRACKING_URI")
        if not self.uri:
            raise TrackingError("no MLflow server: set tracking.uri in the config or MLFLOW_TRACKING_URI")
        self.experiment = experiment
        self._runs: dict[str, dict[str, Any]] = {}  # run id -> its info (runs/get), see _run_info
        self.requests, self.seconds = 0, 0.0  # REST calls made, and the time they took

    @classmethod
    def from_config(cls, config) -> Tracker:
        return cls(config.tracking.uri, config.tracking.experiment)

    @cached_property
    def client(self):
        """The MLflow client, for the registry, models and artifacts (imported on first use)."""
        from mlflow.tracking import MlflowClient

        return MlflowClient(tracking_uri=self.uri)

    def check(self, timeout: float = 5.0) -> None:
        """Fail fast when the server does not answer (MLflow's own client retries for minutes)."""
        if not self._rest:
            return
        url = self.uri.rstrip("/") + "/health"
        try:
            with urllib.request.urlopen(url, timeout=timeout, context=self._tls()) as resp:
                if resp.status == 200:
                    return
                raise TrackingError(f"MLflow at {self.uri} answered HTTP {resp.status} on /health")
        except urllib.error.HTTPError as exc:
            raise TrackingError(f"MLflow at {self.uri} answered HTTP {exc.code} on /health") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise TrackingError(
                f"cannot reach the MLflow server at {self.uri}: {reason}. Check tracking.uri or MLFLOW_TRACKING_URI"
            ) from None

    # ----------------------------------------------------------------- REST
    @property
    def _rest(self) -> bool:
        return self.uri.startswith(("http://", "https://"))

    def _tls(self) -> ssl.SSLContext | None:
        if not self.uri.startswith("https://"):
            return None
        if os.environ.get("MLFLOW_TRACKING_INSECURE_TLS", "").lower() == "true":
            return ssl._create_unverified_context()  # the user's explicit choice, as in MLflow's client
        return ssl.create_default_context(cafile=os.environ.get("MLFLOW_TRACKING_SERVER_CERT_PATH") or None)

    def _call(
        self, method: str, endpoint: str, body: dict[str, Any] | None = None, *, tries: int = 4
    ) -> dict[str, Any]:
        """One REST call (:meth:`_send`), or its equivalent through the client for a tracking URI that is no server."""
        if not self._rest:
            return self._call_client(endpoint, body or {})
        url = f"{self.uri.rstrip('/')}/api/2.0/mlflow/{endpoint}"
        data = None
        if method == "GET" and body:
            url += "?" + urllib.parse.urlencode(body)
        elif body is not None:
            data = json.dumps(body).encode()
        return json.loads(self._send(url, data, method, "application/json", endpoint, tries) or b"{}")

    def _send(self, url: str, data: bytes | None, method: str, content_type: str, what: str, tries: int = 4) -> bytes:
        """One HTTP request to the server; connection errors and 5xx answers are retried with backoff, 4xx raise
        at once."""
        headers = {"Content-Type": content_type, **_auth_headers()}
        for attempt in range(tries):
            start = time.perf_counter()
            self.requests += 1
            try:
                request = urllib.request.Request(url, data=data, method=method, headers=headers)
                with urllib.request.urlopen(request, timeout=60, context=self._tls()) as resp:
                    return resp.read()
            except urllib.error.HTTPError as exc:
                detail = exc.read().decode(errors="replace")[:500]
                if exc.code < 500 or attempt == tries - 1:
                    raise TrackingError(f"MLflow at {self.uri} answered HTTP {exc.code} to {what}: {detail}") from None
            except (urllib.error.URLError, OSError) as exc:
                if attempt == tries - 1:
                    raise TrackingError(
                        f"cannot reach the MLflow server at {self.uri} ({what}): {getattr(exc, 'reason', exc)}"
                    ) from None
            finally:
                self.seconds += time.perf_counter() - start
            time.sleep(0.5 * 2**attempt)
        raise AssertionError("unreachable")

    def _call_client(self, endpoint: str, body: dict[str, Any]) -> dict[str, Any]:
        """The same calls through the MLflow client, for tracking URIs that are not servers (a local database)."""
        from mlflow.entities import Metric, Param, RunTag
        from mlflow.exceptions import MlflowException

        c = self.client
        if endpoint == "experiments/get-by-name":
            exp = c.get_experiment_by_name(body["experiment_name"])
            if exp is None:
                raise TrackingError(f"RESOURCE_DOES_NOT_EXIST: experiment {body['experiment_name']!r}")
            return {
                "experiment": {
                    "experiment_id": exp.experiment_id,
                    "tags": [{"key": k, "value": v} for k, v in exp.tags.items()],
                }
            }
        if endpoint == "experiments/create":
            try:
                return {
                    "experiment_id": c.create_experiment(
                        body["name"], tags={t["key"]: t["value"] for t in body.get("tags", [])}
                    )
                }
            except MlflowException as exc:
                raise TrackingError(str(exc)) from None
        if endpoint == "experiments/set-experiment-tag":
            c.set_experiment_tag(body["experiment_id"], body["key"], body["value"])
            return {}
        if endpoint == "runs/create":
            tags = {t["key"]: t["value"] for t in body.get("tags", [])}
            run = c.create_run(body["experiment_id"], run_name=body.get("run_name"), tags=tags)
            return {"run": {"info": {"run_id": run.info.run_id}}}
        if endpoint == "runs/get":
            return {"run": {"info": {"experiment_id": c.get_run(body["run_id"]).info.experiment_id}}}
        if endpoint == "runs/log-batch":
            c.log_batch(
                body["run_id"],
                metrics=[Metric(m["key"], m["value"], m["timestamp"], m["step"]) for m in body.get("metrics", [])],
                params=[Param(p["key"], p["value"]) for p in body.get("params", [])],
                tags=[RunTag(t["key"], t["value"]) for t in body.get("tags", [])],
            )
            return {}
        if endpoint == "runs/update":
            if body["status"] == "RUNNING":
                c.update_run(body["run_id"], status="RUNNING")
            else:
                c.set_terminated(body["run_id"], body["status"], body.get("end_time"))
            return {}
        if endpoint == "runs/log-inputs":
            from mlflow.entities import Dataset, DatasetInput, InputTag

            c.log_inputs(
                body["run_id"],
                [DatasetInput(Dataset(**d["dataset"]), [InputTag(**t) for t in d["tags"]]) for d in body["datasets"]],
            )
            return {}
        if endpoint == "runs/search":
            page = c.search_runs(
                body["experiment_ids"],
                body["filter"],
                max_results=body["max_results"],
                page_token=body.get("page_token"),
            )
            return {
                "runs": [
                    {
                        "info": {"run_id": r.info.run_id, "run_name": r.info.run_name, "status": r.info.status},
                        "data": {"tags": [{"key": k, "value": v} for k, v in r.data.tags.items()]},
                    }
                    for r in page
                ],
                "next_page_token": page.token,
            }
        raise ValueError(f"no client call for {endpoint}")  # pragma: no cover - every endpoint used is above

    def experiment_id(self) -> str:
        """The search's experiment, created when missing, and marked as model development: MLflow 3's UI then opens
        it on its runs, not on the GenAI overview."""
        try:
            found = self._call("GET", "experiments/get-by-name", {"experiment_name": self.experiment})["experiment"]
        except TrackingError as exc:
            if "RESOURCE_DOES_NOT_EXIST" not in str(exc):
                raise
            try:
                created = self._call("POST", "experiments/create", {"name": self.experiment, "tags": [KIND_TAG]})
                return created["experiment_id"]
            except TrackingError:  # created meanwhile by a parallel task
                found = self._call("GET", "experiments/get-by-name", {"experiment_name": self.experiment})["experiment"]
        if not any(t.get("key") == KIND_TAG["key"] for t in found.get("tags", [])):
            self._call("POST", "experiments/set-experiment-tag", {"experiment_id": found["experiment_id"], **KIND_TAG})
        return found["experiment_id"]

    def _create_run(self, experiment_id: str, name: str, tags: dict[str, str]) -> str:
        body = {
            "experiment_id": experiment_id,
            "run_name": name,
            "start_time": _now_ms(),
            "tags": [{"key": k, "value": str(v)} for k, v in tags.items()],
        }
        return self._call("POST", "runs/create", body)["run"]["info"]["run_id"]

    def _search_runs(self, filter_string: str, experiment_id: str | None = None) -> list[dict[str, Any]]:
        runs: list[dict[str, Any]] = []
        body: dict[str, Any] = {
            "experiment_ids": [experiment_id or self.experiment_id()],
            "filter": filter_string,
            "max_results": 1000,
        }
        while True:
            page = self._call("POST", "runs/search", body)
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
        stale = self._search_runs(
            f"tags.\"kubenas.search\" = '{search}' and attributes.status = 'RUNNING'{where}", experiment_id
        )
        for run in stale:
            self._call(
                "POST", "runs/update", {"run_id": run["info"]["run_id"], "status": status, "end_time": _now_ms()}
            )
        return len(stale)

    def candidate_runs(self, search: str, round_index: int, parent_id: str) -> dict[str, dict[str, str]]:
        """The runs already opened for the candidates of a round (by an attempt that was killed or retried):
        candidate id -> ``{"run_id", "status"}``, so that a candidate trained again is logged in the same run."""
        runs = self._search_runs(
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
        run_id = self._create_run(
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
        }
        self._log(run_id, params=params)
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
            self._call("POST", "runs/update", {"run_id": run_id, "status": "RUNNING"})
            return run_id
        tags = {
            "mlflow.parentRunId": parent_id,
            "kubenas.kind": "candidate",
            "kubenas.search": config.name,
            "kubenas.candidate": candidate["id"],
            "kubenas.round": str(round_index),
        }
        run_id = self._create_run(self.parent_experiment(parent_id), candidate["id"], tags)
        params = {
            "candidate_id": candidate["id"],
            "genotype": genotype,
            "space": config.space.name,
            "strategy": config.search_method,
            "round": round_index,
            "fidelity": json.dumps(candidate.get("fidelity") or {}),
            "parent_candidate": candidate.get("parent_id") or "",
        }
        self._log(run_id, params=params)
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
        self._log(run_id, params={"arch_id": row["arch_id"]}, metrics=metrics, tags=tags)
        self.finish(run_id, ok=row["status"] == "ok")

    def log_candidate(self, parent_id: str, row: dict[str, Any], round_index: int, config) -> str:
        """A nested run for a candidate evaluated elsewhere (a one-shot ranking), opened and closed at once."""
        run_id = self.start_candidate(parent_id, row, round_index, config, row["genotype"])
        self.finish_candidate(run_id, row)
        return run_id

    def _run_info(self, run_id: str) -> dict[str, Any]:
        """A run's info (experiment, artifact root), asked once per run: neither changes."""
        if run_id not in self._runs:
            self._runs[run_id] = self._call("GET", "runs/get", {"run_id": run_id})["run"]["info"]
        return self._runs[run_id]

    def parent_experiment(self, parent_id: str) -> str:
        return self._run_info(parent_id)["experiment_id"]

    def artifact_root(self, run_id: str) -> str:
        return self._run_info(run_id).get("artifact_uri", "")

    def put_artifacts(self, run_id: str, files: dict[str, bytes]) -> None:
        """Write ``files`` (artifact path -> bytes) into the run's artifacts, replacing what is there. Through the
        server's artifact proxy (``mlflow-artifacts:/``, as the embedded stack and the manifests serve it) with a
        plain HTTP PUT each; elsewhere through the MLflow client."""
        root = self.artifact_root(run_id) if self._rest else ""
        if root.startswith("mlflow-artifacts:/"):
            base = f"{self.uri.rstrip('/')}/api/2.0/mlflow-artifacts/artifacts/{root.split(':', 1)[1].lstrip('/')}"
            for path, data in files.items():
                kind = {"png": "image/png", "html": "text/html", "json": "application/json"}.get(
                    path.rsplit(".", 1)[-1], "application/octet-stream"
                )
                self._send(f"{base}/{urllib.parse.quote(path)}", data, "PUT", kind, f"an upload of {path}")
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
        self._log(
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
                {"splits": data.splits(), "input_shape": list(data.input_shape), "num_classes": data.num_classes}
            ),
        }
        body = {
            "run_id": run_id,
            "datasets": [{"dataset": dataset, "tags": [{"key": "mlflow.data.context", "value": context}]}],
        }
        for attempt in range(3):
            try:
                self._call("POST", "runs/log-inputs", body)
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
        self._log(run_id, metrics=[(k, v, epoch) for k, v in values.items()])

    def log_round(self, parent_id: str, round_index: int, values: dict[str, float]) -> None:
        self._log(parent_id, metrics=[(k, v, round_index) for k, v in values.items()])

    def finish(self, run_id: str, ok: bool = True) -> None:
        self._call(
            "POST", "runs/update", {"run_id": run_id, "status": "FINISHED" if ok else "FAILED", "end_time": _now_ms()}
        )

    def _log(
        self,
        run_id: str,
        params: dict[str, Any] | None = None,
        metrics: list[tuple[str, float, int]] | None = None,
        tags: dict[str, str] | None = None,
    ) -> None:
        now = _now_ms()
        ps = [{"key": k, "value": str(v)[:PARAM_LIMIT]} for k, v in (params or {}).items()]
        ms = [
            {"key": k, "value": float(v), "timestamp": now, "step": int(step)}
            for k, v, step in (metrics or [])
            if isinstance(v, (int, float)) and math.isfinite(v)
        ]
        ts = [{"key": k, "value": str(v)} for k, v in (tags or {}).items()]
        for i in range(0, max(len(ms), 1), 1000):  # log-batch takes at most 1000 metrics
            self._call(
                "POST",
                "runs/log-batch",
                {
                    "run_id": run_id,
                    "metrics": ms[i : i + 1000],
                    "params": ps if i == 0 else [],
                    "tags": ts if i == 0 else [],
                },
            )

    # ----------------------------------------------------------------- registry
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
        input_example,
        pip_requirements: list[str],
    ) -> dict[str, Any]:
        """The export's nested run: params, metrics, JSON files, the ``state_dict`` and the model, registered as
        a new version of ``name``. ``pip_requirements`` are given so that MLflow does not start a second
        interpreter to infer them. Returns the run id, the version and the ``state_dict`` bytes."""
        import io
        import tempfile
        from pathlib import Path

        import mlflow
        import mlflow.pytorch
        import torch

        buf = io.BytesIO()
        torch.save(model.state_dict(), buf)
        weights = buf.getvalue()  # the same bytes go to MLflow and to the store
        mlflow.set_tracking_uri(self.uri)
        run_id = self._create_run(
            self.parent_experiment(parent_id),
            f"{config.name}-export",
            {"mlflow.parentRunId": parent_id, "kubenas.kind": "export", "kubenas.search": config.name},
        )
        self._log(run_id, params=params, metrics=[(k, v, 0) for k, v in metrics.items()])
        with mlflow.start_run(run_id=run_id):
            for filename, obj in files.items():
                mlflow.log_dict(obj, filename)
            with tempfile.TemporaryDirectory() as tmp:
                (Path(tmp) / "state_dict.pt").write_bytes(weights)
                mlflow.log_artifact(str(Path(tmp) / "state_dict.pt"))
            info = mlflow.pytorch.log_model(
                model, name="model", input_example=input_example, pip_requirements=pip_requirements
            )
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

        self.close_running(
            search,
            "FAILED",
            f" and tags.\"kubenas.kind\" = 'export' and tags.\"mlflow.parentRunId\" = '{parent_id}'",
            self.parent_experiment(parent_id),
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
                better = value > best if mode == "max" else value < best
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


def ui_url(uri: str) -> str:
    """The MLflow UI's address for a tracking server, in its model-training view: MLflow 3 otherwise opens on its
    GenAI pages, whatever the experiment holds."""
    return f"{uri.rstrip('/')}/#/experiments?workflowType=machine_learning"


def _now_ms() -> int:
    return int(time.time() * 1000)


def _auth_headers() -> dict[str, str]:
    """MLflow's own credential variables: a bearer token, or basic auth."""
    token = os.environ.get("MLFLOW_TRACKING_TOKEN")
    if token:
        return {"Authorization": f"Bearer {token}"}
    user, password = os.environ.get("MLFLOW_TRACKING_USERNAME"), os.environ.get("MLFLOW_TRACKING_PASSWORD")
    if user and password:
        return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}
    return {}
