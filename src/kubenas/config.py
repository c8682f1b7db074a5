"""The search config: one YAML file describes a whole search, validated up front with pydantic.

Every bad field is reported at once, with what is expected, before any service is contacted or any data
loaded. Credentials are never part of a config: they come from the environment or Kubernetes Secrets.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from kubenas.core import Fidelity, UserError
from kubenas.data import check_source, dataset_info
from kubenas.estimators import ONESHOT_METRICS, PROXIES, reported_metrics
from kubenas.registry import check
from kubenas.spaces import make_space
from kubenas.strategies import STRATEGIES, make_strategy

ProxyName = Literal[PROXIES]  # the zero-cost proxies, named once in kubenas.estimators
DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")  # DNS-1123: valid in S3 keys, MLflow, Kubernetes
# a DNS-1123 subdomain: a Kubernetes service account's name
SUBDOMAIN = re.compile(r"^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
# A Kubernetes label value (letters, digits, '-', '_', '.'; alphanumeric at both ends): also a safe S3 key segment
# and MLflow name.
_LABEL_VALUE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$")
_QUALIFIED = re.compile(
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)  # a label key or resource name
MAX_SEED = 2**32 - 1  # numpy's and torch's seeds


def _seed(value: int, field: str) -> int:
    if not 0 <= value <= MAX_SEED:
        raise ValueError(f"{field} must be in 0..{MAX_SEED} (numpy and torch seeds), got {value}")
    return value


def _secret_name(value: str | None) -> str | None:
    if value is not None and not SUBDOMAIN.fullmatch(value):
        raise ValueError(
            "must be a Kubernetes Secret name: lowercase letters, digits, '-' and '.', at most 253, "
            "starting and ending with a letter or digit"
        )
    return value


def _http_url(value: str | None, what: str) -> str | None:
    if value is None:
        return value
    from urllib.parse import urlsplit

    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"must be an http:// or https:// URL of the {what}, such as 'http://127.0.0.1:8333'")
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise ValueError(f"has a bad port: {value!r}") from None
    return value


class ConfigError(UserError, ValueError):
    """A config that cannot run; the message lists every bad field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def __eq__(self, other: object) -> bool:
        # Equal fields make equal configs: the objects validation built and keeps (a space, a strategy) don't count.
        return type(self) is type(other) and self.model_dump() == other.model_dump()

    def __hash__(self) -> int:
        return hash(self.model_dump_json())


class Named(_Strict):
    name: str
    options: dict[str, Any] = Field(default_factory=dict)


class DatasetConfig(Named):
    _info: Any = PrivateAttr(None)

    @model_validator(mode="after")
    def _known(self) -> DatasetConfig:
        self._info = dataset_info(self.name, **self.options)  # names and values, without loading the data
        return self

    @property
    def info(self):
        """The dataset's input shape and classes, as far as the config tells (:class:`kubenas.data.DatasetInfo`)."""
        return self._info


class SpaceConfig(Named):
    _built: Any = PrivateAttr(None)

    @model_validator(mode="after")
    def _builds(self) -> SpaceConfig:
        self._built = make_space(self.name, **self.options)  # cheap, checks the option values, and is kept
        return self

    def build(self):
        """The space, as validation built it (one build per process)."""
        return self._built


class PrefilterConfig(_Strict):
    proxy: ProxyName = "synflow"
    pool: int = Field(20, ge=2, le=1000, description="proposals scored per candidate trained")
    batch_size: int = Field(64, ge=2)


class StrategyConfig(Named):
    prefilter: PrefilterConfig | None = Field(
        None, description="score `pool` proposals with a zero-cost proxy and train only the best of each pool"
    )

    @model_validator(mode="after")
    def _known(self) -> StrategyConfig:
        check(STRATEGIES, "strategy", self.name, self.options, positional=1)  # the space is passed by kubenas
        reserved = {"seed", "metric", "mode"} & set(self.options)
        if reserved:
            raise ValueError(f"set {sorted(reserved)} at the top level / objective, not in strategy.options")
        return self


