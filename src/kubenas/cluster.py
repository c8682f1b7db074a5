"""The Kubeflow Pipelines adapter: submit, schedule and upload a search config's pipeline with ``kfp.Client``.

Authentication follows kfp's conventions, in this order:

1. a bearer token in ``KF_PIPELINES_TOKEN`` (e.g. ``kubectl create token default-editor -n NAMESPACE
   --audience pipelines.kubeflow.org``), passed to kfp as ``existing_token``;
2. inside a pod, the projected service-account token kfp reads from ``KF_PIPELINES_SA_TOKEN_PATH`` or
   ``/var/run/secrets/kubeflow/pipelines/token``;
3. otherwise none, e.g. for a port-forwarded API server.

The host is ``--host`` or kfp's own ``KF_PIPELINES_ENDPOINT``. Tokens are never printed or logged.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import tempfile
import time
import urllib.error
import urllib.request
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubenas import __version__
from kubenas.config import DNS_LABEL, SUBDOMAIN, SearchConfig
from kubenas.core import UserError

TOKEN_ENV = "KF_PIPELINES_TOKEN"
ENDPOINT_ENV = "KF_PIPELINES_ENDPOINT"
PARAMETERS_LIMIT = 10_000  # bytes the KFP API server accepts for a run's parameters
_CRON_FIELD = re.compile(r"[0-9A-Za-z*?/,\-]+")
_CRON_NAMES = ("second", "minute", "hour", "day of month", "month", "day of week")


class ClusterError(UserError, RuntimeError):
    """A cluster command cannot go on; the message says why and what to change."""


@dataclass
class Submitted:
    """What the API server created, and where to see it in the Kubeflow UI."""

    kind: str
    id: str
    url: str
    name: str


def check_cron(expression: str) -> str:
    """A 6-field cron expression (seconds first), as Kubeflow's scheduler reads it: ``"0 0 2 * * *"`` is 02:00
    every day."""
    fields = expression.split()
    if len(fields) != 6:
        hint = f"; to run at '{expression}' write '0 {expression}'" if len(fields) == 5 else ""
        raise ClusterError(
            f"--cron {expression!r}: expected 6 fields ({', '.join(_CRON_NAMES)}), got {len(fields)}{hint}"
        )
    for name, field in zip(_CRON_NAMES, fields):
        if not _CRON_FIELD.fullmatch(field):
            raise ClusterError(f"--cron {expression!r}: the {name} field {field!r} is not a cron field")
    return " ".join(fields)


def pipeline_arguments(config: SearchConfig) -> dict[str, Any]:
    """The run parameters of ``nas_search``: the whole config, and the values of the form's typed fields (they take
    precedence over the config, so a package compiled from an older config runs this one)."""
    args = {
        "config_json": config.to_json(),
        "rounds": config.budget.rounds,
        "candidates_per_round": config.budget.candidates_per_round,
        "name": config.name,
        "seed": config.seed,
        "strategy": config.strategy.name,
        "epochs": config.fidelity.epochs,
        "data_fraction": config.fidelity.data_fraction,
    }
    size = len(json.dumps(args).encode())
    if size > PARAMETERS_LIMIT:
        raise ClusterError(
            f"the config is {size:,} bytes as run parameters; the KFP API server accepts at most "
            f"{PARAMETERS_LIMIT:,}. Shorten space.options or strategy.options"
        )
    return args


def connect(host: str | None = None, namespace: str | None = None):
    """A ``kfp.Client`` authenticated as described in the module docstring."""
    import kfp
    from kfp.client import KF_PIPELINES_SA_TOKEN_ENV, KF_PIPELINES_SA_TOKEN_PATH, ServiceAccountTokenVolumeCredentials

    host = host or os.environ.get(ENDPOINT_ENV)
    if not host:
        raise ClusterError(f"no Kubeflow Pipelines endpoint: pass --host URL or set {ENDPOINT_ENV}")
    if not host.startswith(("http://", "https://")):
        raise ClusterError(
            f"--host {host!r}: give a URL with its scheme, e.g. http://localhost:8888 or "
            "https://kubeflow.example.com/pipeline"
        )
    kwargs: dict[str, Any] = {"host": host.rstrip("/")}
    if namespace:
        kwargs["namespace"] = namespace
    token = (os.environ.get(TOKEN_ENV) or "").strip()
    sa_token = os.environ.get(KF_PIPELINES_SA_TOKEN_ENV, KF_PIPELINES_SA_TOKEN_PATH)
    if token:
        kwargs["existing_token"] = token
    elif os.path.exists(sa_token):
        kwargs["credentials"] = ServiceAccountTokenVolumeCredentials(path=sa_token)
        token = Path(sa_token).read_text().strip()
    _probe(kwargs["host"], token)
    try:
        with warnings.catch_warnings():  # "This client only works with Kubeflow Pipeline v2.0.0-beta.2 and later"
            warnings.simplefilter("ignore", FutureWarning)
            return kfp.Client(**kwargs)
    except Exception as exc:  # kfp raises urllib3/ApiException/ValueError depending on what failed
        raise ClusterError(f"cannot reach Kubeflow Pipelines at {host}: {_reason(exc)}") from None


def _probe(host: str, token: str) -> None:
    """One request to the health endpoint, so that a wrong host or token fails at once with a clear reason
    (kfp retries for seconds and then reports only "Failed getting healthz endpoint")."""
    request = urllib.request.Request(f"{host}/apis/v2beta1/healthz")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=15):
            return
    except urllib.error.HTTPError as exc:
        hint = {
            401: f"the server wants a login: set {TOKEN_ENV} to a valid token",
            403: f"the token in {TOKEN_ENV} is not allowed here",
            404: "is --host the Pipelines API, e.g. https://kubeflow.example.com/pipeline?",
        }.get(exc.code, "")
        raise ClusterError(f"Kubeflow Pipelines at {host} answered HTTP {exc.code} ({hint or exc.reason})") from None
    except (urllib.error.URLError, OSError) as exc:
        raise ClusterError(f"cannot reach Kubeflow Pipelines at {host}: {getattr(exc, 'reason', exc)}") from None


def check_options(
    *,
    namespace: str | None = None,
    experiment: str | None = None,
    service_account: str | None = None,
    run_name: str | None = None,
    name: str | None = None,
    version: str | None = None,
) -> None:
    """The command line's names, checked before the cluster is contacted: each names the option and what it takes."""
    if namespace is not None and not DNS_LABEL.fullmatch(namespace):
        raise ClusterError(
            f"--namespace {namespace!r}: a Kubernetes namespace is 1-63 lowercase letters, digits "
            "or '-', starting and ending with a letter or digit"
        )
    if service_account and not SUBDOMAIN.fullmatch(service_account):
        raise ClusterError(
            f"--service-account {service_account!r}: a Kubernetes service account name is lowercase "
            "letters, digits, '-' and '.' (or '' for the namespace default)"
        )
    for option, value in (
        ("--experiment", experiment),
        ("--run-name", run_name),
        ("--name", name),
        ("--version", version),
    ):
        if value is not None and (
            not value.strip() or value != value.strip() or len(value) > 128 or not value.isprintable()
        ):
            raise ClusterError(f"{option} {value!r}: expected 1-128 printable characters, without spaces at either end")


