"""Semantic segmentation: a logits model's output becomes a class per frame
pixel, computed like the reference (crop the letterbox padding, bilinear
resize, argmax), with class names from a labels file or the model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from engines.model import Model, ModelSet
from engines.semantic import IMAGENET_MEAN, IMAGENET_STD, SemanticConfig
from semantic_models import STREET_LABELS, export_tiny_fcn
from stream.errors import ConfigError
from stream.types import Frame, LabelMap


@pytest.fixture(scope="module")
def fcn(tmp_path_factory):
    path = tmp_path_factory.mktemp("semantic") / "tiny_fcn.onnx"
    module = export_tiny_fcn(path)
    labels = path.with_suffix(".txt")
    labels.write_text("\n".join(STREET_LABELS) + "\n")
    return path, module, labels


def reference_labels(module, image: np.ndarray, input_hw=(96, 128)) -> np.ndarray:
    """Letterbox + ImageNet normalisation, the torch module, padding cut, bilinear resize, argmax."""
    from engines.letterbox import letterbox

    padded, lb = letterbox(image, input_hw)
    x = torch.from_numpy(padded[:, :, ::-1].copy()).permute(2, 0, 1).float()[None] / 255
    x = (x - torch.tensor(IMAGENET_MEAN)[:, None, None]) / torch.tensor(IMAGENET_STD)[:, None, None]
    with torch.no_grad():
        logits = module(x)
    h, w = lb.frame_hw
    top, left = lb.top, lb.left
    crop = logits[:, :, top: top + round(h * lb.gain), left: left + round(w * lb.gain)]
    return F.interpolate(crop, size=(h, w), mode="bilinear", align_corners=False)[0].argmax(0).numpy()


@pytest.mark.parametrize("frame_hw", [(96, 128), (200, 400), (576, 768)])
def test_label_map_matches_the_reference(fcn, frame_hw):
    path, module, labels = fcn
    model = Model.load(str(path), semantic=SemanticConfig(labels=str(labels)))
    assert model.task == "semantic" and model.class_names == STREET_LABELS
    image = np.random.default_rng(1).integers(0, 255, (*frame_hw, 3), dtype=np.uint8)
    got = model(Frame(image, "cam", 0, 0.0, 0.0))
    assert isinstance(got, LabelMap) and got.labels.shape == frame_hw and got.labels.dtype == np.uint8
    agree = (got.labels == reference_labels(module, image)).mean()
    assert agree >= 0.995  # only ties at class borders may differ


def test_names_without_a_labels_file_and_with_a_wrong_one(fcn, tmp_path):
    path, _, _ = fcn
    assert Model.load(str(path)).class_names == [f"class{i}" for i in range(5)]
    wrong = tmp_path / "labels.txt"
    wrong.write_text("road\nsky\n")
    with pytest.raises(ConfigError, match="labels: .* has 2 names but the model has 5 classes"):
        Model.load(str(path), semantic=SemanticConfig(labels=str(wrong)))


def test_a_semantic_model_beside_an_instance_model(fcn, seg_model, video):
    """Objects come from the instance model, the label map from the semantic one."""
    from stream.sources import open_source

    path, _, labels = fcn
    models = ModelSet([Model.load(str(seg_model)), Model.load(str(path), semantic=SemanticConfig(labels=str(labels)))])
    with open_source(str(video)) as source:
        frame = next(iter(source))
    prepared = models.preprocess(frame)
    outputs = models.infer(prepared)
    dets = models.postprocess(outputs, prepared)
    semantic = models.semantic(outputs, prepared)
    assert len(dets) > 0 and dets.masks is not None and models.class_names[0] == "person"
    assert semantic.labels.shape == (frame.height, frame.width)