class EarlyStopConfig(_Strict):
    k: int = Field(5, ge=1, description="stop a candidate that is unlikely to beat the k-th best completed result")
    threshold: float = Field(0.05, gt=0, lt=1, description="'unlikely': the predicted probability is below this")
    min_epochs: int = Field(2, ge=1, description="never stop before this many epochs")
    min_calibration: int = Field(
        10, ge=2, description="completed curves that calibrate the prediction before any candidate is stopped"
    )


class InheritConfig(_Strict):
    epochs: int = Field(
        1, ge=1, description="epochs a child trains from its parent's weights (fewer than fidelity.epochs)"
    )


class EstimatorConfig(_Strict):
    # besides these fields, the field of any estimator registered in kubenas.estimators.ESTIMATORS selects it
    model_config = ConfigDict(extra="allow", frozen=True)

    recipe: str | dict[str, Any] | None = Field(
        None,
        description="how candidates train: a preset (default, nb201, darts) or {preset: NAME, FIELD: VALUE...}; "
        "see kubenas.recipes",
    )
    table: str | None = Field(
        None,
        description="answer candidates from this benchmark table (a shipped name such "
        "as 'nb201-4op-mnist1d' or a .parquet path) instead of training",
    )

    proxy: ProxyName | None = Field(
        None,
        description="score candidates with this zero-cost proxy instead of training them (the objective "
        "metric is then 'zc_score'); the export still trains the winner",
    )
    proxy_batch_size: int = Field(64, ge=2, description="minibatch size a zero-cost proxy sees")
    early_stop: EarlyStopConfig | None = Field(
        None,
        description="learning-curve extrapolation: stop training candidates that are unlikely to beat the "
        "k-th best (training or a table)",
    )
    inherit: InheritConfig | None = Field(
        None,
        description="weight inheritance: a child starts from its parent's trained weights (kept in S3) and "
        "trains for inherit.epochs",
    )

    @model_validator(mode="before")
    @classmethod
    def _registered(cls, data: Any) -> Any:
        if isinstance(data, dict):
            from kubenas.estimators import ESTIMATORS

            moved = sorted({"batch_size", "lr", "weight_decay", "amp"} & set(data))
            if moved:
                raise ValueError(
                    f"{moved} moved into estimator.recipe (e.g. recipe: {{preset: default, "
                    f"{moved[0]}: {data[moved[0]]!r}}})"
                )
            known = set(cls.model_fields) | {e.field for e in ESTIMATORS.values() if e.field}
            unknown = sorted(set(data) - known)
            if unknown:
                raise ValueError(f"unknown field(s) {unknown}; known: {', '.join(sorted(known))}")
        return data

    @model_validator(mode="after")
    def _one_kind(self) -> EstimatorConfig:
        if self.table is not None and self.proxy is not None:
            raise ValueError("set estimator.table or estimator.proxy, not both")
        if self.proxy is not None and (self.early_stop is not None or self.inherit is not None):
            raise ValueError("estimator.proxy scores untrained networks: early_stop and inherit apply to training")
        if self.table is not None and self.inherit is not None:
            raise ValueError("estimator.inherit needs real training: a table has no weights to inherit")
        if self.early_stop is not None and self.inherit is not None:
            raise ValueError(
                "set estimator.early_stop or estimator.inherit, not both: an inheriting child trains "
                "only inherit.epochs, so its curve cannot be extrapolated to fidelity.epochs"
            )
        return self

    @field_validator("recipe")
    @classmethod
    def _recipe(cls, v: str | dict[str, Any] | None) -> str | dict[str, Any] | None:
        from kubenas.recipes import resolve

        resolve(v)  # raises naming the field
        return v

    def to_recipe(self):
        """The :class:`~kubenas.recipes.Recipe` candidates train with."""
        from kubenas.recipes import resolve

        return resolve(self.recipe)

    @field_validator("table")
    @classmethod
    def _table(cls, v: str | None) -> str | None:
        if v is not None:
            from kubenas.estimators.tabular import table_path

            table_path(v)  # raises with the shipped names' location when it does not exist
        return v


