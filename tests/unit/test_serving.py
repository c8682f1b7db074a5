"""The registered model serves raw images: a pyfunc built from code (nothing pickled) that applies the training
data's preprocessing to PNG or JPEG files of any size and mode and returns class names."""

from __future__ import annotations

import mlflow
import numpy as np
import torch

from kubenas.data import load_dataset
from kubenas.spaces import make_space
from kubenas.tracking import serving
from tests import imagegen


def test_a_saved_model_classifies_png_and_jpeg_bytes_of_any_size_and_mode(tmp_path):
    data = load_dataset(
        "imagefolder",
        path=str(imagegen.imagefolder(tmp_path / "d", per_class=8)),
        val_fraction=0.25,
        cache_dir=str(tmp_path / "cache"),
    )
    space = make_space("chain")
    arch = space.sample(0)
    torch.manual_seed(0)
    model = space.build(arch, data.input_shape, data.num_classes).eval()
    served = {
        "arch": arch,
        "space": space.spec(),
        "input_shape": data.input_shape,
        "num_classes": data.num_classes,
        "preprocess": data.preprocess,
    }
    files = serving.artifacts(tmp_path / "a", model, served)
    example = data.preprocess.to_png(data.x_test[:2])
    mlflow.pyfunc.save_model(
        str(tmp_path / "m"),
        python_model=str(serving.CODE),
        artifacts=files,
        input_example=example,
        pip_requirements=["torch"],
    )
    assert not [p for p in (tmp_path / "m").rglob("*") if p.suffix in (".pkl", ".pickle")]  # nothing pickled
    loaded = mlflow.pyfunc.load_model(str(tmp_path / "m"))

    rng = np.random.default_rng(1)
    rgba = np.dstack([imagegen.pixels(1, rng, 40), np.full((40, 40), 255, np.uint8)])
    images = [
        imagegen.encode(imagegen.pixels(0, rng, 16)),  # RGB at the training size
        imagegen.encode(rgba),  # RGBA, larger
        imagegen.encode(imagegen.pixels(2, rng, 24), "JPEG", mode="L"),  # grayscale JPEG
    ]
    names = loaded.predict(images)
    assert len(names) == 3 and set(names) <= set(imagegen.CLASSES)
    with torch.no_grad():
        direct = model(data.preprocess.images(images)).argmax(1).tolist()
    assert names == [imagegen.CLASSES[i] for i in direct]
    # the test split, re-encoded as PNG files, is classified as the model classifies its tensors
    pngs = data.preprocess.to_png(data.x_test)
    with torch.no_grad():
        want = [imagegen.CLASSES[i] for i in model(data.x_test).argmax(1).tolist()]
    assert loaded.predict(pngs) == want
    # a REST request carries the files as base64 text: MLflow checks the logged example that way, and so it serves
    import base64

    assert loaded.predict([base64.b64encode(p).decode() for p in pngs]) == want
    assert loaded.predict([base64.encodebytes(p) for p in pngs]) == want  # with line breaks, as MLflow writes it
