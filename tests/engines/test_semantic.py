"""Semantic segmentation: a logits model's output becomes a class per frame
pixel, computed like the reference (crop the letterbox padding, bilinear
resize, argmax; only the classes that can win are resized, with the same
result), with class names from a labels file or the model; one-channel
models are thresholded, and class ids out of the model resized by nearest pixel."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from segstream.engines.adapters.semantic import IMAGENET_MEAN, IMAGENET_STD, SemanticConfig
from segstream.engines.model import Model, ModelSet
from segstream.engines.ops.label_resize import contending_classes, resize_argmax
from segstream.stream.errors import ConfigError
from segstream.stream.types import Frame, LabelMap
from semantic_models import STREET_LABELS, export_tiny_fcn


@pytest.fixture(scope="module")
def fcn(tmp_path_factory):
    path = tmp_path_factory.mktemp("semantic") / "tiny_fcn.onnx"
    module = export_tiny_fcn(path)
    labels = path.with_suffix(".txt")
    labels.write_text("\n".join(STREET_LABELS) + "\n")
    return path, module, labels


def reference_labels(module, image: np.ndarray, input_hw=(96, 128)) -> np.ndarray:
    """Letterbox + ImageNet normalisation, the torch module, padding cut, bilinear resize, argmax."""
    from segstream.engines.ops.letterbox import letterbox

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
    from segstream.stream.sources import open_source

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


def every_class_resized(logits: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
    """The straightforward answer: resize all class planes, then argmax."""
    planes = [cv2.resize(plane, out_hw[::-1], interpolation=cv2.INTER_LINEAR) for plane in logits.astype(np.float32)]
    return np.argmax(np.stack(planes), axis=0)


def scene_logits(classes: int, present: list[int], hw: tuple[int, int], seed: int = 0) -> np.ndarray:
    """A trained model's kind of logits: a few classes in smooth regions, the rest well below them."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:hw[0], 0:hw[1]]
    logits = rng.normal(-6, 0.5, (classes, *hw)).astype(np.float32)
    for k in present:
        cy, cx, r = rng.uniform(0, hw[0]), rng.uniform(0, hw[1]), rng.uniform(hw[0] / 6, hw[0] / 2)
        logits[k] = 8 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r)) + rng.normal(0, 0.05, hw)
    return logits


@pytest.mark.parametrize("name, logits, out_hw", [
    ("4 of 21 classes in a scene, enlarged", scene_logits(21, [0, 2, 7, 15], (30, 40)), (225, 400)),
    ("12 of 150 classes, enlarged", scene_logits(150, list(range(0, 120, 10)), (24, 32), seed=1), (180, 320)),
    ("300 classes, a 16-bit map", scene_logits(300, [0, 5, 260, 299], (20, 20), seed=2), (64, 64)),
    ("noise, every class somewhere", np.random.default_rng(3).normal(0, 1, (21, 16, 24)).astype(np.float32), (90, 160)),
    ("shrunk", scene_logits(21, [0, 15], (60, 80), seed=4), (45, 50)),
    ("one class", np.zeros((1, 8, 8), np.float32), (20, 30)),
])
def test_resizing_only_the_contending_classes_gives_every_pixel_the_same_class(name, logits, out_hw):
    """Skipping the classes that cannot win anywhere changes no pixel's class."""
    got = resize_argmax(logits, out_hw)
    assert got.shape == out_hw and got.dtype == (np.uint16 if len(logits) > 256 else np.uint8)
    assert np.array_equal(got, every_class_resized(logits, out_hw)), name


@settings(max_examples=300, deadline=None)
@given(
    logits=hnp.arrays(np.float32, st.tuples(st.integers(1, 5), st.integers(1, 6), st.integers(1, 6)),
                      elements=st.integers(-3, 3).map(float)),
    out_hw=st.tuples(st.integers(1, 20), st.integers(1, 20)),
)
@example(np.array([[[0.0, 0.0]], [[0.0, 1.0]]], np.float32), (1, 1))  # 1x1 arrays: cv2 would read them as scalars
@example(np.array([[[0.0, 0.0]]] * 3 + [[[0.0, 1.0]]], np.float32), (4, 1))  # and 4x1 ones too (found by Hypothesis)
@example(np.array([[[1.0]], [[2.0]], [[0.0]]], np.float32), (3, 2))
def test_contending_classes_never_change_a_pixel_ties_included(logits, out_hw):
    """Small integer logits make ties everywhere: the first of equal classes must still win, as with argmax."""
    assert np.array_equal(resize_argmax(logits, out_hw), every_class_resized(logits, out_hw))


def test_absent_classes_do_not_contend_but_a_class_that_wins_only_between_pixels_does():
    """Two pixels, class 0 strong on the left, 1 on the right, 2 second everywhere: halfway, 2 wins."""
    logits = np.array([[[10.0, 0.0]], [[0.0, 10.0]], [[9.0, 9.0]], [[-5.0, -5.0]]], np.float32)
    assert contending_classes(logits).tolist() == [0, 1, 2]
    labels = resize_argmax(logits, (1, 8))
    assert 2 in labels and np.array_equal(labels, every_class_resized(logits, (1, 8)))