class OneShotConfig(_Strict):
    method: str = Field(description="one-shot method: random_sampling, enas or darts")
    options: dict[str, Any] = Field(default_factory=dict, description="the method's options (see `kubenas strategies`)")
    epochs: int = Field(10, ge=1, description="supernet epochs per round")
    candidates: int = Field(
        100,
        ge=1,
        le=100_000,
        description="architectures ranked with the shared weights after each round (DARTS derives one)",
    )
    recalibration_batches: int = Field(
        4,
        ge=1,
        le=100,
        description="training batches that re-estimate batch-norm statistics before an architecture is ranked",
    )

    @model_validator(mode="after")
    def _known(self) -> OneShotConfig:
        from kubenas.oneshot import ONESHOT

        reserved = {"seed", "device"} & set(self.options)
        if reserved:
            raise ValueError(f"set {sorted(reserved)} at the top level / resources, not in oneshot.options")
        check(ONESHOT, "one-shot method", self.method, self.options, positional=1)
        return self


class FidelityConfig(_Strict):
    epochs: int = Field(3, ge=1)
    data_fraction: float = Field(1.0, gt=0, le=1)
    width_mult: float = Field(1.0, gt=0, le=16)
    resolution: int | None = Field(None, ge=1)

    def to_fidelity(self) -> Fidelity:
        return Fidelity(**self.model_dump())


class BudgetConfig(_Strict):
    rounds: int = Field(4, ge=1, le=100, description="rounds unrolled in the pipeline")
    candidates_per_round: int = Field(4, ge=1, le=256)
    parallelism: int = Field(2, ge=1, le=256, description="training tasks running at once")
    max_evals: int | None = Field(None, ge=1, description="stop once this many candidates are evaluated")
    patience: int | None = Field(None, ge=1, description="stop after this many rounds without improvement")
    goal: float | None = Field(
        None, description="stop once the objective reaches this value (at least it for max, at most for min)"
    )
    max_failed: int | None = Field(None, ge=1, description="stop once this many candidates of the search have failed")


class ObjectiveConfig(_Strict):
    metric: str = "val_acc"
    mode: Literal["max", "min"] = "max"


class ExportConfig(_Strict):
    epochs: int = Field(10, ge=1, description="epochs to retrain the winner")
    recipe: str | dict[str, Any] | None = Field(
        None,
        description="how the winner retrains: a preset or {preset: NAME, FIELD: VALUE...}; fields left out are the "
        "search's recipe's (e.g. {augment: {cutout: 16}} adds cutout to it); default: the search's recipe",
    )
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1, max_length=16, description="retraining seeds")
    registered_model: str | None = Field(None, description="MLflow registered model name; default: the search name")

    @field_validator("recipe")
    @classmethod
    def _recipe(cls, v: str | dict[str, Any] | None) -> str | dict[str, Any] | None:
        from kubenas.recipes import resolve

        resolve(v)  # raises naming the field
        return v

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, v: list[int]) -> list[int]:
        for i, seed in enumerate(v):
            _seed(seed, f"seeds[{i}]")
        if len(set(v)) != len(v):
            raise ValueError(f"must not repeat a seed (a repeated seed retrains the same model again), got {v}")
        return v

    @field_validator("registered_model")
    @classmethod
    def _model_name(cls, v: str | None) -> str | None:
        if v is not None and not _LABEL_VALUE.fullmatch(v):
            raise ValueError(
                "must be 1-63 letters, digits, '-', '_' or '.', starting and ending with a letter or "
                "digit (a name valid in MLflow, S3 keys and Kubernetes labels)"
            )
        return v

    pick: Literal["best", "knee"] = Field(
        "best",
        description="which member of a multi-objective search's Pareto "
        "front to export: the best first objective under the constraints, or "
        "the knee point",
    )