def submit(
    config: SearchConfig,
    *,
    host: str | None = None,
    namespace: str | None = None,
    experiment: str = "kubenas",
    service_account: str | None = "kubenas-runner",
    run_name: str | None = None,
) -> Submitted:
    """Compile ``config``'s pipeline and start one run of it in ``experiment`` (created if missing)."""
    check_options(namespace=namespace, experiment=experiment, service_account=service_account, run_name=run_name)
    arguments = pipeline_arguments(config)
    client = connect(host, namespace)
    name = run_name or f"{config.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    with tempfile.TemporaryDirectory() as tmp:
        package = _compile(config, tmp)
        result = _call(
            lambda: client.create_run_from_pipeline_package(
                str(package),
                arguments=arguments,
                run_name=name,
                experiment_name=experiment,
                namespace=namespace,
                service_account=service_account or None,
            ),
            "create the run",
        )
    return Submitted("run", result.run_id, f"{_ui(host)}/#/runs/details/{result.run_id}", name)


def schedule(
    config: SearchConfig,
    *,
    cron: str,
    host: str | None = None,
    namespace: str | None = None,
    experiment: str = "kubenas",
    service_account: str | None = "kubenas-runner",
    name: str | None = None,
    catchup: bool = False,
) -> Submitted:
    """A recurring run of ``config``'s pipeline on a 6-field cron, one run at a time. A search with the same name
    resumes from its store, and the ``champion`` alias moves only on improvement, so each run improves one
    search. Missed runs are skipped unless ``catchup``."""
    cron = check_cron(cron)
    check_options(namespace=namespace, experiment=experiment, service_account=service_account, name=name)
    arguments = pipeline_arguments(config)
    client = connect(host, namespace)
    name = name or f"kubenas-{config.name}"
    exp = _call(lambda: client.create_experiment(experiment, namespace=namespace), "find or create the experiment")
    with tempfile.TemporaryDirectory() as tmp:
        package = _compile(config, tmp)
        job = _call(
            lambda: client.create_recurring_run(
                experiment_id=exp.experiment_id,
                job_name=name,
                description=f"kubenas search {config.name!r} on {cron}",
                cron_expression=cron,
                max_concurrency=1,
                no_catchup=not catchup,
                params=arguments,
                pipeline_package_path=str(package),
                service_account=service_account or None,
            ),
            "create the recurring run",
        )
    return Submitted(
        "recurring run", job.recurring_run_id, f"{_ui(host)}/#/recurringrun/details/{job.recurring_run_id}", name
    )


