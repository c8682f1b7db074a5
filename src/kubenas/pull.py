"""``kubenas pull NAME[@ALIAS]``: fetch a registered model from MLflow and write what serving needs.

Writes into the output directory:

- ``state_dict.pt``, ``arch.json`` and ``model.json`` (space, input shape, classes): the weights and the
  architecture, from which :func:`load_module` rebuilds the original ``torch.nn.Module``
  (``torch.load(..., weights_only=True)``);
- ``model.onnx``: the network as ONNX with a dynamic batch dimension. ONNX, not TorchScript: TorchScript is
  deprecated in current PyTorch (``torch.jit.trace`` warns so in torch 2.13), while ONNX runs without Python
  or torch in ONNX Runtime, Triton and KServe. The MLflow registry already holds a ``torch.export`` (pt2)
  program for PyTorch-native serving. The export is checked against the rebuilt module before it is written;
- ``MODEL_CARD.md``: metrics, genotype, search, data split and provenance.

``evaluate=True`` also runs the ONNX file over the dataset's test split and compares its accuracy with the
accuracy logged at export time.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kubenas import __version__
from kubenas.core import UserError
from kubenas.spaces import make_space

DEFAULT_ALIAS = "champion"
ONNX_OPSET = 18
TOLERANCE = 1e-4  # max |ONNX - torch| on logits before the export is refused


class PullError(UserError, RuntimeError):
    """The model cannot be pulled; the message says why."""


@dataclass
class Pulled:
    name: str
    alias: str
    version: str
    directory: Path
    files: list[str]
    metrics: dict[str, float]
    onnx_test_acc: float | None = None


def parse_reference(ref: str) -> tuple[str, str]:
    """``NAME`` or ``NAME@ALIAS`` -> (name, alias); the alias defaults to ``champion``."""
    name, _, alias = ref.partition("@")
    if not name or (ref.endswith("@")) or "@" in alias:
        raise PullError(f"{ref!r}: expected NAME or NAME@ALIAS, e.g. mnist1d-nb201@champion")
    return name, alias or DEFAULT_ALIAS


def pull(ref: str, out: str | Path, tracking_uri: str | None = None, evaluate: bool = False) -> Pulled:
    from kubenas.tracking import Registry, Tracker, TrackingError

    name, alias = parse_reference(ref)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise PullError(f"--output {str(out)!r} is a file; give a directory (created if missing)")
    if tracking_uri is not None and not re.match(r"^(https?://[^/:]+|file:|databricks)", tracking_uri):
        raise PullError(
            f"--tracking-uri {tracking_uri!r}: expected the MLflow server's URL, e.g. http://127.0.0.1:5000"
        )
    try:
        onnx_runtime = _onnxruntime()
        tracker = Tracker(tracking_uri)
        tracker.check()
        found = Registry(tracker).registered_version(name, alias)
    except TrackingError as exc:
        raise PullError(str(exc)) from None
    params, metrics, files, version = found["params"], found["metrics"], found["files"], found["version"]
    missing = [p for p in ("input_shape", "num_classes", "search") if p not in params]
    if missing:
        raise PullError(
            f"{name} version {version} was not exported by kubenas >= 0.1 (its run lacks the "
            f"params {missing}); re-run the search's export to register a version that can be pulled"
        )
    for artifact, content in files.items():
        if content is None:
            raise PullError(f"run {found['run_id']} of {name} v{version} has no artifact {artifact}")
    arch, spec, config = (json.loads(files[k]) for k in ("arch.json", "space.json", "config.json"))
    input_shape, num_classes = tuple(json.loads(params["input_shape"])), int(params["num_classes"])
    space = make_space(spec["name"], **spec["options"])
    model = space.build(arch, input_shape, num_classes).eval()
    model.load_state_dict(torch.load(io.BytesIO(files["state_dict.pt"]), weights_only=True))

    out.mkdir(parents=True, exist_ok=True)
    onnx_path = out / "model.onnx"
    _export_onnx(model, input_shape, onnx_path, onnx_runtime)
    for artifact in ("arch.json", "state_dict.pt"):
        (out / artifact).write_bytes(files[artifact])
    (out / "model.json").write_text(
        json.dumps(
            {
                "space": spec,
                "input_shape": list(input_shape),
                "num_classes": num_classes,
                "model": name,
                "version": version,
            },
            indent=1,
        )
    )
    onnx_acc = None
    if evaluate:
        onnx_acc = evaluate_onnx(onnx_path, config)
    card = model_card(
        name=name,
        alias=alias,
        version=version,
        run_id=found["run_id"],
        params=params,
        metrics=metrics,
        arch=arch,
        space=space,
        config=config,
        tracking_uri=tracker.uri,
        onnx_test_acc=onnx_acc,
    )
    (out / "MODEL_CARD.md").write_text(card)
    written = ["state_dict.pt", "arch.json", "model.json", "model.onnx", "MODEL_CARD.md"]
    return Pulled(name, alias, version, out, written, metrics, onnx_acc)


def load_module(directory: str | Path) -> torch.nn.Module:
    """Rebuild the original module from a pulled directory: the architecture plus ``weights_only`` weights."""
    directory = Path(directory)
    arch = json.loads((directory / "arch.json").read_text())
    meta = json.loads((directory / "model.json").read_text())
    space = make_space(meta["space"]["name"], **meta["space"]["options"])
    model = space.build(arch, tuple(meta["input_shape"]), meta["num_classes"])
    model.load_state_dict(torch.load(directory / "state_dict.pt", weights_only=True))
    return model.eval()


def evaluate_onnx(onnx_path: str | Path, config: dict[str, Any], batch_size: int = 512) -> float:
    """Accuracy of the ONNX file on the test split of the dataset named in the search config."""
    from kubenas.data import load_dataset

    ort = _onnxruntime()
    data = load_dataset(config["dataset"]["name"], **config["dataset"].get("options", {}))
    if not data.has_test:
        raise PullError(f"dataset {config['dataset']['name']!r} has no test split to evaluate on")
    from kubenas.estimators.training import eval_batches

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    feed = session.get_inputs()[0].name
    correct = total = 0
    for x, y in eval_batches(data, "test", batch_size=batch_size):  # resident or streamed, as the search read it
        logits = session.run(None, {feed: x.numpy()})[0]
        correct += int((logits.argmax(axis=1) == y.numpy()).sum())
        total += len(y)
    return correct / total


def model_card(
    *,
    name: str,
    alias: str,
    version: str,
    run_id: str,
    params: dict[str, str],
    metrics: dict[str, float],
    arch: dict,
    space,
    config: dict[str, Any],
    tracking_uri: str,
    onnx_test_acc: float | None,
) -> str:
    split = json.loads(params.get("data_split", "{}"))
    dataset = config["dataset"]
    rows = [
        (k, metrics[k])
        for k in (
            "val_acc",
            "test_acc",
            "test_acc_mean",
            "test_acc_min",
            "params",
            "macs",
            "latency_ms",
            "retrain_seconds",
        )
        if k in metrics
    ]
    if onnx_test_acc is not None:
        rows.append(("test_acc (model.onnx, recomputed)", onnx_test_acc))
    fmt = {"params": "{:,.0f}", "macs": "{:,.0f}", "latency_ms": "{:.3f}", "retrain_seconds": "{:.1f}"}
    lines = [
        f"# {name} v{version} (`@{alias}`)",
        "",
        f"Found by kubenas search `{params['search']}`: the `{config['strategy']['name']}` strategy over the "
        f"`{space.spec()['name']}` space, objective {config['objective']['mode']} `{config['objective']['metric']}`. "
        f"Retrained from scratch for {params.get('export_epochs', '?')} epoch(s) with seed "
        f"{params.get('chosen_seed', '?')} (of {params.get('export_seeds', '?')})"
        + (f", recipe `{params['recipe.preset']}` ({_recipe_line(params)})." if "recipe.preset" in params else "."),
        "",
        "## Metrics",
        "",
        "| metric | value |",
        "| --- | --- |",
        *[f"| {k} | {fmt.get(k, '{:.4f}').format(v)} |" for k, v in rows],
        "",
        "Validation accuracy chose the architecture; the test split was used once, after retraining."
        + (f" `latency_ms`: {params['latency']}, on the machine that ran the export." if params.get("latency") else ""),
        "",
        "## Architecture",
        "",
        f"Genotype: `{params.get('genotype', space.genotype(arch))}`",
        "",
        f"Input shape per example: `{json.loads(params['input_shape'])}`, classes: {params['num_classes']}"
        + (f" ({', '.join(json.loads(params['classes']))})." if params.get("classes") else "."),
        "",
        *(
            [
                "Inputs of `model.onnx` are normalised tensors. The registered model "
                f'(`mlflow.pyfunc.load_model("models:/{name}/{version}")`) takes PNG or JPEG files and applies the '
                "training data's preprocessing itself (mode, resize policy, per-channel mean and std: "
                "`preprocess.json` in the export run).",
                "",
            ]
            if params.get("classes")
            and config["dataset"]["name"] not in ("mnist1d", "digits", "parquet")
            or config["dataset"].get("options", {}).get("image_column")
            else []
        ),
        "## Data",
        "",
        f"Dataset `{dataset['name']}` with options `{json.dumps(dataset.get('options', {}))}`; split sizes: "
        + ", ".join(f"{k} {v:,}" for k, v in split.items())
        + ".",
        "",
        "## Files",
        "",
        "- `model.onnx`: ONNX (opset {}), input `x` of shape `[batch, {}]`, output logits `[batch, {}]`.".format(
            ONNX_OPSET, ", ".join(str(d) for d in json.loads(params["input_shape"])), params["num_classes"]
        ),
        "- `state_dict.pt`, `arch.json`, `model.json`: rebuild the PyTorch module with "
        "`kubenas.pull.load_module(DIR)`.",
        "",
        "## Provenance",
        "",
        f"- MLflow: {tracking_uri}, run `{run_id}`, model `models:/{name}/{version}`",
        f"- pulled with kubenas {__version__}",
    ]
    return "\n".join(lines) + "\n"


def _recipe_line(params: dict[str, str]) -> str:
    keys = ("optimizer", "lr", "schedule", "weight_decay", "batch_size")
    return ", ".join(f"{k} {params[f'recipe.{k}']}" for k in keys if f"recipe.{k}" in params)


def _export_onnx(model: torch.nn.Module, input_shape: tuple[int, ...], path: Path, ort) -> None:
    """Export with a dynamic batch and check the file against the module on a random batch."""
    example = torch.randn(3, *input_shape, generator=torch.Generator().manual_seed(0))
    batch = torch.export.Dim("batch", min=1)
    # The exporter reports every step on stdout/stderr and the logging module; a pull prints its own summary.
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), _quiet("torch"):
        warnings.simplefilter("ignore")
        try:
            program = torch.onnx.export(
                model,
                (example,),
                input_names=["x"],
                output_names=["logits"],
                dynamic_shapes=({0: batch},),
                opset_version=ONNX_OPSET,
                dynamo=True,
            )
            program.save(str(path))
        except Exception as exc:
            raise PullError(f"the model could not be exported to ONNX: {type(exc).__name__}: {exc}") from None
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        expected = model(example).numpy()
    got = session.run(None, {"x": example.numpy()})[0]
    diff = float(np.abs(got - expected).max())
    if not diff <= TOLERANCE:
        path.unlink(missing_ok=True)
        raise PullError(f"the ONNX export differs from the PyTorch module by {diff:.2e} (> {TOLERANCE}); not written")


@contextlib.contextmanager
def _quiet(logger: str):
    log = logging.getLogger(logger)
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


def _onnxruntime():
    try:
        import onnx  # noqa: F401  (the exporter needs it)
        import onnxruntime
        import onnxscript  # noqa: F401
    except ImportError as exc:
        raise PullError(
            f"kubenas pull needs the onnx extra ({exc.name} is missing): pip install 'kubenas[onnx]'"
        ) from None
    return onnxruntime
