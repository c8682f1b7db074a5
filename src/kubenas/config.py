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

from kubenas.data import DATASETS
from kubenas.core import Fidelity
from kubenas.estimators import PROXIES
from kubenas.registry import check
from kubenas.spaces import make_space
from kubenas.strategies import STRATEGIES, make_strategy

ProxyName = Literal[PROXIES]  # the zero-cost proxies, named once in kubenas.estimators
_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


class ConfigError(ValueError):
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
    @model_validator(mode="after")
    def _known(self) -> "DatasetConfig":
        check(DATASETS, "dataset", self.name, self.options)  # loading the data would be expensive
        return self


class SpaceConfig(Named):
    _built: Any = PrivateAttr(None)

    @model_validator(mode="after")
    def _builds(self) -> "SpaceConfig":
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
    prefilter: PrefilterConfig | None = Field(None, description="score `pool` proposals with a zero-cost proxy and "
                                                                "train only the best of each pool")

    @model_validator(mode="after")
    def _known(self) -> "StrategyConfig":
        check(STRATEGIES, "strategy", self.name, self.options, positional=1)  # the space is passed by kubenas
        reserved = {"seed", "metric", "mode"} & set(self.options)
        if reserved:
            raise ValueError(f"set {sorted(reserved)} at the top level / objective, not in strategy.options")
        return self


class EarlyStopConfig(_Strict):
    k: int = Field(5, ge=1, description="stop a candidate that is unlikely to beat the k-th best completed result")
    threshold: float = Field(0.05, gt=0, lt=1, description="'unlikely': the predicted probability is below this")
    min_epochs: int = Field(2, ge=1, description="never stop before this many epochs")
    min_calibration: int = Field(10, ge=2, description="completed curves that calibrate the prediction before any "
                                                       "candidate is stopped")


class InheritConfig(_Strict):
    epochs: int = Field(1, ge=1, description="epochs a child trains from its parent's weights (fewer than "
                                             "fidelity.epochs)")


class EstimatorConfig(_Strict):
    batch_size: int = Field(128, ge=2)
    lr: float = Field(3e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    amp: bool = True
    table: str | None = Field(None, description="answer candidates from this benchmark table (a shipped name such "
                                                "as 'nb201-4op-mnist1d' or a .parquet path) instead of training")

    proxy: ProxyName | None = Field(
        None, description="score candidates with this zero-cost proxy instead of training them (the objective "
                          "metric is then 'zc_score'); the export still trains the winner")
    proxy_batch_size: int = Field(64, ge=2, description="minibatch size a zero-cost proxy sees")
    early_stop: EarlyStopConfig | None = Field(
        None, description="learning-curve extrapolation: stop training candidates that are unlikely to beat the "
                          "k-th best (training or a table)")
    inherit: InheritConfig | None = Field(
        None, description="weight inheritance: a child starts from its parent's trained weights (kept in S3) and "
                          "trains for inherit.epochs")

    @model_validator(mode="after")
    def _one_kind(self) -> "EstimatorConfig":
        if self.table is not None and self.proxy is not None:
            raise ValueError("set estimator.table or estimator.proxy, not both")
        if self.proxy is not None and (self.early_stop is not None or self.inherit is not None):
            raise ValueError("estimator.proxy scores untrained networks: early_stop and inherit apply to training")
        if self.table is not None and self.inherit is not None:
            raise ValueError("estimator.inherit needs real training: a table has no weights to inherit")
        if self.early_stop is not None and self.inherit is not None:
            raise ValueError("set estimator.early_stop or estimator.inherit, not both: an inheriting child trains "
                             "only inherit.epochs, so its curve cannot be extrapolated to fidelity.epochs")
        return self

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
    candidates: int = Field(100, ge=1, le=100_000, description="architectures ranked with the shared weights after "
                                                             "each round (DARTS derives one)")
    recalibration_batches: int = Field(4, ge=1, le=100, description="training batches that re-estimate batch-norm "
                                                                    "statistics before an architecture is ranked")

    @model_validator(mode="after")
    def _known(self) -> "OneShotConfig":
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


class ObjectiveConfig(_Strict):
    metric: str = "val_acc"
    mode: Literal["max", "min"] = "max"


class ExportConfig(_Strict):
    epochs: int = Field(10, ge=1, description="epochs to retrain the winner")
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1, description="retraining seeds")
    registered_model: str | None = Field(None, description="MLflow registered model name; default: the search name")
    pick: Literal["best", "knee"] = Field("best", description="which member of a multi-objective search's Pareto "
                                          "front to export: the best first objective under the constraints, or "
                                          "the knee point")


