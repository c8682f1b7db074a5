"""MLflow's tracking API for kubenas: REST over the standard library (importing the MLflow client costs 1.5 CPU-s,
which every training task would pay for a handful of requests), or the same calls through the MLflow client where
the tracking URI is no server (a local database). The REST calls honour MLflow's own environment:
``MLFLOW_TRACKING_USERNAME`` / ``PASSWORD``, ``MLFLOW_TRACKING_TOKEN``, ``MLFLOW_TRACKING_INSECURE_TLS`` and
``MLFLOW_TRACKING_SERVER_CERT_PATH``."""

from __future__ import annotations

import base64
import json
import os
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from functools import cached_property
from typing import Any

from kubenas.core import UserError


class TrackingError(UserError, RuntimeError):
    """The MLflow server cannot be used; the message says why."""


class MlflowApi:
    """Calls to one tracking server (``uri``); ``requests`` and ``seconds`` count the REST calls and their time."""

    def __init__(self, uri: str):
        self.uri = uri
        self.requests, self.seconds = 0, 0.0

    @cached_property
    def client(self):
        """The MLflow client, for the registry, models and artifacts (imported on first use)."""
        from mlflow.tracking import MlflowClient

        return MlflowClient(tracking_uri=self.uri)

    def check(self, timeout: float = 5.0) -> None:
        """Fail fast when the server does not answer (MLflow's own client retries for minutes)."""
        if not self.rest:
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

    @property
    def rest(self) -> bool:
        """Whether the tracking URI is a server (else the calls go through the MLflow client)."""
        return self.uri.startswith(("http://", "https://"))

    def _tls(self) -> ssl.SSLContext | None:
        if not self.uri.startswith("https://"):
            return None
        if os.environ.get("MLFLOW_TRACKING_INSECURE_TLS", "").lower() == "true":
            return ssl._create_unverified_context()  # the user's explicit choice, as in MLflow's client
        return ssl.create_default_context(cafile=os.environ.get("MLFLOW_TRACKING_SERVER_CERT_PATH") or None)

    def call(self, method: str, endpoint: str, body: dict[str, Any] | None = None, *, tries: int = 4) -> dict[str, Any]:
        """One REST call (:meth:`send`), or its equivalent through the client for a tracking URI that is no server."""
        if not self.rest:
            return self._call_client(endpoint, body or {})
        url = f"{self.uri.rstrip('/')}/api/2.0/mlflow/{endpoint}"
        data = None
        if method == "GET" and body:
            url += "?" + urllib.parse.urlencode(body)
        elif body is not None:
            data = json.dumps(body).encode()
        return json.loads(self.send(url, data, method, "application/json", endpoint, tries) or b"{}")

    def send(self, url: str, data: bytes | None, method: str, content_type: str, what: str, tries: int = 4) -> bytes:
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


def now_ms() -> int:
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