class ResourcesConfig(_Strict):
    gpus: int = Field(0, ge=0, le=16, description="GPUs per training task")
    image: str | None = Field(
        None,
        description="image for every task; default: the kubenas image of this version, "
        "its CUDA variant for training tasks when gpus > 0",
    )
    accelerator: str = Field("nvidia.com/gpu", description="the Kubernetes extended resource a GPU is requested as")
    cpu: str | None = None
    memory: str | None = None
    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[dict[str, str]] = Field(default_factory=list)

    @field_validator("image")
    @classmethod
    def _image(cls, v: str | None) -> str | None:
        if v is None or "@" in v:  # a digest pins the image exactly
            return v
        if ":" not in v.rsplit("/", 1)[-1]:
            raise ValueError(
                "must name a tag or a digest, e.g. 'registry.example.com/kubenas:0.1.0'; an untagged "
                "image means 'latest', which changes under a scheduled search"
            )
        if v.endswith(":latest"):
            raise ValueError("must not use the 'latest' tag: pin a version so that every round runs the same code")
        return v

    @field_validator("cpu")
    @classmethod
    def _cpu(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"\d+(\.\d+)?m?", v):
            raise ValueError("must be a Kubernetes CPU quantity such as '2', '1.5' or '500m'")
        return v

    @field_validator("memory")
    @classmethod
    def _memory(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"\d+(\.\d+)?(Ki|Mi|Gi|Ti|k|M|G|T)?", v):
            raise ValueError("must be a Kubernetes memory quantity such as '4Gi' or '512Mi'")
        return v

    @field_validator("accelerator")
    @classmethod
    def _accelerator(cls, v: str) -> str:
        if "/" not in v or len(v) > 253 or not _QUALIFIED.fullmatch(v):
            raise ValueError("must be a Kubernetes extended resource name such as 'nvidia.com/gpu' or 'amd.com/gpu'")
        return v

    @field_validator("node_selector")
    @classmethod
    def _node_selector(cls, v: dict[str, str]) -> dict[str, str]:
        for key, value in v.items():
            if len(key) > 316 or not _QUALIFIED.fullmatch(key):
                raise ValueError(
                    f"key {key!r} is not a Kubernetes label key (such as 'cloud.google.com/gke-accelerator')"
                )
            if value and not _LABEL_VALUE.fullmatch(value):
                raise ValueError(
                    f"value {value!r} of {key!r} is not a Kubernetes label value (at most 63 letters, "
                    "digits, '-', '_' or '.', alphanumeric at both ends)"
                )
        return v

    @field_validator("tolerations")
    @classmethod
    def _tolerations(cls, v: list[dict[str, str]]) -> list[dict[str, str]]:
        allowed = {"key", "operator", "value", "effect"}
        for i, tol in enumerate(v):
            if set(tol) - allowed:
                raise ValueError(
                    f"toleration {i} has unknown field(s) {sorted(set(tol) - allowed)}; allowed: {sorted(allowed)}"
                )
            if tol.get("operator", "Equal") not in ("Equal", "Exists"):
                raise ValueError(f"toleration {i}: operator must be 'Equal' or 'Exists', got {tol['operator']!r}")
            if tol.get("effect", "") not in ("", "NoSchedule", "PreferNoSchedule", "NoExecute"):
                raise ValueError(
                    f"toleration {i}: effect must be NoSchedule, PreferNoSchedule or NoExecute, got {tol['effect']!r}"
                )
            if tol.get("operator") == "Exists" and tol.get("value"):
                raise ValueError(f"toleration {i}: operator 'Exists' takes no value")
        return v


