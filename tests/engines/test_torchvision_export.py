"""`segstream export torchvision:NAME` writes ONNX files that `segstream run`
understands. No weights can be downloaded here, so the architectures are
exported with random weights: this checks shapes and plumbing, not accuracy.

Needs a torchvision that matches the installed torch; this CI's CPU torch
2.13 has none on this machine's package index, so here the export tests are
skipped and only the error path runs. They were run with torch 2.14.1 +
torchvision 0.29.1 (see the README)."""

from __future__ import annotations

import os

import numpy as np
import pytest
from segstream.engines.model import Model
from segstream.stream.errors import ModelError
from segstream.stream.sources import open_source

try:
    import torchvision  # noqa: F401

    HAVE_TORCHVISION = True
except Exception:  # noqa: BLE001 - a mismatched torchvision raises RuntimeError
    HAVE_TORCHVISION = False
    if os.environ.get("SEGSTREAM_REQUIRE_TORCH"):  # .ci/run's torchvision venv: installed on purpose, so never skipped
        pytest.fail("SEGSTREAM_REQUIRE_TORCH is set but torchvision does not import", pytrace=False)


def test_without_torchvision_export_is_a_one_line_error(tmp_path):
    if HAVE_TORCHVISION:
        pytest.skip("torchvision is importable here")
    from segstream.engines.torchvision_export import export_torchvision

    with pytest.raises(ModelError, match="export needs torchvision matching the installed torch"):
        export_torchvision("torchvision:lraspp_mobilenet_v3_large", str(tmp_path / "x.onnx"), random_weights=True)


@pytest.mark.skipif(not HAVE_TORCHVISION, reason="torchvision matching this torch is not importable")
@pytest.mark.parametrize("name, task", [
    ("lraspp_mobilenet_v3_large", "semantic"),
    ("maskrcnn_resnet50_fpn_v2", "segment"),
    ("keypointrcnn_resnet50_fpn", "pose"),
])
def test_exported_architectures_run_through_their_adapters(name, task, tmp_path, video):
    from segstream.engines.torchvision_export import export_torchvision

    path = export_torchvision(f"torchvision:{name}", str(tmp_path / f"{name}.onnx"), random_weights=True)
    model = Model.load(str(path), conf=0.0)
    assert model.task == task
    with open_source(str(video)) as source:
        frame = next(iter(source))
    result = model(frame)
    if task == "semantic":
        assert result.labels.shape == (frame.height, frame.width) and len(model.class_names) == 21
    else:
        assert model.class_names[1] == "person" and len(result) > 0
        assert (result.xyxy[:, 2] <= frame.width).all() and (result.xyxy[:, 3] <= frame.height).all()
        if task == "segment":
            assert result.masks.shape == (len(result), frame.height, frame.width)
        else:
            assert result.keypoints.shape == (len(result), 17, 3)
            assert np.isfinite(result.keypoints).all()


def test_unknown_model_names_the_supported_ones():
    from segstream.engines.torchvision_export import export_torchvision
    from segstream.stream.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown model 'torchvision:resnet50': export supports torchvision:maskrcnn"):
        export_torchvision("torchvision:resnet50")


def test_export_into_a_missing_folder_is_a_one_line_error(tmp_path):
    from segstream.engines.torchvision_export import export_torchvision
    from segstream.stream.errors import OutputError

    with pytest.raises(OutputError, match="export: the folder .*missing does not exist"):
        export_torchvision("torchvision:lraspp_mobilenet_v3_large", str(tmp_path / "missing" / "x.onnx"), True)


@pytest.mark.skipif(not HAVE_TORCHVISION, reason="torchvision matching this torch is not importable")
def test_exported_semantic_models_run_on_the_torch_backend(tmp_path, video):
    """Where there is a GPU but no TensorRT, torch runs the exported file: its label
    map is ONNX Runtime's. (The exporter shares equal weights through Identity
    nodes, which onnx2torch could not convert: the export inlines them.)"""
    from segstream.engines.torchvision_export import export_torchvision

    path = str(export_torchvision("torchvision:lraspp_mobilenet_v3_large", str(tmp_path / "lraspp.onnx"), True))
    on_torch = Model.load(path, backend="torch", device="cpu")
    assert on_torch.backend.name == "torch"
    reference = Model.load(path, backend="onnxruntime", device="cpu")
    with open_source(str(video)) as source:
        frame = next(iter(source))
    assert (on_torch(frame).labels == reference(frame).labels).mean() >= 0.999