class ResourcesConfig(_Strict):
    gpus: int = Field(0, ge=0, le=16, description="GPUs per training task")
    image: str | None = Field(None, description="image for every task; default: the kubenas image of this version, "
                                                "its CUDA variant for training tasks when gpus > 0")
    accelerator: str = "nvidia.com/gpu"
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
            raise ValueError("must name a tag or a digest, e.g. 'registry.example.com/kubenas:0.1.0'; an untagged "
                             "image means 'latest', which changes under a scheduled search")
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

    @field_validator("tolerations")
    @classmethod
    def _tolerations(cls, v: list[dict[str, str]]) -> list[dict[str, str]]:
        allowed = {"key", "operator", "value", "effect"}
        for i, tol in enumerate(v):
            if set(tol) - allowed:
                raise ValueError(f"toleration {i} has unknown field(s) {sorted(set(tol) - allowed)}; allowed: {sorted(allowed)}")
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
        return v.strip("/")


class TrackingConfig(_Strict):
    uri: str | None = Field(None, description="MLflow tracking URI; default: MLFLOW_TRACKING_URI")
    experiment: str = "kubenas"
    secret: str | None = Field(None, description="Kubernetes Secret with MLflow credentials, if the server needs any")


class SearchConfig(_Strict):
    name: str = Field(description="search name: lowercase letters, digits and '-'; a search with an existing name resumes")
    seed: int = 0
    dataset: DatasetConfig
    space: SpaceConfig
    strategy: StrategyConfig = Field(default_factory=lambda: StrategyConfig(name="regularized_evolution"))
    estimator: EstimatorConfig = Field(default_factory=EstimatorConfig)
    fidelity: FidelityConfig = Field(default_factory=FidelityConfig)
    budget: BudgetConfig = Field(default_factory=BudgetConfig)
    objective: ObjectiveConfig = Field(default_factory=ObjectiveConfig)
    oneshot: OneShotConfig | None = Field(None, description="search with a weight-sharing supernet instead of a "
                                                           "strategy: each round trains it and ranks architectures")
    export: ExportConfig = Field(default_factory=ExportConfig)
    resources: ResourcesConfig = Field(default_factory=ResourcesConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.fullmatch(v):
            raise ValueError("must be 1-63 lowercase letters, digits or '-', starting and ending with a letter or digit")
        return v

    _strategy: Any = PrivateAttr(None)

    @model_validator(mode="after")
    def _strategy_builds(self) -> "SearchConfig":
        space = self.space.build()
        strategy = make_strategy(self.strategy.name, space, seed=self.seed,
                                 metric=self.objective.metric, mode=self.objective.mode, **self.strategy.options)
        self._strategy = strategy
        if self.estimator.table is not None:
            from kubenas.estimators.tabular import TabularEstimator

            table = TabularEstimator.load(self.estimator.table)
            table.check_space(space)
            if table.protocol["dataset"] != self.dataset.name:
                raise ValueError(f"estimator.table {self.estimator.table!r} was built on dataset "
                                 f"{table.protocol['dataset']!r}, not {self.dataset.name!r}")
            top = getattr(strategy, "max_fidelity", None)  # a multi-fidelity scheduler's highest rung
            if top is not None and (set(top) != {"epochs"} or top["epochs"] > table.protocol["epochs"]):
                raise ValueError(f"strategy {self.strategy.name!r} asks for fidelity {top}, but the table "
                                 f"{self.estimator.table!r} answers only epochs 1..{table.protocol['epochs']}: set "
                                 f"strategy.options.resource to 'epochs' and max_resource <= {table.protocol['epochs']}")
        if self.estimator.proxy is not None and "zc_score" not in _objective_metrics(self):
            raise ValueError(f"estimator.proxy {self.estimator.proxy!r} reports 'zc_score', not "
                             f"{_objective_metrics(self)}: set objective.metric to 'zc_score' (mode max)")
        if self.oneshot is not None:
            self._check_oneshot(space)
        es, inherit, epochs = self.estimator.early_stop, self.estimator.inherit, self.fidelity.epochs
        if es is not None and (self.objective.metric, self.objective.mode) != ("val_acc", "max"):
            raise ValueError(f"estimator.early_stop extrapolates validation-accuracy curves: set objective.metric to "
                             f"'val_acc' (mode max), not {self.objective.metric!r} ({self.objective.mode})")
        if es is not None and es.min_epochs >= epochs:
            raise ValueError(f"estimator.early_stop.min_epochs ({es.min_epochs}) must be below fidelity.epochs "
                             f"({epochs}), or no epoch can be saved")
        if inherit is not None and inherit.epochs >= epochs:
            raise ValueError(f"estimator.inherit.epochs ({inherit.epochs}) must be below fidelity.epochs ({epochs}): "
                             "a child trains for fewer epochs than a network from scratch")
        if self.export.pick == "knee" and not hasattr(strategy, "pick"):
            raise ValueError(f"export.pick 'knee' chooses from a Pareto front, but strategy {self.strategy.name!r} "
                             "has one objective: use a multi-objective strategy (nsga2, pareto_evolution) or "
                             "pick 'best'")
        return self

    def _check_oneshot(self, space) -> None:
        from kubenas.oneshot import make_oneshot

        make_oneshot(self.oneshot.method, space, **self.oneshot.options)  # the space has a supernet, the options fit
        if self.strategy != StrategyConfig(name="regularized_evolution"):  # not the default (a dump includes it)
            raise ValueError("a one-shot search chooses architectures with its supernet: remove the strategy "
                             "section, or the oneshot section to search with a strategy")
        est = self.estimator
        if est.table is not None or est.proxy is not None or est.early_stop is not None or est.inherit is not None:
            raise ValueError("a one-shot search estimates with its supernet: remove estimator.table, proxy, "
                             "early_stop and inherit")
        if (self.objective.metric, self.objective.mode) != ("val_acc", "max"):
            raise ValueError("a one-shot search ranks architectures by validation accuracy with shared weights: set "
                             "objective.metric to 'val_acc' (mode max)")

    def new_strategy(self):
        """A fresh strategy as configured: the first call hands out the one validation built, so a process that
        uses one strategy builds it once."""
        strategy, self._strategy = self._strategy, None
        if strategy is None:
            strategy = make_strategy(self.strategy.name, self.space.build(), seed=self.seed,
                                     metric=self.objective.metric, mode=self.objective.mode, **self.strategy.options)
        return strategy

    @property
    def search_method(self) -> str:
        """What chooses the architectures: the strategy's name, or ``oneshot/<method>``."""
        return f"oneshot/{self.oneshot.method}" if self.oneshot is not None else self.strategy.name

    @property
    def model_name(self) -> str:
        return self.export.registered_model or self.name

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), sort_keys=True)


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
            got = "" if err["type"] == "missing" else f" (got {json.dumps(err.get('input'), default=str)[:80]})"
            lines.append(f"  {where}: {msg}{got}")
        raise ConfigError(f"{source}: {len(lines)} problem(s):\n" + "\n".join(lines)) from None


def load_config(path: str | Path) -> SearchConfig:
    """Read and validate a YAML search config."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror or exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    return parse_config(data, str(path))