class ClusterConfig(_Strict):
    namespace: str | None = Field(
        None, description="Kubeflow profile namespace of `kubenas submit` and `schedule` (their --namespace wins)"
    )
    service_account: str | None = Field(
        None,
        description="service account of the run's pods (--service-account wins); default kubenas-runner, from "
        "manifests/",
    )

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, v: str | None) -> str | None:
        if v is not None and not DNS_LABEL.fullmatch(v):
            raise ValueError("must be a Kubernetes namespace: 1-63 lowercase letters, digits or '-'")
        return v

    @field_validator("service_account")
    @classmethod
    def _service_account(cls, v: str | None) -> str | None:
        if v is not None and not SUBDOMAIN.fullmatch(v):
            raise ValueError("must be a Kubernetes service account name: lowercase letters, digits, '-' and '.'")
        return v


class StorageConfig(_Strict):
    bucket: str = "kubenas"
    prefix: str = "searches"
    endpoint_url: str | None = Field(None, description="S3 endpoint; default: AWS_ENDPOINT_URL(_S3) or AWS")
    region: str | None = None
    secret: str = Field("kubenas-s3", description="Kubernetes Secret with AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY")

    @field_validator("bucket")
    @classmethod
    def _bucket(cls, v: str) -> str:
        if not re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", v):
            raise ValueError("must be a valid S3 bucket name (3-63 lowercase letters, digits, '.', '-')")
        return v

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, v: str) -> str:
        v = v.strip("/")
        for part in v.split("/") if v else []:
            if part in (".", "..") or not re.fullmatch(r"[A-Za-z0-9._-]+", part):
                raise ValueError(
                    "must be '/'-separated parts of letters, digits, '.', '_' and '-', without '.' or "
                    "'..' parts (it becomes the start of every S3 key of the search)"
                )
        if len(v) > 512:
            raise ValueError(f"must be at most 512 characters, got {len(v)}")
        return v

    @field_validator("endpoint_url")
    @classmethod
    def _endpoint(cls, v: str | None) -> str | None:
        return _http_url(v, "S3 endpoint")

    @field_validator("region")
    @classmethod
    def _region(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,30}[a-z0-9]", v):
            raise ValueError("must be an S3 region name such as 'us-east-1'")
        return v

    @field_validator("secret")
    @classmethod
    def _secret(cls, v: str | None) -> str | None:
        return _secret_name(v)


class TrackingConfig(_Strict):
    uri: str | None = Field(None, description="MLflow tracking URI; default: MLFLOW_TRACKING_URI")
    experiment: str = "kubenas"
    secret: str | None = Field(None, description="Kubernetes Secret with MLflow credentials, if the server needs any")

    @field_validator("uri")
    @classmethod
    def _uri(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("file:", "databricks")):
            return _http_url(v, "MLflow server")
        return v

    @field_validator("experiment")
    @classmethod
    def _experiment(cls, v: str) -> str:
        if not v.strip() or v != v.strip() or len(v) > 256 or not v.isprintable():
            raise ValueError("must be 1-256 printable characters, without spaces at either end")
        return v

    @field_validator("secret")
    @classmethod
    def _secret(cls, v: str | None) -> str | None:
        return _secret_name(v)


