"""INT8 calibration must see frames exactly as the model will at run time:
the same letterbox and the same normalisation (a semantic model's mean/std,
not YOLO's [0, 1]), taken from the user's video, spread over the file."""

from __future__ import annotations

import numpy as np
import pytest
from segstream.engines.adapters.semantic import SemanticConfig
from segstream.engines.model import Model, onnx_preprocess
from segstream.engines.runtimes.calibration import calibration_batches, fingerprint, yolo_preprocess
from segstream.engines.runtimes.engine_cache import ShapeProfile
from segstream.stream.errors import ModelError
from segstream.stream.sources import open_source
from semantic_models import export_tiny_fcn


def frames_of(video, seqs):
    with open_source(str(video)) as src:
        return [f for f in src if f.seq in seqs]


def test_semantic_calibration_frames_are_normalised_like_the_adapter(tmp_path, video):
    path = tmp_path / "fcn.onnx"
    export_tiny_fcn(path)
    profile = ShapeProfile(1, 2, 2, (96, 128), (96, 128), (96, 128))
    batches = list(calibration_batches(str(video), profile, frames=4, preprocess=onnx_preprocess(str(path))))
    assert len(batches) == 2 and batches[0].shape == (2, 3, 96, 128)
    model = Model.load(str(path))
    step = 795 // 4  # spread over the whole file
    want = [model.preprocess(f).feed[model.adapter.input_name] for f in frames_of(video, {0, step})]
    np.testing.assert_allclose(batches[0], np.concatenate(want), atol=1e-6)
    assert batches[0].min() < 0  # ImageNet mean/std, not [0, 1]


def test_yolo_calibration_frames_match_the_yolo_input(video, seg_model):
    profile = ShapeProfile(1, 1, 1, (320, 320), (320, 320), (320, 320))
    batch = next(calibration_batches(str(video), profile, frames=2, preprocess=onnx_preprocess(str(seg_model))))
    model = Model.load(str(seg_model))
    want = model.preprocess(frames_of(video, {0})[0]).feed[model.adapter.input_name]
    np.testing.assert_array_equal(batch, want)
    default = next(calibration_batches(str(video), profile, frames=2))  # without a model: YOLO's letterbox
    np.testing.assert_array_equal(default, want)


def test_a_profile_other_than_the_models_input_is_named(video, seg_model):
    profile = ShapeProfile(1, 1, 1, (640, 640), (640, 640), (640, 640))
    with pytest.raises(ModelError, match=r"calibration frames are prepared as \[1, 3, 320, 320\] but the engine's profile expects \[N, 3, 640, 640\]"):
        next(calibration_batches(str(video), profile, frames=2, preprocess=onnx_preprocess(str(seg_model))))


def test_the_model_file_is_read_only_when_calibrating(tmp_path, video):
    """`--precision int8` on a machine that falls back to ONNX Runtime never calibrates: nothing is read."""
    prepare = onnx_preprocess(str(tmp_path / "missing.onnx"))
    with pytest.raises(ModelError, match="model file not found"):
        prepare(frames_of(video, {0})[0])


def test_the_preparation_fingerprint_follows_size_and_normalisation(tmp_path, seg_model):
    """An INT8 engine is keyed by how its calibration frames were prepared: another mean/std rebuilds it."""
    path = str(tmp_path / "fcn.onnx")
    export_tiny_fcn(path)
    imagenet = fingerprint(onnx_preprocess(path))
    assert imagenet == fingerprint(onnx_preprocess(path))
    assert imagenet != fingerprint(onnx_preprocess(path, SemanticConfig(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))))
    yolo = fingerprint(onnx_preprocess(str(seg_model)))
    assert yolo == fingerprint(yolo_preprocess(ShapeProfile(1, 1, 1, (320, 320), (320, 320), (320, 320))))
    assert yolo not in (imagenet, fingerprint(yolo_preprocess(ShapeProfile(1, 1, 1, (640, 640), (640, 640), (640, 640)))))