def test_a_class_below_every_winner_at_its_own_pixels_can_still_contend():
    """Class 2 is below the winner at both pixels, yet wins three quarters of the way
    from the left one to the right one (where class 0 has fallen and class 1 not yet risen)."""
    logits = np.array([[[10.0, 8.0]], [[-20.0, 10.0]], [[7.0, 9.9]]], np.float32)
    assert contending_classes(logits).tolist() == [0, 1, 2]
    labels = resize_argmax(logits, (1, 16))
    assert 2 in labels and np.array_equal(labels, every_class_resized(logits, (1, 16)))


@pytest.mark.parametrize("sigmoid, threshold, want_threshold", [
    (False, None, 0.0),  # logits: foreground where positive
    (True, None, 0.5),   # the model ends in a sigmoid: read from the graph
    (True, 0.501, 0.501),  # semantic.threshold wins (random weights: outputs within 0.5 +- 0.005)
])
def test_a_one_channel_model_is_background_and_foreground_by_threshold(tmp_path, sigmoid, threshold, want_threshold):
    """A binary U-Net-style model ([1, 1, h, w]) gives a two-class map: foreground
    where its output, resized to the frame, exceeds the threshold."""
    path = tmp_path / "binary.onnx"
    module = export_tiny_fcn(path, classes=1, sigmoid=sigmoid, seed=3)
    labels = tmp_path / "labels.txt"
    labels.write_text("person\n")
    model = Model.load(str(path), semantic=SemanticConfig(labels=str(labels), threshold=threshold))
    assert model.task == "semantic" and model.class_names == ["background", "person"]
    assert model.adapter.threshold == want_threshold
    image = np.random.default_rng(2).integers(0, 255, (200, 400, 3), dtype=np.uint8)
    got = model(Frame(image, "cam", 0, 0.0, 0.0)).labels
    feed, lb = model.adapter.preprocess(Frame(image, "cam", 0, 0.0, 0.0))
    with torch.no_grad():
        out = module(torch.from_numpy(feed[model.adapter.input_name]))[0, 0].numpy()
    y0, y1, x0, x1 = (lb.top, lb.top + round(200 * lb.gain), lb.left, lb.left + round(400 * lb.gain))
    want = cv2.resize(out[y0:y1, x0:x1], (400, 200), interpolation=cv2.INTER_LINEAR) > want_threshold
    assert got.dtype == np.uint8 and set(np.unique(got)) <= {0, 1}
    assert (got == want).mean() >= 0.999 and 0.05 < got.mean() < 0.95  # both classes present


def test_a_one_channel_models_class_names(tmp_path):
    """Background and foreground by default; a labels file names the foreground, or both classes."""
    path = tmp_path / "binary.onnx"
    export_tiny_fcn(path, classes=1)
    assert Model.load(str(path)).class_names == ["background", "foreground"]
    labels = tmp_path / "labels.txt"
    labels.write_text("floor\nperson\n")
    assert Model.load(str(path), semantic=SemanticConfig(labels=str(labels))).class_names == ["floor", "person"]
    labels.write_text("a\nb\nc\n")
    with pytest.raises(ConfigError, match=r"has 3 names but the model has 2 classes \(or 1: its foreground\)"):
        Model.load(str(path), semantic=SemanticConfig(labels=str(labels)))


@pytest.mark.parametrize("layout", ["[N,1,h,w]", "[N,h,w]"])
def test_a_model_that_outputs_class_ids_is_resized_by_nearest_pixel(tmp_path, layout):
    """The argmax inside the model (mmdeploy's segmentor exports): int64 ids, padding cut
    off, taken to the frame by nearest pixel centre; as many classes as the labels file names."""
    path = tmp_path / "ids.onnx"
    module = export_tiny_fcn(path, classes=5, ids=layout)
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(STREET_LABELS) + "\n")
    model = Model.load(str(path), semantic=SemanticConfig(labels=str(labels)))
    assert model.task == "semantic" and model.adapter.class_ids and model.class_names == STREET_LABELS
    image = np.random.default_rng(1).integers(0, 255, (200, 400, 3), dtype=np.uint8)
    got = model(Frame(image, "cam", 0, 0.0, 0.0)).labels
    feed, lb = model.adapter.preprocess(Frame(image, "cam", 0, 0.0, 0.0))
    with torch.no_grad():
        ids = module(torch.from_numpy(feed[model.adapter.input_name]))[0].argmax(0).numpy().astype(np.uint8)
    crop = ids[lb.top: lb.top + round(200 * lb.gain), lb.left: lb.left + round(400 * lb.gain)]
    want = cv2.resize(crop, (400, 200), interpolation=cv2.INTER_NEAREST_EXACT)
    assert got.dtype == np.uint8 and np.array_equal(got, want) and len(np.unique(got)) > 1
    # Without names, a uint8 map's worth of classes.
    assert Model.load(str(path)).class_names == [f"class{i}" for i in range(256)]