class SearchConfig(_Strict):
    name: str = Field(
        description="search name: lowercase letters, digits and '-'; a search with an existing name resumes"
    )
    seed: int = 0
    dataset: DatasetConfig
    space: SpaceConfig
    strategy: StrategyConfig = Field(default_factory=lambda: StrategyConfig(name="regularized_evolution"))
    estimator: EstimatorConfig = Field(default_factory=EstimatorConfig)
    fidelity: FidelityConfig = Field(default_factory=FidelityConfig)
    budget: BudgetConfig = Field(default_factory=BudgetConfig)
    objective: ObjectiveConfig = Field(default_factory=ObjectiveConfig)
    oneshot: OneShotConfig | None = Field(
        None,
        description="search with a weight-sharing supernet instead of a "
        "strategy: each round trains it and ranks architectures",
    )
    export: ExportConfig = Field(default_factory=ExportConfig)
    resources: ResourcesConfig = Field(default_factory=ResourcesConfig)
    cluster: ClusterConfig = Field(default_factory=ClusterConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not DNS_LABEL.fullmatch(v):
            raise ValueError(
                "must be 1-63 lowercase letters, digits or '-', starting and ending with a letter or digit"
            )
        return v

    @field_validator("seed")
    @classmethod
    def _seed(cls, v: int) -> int:
        return _seed(v, "seed")

    _strategy: Any = PrivateAttr(None)

    @model_validator(mode="after")
    def _strategy_builds(self) -> SearchConfig:
        space = self.space.build()
        strategy = make_strategy(
            self.strategy.name,
            space,
            seed=self.seed,
            metric=self.objective.metric,
            mode=self.objective.mode,
            **self.strategy.options,
        )
        self._strategy = strategy
        if self.estimator.table is not None:
            from kubenas.estimators.tabular import TabularEstimator

            table = TabularEstimator.load(self.estimator.table)
            table.check_space(space)
            if table.protocol["dataset"] != self.dataset.name:
                raise ValueError(
                    f"estimator.table {self.estimator.table!r} was built on dataset "
                    f"{table.protocol['dataset']!r}, not {self.dataset.name!r}"
                )
            top = getattr(strategy, "max_fidelity", None)  # a multi-fidelity scheduler's highest rung
            if top is not None and (set(top) != {"epochs"} or top["epochs"] > table.protocol["epochs"]):
                raise ValueError(
                    f"strategy {self.strategy.name!r} asks for fidelity {top}, but the table "
                    f"{self.estimator.table!r} answers only epochs 1..{table.protocol['epochs']}: set "
                    f"strategy.options.resource to 'epochs' and max_resource <= {table.protocol['epochs']}"
                )
        if self.estimator.proxy is not None and "zc_score" not in _objective_metrics(self):
            raise ValueError(
                f"estimator.proxy {self.estimator.proxy!r} reports 'zc_score', not "
                f"{_objective_metrics(self)}: set objective.metric to 'zc_score' (mode max)"
            )
        if self.oneshot is not None:
            self._check_oneshot(space)
        self._check_metrics()
        self._check_resolution()
        info = self.dataset.info
        try:
            space.check_data(info.input_shape, info.num_classes)
        except ValueError as exc:
            raise ValueError(f"space.options: {exc}") from None
        es, inherit, epochs = self.estimator.early_stop, self.estimator.inherit, self.fidelity.epochs
        if es is not None and (self.objective.metric, self.objective.mode) != ("val_acc", "max"):
            raise ValueError(
                f"estimator.early_stop extrapolates validation-accuracy curves: set objective.metric to "
                f"'val_acc' (mode max), not {self.objective.metric!r} ({self.objective.mode})"
            )
        if es is not None and es.min_epochs >= epochs:
            raise ValueError(
                f"estimator.early_stop.min_epochs ({es.min_epochs}) must be below fidelity.epochs "
                f"({epochs}), or no epoch can be saved"
            )
        if inherit is not None and inherit.epochs >= epochs:
            raise ValueError(
                f"estimator.inherit.epochs ({inherit.epochs}) must be below fidelity.epochs ({epochs}): "
                "a child trains for fewer epochs than a network from scratch"
            )
        if self.export.pick == "knee" and not strategy.multi_objective:
            raise ValueError(
                f"export.pick 'knee' chooses from a Pareto front, but strategy {self.strategy.name!r} "
                "has one objective: use a multi-objective strategy (nsga2, pareto_evolution) or "
                "pick 'best'"
            )
        return self

    def _check_metrics(self) -> None:
        """The objective's, a multi-objective strategy's and the constraints' metrics are ones the estimator
        reports."""
        reported = list(ONESHOT_METRICS) if self.oneshot is not None else reported_metrics(self.estimator.model_dump())
        named = [("objective.metric", self.objective.metric)]
        options = self.strategy.options
        for i, obj in enumerate(options.get("objectives") or []):
            if isinstance(obj, dict):
                named.append((f"strategy.options.objectives[{i}].metric", obj.get("metric")))
        named += [(f"strategy.options.constraints.{k}", k) for k in (options.get("constraints") or {})]
        for where, metric in named:
            if metric not in reported:
                raise ValueError(
                    f"{where} {metric!r} is not a metric this search's estimator reports; it reports: "
                    f"{', '.join(reported)}"
                )

    def _check_resolution(self) -> None:
        resolution, shape = self.fidelity.resolution, self.dataset.info.input_shape
        if resolution is None or shape is None:
            return
        if len(shape) < 2:
            raise ValueError(
                f"fidelity.resolution applies to signals and images; dataset {self.dataset.name!r} has "
                f"vector inputs of shape {list(shape)}"
            )
        native = min(shape[1:])
        if resolution > native:
            raise ValueError(
                f"fidelity.resolution {resolution} is above the dataset's own ({native}, inputs of shape "
                f"{list(shape)}): a lower resolution is the cheaper proxy; set 2..{native} or remove it"
            )

    def _check_oneshot(self, space) -> None:
        if self.oneshot is not None and self.estimator.recipe is not None:
            both = sorted(
                {"lr", "weight_decay", "batch_size", "arch_lr", "arch_weight_decay"} & set(self.oneshot.options)
            )
            if both:
                raise ValueError(
                    f"oneshot.options {both} and estimator.recipe both set the supernet's training: set them in the "
                    "recipe (e.g. recipe: {preset: darts, lr: 0.05})"
                )
        from kubenas.oneshot import make_oneshot

        make_oneshot(self.oneshot.method, space, **self.oneshot.options)  # the space has a supernet, the options fit
        if self.strategy != StrategyConfig(name="regularized_evolution"):  # not the default (a dump includes it)
            raise ValueError(
                "a one-shot search chooses architectures with its supernet: remove the strategy "
                "section, or the oneshot section to search with a strategy"
            )
        est = self.estimator
        if est.table is not None or est.proxy is not None or est.early_stop is not None or est.inherit is not None:
            raise ValueError(
                "a one-shot search estimates with its supernet: remove estimator.table, proxy, early_stop and inherit"
            )
        if (self.objective.metric, self.objective.mode) != ("val_acc", "max"):
            raise ValueError(
                "a one-shot search ranks architectures by validation accuracy with shared weights: set "
                "objective.metric to 'val_acc' (mode max)"
            )

    def new_strategy(self):
        """A fresh strategy as configured: the first call hands out the one validation built, so a process that
        uses one strategy builds it once."""
        strategy, self._strategy = self._strategy, None
        if strategy is None:
            strategy = make_strategy(
                self.strategy.name,
                self.space.build(),
                seed=self.seed,
                metric=self.objective.metric,
                mode=self.objective.mode,
                **self.strategy.options,
            )
        return strategy

    def export_recipe(self):
        """The recipe the winner retrains with: ``export.recipe`` over the search's."""
        from kubenas.recipes import resolve

        return resolve(self.export.recipe, base=self.estimator.to_recipe())

    def check_data_source(self) -> None:
        """That the dataset's files exist where they are read (this machine, or S3, which it may contact): a run's
        pre-flight. Raises :class:`ConfigError` naming the path."""
        try:
            check_source(self.dataset.name, **self.dataset.options)
        except ValueError as exc:
            raise ConfigError(f"dataset.options.path: {exc}") from None

    @property
    def search_method(self) -> str:
        """What chooses the architectures: the strategy's name, or ``oneshot/<method>``."""
        return search_method(self.model_dump(mode="json"))

    @property
    def method_options(self) -> dict[str, Any]:
        """The options of what chooses the architectures: the strategy's, or the whole one-shot section."""
        return self.oneshot.model_dump() if self.oneshot is not None else self.strategy.options

    @property
    def model_name(self) -> str:
        return self.export.registered_model or self.name

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), sort_keys=True)