def upload(
    config: SearchConfig, *, host: str | None = None, namespace: str | None = None, version: str | None = None
) -> Submitted:
    """Upload ``config``'s pipeline to the Kubeflow UI, or a new version of it when one of that name exists.
    The form's defaults are the config's values."""
    check_options(namespace=namespace, version=version)
    client = connect(host, namespace)
    name = f"kubenas-{config.name}"
    version = version or f"{__version__}-{time.strftime('%Y%m%d-%H%M%S')}"
    with tempfile.TemporaryDirectory() as tmp:
        package = _compile(config, tmp)
        pipeline_id = _call(lambda: client.get_pipeline_id(name), "look up the pipeline")
        if pipeline_id is None:
            pipeline = _call(
                lambda: client.upload_pipeline(
                    str(package), pipeline_name=name, description=_describe(config), namespace=namespace
                ),
                "upload the pipeline",
            )
            return Submitted(
                "pipeline", pipeline.pipeline_id, f"{_ui(host)}/#/pipelines/details/{pipeline.pipeline_id}", name
            )
        created = _call(
            lambda: client.upload_pipeline_version(
                str(package), pipeline_version_name=version, pipeline_id=pipeline_id, description=_describe(config)
            ),
            "upload the pipeline version",
        )
    return Submitted(
        "pipeline version",
        created.pipeline_version_id,
        f"{_ui(host)}/#/pipelines/details/{pipeline_id}/version/{created.pipeline_version_id}",
        f"{name} {version}",
    )


def _compile(config: SearchConfig, directory: str) -> Path:
    from kubenas.pipelines import compile_pipeline

    return compile_pipeline(config, Path(directory) / f"{config.name}.yaml")


def _describe(config: SearchConfig) -> str:
    return (
        f"kubenas NAS: {config.space.name} space, {config.search_method} strategy, {config.dataset.name} data, "
        f"up to {config.budget.rounds} rounds of {config.budget.candidates_per_round}"
    )


def _ui(host: str | None) -> str:
    """The UI's address, as kfp finds it: ``KF_PIPELINES_UI_ENDPOINT``, else the API host."""
    return (os.environ.get("KF_PIPELINES_UI_ENDPOINT") or host or os.environ.get(ENDPOINT_ENV, "")).rstrip("/")


def _call(fn, what: str):
    """Run one kfp call; its own "Experiment details: ..." lines are dropped, the CLI prints the addresses."""
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            return fn()
    except ClusterError:
        raise
    except Exception as exc:
        raise ClusterError(f"Kubeflow Pipelines could not {what}: {_reason(exc)}") from None


def _reason(exc: Exception) -> str:
    """A one-line reason from kfp's exceptions, without request headers (which carry the token)."""
    status, body = getattr(exc, "status", None), getattr(exc, "body", None)
    if status:
        message = body
        try:
            message = json.loads(body).get("message") or json.loads(body).get("error") or body
        except (TypeError, ValueError, AttributeError):
            pass
        hint = {
            401: " (set KF_PIPELINES_TOKEN to a valid token)",
            403: " (the token's identity may not use this namespace: check --namespace)",
        }.get(int(status), "")
        return f"HTTP {status} {str(message or getattr(exc, 'reason', ''))[:300]}{hint}"
    return str(getattr(exc, "reason", None) or exc).splitlines()[0][:300]
