"""`kubenas pull` pieces that need no server: the model reference, and the ONNX export of every buildable space
(checked against the PyTorch module by pull itself, and here against load_module)."""

import json

import numpy as np
import onnxruntime
import pytest
import torch

from kubenas import pull
from kubenas.cli import main


@pytest.mark.parametrize(
    "ref, expected",
    [("m", ("m", "champion")), ("m@challenger", ("m", "challenger")), ("team-model@v7", ("team-model", "v7"))],
)
def test_reference(ref, expected):
    assert pull.parse_reference(ref) == expected


@pytest.mark.parametrize("ref", ["", "@champion", "m@", "m@a@b"])
def test_bad_reference(ref):
    with pytest.raises(pull.PullError, match="NAME or NAME@ALIAS"):
        pull.parse_reference(ref)


@pytest.mark.parametrize("shape", [(1, 40), (1, 8, 8)], ids=["1d", "2d"])
def test_every_space_exports_to_onnx_and_rebuilds(buildable_space, shape, tmp_path):
    torch.manual_seed(0)
    arch = buildable_space.sample(3)
    model = buildable_space.build(arch, shape, 10).eval()
    pull._export_onnx(model, shape, tmp_path / "model.onnx", onnxruntime)  # raises if ONNX and torch disagree
    torch.save(model.state_dict(), tmp_path / "state_dict.pt")
    (tmp_path / "arch.json").write_text(json.dumps(arch))
    (tmp_path / "model.json").write_text(
        json.dumps({"space": buildable_space.spec(), "input_shape": list(shape), "num_classes": 10})
    )
    x = torch.randn(17, *shape)  # a batch size the export never saw: the batch dimension is dynamic
    session = onnxruntime.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    got = session.run(None, {"x": x.numpy()})[0]
    with torch.no_grad():
        rebuilt = pull.load_module(tmp_path)(x).numpy()
    np.testing.assert_allclose(got, rebuilt, atol=1e-4)
    assert got.shape == (17, 10)


def test_pull_without_a_server(monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert main(["pull", "m", "-o", str(tmp_path / "out"), "--home", str(tmp_path / "no-stack")]) == 2
    assert "no MLflow server" in capsys.readouterr().err
    assert main(["pull", "m", "-o", str(tmp_path / "out"), "--tracking-uri", "http://127.0.0.1:9"]) == 2
    assert "cannot reach the MLflow server at http://127.0.0.1:9" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