# Config sections that define what a search is; a search resumed under the same name must keep them.
IDENTITY = ("dataset", "space", "strategy", "oneshot", "objective", "fidelity", "seed")


def search_method(config: dict[str, Any]) -> str:
    """What chooses a config's architectures (a config as a dict, e.g. one a store holds): its strategy's name, or
    ``oneshot/<method>``."""
    if config.get("oneshot"):
        return f"oneshot/{config['oneshot']['method']}"
    return (config.get("strategy") or {}).get("name") or "regularized_evolution"


def _objective_metrics(cfg: SearchConfig) -> list[str]:
    """The metrics the search optimises: the objective's, or a multi-objective strategy's."""
    objectives = cfg.strategy.options.get("objectives")
    return [o.get("metric") for o in objectives] if objectives else [cfg.objective.metric]


def parse_config(data: Any, source: str = "config") -> SearchConfig:
    """Validate a dict (or JSON string) into a :class:`SearchConfig`, raising :class:`ConfigError` listing every
    bad field."""
    if isinstance(data, str):
        data = json.loads(data)
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of fields at the top level, got {type(data).__name__}")
    try:
        return SearchConfig.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"]) or "(top level)"
            msg = err["msg"].removeprefix("Value error, ")
            # a check across sections names its fields itself; the input there is the whole config
            got = (
                ""
                if err["type"] == "missing" or not err["loc"]
                else f" (got {json.dumps(err.get('input'), default=str)[:80]})"
            )
            lines.append(f"  {where}: {msg}{got}")
        raise ConfigError(f"{source}: {len(lines)} problem(s):\n" + "\n".join(lines)) from None


