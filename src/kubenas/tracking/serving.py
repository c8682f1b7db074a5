"""The registered model as MLflow serves it: a pyfunc built from code (nothing pickled) out of the architecture,
the space, the ``state_dict`` (loaded with ``weights_only=True``) and, for images, the preprocessing.

``mlflow.pyfunc.load_model("models:/NAME@champion").predict(images)`` takes a list of PNG or JPEG files as bytes
(any size and mode: the training data's resize policy, mode and normalisation are applied) and returns their
class names; a pandas DataFrame or Series whose first column holds the bytes works too, and so does base64 text,
which is how a REST request to ``mlflow models serve`` carries them. A search on tensors
(MNIST-1D, a Parquet of features) takes a float array of the input shape instead.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import mlflow.pyfunc

CODE = Path(__file__).with_name("pyfunc_model.py")  # the model's code, as MLflow copies it into the model


def artifacts(directory: Path, model, served: dict[str, Any]) -> dict:
    """Write what the served model loads into ``directory``: the ``state_dict`` and ``served`` (the ``arch``, the
    ``space`` spec, ``input_shape``, ``num_classes`` and the ``preprocess`` or None); returns MLflow's ``artifacts``
    mapping."""
    import torch

    directory.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), directory / "state_dict.pt")
    pre = served.get("preprocess")
    meta = {
        "arch": served["arch"],
        "space": served["space"],
        "input_shape": list(served["input_shape"]),
        "num_classes": served["num_classes"],
        "preprocess": pre.to_dict() if pre is not None else None,
    }
    (directory / "model.json").write_text(json.dumps(meta))
    return {"state_dict": str(directory / "state_dict.pt"), "model": str(directory / "model.json")}


class Classifier(mlflow.pyfunc.PythonModel):
    """A kubenas architecture with its trained weights, serving class names."""

    def load_context(self, context) -> None:
        import torch

        from kubenas.data.images import Preprocess
        from kubenas.spaces import make_space

        meta = json.loads(Path(context.artifacts["model"]).read_text())
        space = make_space(meta["space"]["name"], **meta["space"]["options"])
        self.model = space.build(meta["arch"], tuple(meta["input_shape"]), meta["num_classes"])
        self.model.load_state_dict(torch.load(context.artifacts["state_dict"], weights_only=True))
        self.model.eval()
        self.input_shape = tuple(meta["input_shape"])
        self.preprocess = Preprocess.from_dict(meta["preprocess"]) if meta["preprocess"] else None
        names = self.preprocess.classes if self.preprocess else ()
        self.classes = list(names) or [str(i) for i in range(meta["num_classes"])]

    def predict(self, context, model_input, params: dict | None = None) -> list[str]:
        import numpy as np
        import torch

        if self.preprocess is not None:
            x = self.preprocess.images(_blobs(model_input))
        else:
            x = torch.as_tensor(np.asarray(model_input, dtype=np.float32)).reshape(-1, *self.input_shape)
        with torch.no_grad():
            predicted = torch.cat([self.model(x[s : s + 256]).argmax(1) for s in range(0, len(x), 256)])
        return [self.classes[i] for i in predicted.tolist()]


_MAGIC = (b"\x89PNG", b"\xff\xd8")  # how a PNG and a JPEG file begin


def _blobs(model_input) -> list[bytes]:
    """Encoded images from a list, or from the first column of a DataFrame or a Series: bytes as they are, and
    base64 text (what a REST request to a served model carries) decoded."""
    import base64
    import binascii

    if hasattr(model_input, "iloc") and hasattr(model_input, "columns"):
        model_input = model_input.iloc[:, 0]
    values = list(model_input.tolist() if hasattr(model_input, "tolist") else model_input)
    out = []
    for i, v in enumerate(values):
        if isinstance(v, str):
            v = v.encode()
        if not isinstance(v, (bytes, bytearray)):
            raise ValueError(f"input {i}: expected the bytes of a PNG or JPEG file, got {type(v).__name__}")
        v = bytes(v)
        if not v.startswith(_MAGIC):
            try:
                decoded = base64.b64decode(v)  # (MLflow's base64 has line breaks: not validated)
                v = decoded if decoded.startswith(_MAGIC) else v
            except (binascii.Error, ValueError):
                pass  # not base64: the decoder names it as not an image
        out.append(v)
    return out


def log_model(model, served: dict[str, Any], input_example, pip_requirements: list[str]):
    """Log the served model into the active run (MLflow's models from code); returns its ModelInfo."""
    import tempfile
    import warnings

    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        # MLflow asks for type hints on predict to validate inputs; predict checks its inputs itself (_blobs)
        warnings.filterwarnings("ignore", message=".*type hints to the `predict` method")
        files = artifacts(Path(tmp), model, served)
        return mlflow.pyfunc.log_model(
            name="model",
            python_model=str(CODE),
            artifacts=files,
            input_example=input_example,
            pip_requirements=pip_requirements,
        )