MAX_CONFIG_BYTES = 1 << 20  # a search config is a page of YAML; a bigger file is a mistake or an attack
MAX_ALIASES = 100  # YAML aliases in a config
MAX_NODES = 100_000  # YAML nodes once every alias is expanded (an alias "bomb" expands exponentially)


def load_config(path: str | Path) -> SearchConfig:
    """Read and validate a YAML search config: at most 1 MiB of UTF-8 text, at most 100 aliases and 100,000 nodes
    with the aliases expanded, then every field."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if path.is_dir():
            raise ConfigError(f"config {path} is a directory; give a YAML file")
        if size > MAX_CONFIG_BYTES:
            raise ConfigError(f"config {path} is {size:,} bytes; a search config is at most {MAX_CONFIG_BYTES:,} bytes")
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}); a config is a YAML file") from None
    if "\x00" in text:
        raise ConfigError(f"{path}: contains NUL bytes; a config is a YAML text file")
    return parse_config(_yaml(text, str(path)), str(path))


def _yaml(text: str, source: str) -> Any:
    """Parse YAML safely, refusing more than :data:`MAX_ALIASES` aliases or :data:`MAX_NODES` expanded nodes
    before anything is built from it."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        aliases = _count_nodes(node, {}, [0], source)
        if aliases > MAX_ALIASES:
            raise ConfigError(f"{source}: {aliases} YAML aliases; a config may use at most {MAX_ALIASES}")
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}") from None
    finally:
        loader.dispose()


def _count_nodes(node: yaml.Node, sizes: dict[int, int], aliases: list[int], source: str) -> int:
    """The number of aliases (a node reached again), after checking that the nodes, with every alias expanded, are
    at most :data:`MAX_NODES` and that no alias refers to a node that contains it."""
    stack, order = [(node, False)], []
    seen: set[int] = set()
    while stack:  # iterative, post-order: a deep document cannot overflow the interpreter's stack
        current, done = stack.pop()
        key = id(current)
        if done:
            children = _children(current)
            sizes[key] = 1 + sum(sizes[id(c)] for c in children)
            if sizes[key] > MAX_NODES:
                raise ConfigError(f"{source}: more than {MAX_NODES:,} YAML nodes once its aliases are expanded")
            order.append(key)
            continue
        if key in sizes:
            aliases[0] += 1
            continue
        if key in seen:
            raise ConfigError(f"{source}: a YAML alias refers to a node that contains it")
        seen.add(key)
        stack.append((current, True))
        stack.extend((c, False) for c in reversed(_children(current)))
    return aliases[0]


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []
